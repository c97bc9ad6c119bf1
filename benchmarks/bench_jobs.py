"""Benchmark of the four jobs (sessions, toppop, nn --dim 200, svd) on synthetic logs.

    .venv/bin/python benchmarks/bench_jobs.py                       # ~100k and ~1M events
    .venv/bin/python benchmarks/bench_jobs.py --sessions 11500      # ~100k events only
    .venv/bin/python benchmarks/bench_jobs.py --course --spark-als  # + course table, Spark ALS

One SparkSession (local[2]) runs every job in-process, so start-up is excluded. Logs come from
the seeded generator in tests/test_jobs_synth.py (50,000 tracks, 10,000 users), by default
day-1-like (a Contextual-style recommender: what the dim-200 NN is trained on in the pipeline);
they are cached in benchmarks/out/. Prints each job's time, the total against the 6-minute
target, the NN's held-out MSE against the mean baseline, the offline checks and the scaling.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))   # the synthetic-log generator lives with the tests
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

from jobs import common, nn, sessions, svd, toppop  # noqa: E402
from test_jobs_synth import synthetic_sessions, write_event_log  # noqa: E402

TARGET_S = 360


def event_log(out: Path, n_sessions: int, contextual: bool, seed: int) -> tuple[Path, int]:
    folder = out / f"events_{'day1' if contextual else 'day0'}_{n_sessions}_{seed}"
    done = folder / "_LINES"
    if not done.exists():
        started = time.perf_counter()
        lines = write_event_log(synthetic_sessions(n_sessions, n_tracks=50_000, n_users=10_000, seed=seed,
                                                   contextual=contextual), folder, n_files=8)
        done.write_text(str(lines))
        print(f"generated {lines} events in {time.perf_counter() - started:.0f} s -> {folder}", flush=True)
    return folder, int(done.read_text())


def timed(results: dict, name: str, fn):
    started = time.perf_counter()
    value = fn()
    results[name] = time.perf_counter() - started
    return value


def bench_size(spark, out: Path, n_sessions: int, args) -> dict:
    events, lines = event_log(out, n_sessions, not args.day0, args.seed)
    work, tables = out / f"work_{n_sessions}", out / f"tables_{n_sessions}"
    day = ["--sessions", str(work / "sessions"), "--out", str(tables)]

    def run(job, argv):
        return job.run(spark, common.parse_args(job.NAME, "bench", job.add_arguments, argv))

    times: dict[str, float] = {}
    timed(times, "sessions", lambda: run(sessions, ["--events", str(events), "--out", str(work)]))
    timed(times, "toppop", lambda: run(toppop, day))
    result = timed(times, "nn --dim 200", lambda: run(nn, day + ["--dim", "200"]))
    timed(times, "svd", lambda: run(svd, day))
    extra: dict[str, float] = {}
    course = timed(extra, "nn --dim 100 --unordered",
                   lambda: run(nn, day + ["--dim", "100", "--unordered"])) if args.course else None
    spark_als = timed(extra, "nn --dim 200 --solver spark",
                      lambda: run(nn, day + ["--dim", "200", "--solver", "spark", "--table", "spark_als.json"])
                      ) if args.spark_als else None
    return {"lines": lines, "times": times, "extra": extra, "nn": result, "course": course,
            "spark_als": spark_als}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="11500,115000",
                        help="comma-separated session counts (~8.7 events each with day-1 logs)")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "jobs")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--day0", action="store_true", help="Random-recommender (day-0) logs instead")
    parser.add_argument("--course", action="store_true", help="also time nn --dim 100 --unordered")
    parser.add_argument("--spark-als", action="store_true", help="also time nn with Spark ML's ALS")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    spark = common.spark_session("bench-jobs", args.master)
    runs = {}
    for n in map(int, args.sessions.split(",")):
        runs[n] = bench_size(spark, args.out, n, args)
    spark.stop()

    print(f"\nmaster {args.master}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          f"(the machine is shared: compare ratios within one run)")
    for n, r in runs.items():
        total = sum(r["times"].values())
        print(f"\n{r['lines']:,} events ({n:,} sessions):")
        for name, seconds in {**r["times"], **r["extra"]}.items():
            print(f"  {name:<28}{seconds:8.1f} s")
        print(f"  {'total of the four jobs':<28}{total:8.1f} s   target <= {TARGET_S} s: "
              f"{'met' if total <= TARGET_S else 'MISSED'}")
        mse = r["nn"]["mse"]
        print(f"  NN held-out MSE {mse['model']:.5f} vs mean baseline {mse['baseline']:.5f} "
              f"({1 - mse['model'] / mse['baseline']:.1%} lower; {mse['covered']:.0%} of pairs covered)")
        for label, res in (("NN dim 200 ordered", r["nn"]), ("course dim 100 unordered", r["course"]),
                           ("Spark ALS dim 200", r["spark_als"])):
            if res:
                table, top = [v for k, v in res["offline"].items() if k != "top-pop"][0], res["offline"]["top-pop"]
                print(f"  {label:<26} hit@100 {table['hit_rate']:.4f} ndcg@100 {table['ndcg']:.4f}   "
                      f"top-pop hit@100 {top['hit_rate']:.4f} ndcg@100 {top['ndcg']:.4f}")
    if len(runs) > 1:
        a, b = list(runs.values())[0], list(runs.values())[-1]
        print(f"\nscaling {a['lines']:,} -> {b['lines']:,} events (x{b['lines'] / a['lines']:.1f}):")
        for name in a["times"]:
            print(f"  {name:<28}x{b['times'][name] / a['times'][name]:.1f}")


if __name__ == "__main__":
    main()
