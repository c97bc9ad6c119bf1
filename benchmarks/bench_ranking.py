"""Top-k ranking (jobs/ranking.py) side by side with another source tree's, on the same random
factors: seconds of each, ordered and unordered, and whether the two give the same rows.

    git worktree add /tmp/anchor e61dc4b
    .venv/bin/python benchmarks/bench_ranking.py --anchor /tmp/anchor [--queries 6000]
        [--items 35000] [--dims 100 200] [--k 100] [--rounds 2] [--seed 0]

Both rank in this process with their defaults (512-row blocks, two threads); the rounds
alternate which goes first. Kernel time only: no Spark, no I/O.
"""
from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def load_ranking(tree: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, tree / "jobs" / "ranking.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(ranking, queries: np.ndarray, items: np.ndarray, k: int, ordered: bool):
    started = time.perf_counter()
    rows = ranking.top_k(queries, items, k, ordered=ordered, desc=f"rank ({ranking.__name__})")
    return time.perf_counter() - started, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--anchor", type=Path, required=True, help="the other source tree")
    parser.add_argument("--queries", type=int, default=6000, help="query rows (contexts, users)")
    parser.add_argument("--items", type=int, default=35000, help="item rows (tracks)")
    parser.add_argument("--dims", type=int, nargs="+", default=[100, 200])
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    this, anchor = load_ranking(REPO, "this"), load_ranking(args.anchor, "anchor")
    rng = np.random.default_rng(args.seed)
    for dim in args.dims:
        queries = rng.normal(size=(args.queries, dim)).astype(np.float32)
        items = rng.normal(size=(args.items, dim)).astype(np.float32)
        for ordered in (True, False):
            seconds: dict[str, list[float]] = {"this": [], "anchor": []}
            same = True
            for round_number in range(args.rounds):
                sides = (this, anchor) if round_number % 2 == 0 else (anchor, this)
                results = {}
                for side in sides:
                    elapsed, results[side.__name__] = timed(side, queries, items, args.k, ordered)
                    seconds[side.__name__].append(elapsed)
                same = same and all(np.array_equal(a, b) for a, b in zip(results["this"], results["anchor"]))
            best = {side: min(times) for side, times in seconds.items()}
            print(f"dim {dim}, {'ordered' if ordered else 'unordered'}, {args.queries} x {args.items}, "
                  f"k {args.k}: anchor {best['anchor']:.2f} s, this {best['this']:.2f} s "
                  f"(best of {args.rounds}), anchor / this = {best['anchor'] / best['this']:.2f}x, "
                  f"{'same rows' if same else 'ROWS DIFFER'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
