"""Helpers shared by the simulator tests: running the CLI and what an acceptance run leaves behind."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def medledger(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "medledger", *args], capture_output=True, text=True, timeout=timeout)


@dataclass
class SimRun:
    data: Path
    report: dict[str, Any]
    truth: list[dict[str, Any]]
    wall_s: float
    stderr: str
