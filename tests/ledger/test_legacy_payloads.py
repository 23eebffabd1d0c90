"""A ledger written before issue 12's payload syntax still verifies; nothing new is admitted in the old shapes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from medledger.errors import MedledgerError
from medledger.ledger.syntax import replaying
from medledger.node.bootstrap import init_ledger

OLD_DEFAULT = "Demo Province Internet Medical Supervision"  # the consortium name `medledger init` used to write


def test_a_ledger_with_old_shapes_verifies_but_init_refuses_them_now(tmp_path: Path) -> None:
    with replaying():  # writes the ledger as the code before issue 12 did
        init_ledger(tmp_path / "old", consortium=OLD_DEFAULT)
    run = subprocess.run(
        [sys.executable, "-m", "medledger", "verify", "--data", str(tmp_path / "old")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    with pytest.raises(MedledgerError, match="consortium: a name on the ledger may not hold a capital letter"):
        init_ledger(tmp_path / "new", consortium=OLD_DEFAULT)
