"""`./run.sh` side by side, as a user waits (HDFS, Redis, every JVM and the simulator included;
set-up of .venv excluded): this tree's pipeline against another source tree's (the anchor), or
this tree's full scale against its small one.

    git worktree add /tmp/anchor e61dc4b          # e.g. the code before one Spark application per run
    .venv/bin/python benchmarks/bench_pipeline.py --anchor /tmp/anchor [--seed 42] [--scale small] [--rounds 1]
    .venv/bin/python benchmarks/bench_pipeline.py --scales small full [--seed 42] [--rounds 3]

With --write-docs, the rounds' figures replace this benchmark's section of docs/SPEED.md
(`pipeline-anchor` or `pipeline-scales`, benchmarks/speed_doc.py).

Each round runs both, one after the other (the order alternates between rounds), each as
`python -m pipeline --seed S --scale X` in its tree with this interpreter (its runs go to the
tree's own runs/). Prints each run's wall seconds, the CPU seconds of its processes (what the
machine's other load does not change much) and its steps' seconds (from the manifest), and the
round's ratio.

Against an anchor, each round also says whether the two runs' tables are byte-identical and
their A/B results equal (every report row of a metric both report, by its bootstrap estimate;
mean_request_time, the service's wall-clock time, left out). Between scales, each round says
whether each scale's run has the first round's tables and results (the same seed must give the
same ones), and how day 0's seconds compare: day 0 is the same work at every scale, so a ratio
far from 1 says the machine's speed changed between the two runs, and the round's ratio with
it. The last line gives the median and the largest of the rounds' ratios.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import speed_doc

REPO = Path(__file__).resolve().parents[1]
COMPARED = ("control", "treatment_value", "effect", "lower", "upper")  # this tree's results.csv names
ANCHOR_NAMES = {"control": "control_mean", "treatment_value": "treatment_mean"}   # older results.csv


def children_cpu() -> float:
    """User + system seconds of this process's finished children (and theirs, once reaped)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_pipeline(tree: Path, seed: int, scale: str, log: Path) -> tuple[float, float, Path]:
    """Wall and CPU seconds of one run of the tree's pipeline, and its run folder."""
    runs = tree / "runs"
    before = set(runs.glob("*/manifest.json"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTIFY_")}
    env["PYTHONPATH"] = str(tree)
    started, cpu = time.monotonic(), children_cpu()
    with open(log, "w") as out:
        code = subprocess.run([sys.executable, "-m", "pipeline", "--seed", str(seed), "--scale", scale],
                              cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    wall, cpu = time.monotonic() - started, children_cpu() - cpu
    if code != 0:
        sys.exit(f"error: the pipeline of {tree} failed (exit {code}); its output: {log}")
    (manifest,) = set(runs.glob("*/manifest.json")) - before
    return wall, cpu, manifest.parent


def steps(run: Path) -> str:
    manifest = json.loads((run / "manifest.json").read_text())
    return ", ".join(f"{name} {step['seconds']:.0f} s" for name, step in manifest["steps"].items())


def step_seconds(run: Path, step: str) -> float:
    return json.loads((run / "manifest.json").read_text())["steps"][step]["seconds"]


def tables(run: Path) -> dict[str, str]:
    return {str(p.relative_to(run / "tables")): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((run / "tables").rglob("*.json"))}


def results(run: Path) -> dict[tuple[str, str], tuple[str, ...]]:
    """(treatment, metric) -> the bootstrap row's estimates, as the CSV writes them."""
    rows = {}
    for row in csv.DictReader((run / "report" / "results.csv").open()):
        if row.get("method", "bootstrap") != "bootstrap" or row["metric"] == "mean_request_time":
            continue
        rows[row["treatment"], row["metric"]] = tuple(row.get(k, row.get(ANCHOR_NAMES.get(k, k)))
                                                      for k in COMPARED)
    return rows


def same_outputs(anchor: Path, this: Path) -> list[str]:
    """What differs between the two runs' tables and results (empty: nothing)."""
    differences = []
    old_tables, new_tables = tables(anchor), tables(this)
    for name in sorted(set(old_tables) | set(new_tables)):
        if old_tables.get(name) != new_tables.get(name):
            differences.append(f"table {name}: {old_tables.get(name, 'missing')[:12]} vs "
                               f"{new_tables.get(name, 'missing')[:12]}")
    old_rows, new_rows = results(anchor), results(this)
    for key in sorted(set(old_rows) & set(new_rows)):
        if old_rows[key] != new_rows[key]:
            differences.append(f"result {key}: {old_rows[key]} vs {new_rows[key]}")
    if not set(old_rows) & set(new_rows):
        differences.append("no result row in common")
    return differences


def compare_trees(anchor: Path, seed: int, scale: str, rounds: int, logs: Path) -> list[list[object]]:
    """Rounds of the anchor's run against this tree's: per round, this tree's and the anchor's
    wall seconds, their ratio and whether tables and results were identical."""
    trees = {"anchor": anchor, "this": REPO}
    ratios, rows = [], []
    for number in range(rounds):
        order = ["anchor", "this"] if number % 2 == 0 else ["this", "anchor"]
        walls, runs = {}, {}
        for name in order:
            walls[name], runs[name] = timed_run(number, name, trees[name], seed, scale, logs)
        ratios.append(walls["anchor"] / walls["this"])
        print(f"round {number + 1}: anchor / this = {ratios[-1]:.2f}x", flush=True)
        differences = same_outputs(runs["anchor"], runs["this"])
        print(f"round {number + 1}: tables and results "
              + ("identical" if not differences else "DIFFER:\n  " + "\n  ".join(differences)),
              flush=True)
        rows.append([number + 1, f"{walls['this']:.1f}", f"{walls['anchor']:.1f}", f"{ratios[-1]:.2f}x",
                     "identical" if not differences else f"{len(differences)} differ"])
    return rows


def compare_scales(small: str, large: str, seed: int, rounds: int, logs: Path) -> list[list[object]]:
    """Rounds of this tree at scale `large` against `small`: per round, both wall seconds, their
    ratio, day 0's ratio and whether each scale's outputs were round 1's."""
    ratios, first, rows = [], {}, []
    for number in range(rounds):
        order = [small, large] if number % 2 == 0 else [large, small]
        walls, runs = {}, {}
        for scale in order:
            walls[scale], runs[scale] = timed_run(number, scale, REPO, seed, scale, logs)
            first.setdefault(scale, runs[scale])
        ratios.append(walls[large] / walls[small])
        day0 = step_seconds(runs[large], "day0") / step_seconds(runs[small], "day0")
        print(f"round {number + 1}: {large} / {small} = {ratios[-1]:.2f}x "
              f"(day 0, the same work in both: {day0:.2f}x)", flush=True)
        differ = []
        for scale in order:
            differences = same_outputs(first[scale], runs[scale])
            print(f"round {number + 1}: {scale}: tables and results "
                  + ("as in round 1" if not differences else "DIFFER from round 1:\n  "
                     + "\n  ".join(differences)), flush=True)
            differ += [scale] * bool(differences)
        rows.append([number + 1, f"{walls[small]:.1f}", f"{walls[large]:.1f}", f"{ratios[-1]:.2f}x",
                     f"{day0:.2f}x", "as in round 1" if not differ else "differ: " + ", ".join(differ)])
    return rows


def timed_run(number: int, name: str, tree: Path, seed: int, scale: str, logs: Path) -> tuple[float, Path]:
    print(f"round {number + 1}: {name} ({tree}, --scale {scale}), load average "
          f"{os.getloadavg()[0]:.1f} ...", flush=True)
    wall, cpu, run = run_pipeline(tree, seed, scale, logs / f"round{number + 1}-{name}.log")
    print(f"  {wall:.1f} s wall, {cpu:.0f} s CPU ({steps(run)}); run {run}", flush=True)
    return wall, run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    against = parser.add_mutually_exclusive_group(required=True)
    against.add_argument("--anchor", type=Path, help="the other source tree")
    against.add_argument("--scales", nargs=2, metavar=("SMALL", "LARGE"),
                         help="this tree at scale LARGE against SMALL (e.g. small full)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--scale", default="small", help="with --anchor: the scale both run")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--logs", type=Path, default=REPO / "benchmarks" / "out" / "pipeline")
    parser.add_argument("--write-docs", action="store_true",
                        help="replace this benchmark's section of docs/SPEED.md with the figures")
    args = parser.parse_args()
    if args.scales and args.scales[0] == args.scales[1]:
        parser.error("--scales needs two different scales")
    args.logs.mkdir(parents=True, exist_ok=True)
    if args.anchor:
        rows = compare_trees(args.anchor.resolve(), args.seed, args.scale, args.rounds, args.logs)
        what = "anchor / this"
    else:
        rows = compare_scales(*args.scales, args.seed, args.rounds, args.logs)
        what = " / ".join(reversed(args.scales))
    ratios = [float(row[3].rstrip("x")) for row in rows]
    summary = (f"{what}: median {statistics.median(ratios):.2f}x, largest {max(ratios):.2f}x "
               f"over {len(ratios)} round(s)")
    print(summary)
    if args.write_docs:
        write_docs(args, rows, summary)
    return 0


def write_docs(args: argparse.Namespace, rows: list[list[object]], summary: str) -> None:
    """This run's rounds as the benchmark's section of docs/SPEED.md."""
    command = " ".join([".venv/bin/python benchmarks/bench_pipeline.py"] + [a for a in sys.argv[1:] if a != "--write-docs"])
    if args.anchor:
        speed_doc.write(
            "pipeline-anchor", title="The seed plan against the anchor",
            measures=f"`./run.sh --seed {args.seed} --scale {args.scale}` from start to finish, as a user "
                     f"waits (HDFS, Redis, every JVM and the simulator included; the set-up of .venv "
                     f"excluded), this tree against the anchor tree (commit {speed_doc.commit(args.anchor)}), "
                     f"one after the other, the order alternating between rounds; and whether the "
                     f"two runs' tables and report rows (all but mean_request_time) are identical.",
            command=command, header=["round", "this tree, s", "anchor, s", "anchor / this", "tables and results"],
            rows=rows, summary=summary + ".")
    else:
        small, large = args.scales
        speed_doc.write(
            "pipeline-scales", title=f"The {large} scale against the {small}",
            measures=f"`./run.sh --seed {args.seed} --scale {large}` against `--scale {small}` from start to "
                     f"finish, one after the other, the order alternating between rounds. Day 0 is the "
                     f"same work at both scales: its ratio far from 1 means the machine's speed changed "
                     f"between the two runs.",
            command=command, header=["round", f"{small}, s", f"{large}, s", f"{large} / {small}",
                                     "day 0", "tables and results"],
            rows=rows, summary=summary + ".")


if __name__ == "__main__":
    raise SystemExit(main())
