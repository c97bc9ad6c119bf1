"""The last lines of a log file, for error messages that point at a failed process's log."""
from __future__ import annotations

from pathlib import Path


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
