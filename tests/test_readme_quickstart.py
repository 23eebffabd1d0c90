"""The README's "Quick start by hand", pasted whole into bash, works end to end (issue 12, friction 1).

The block is read from README.md at test time and run as written, with two
substitutions a reader's machine does not need: ``.venv/bin/`` is this test
run's own environment, and port 8400 a free port (a developer may be running
``make demo`` on 8400 meanwhile). ``make setup`` runs against this checkout
when it is a no-op here (the stamp is fresh and this interpreter is the
checkout's own ``.venv``); otherwise that one line is skipped, because it
would reinstall the very environment this test is running in.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from medledger._serving import free_port

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("curl") is None,
                                reason="the quick start needs bash and curl")


def quick_start_block() -> str:
    """The first ```sh block under the "Quick start by hand" heading, exactly as the README has it."""
    text = README.read_text()
    heading = text.index("## Quick start by hand")
    found = re.compile(r"```sh\n(.*?)\n```", re.S).search(text, heading)
    assert found is not None, "no ```sh block under 'Quick start by hand'"
    return found.group(1) + "\n"


def _make_setup_is_a_no_op() -> bool:
    if shutil.which("make") is None or BIN != REPO / ".venv" / "bin":
        return False
    asked = subprocess.run(["make", "-q", "-C", str(REPO), ".venv/.installed"], capture_output=True)
    return asked.returncode == 0


def test_the_quick_start_block_runs_as_pasted(tmp_path: Path) -> None:
    block = quick_start_block()
    assert "make setup" in block and ".venv/bin/medledger serve" in block and "kill %1" in block
    port = str(free_port())
    script = block.replace(".venv/bin/", f"{BIN}/").replace("8400", port)
    if _make_setup_is_a_no_op():
        script = f'make() {{ command make -C "{REPO}" "$@"; }}\n' + script
    else:
        script = re.sub(r"^make setup\b.*$", ": make setup skipped (it would reinstall this test's own .venv)",
                        script, flags=re.M)
    proc = subprocess.Popen(["bash", "-s"], cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "NO_COLOR": "1"})
    try:
        out, err = proc.communicate(script, timeout=600)
    finally:
        # the block's own `kill %1` stops the server; whatever a failed run left of the group goes now
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    transcript = f"--- stdout\n{out}\n--- stderr\n{err}"
    assert proc.returncode == 0, transcript
    assert "error" not in err.lower(), transcript
    load = next(json.loads(line) for line in out.splitlines() if line.startswith('{"submitted"'))
    assert load["acknowledged"] == 5000 and load["refused"] == 0, transcript
    assert len((tmp_path / "receipts.jsonl").read_text().splitlines()) == 5000
    assert '"resourceType":"CapabilityStatement"' in out.replace(" ", ""), transcript
    assert "ledger intact" in out + err, transcript
    verdict = next(line for line in (out + err).splitlines() if "ledger intact" in line)
    assert "5003 transactions" in verdict, transcript  # genesis, the demo admin, the load member, 5000 anchors
