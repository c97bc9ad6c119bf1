"""The JSON-lines files botify's parts hand each other (the catalog, the recommendation tables):
reading them line by line, and the error that names the file, the line and what is wrong.
Formats: docs/DESIGN.md, "Tables"."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import orjson


class TableError(ValueError):
    """A table or catalog file that cannot be used; the message says which file and why."""


def json_lines(path: Path, data: bytes) -> Iterator[tuple[int, bytes, Any]]:
    """(line number, line, parsed value) of every non-blank line of a JSON-lines file;
    invalid JSON raises TableError naming the line, and the truncation when it is the last."""
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            hint = " (the file looks truncated)" if number == data.count(b"\n") + 1 else ""
            raise TableError(f"{path}:{number}: invalid JSON{hint}: {e}") from None
        yield number, line, record
