import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from ledger_factory import Populated, populate


@pytest.fixture(scope="session")
def populated_template(tmp_path_factory: pytest.TempPathFactory) -> Populated:
    return populate(tmp_path_factory.mktemp("template") / "ledger")


@pytest.fixture
def populated(populated_template: Populated, tmp_path: Path) -> Populated:
    """A private copy of a small, fully populated ledger."""
    data = tmp_path / "ledger"
    shutil.copytree(populated_template.data, data)
    p = populated_template
    return Populated(data, p.keys, p.alice, p.bob, p.bob_new, p.receipts)
