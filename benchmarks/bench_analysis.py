"""Benchmark of the A/B job on synthetic logs at B = 1000, two ways side by side:

- wall: `spark-submit --master local[2] analysis/ab_test.py ...` as the pipeline runs it,
  timed as the user waits (JVM and Spark start-up, reading the logs, report files included);
  the logs are read from HDFS when the test stack is up (run under
  `python -m infra run -- ...`), else from local disk (the line says which);
- kernel: the analysis inside one warmed-up SparkSession (start-up excluded), split into the
  per-user table, the bootstrap and the report.

    python benchmarks/bench_analysis.py                       # the small A/B day and 1M users
    python benchmarks/bench_analysis.py --users 4000 --replicates 250 500 1000

At B = 1000 it says whether the wall time meets its target for the smallest size and for
1,000,000 users (`targets` in `main`). The logs are generated once per (users, seed)
under --data-dir and reused. The latest figures are in docs/SPEED.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.table import Table

from infra.progress import tracked

REPO = Path(__file__).resolve().parents[1]
CHUNK_USERS = 100_000  # users generated (and written as one file) at a time
SESSION_END = 0.142    # 8 events per session, like the simulator's A/B day (~40k per 5,000)


def event_logs(users: int, seed: int, data_dir: Path) -> tuple[Path, int]:
    """The synthetic log folder for (users, seed) and its number of lines, generated if absent."""
    from dataclient.synthetic_logs import synthetic_events, write_events

    folder = data_dir / f"users{users}-seed{seed}-len8"
    stamp = folder / "_GENERATED.json"  # Spark skips files starting with "_"
    if stamp.exists():
        return folder, json.loads(stamp.read_text())["events"]
    shutil.rmtree(folder, ignore_errors=True)
    lines = 0
    for chunk, first in enumerate(tracked(range(0, users, CHUNK_USERS), f"logs {users} users",
                                          "chunk")):
        events = synthetic_events(min(CHUNK_USERS, users - first), seed=[seed, chunk],
                                  time_lift={"T1": 0.05}, latency_lift={"T1": 0.1},
                                  first_user=first, session_end=SESSION_END)
        write_events(events, folder / f"chunk-{chunk:04d}", files=1)
        lines += len(events)
    stamp.write_text(json.dumps({"users": users, "seed": seed, "events": lines}))
    return folder, lines


def hdfs_copy(folder: Path) -> tuple[str, object] | None:
    """The logs uploaded to the test stack's HDFS (URI and a cleanup), or None without one."""
    if not os.environ.get("BOTIFY_HDFS_FS"):
        return None
    from hdfs import InsecureClient

    user = os.environ["BOTIFY_HDFS_USER"]
    client = InsecureClient(os.environ["BOTIFY_WEBHDFS_URL"], user=user)
    remote = f"/user/{user}/bench-analysis-{uuid.uuid4().hex[:8]}"
    client.makedirs(remote)
    for part in sorted(folder.rglob("*.jsonl")):
        client.upload(f"{remote}/{part.relative_to(folder)}", str(part))
    return f"{os.environ['BOTIFY_HDFS_FS']}{remote}", lambda: client.delete(remote, recursive=True)


def wall_run(events: str, replicates: int, out: Path) -> float:
    """Seconds of one `spark-submit --master local[2] analysis/ab_test.py` run, start to end."""
    bin_dir = Path(sys.executable).parent
    command = [str(bin_dir / "spark-submit"), "--master", "local[2]",
               str(REPO / "analysis" / "ab_test.py"), "--events", events, "--experiment", "EXP",
               "--control", "C", "--out", str(out), "--bootstrap", str(replicates)]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable}
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - started
    out.mkdir(parents=True, exist_ok=True)
    (out / "spark-submit.log").write_text(result.stdout + result.stderr)
    steps = [line.strip() for line in (result.stdout + result.stderr).splitlines()
             if "per-user table built" in line or "bootstrap done" in line]
    print("  job's own steps: " + "; ".join(steps), flush=True)
    if result.returncode != 0:
        raise SystemExit(f"spark-submit failed ({result.returncode}):\n{result.stdout[-3000:]}"
                         f"\n{result.stderr[-3000:]}")
    return wall


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
    parser.add_argument("--users", type=int, nargs="+", default=[4_000, 1_000_000])
    parser.add_argument("--replicates", type=int, nargs="+", default=[1000],
                        help="B values; each is run at the smallest --users")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--no-wall", action="store_true", help="skip the spark-submit runs")
    parser.add_argument("--data-dir", type=Path, default=REPO / "data" / "bench-analysis")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "analysis")
    args = parser.parse_args()

    from sparkapp.session import spark_session

    weight_draw_speed(args.seed)
    logs = {n: event_logs(n, args.seed, args.data_dir) for n in sorted(args.users)}
    runs = [(min(logs), b) for b in sorted(args.replicates)]
    runs += [(n, max(args.replicates)) for n in sorted(logs) if n != min(logs)]

    walls: dict[tuple[int, int], tuple[float, str]] = {}
    if not args.no_wall:  # before this process starts its own JVM: one Spark at a time
        for users, replicates in runs:
            folder = logs[users][0]
            copy = hdfs_copy(folder)
            events, where = (copy[0], "hdfs") if copy else (str(folder), "local disk")
            try:
                wall = wall_run(events, replicates, args.out / f"wall-users{users}-B{replicates}")
            finally:
                if copy:
                    copy[1]()
            walls[users, replicates] = (wall, where)
            print(f"wall (spark-submit, logs on {where}): users {users:,} B {replicates}: "
                  f"{wall:.1f} s", flush=True)

    spark = spark_session("bench-analysis", args.master)
    # Start-up and first-use costs (JVM JIT, Python workers, page cache) go to a warm-up run.
    timed_run(spark, logs[min(logs)][0], 100, args.out / "warmup")
    measured = []
    for users, replicates in runs:
        folder, lines = logs[users]
        t = timed_run(spark, folder, replicates, args.out / f"users{users}-B{replicates}")
        measured.append((users, lines, replicates, t))
        bootstrap = t["bootstrap_s"] - t["per_user_s"]
        print(f"kernel: users {users:>9,}  events {lines:>11,}  B {replicates:>5}  "
              f"per-user {t['per_user_s']:6.1f} s  bootstrap {bootstrap:6.1f} s  "
              f"report {t['report_s']:5.1f} s  total {t['total_s']:6.1f} s", flush=True)

    table = Table(title=f"A/B analysis, {args.master}: wall (spark-submit) and kernel "
                        f"(warm session)")
    for column in ["users", "events", "B", "wall s", "logs on", "kernel s", "target"]:
        table.add_column(column, justify="right")
    targets = {min(logs): 15.0, 1_000_000: 60.0}
    for users, lines, replicates, t in measured:
        wall, where = walls.get((users, replicates), (None, "-"))
        target = targets.get(users) if replicates == 1000 else None
        verdict = "" if target is None or wall is None else (
            f"<= {target:.0f} s " + ("met" if wall <= target else "MISSED"))
        table.add_row(f"{users:,}", f"{lines:,}", str(replicates),
                      "-" if wall is None else f"{wall:.1f}", where, f"{t['total_s']:.1f}",
                      verdict)
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
