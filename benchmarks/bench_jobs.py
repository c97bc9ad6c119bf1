"""The jobs as a user waits for them: `spark-submit` wall time (JVM start-up included) on logs in HDFS.

    PYTHONPATH=$PWD python benchmarks/bench_jobs.py submits [--events 150000] [--old-code TREE]
    PYTHONPATH=$PWD python benchmarks/bench_jobs.py scale [--events 1300000,13000000]

The logs go to a stack's HDFS: the one exported in the environment (`./run.sh up`, or under
`python -m infra run --`), else an ephemeral one the benchmark starts and stops.

`submits`: one day's four jobs (sessions, toppop, nn --dim 200, svd) the old way, four
`spark-submit`s (with the job files of --old-code, e.g. `git archive <commit> | tar -x -C TREE`;
default this tree), then the new way, one `spark-submit jobs/driver.py` running the four in one
SparkSession; same logs, both on hdfs://. Prints each submit's seconds, both totals and the ratio.

`scale`: for each size, the four jobs and the learned tables' jobs (item2vec, implicit_als,
taste, scenes) in one driver submit; prints each job's seconds (from the driver's --timings),
the submit's wall time, and the growth of each against the first size (x10 for 10x the events:
linear). The driver keeps conf/spark.yml's memory.

Logs: dataclient/synthetic_logs.py (seeded; 10,000 users, 50,000 tracks, random tracks, one
"last" in ten events), generated once into benchmarks/out/ and uploaded to the stack's HDFS;
taste and scenes read a catalog of the same 50,000 tracks, ten per artist.
Every submit runs under `spark-submit --master local[2]`, like the pipeline. The machine is
shared: compare figures within one run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataclient.synthetic_logs import write_log_file  # noqa: E402
from tables_check import run_day  # noqa: E402

BYTES_PER_EVENT = 155   # synthetic_logs' lines, measured: size / lines


@contextmanager
def hdfs_environment():
    """The stack exported in the environment, else an ephemeral one (HDFS + Redis on free ports)
    for the benchmark's duration, exported to the spark-submits."""
    if os.environ.get("BOTIFY_HDFS_FS"):
        yield
        return
    from infra.config import load_config
    from infra.stack import new_stack

    config = load_config()
    started = new_stack(config, ephemeral=True)
    try:
        started.up(config)
        os.environ.update(started.env())
        print(f"ephemeral HDFS at {os.environ['BOTIFY_HDFS_FS']}", flush=True)
        yield
    finally:
        started.down()


def stack() -> tuple[str, object, str]:
    """(hdfs:// URI of the home folder, WebHDFS client, user) of the stack in the environment."""
    missing = [v for v in ("BOTIFY_HDFS_FS", "BOTIFY_WEBHDFS_URL", "BOTIFY_HDFS_USER") if not os.environ.get(v)]
    if missing:
        raise SystemExit(f"{', '.join(missing)} not set: the stack in the environment is incomplete")
    from hdfs import InsecureClient

    user = os.environ["BOTIFY_HDFS_USER"]
    client = InsecureClient(os.environ["BOTIFY_WEBHDFS_URL"], user=user)
    return f"{os.environ['BOTIFY_HDFS_FS']}/user/{user}", client, user


def local_logs(out: Path, events: int, seed: int) -> tuple[Path, int]:
    """Synthetic logs of about `events` lines in benchmarks/out/ (made once); (folder, lines)."""
    folder = out / f"logs_{events}_{seed}"
    done = folder / "_LINES"
    if not done.exists():
        started = time.perf_counter()
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        files = max(1, events // 500_000)
        for i in range(files):
            write_log_file(folder / f"events-{i:03d}.jsonl", events * BYTES_PER_EVENT // files, rng)
        lines = sum(sum(1 for _ in open(f, "rb")) for f in folder.glob("events-*.jsonl"))
        done.write_text(str(lines))
        print(f"generated {lines:,} events in {time.perf_counter() - started:.0f} s -> {folder}", flush=True)
    return folder, int(done.read_text())


def events_on_hdfs(out: Path, events: int, seed: int) -> tuple[str, int]:
    """The logs of `local_logs`, uploaded to the stack's HDFS once; (hdfs:// uri, lines)."""
    folder, lines = local_logs(out, events, seed)
    home, client, user = stack()
    target = f"/user/{user}/bench_jobs/{folder.name}"
    if not client.status(target, strict=False):
        started = time.perf_counter()
        for f in sorted(folder.glob("events-*.jsonl")):
            client.upload(f"{target}/{f.name}", str(f))
        print(f"uploaded to HDFS in {time.perf_counter() - started:.0f} s", flush=True)
    return f"{home}/bench_jobs/{folder.name}", lines


def submits(args) -> None:
    home, client, user = stack()
    events, lines = events_on_hdfs(args.out, args.events[0], args.seed)
    print(f"\n{lines:,} events; old way: four spark-submits ({args.old_code}); "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    old = run_day(events, f"{home}/bench_jobs/old", ["--dim", "200"], args.old_code.resolve(), driver=False)
    print(f"new way: one spark-submit of jobs/driver.py; load average {os.getloadavg()[0]:.1f}", flush=True)
    new = run_day(events, f"{home}/bench_jobs/new", ["--dim", "200"], REPO, driver=True)
    identical = {}
    for table in ("top_tracks.json", "tracks_nn.json", "recommendations_svd.json"):
        with client.read(f"/user/{user}/bench_jobs/old/tables/{table}") as a, \
                client.read(f"/user/{user}/bench_jobs/new/tables/{table}") as b:
            identical[table] = a.read() == b.read()
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    rows = {f"old  spark-submit jobs/{name}.py": seconds for name, seconds in old.items()}
    rows |= {"old  four spark-submits": sum(old.values()),
             "new  spark-submit jobs/driver.py (4 jobs)": new["driver"]}
    for label, seconds in rows.items():
        print(f"  {label:<44}{seconds:8.1f} s")
    print(f"  ratio old / new: x{sum(old.values()) / new['driver']:.2f}")
    print(f"  tables byte-identical old vs new: {identical}")


# The learned tables' jobs `scale` runs after the day's four ({catalog}: benchmark_catalog's file).
LEARNED = [("item2vec", []), ("implicit_als", []), ("taste", ["--catalog", "{catalog}"]),
           ("scenes", ["--catalog", "{catalog}"])]


def benchmark_catalog(out: Path) -> Path:
    """The public catalog of synthetic_logs' 50,000 tracks, ten tracks per artist (made once)."""
    path = out / "catalog.jsonl"
    if not path.exists():
        path.write_bytes(b"".join(json.dumps({"track": t, "artist": f"artist{t // 10}"}).encode() + b"\n"
                                  for t in range(50_000)))
    return path


def scale(args) -> None:
    home, _, _ = stack()
    catalog = str(benchmark_catalog(args.out).resolve())
    extra = [(job, ["--sessions", "{sessions}", "--out", "{tables}", "--seed", "42",
                    *[a.replace("{catalog}", catalog) for a in flags]]) for job, flags in LEARNED]
    runs = {}
    for n in args.events:
        events, lines = events_on_hdfs(args.out, n, args.seed)
        timings = args.out / f"timings_{n}.json"
        print(f"\n{lines:,} events: one driver submit", flush=True)
        wall = run_day(events, f"{home}/bench_jobs/scale_{n}", ["--dim", "200"], REPO, driver=True,
                       timings=timings, extra=extra)["driver"]
        recorded = json.loads(timings.read_text())
        runs[lines] = {"wall": wall, "startup": recorded["startup"],
                       **{t["job"]: t["seconds"] for t in recorded["jobs"]}}
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    names = ["sessions", "toppop", "nn", "svd", *(job for job, _ in LEARNED), "startup", "wall"]
    sizes = list(runs)
    print(f"  {'':<13}" + "".join(f"{s:>14,}" for s in sizes) + "".join(
        f"{f'x{s / sizes[0]:.0f} events':>14}" for s in sizes[1:]))
    for name in names:
        label = {"startup": "Spark up", "wall": "submit"}.get(name, name)
        print(f"  {label:<13}" + "".join(f"{runs[s][name]:>12.1f} s" for s in sizes) + "".join(
            f"{f'x{runs[s][name] / runs[sizes[0]][name]:.1f}':>14}" for s in sizes[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, default in (("submits", "150000"), ("scale", "1300000,13000000")):
        p = sub.add_parser(name)
        p.add_argument("--events", default=default, type=lambda s: [int(x) for x in s.split(",")],
                       help="comma-separated event counts (approximate: whole lines)")
        p.add_argument("--seed", type=int, default=7)
        p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "jobs")
        if name == "submits":
            p.add_argument("--old-code", type=Path, default=REPO, help="source tree of the old way's jobs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with hdfs_environment():
        {"submits": submits, "scale": scale}[args.command](args)


if __name__ == "__main__":
    main()
