"""Where the demo keeps its ledgers, so the CLI's defaults find them.

Every ``medledger demo`` (and ``make demo``, and ``medledger init`` without
``--data``) builds a fresh ledger in ``demo-data/run-<timestamp>/`` and then
points the ``demo-data/latest`` symlink at it. The commands that read or serve
a ledger default to ``demo-data/latest``, and ``load`` to its demo admin's key,
so a user who ran the demo can run ``medledger verify`` or ``medledger load``
with no options and reach the ledger the demo just made.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Final

DEMO_ROOT: Final = Path("demo-data")
#: the symlink to the newest demo ledger, relative to the working directory
LATEST: Final = DEMO_ROOT / "latest"
#: the key of the demo institution's admin that ``init`` writes into every ledger
LATEST_ADMIN_KEY: Final = LATEST / "keys" / "demo-admin.key"


def new_run_dir() -> Path:
    """A fresh ``demo-data/run-<timestamp>`` path (not created; a second one in the same second gets a suffix)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = DEMO_ROOT / f"run-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = DEMO_ROOT / f"run-{stamp}-{n}"
    return path


def link_latest(data: Path) -> Path | None:
    """Point ``demo-data/latest`` at ``data`` when it is a run directly under ``demo-data/``; None otherwise.

    The link is relative (the tree can be moved) and replaced atomically, so a
    command reading ``latest`` meanwhile sees the old run or the new, never
    neither. A ledger elsewhere is left alone: ``latest`` names demo runs only.
    """
    try:
        inside = data.resolve().parent == DEMO_ROOT.resolve() and data.name != LATEST.name
    except OSError:
        return None
    if not inside:
        return None
    spare = LATEST.with_name(f".latest-{os.getpid()}")
    try:
        spare.unlink(missing_ok=True)
        spare.symlink_to(data.name)
        os.replace(spare, LATEST)
    except OSError:  # e.g. someone made demo-data/latest a real directory: leave it, the run still stands
        spare.unlink(missing_ok=True)
        return None
    return LATEST
