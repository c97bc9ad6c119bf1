"""Same logs, same tables: compare the jobs' outputs of two code versions byte for byte.

    python benchmarks/tables_check.py input DIR                   # day0/, day1/ synthetic logs
    python benchmarks/tables_check.py run DIR/day0 OUT --nn "--dim 100 --unordered" [--code TREE] [--driver]
    python benchmarks/tables_check.py compare OUT_A OUT_B         # exit 1 on any difference

`input` writes day-0-like (Random recommender) and day-1-like (Contextual) logs from the seeded
generator in dataclient/synthetic_logs.py, with a few contract-breaking lines mixed in (they must
land in the quarantine). `run` builds one day the way the pipeline does: four `spark-submit
--master local[2]` (sessions, toppop, nn, svd with --seed 42) with the job files of `--code`
(a checkout of another version, e.g. `git archive <commit> | tar -x -C TREE`), or with
`--driver` one `spark-submit jobs/driver.py` running the four jobs in one session. `compare`
checks every table file byte for byte and the sessions/, users/ (Parquet) and quarantine/
(JSON lines) contents row for row (their part files may be split differently).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from jobs.batch import join_invocations  # noqa: E402
from sparkapp.config import spark_config  # noqa: E402

BIN = Path(sys.executable).parent
TABLES = ("top_tracks.json", "tracks_nn.json", "tracks_with_recs.json", "recommendations_svd.json")
# Lines that break the contract in different ways (the quarantine must keep them with reasons).
CORRUPT = ['{"message": "next", "timestamp": 5', '[1, 2]', '{"message": "skip"}',
           '{"message":"next","timestamp":1700000000000,"user":"7","track":1,"time":0.5,'
           '"latency":0.01,"recommendation":2,"experiments":{"CONTEXTUAL":"C"}}',
           '{"message":"next","timestamp":1700000000000,"user":7,"track":1,"time":"NaN",'
           '"latency":0.01,"recommendation":2,"experiments":{"CONTEXTUAL":"C"}}',
           '{"message":"last","timestamp":1700000000000,"user":7,"track":1,"time":0.5,'
           '"latency":0.01,"recommendation":null,"experiments":{"CONTEXTUAL":1}}']


def make_input(folder: Path) -> None:
    from dataclient.synthetic_logs import synthetic_sessions, write_event_log

    for day, n, contextual, seed in (("day0", 20_000, False, 42), ("day1", 30_000, True, 43)):
        lines = write_event_log(synthetic_sessions(n, n_tracks=50_000, n_users=10_000, seed=seed,
                                                   contextual=contextual), folder / day, n_files=4)
        with open(folder / day / "events-000.jsonl", "a") as f:
            f.writelines(line + "\n" for line in CORRUPT * 20)
        print(f"{day}: {lines} events + {len(CORRUPT) * 20} corrupt lines -> {folder / day}")


def day_jobs(events: str, out: str, nn_args: list[str]) -> list[tuple[str, list[str]]]:
    """The pipeline's four jobs of one day (pipeline/experiment.py build_tables)."""
    sessions, tables, seed = f"{out}/aggregates/sessions", f"{out}/tables", ["--seed", "42"]
    return [("sessions", ["--events", events, "--out", f"{out}/aggregates"]),
            ("toppop", ["--sessions", sessions, "--out", tables]),
            ("nn", ["--sessions", sessions, "--out", tables, *nn_args, *seed]),
            ("svd", ["--sessions", sessions, "--out", tables, *seed])]


def spark_env(code: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(code), "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable}


def run_day(events: str, out: str, nn_args: list[str], code: Path, driver: bool,
            timings: Path | None = None, extra: list[tuple[str, list[str]]] = ()) -> dict[str, float]:
    """Wall seconds of each spark-submit (start-up included); `timings`: the driver's --timings;
    `extra`: more jobs after the day's four (their flags may name `{sessions}` and `{tables}`)."""
    jobs = day_jobs(events, out, nn_args)
    jobs += [(job, [a.format(sessions=f"{out}/aggregates/sessions", tables=f"{out}/tables") for a in args])
             for job, args in extra]
    # conf/spark.yml's driver memory cannot apply once spark-submit has started the JVM: give it here.
    memory = spark_config().conf.get("spark.driver.memory")
    submit = [str(BIN / "spark-submit"), "--master", "local[2]", *(["--driver-memory", memory] if memory else [])]
    if driver:
        commands = [("driver", submit + [str(code / "jobs" / "driver.py"),
                                         *(["--timings", str(timings)] if timings else []), "--",
                                         *join_invocations(jobs)])]
    else:
        commands = [(job, submit + [str(code / "jobs" / f"{job}.py"), *args]) for job, args in jobs]
    seconds = {}
    for name, argv in commands:
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=code, env=spark_env(code), capture_output=True, text=True)
        seconds[name] = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{name} failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        print(f"{name}: {seconds[name]:.1f} s", flush=True)
    return seconds


def rows(folder: Path) -> list[str]:
    """The rows of a Parquet or JSON-lines folder as sorted JSON strings (file split ignored)."""
    if not folder.exists():
        return []
    parts = sorted(folder.glob("part-*"))
    if parts and parts[0].name.endswith(".parquet"):
        import pyarrow.parquet as pq

        records = [r for p in parts for r in pq.read_table(p).to_pylist()]
        return sorted(json.dumps(r, sort_keys=True, default=repr) for r in records)
    return sorted(line for p in parts for line in p.read_text().splitlines())


def compare(a: Path, b: Path) -> int:
    problems, checked = [], 0
    for table in TABLES:
        fa, fb = a / "tables" / table, b / "tables" / table
        if fa.exists() or fb.exists():
            checked += 1
            if not (fa.exists() and fb.exists() and fa.read_bytes() == fb.read_bytes()):
                problems.append(f"tables/{table} differs")
    for name in ("sessions", "users", "quarantine"):
        checked += 1
        ra, rb = rows(a / "aggregates" / name), rows(b / "aggregates" / name)
        if ra != rb or not ra:
            problems.append(f"aggregates/{name}: {len(ra)} vs {len(rb)} rows, "
                            f"{'empty' if not ra else 'contents differ'}")
    for p in problems:
        print(f"DIFFERENT: {p}")
    print(f"{checked - len(problems)} of {checked} outputs identical ({a} vs {b})")
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("input").add_argument("folder", type=Path)
    run = sub.add_parser("run")
    run.add_argument("events")
    run.add_argument("out")
    run.add_argument("--nn", default="", help="the day's nn flags, e.g. '--dim 100 --unordered'")
    run.add_argument("--code", type=Path, default=REPO, help="source tree whose jobs run")
    run.add_argument("--driver", action="store_true", help="one spark-submit of jobs/driver.py")
    cmp = sub.add_parser("compare")
    cmp.add_argument("a", type=Path)
    cmp.add_argument("b", type=Path)
    args = parser.parse_args()
    if args.command == "input":
        make_input(args.folder)
    elif args.command == "run":
        seconds = run_day(args.events, args.out, shlex.split(args.nn), args.code.resolve(), args.driver)
        print(f"total: {sum(seconds.values()):.1f} s")
    else:
        return compare(args.a, args.b)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
