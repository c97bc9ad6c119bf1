"""Benchmark of the A/B job: the whole analysis (read JSON-lines events, per-user metrics, B
Poisson-bootstrap replicates in Spark, report files) on synthetic logs, Spark start-up excluded.

    .venv/bin/python benchmarks/bench_analysis.py                      # 100k and 1M users, B=1000
    .venv/bin/python benchmarks/bench_analysis.py --users 100000 --replicates 250 500 1000

Targets (issue 7): at most 20 s for 100,000 users and 60 s for 1,000,000 users at B = 1000.
The logs are generated once per (users, seed) under --data-dir and reused.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
CHUNK_USERS = 100_000  # users generated (and written as one file) at a time


def event_logs(users: int, seed: int, data_dir: Path) -> tuple[Path, int]:
    """The synthetic log folder for (users, seed) and its number of lines, generated if absent."""
    from analysis.synthetic import synthetic_events, write_events

    folder = data_dir / f"users{users}-seed{seed}"
    stamp = folder / "_GENERATED.json"  # Spark skips files starting with "_"
    if stamp.exists():
        return folder, json.loads(stamp.read_text())["events"]
    shutil.rmtree(folder, ignore_errors=True)
    lines = 0
    for chunk, first in enumerate(tqdm(range(0, users, CHUNK_USERS), desc=f"logs {users} users",
                                       unit="chunk", file=sys.stderr)):
        events = synthetic_events(min(CHUNK_USERS, users - first), seed=[seed, chunk],
                                  time_lift={"T1": 0.05}, latency_lift={"T1": 0.1},
                                  first_user=first)
        write_events(events, folder / f"chunk-{chunk:04d}", files=1)
        lines += len(events)
    stamp.write_text(json.dumps({"users": users, "seed": seed, "events": lines}))
    return folder, lines


def timed_run(spark, folder: Path, replicates: int, out: Path) -> dict:
    from analysis.ab_test import analyze, parse_args
    from analysis.config import load_config
    from analysis.report import write_outputs

    args = parse_args(["--events", str(folder), "--experiment", "EXP", "--control", "C",
                       "--out", str(out), "--bootstrap", str(replicates)])
    config = load_config(args.config, replicates=args.bootstrap)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    results, rows = analyze(spark, args, config, Console(stderr=True, quiet=True), timings)
    write_outputs(args.out, results, rows)
    timings["total_s"] = time.perf_counter() - started
    timings["report_s"] = timings["total_s"] - timings["bootstrap_s"]
    return timings


def weight_draw_speed(seed: int) -> None:
    """ns per Poisson(1) weight: the job's table-lookup draw against Generator.poisson."""
    import numpy as np

    from analysis.bootstrap import poisson1_weights

    for name, draw in [("table lookup (analysis.bootstrap)", poisson1_weights),
                       ("numpy Generator.poisson", lambda rng, r, b: rng.poisson(1.0, (r, b)))]:
        rng = np.random.default_rng(seed)
        started = time.perf_counter()
        for _ in range(10):
            draw(rng, 4096, 1000)
        print(f"Poisson(1) weights, {name}: "
              f"{(time.perf_counter() - started) / (10 * 4096 * 1000) * 1e9:.1f} ns each")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--replicates", type=int, nargs="+", default=[1000],
                        help="B values; each is run at the smallest --users")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--data-dir", type=Path, default=REPO / "data" / "bench-analysis")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "analysis")
    args = parser.parse_args()

    from jobs.common import spark_session

    weight_draw_speed(args.seed)
    logs = {n: event_logs(n, args.seed, args.data_dir) for n in sorted(args.users)}
    spark = spark_session("bench-analysis", args.master)
    smallest = min(logs)
    # Start-up and first-use costs (JVM JIT, Python workers, page cache) go to a warm-up run.
    timed_run(spark, logs[smallest][0], 100, args.out / "warmup")

    runs = [(smallest, b) for b in sorted(args.replicates)]
    runs += [(n, max(args.replicates)) for n in sorted(logs) if n != smallest]
    measured = []
    for users, replicates in runs:
        folder, lines = logs[users]
        t = timed_run(spark, folder, replicates, args.out / f"users{users}-B{replicates}")
        measured.append((users, lines, replicates, t))
        bootstrap = t["bootstrap_s"] - t["per_user_s"]
        print(f"users {users:>9,}  events {lines:>11,}  B {replicates:>5}  "
              f"per-user {t['per_user_s']:6.1f} s  bootstrap {bootstrap:6.1f} s  "
              f"report {t['report_s']:5.1f} s  total {t['total_s']:6.1f} s", flush=True)

    table = Table(title=f"A/B analysis, {args.master}, start-up excluded")
    for column in ["users", "events", "B", "total s", "x users", "x B", "target"]:
        table.add_column(column, justify="right")
    base = measured[0]
    targets = {100_000: 20.0, 1_000_000: 60.0}
    for users, lines, replicates, t in measured:
        target = targets.get(users) if replicates == 1000 else None
        verdict = "" if target is None else (f"<= {target:.0f} s "
                                              + ("met" if t["total_s"] <= target else "MISSED"))
        table.add_row(f"{users:,}", f"{lines:,}", str(replicates), f"{t['total_s']:.1f}",
                      f"{users / base[0]:.0f}", f"{replicates / base[2]:.2g}",
                      verdict)
    Console().print(table)
    for users, lines, replicates, t in measured[1:]:
        print(f"time ratio vs first row: {t['total_s'] / base[3]['total_s']:.2f} "
              f"for {users / base[0]:.0f}x users and {replicates / base[2]:.2g}x replicates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
