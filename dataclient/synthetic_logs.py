"""Seeded fake service logs in the service's layout, for dataclient tests and the benchmark.

`root/<replica>/events.jsonl` (active) plus `events.jsonl.1`, `.2`, ... (rotated); every line
is a contract-valid event built with contract.events.make_event. Same seed -> same bytes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson

from contract.events import make_event

EVENTS_PER_BATCH = 20_000


def event_lines(rng: np.random.Generator, start_ms: int, n: int) -> tuple[bytes, int]:
    """n JSON lines (about 155 bytes each) with timestamps increasing from start_ms, and the
    last timestamp."""
    users = rng.integers(0, 10_000, n)
    tracks = rng.integers(0, 50_000, n)
    recs = rng.integers(0, 50_000, n)
    times = np.round(rng.random(n), 2)
    latencies = np.round(rng.exponential(0.002, n), 6)
    last = rng.random(n) < 0.1
    steps = np.cumsum(rng.integers(1, 20, n)) + start_ms
    arms = np.where(rng.random(n) < 0.5, "C", "T1")
    lines = b"".join(
        orjson.dumps(make_event("last" if last[i] else "next", int(steps[i]), int(users[i]),
                                int(tracks[i]), float(times[i]), float(latencies[i]),
                                None if last[i] else int(recs[i]),
                                {"CONTEXTUAL": str(arms[i])})) + b"\n"
        for i in range(n))
    return lines, int(steps[-1])


def write_log_file(path: Path, size_bytes: int, rng: np.random.Generator,
                   start_ms: int = 1_700_000_000_000) -> int:
    """Whole lines until the file holds at least size_bytes; returns its size."""
    written, clock = 0, start_ms
    with open(path, "wb") as f:
        while written < size_bytes:
            n = min(EVENTS_PER_BATCH, max(1, (size_bytes - written) // 150))
            block, clock = event_lines(rng, clock, n)
            f.write(block)
            written += len(block)
    return written


def write_replica_logs(root: Path, replicas: int, files_per_replica: int, bytes_per_file: int,
                       seed: int) -> list[Path]:
    """The layout described above; returns the replica folders."""
    rng = np.random.default_rng(seed)
    folders = []
    for r in range(replicas):
        folder = root / f"replica-{r + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(files_per_replica):
            name = "events.jsonl" if k == 0 else f"events.jsonl.{k}"
            write_log_file(folder / name, bytes_per_file, rng)
        folders.append(folder)
    return folders
