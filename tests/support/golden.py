"""Golden files: outputs a test holds the code to, stored under tests/golden/ so a change shows as
a diff, not as a new hash.

A test asks for the `golden` fixture (tests/conftest.py) and calls `golden(name, actual)`: it
returns what tests/golden/<name> holds (bytes as they are; any other value as JSON) and the test
compares. To record a deliberate change of an output, run the tests that hold it with
`--regenerate-golden`, which writes `actual` to the file first, then review and commit the diff:

    ./run.sh test -n 0 tests/test_sim_longterm.py tests/test_pipeline.py --regenerate-golden
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden"


def golden_value(name: str, actual: Any, regenerate: bool) -> Any:
    path = GOLDEN_DIR / name
    if regenerate:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(actual, bytes):
            path.write_bytes(actual)
        else:
            path.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n")
    if not path.exists():
        raise AssertionError(f"no golden file {path}: record it with --regenerate-golden")
    return path.read_bytes() if isinstance(actual, bytes) else json.loads(path.read_text())
