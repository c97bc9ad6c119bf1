"""A fresh clone's set-up as a new user waits for it: the wall time of its first
`./run.sh experiment --help` (which builds `.venv` and fetches what the stack needs before it
prints the help), this tree's commit against another commit's, side by side.

    .venv/bin/python benchmarks/bench_setup.py --anchor 26a3ca8 [--rounds 2] [--write-docs]

Each round clones this repository twice into a temporary folder (`git clone --no-checkout`,
then a checkout of the commit: the clone itself is not timed), once at HEAD and once at the
anchor, and times `./run.sh experiment --help` in each, the order alternating between rounds.
Caches outside the clone stay as they are (pip's cache, the Hadoop jars' and apt's), as on a
machine that has run botify before: what is measured is what every new clone pays. Prints each
set-up's seconds and the round's ratio (anchor / this).

With --write-docs, the rounds' figures replace this benchmark's section of docs/SPEED.md
(`setup`, benchmarks/speed_doc.py).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import speed_doc

REPO = Path(__file__).resolve().parents[1]


def commit_of(ref: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", ref], check=True,
                          capture_output=True, text=True).stdout.strip()


def fresh_clone(commit: str, folder: Path) -> Path:
    """This repository at `commit`, checked out in `folder` (nothing built)."""
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(REPO), str(folder)], check=True)
    subprocess.run(["git", "-C", str(folder), "checkout", "--quiet", commit], check=True)
    return folder


def set_up(clone: Path, log: Path) -> float:
    """Wall seconds of the clone's first `./run.sh experiment --help`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOTIFY_", "VIRTUAL_ENV"))}
    started = time.monotonic()
    with open(log, "w") as out:
        subprocess.run(["./run.sh", "experiment", "--help"], cwd=clone, env=env, stdout=out,
                       stderr=subprocess.STDOUT, check=True)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--anchor", required=True, help="the commit to compare with, e.g. 26a3ca8")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--write-docs", action="store_true",
                        help="replace the `setup` section of docs/SPEED.md with these figures")
    args = parser.parse_args()
    trees = {"this": commit_of("HEAD"), "anchor": commit_of(args.anchor)}
    rounds = []
    with tempfile.TemporaryDirectory(prefix="bench-setup-") as tmp:
        for number in range(1, args.rounds + 1):
            order = ["this", "anchor"] if number % 2 else ["anchor", "this"]
            seconds = {}
            for name in order:
                clone = fresh_clone(trees[name], Path(tmp) / f"{name}-{number}")
                print(f"round {number}: {name} ({trees[name]}) set-up ...", flush=True)
                seconds[name] = set_up(clone, Path(tmp) / f"{name}-{number}.log")
                print(f"  {seconds[name]:.1f} s", flush=True)
            rounds.append(seconds)
            print(f"round {number}: anchor / this = {seconds['anchor'] / seconds['this']:.2f}x", flush=True)
    ratios = [r["anchor"] / r["this"] for r in rounds]
    print(f"anchor / this: median {statistics.median(ratios):.2f}x over {len(rounds)} round(s)")
    if args.write_docs:
        speed_doc.write(
            "setup", title="A fresh clone's set-up",
            measures=f"The wall time of a fresh clone's first `./run.sh experiment --help` (it builds "
                 f"`.venv` and fetches the stack's parts first), this tree against commit "
                 f"{trees['anchor']}, one after the other, the order alternating; pip's and the "
                 f"Hadoop jars' caches warm, as on a machine that ran botify before.",
            command=f".venv/bin/python benchmarks/bench_setup.py --anchor {args.anchor} "
                    f"--rounds {args.rounds} --write-docs",
            header=["round", "this s", "anchor s", "anchor / this"],
            rows=[[i + 1, f"{r['this']:.1f}", f"{r['anchor']:.1f}", f"{a:.2f}x"]
                  for i, (r, a) in enumerate(zip(rounds, ratios))],
            summary=f"Median: the anchor's set-up takes {statistics.median(ratios):.2f}x this tree's.",
            measured=f"{trees['this']} (the clones' commit)")


if __name__ == "__main__":
    main()
