"""A local Spark driver with and without the class archive (jobs/class_archive.py), as a user
waits: each run is a new Python process that starts the driver JVM, runs every job of the
archive's training day (sessions, toppop, nn, svd, the A/B analysis on about 13,000 synthetic
events) and stops.

    .venv/bin/python -m jobs.class_archive        # the archive, if ./run.sh has not built it
    .venv/bin/python benchmarks/bench_class_archive.py [--rounds 3]

Rounds alternate which runs first. Prints each run's wall seconds (start-up included) and
the ratio with / without of each round.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def one_run(with_archive: bool) -> None:
    """In this process: the driver JVM (with or without the archive) through the training day."""
    from jobs.class_archive import run_training_day

    code = run_training_day(None if with_archive else [])
    if code != 0:
        sys.exit(f"error: a job failed (exit {code})")


def timed(with_archive: bool) -> float:
    started = time.monotonic()
    done = subprocess.run([sys.executable, __file__, "--one", "with" if with_archive else "without"],
                          cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"error: the run failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--one", choices=["with", "without"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one_run(args.one == "with")
        return
    from jobs.class_archive import driver_java_options

    if not driver_java_options():
        sys.exit("error: no class archive to measure: build it first (python -m jobs.class_archive)")
    for round_ in range(1, args.rounds + 1):
        order = (True, False) if round_ % 2 else (False, True)
        seconds = {with_archive: timed(with_archive) for with_archive in order}
        print(f"round {round_}: with the archive {seconds[True]:.1f} s, without {seconds[False]:.1f} s, "
              f"ratio {seconds[True] / seconds[False]:.2f}", flush=True)


if __name__ == "__main__":
    main()
