"""python -m pipeline: the whole botify experiment (what `./run.sh` runs). See pipeline/experiment.py."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.experiment import REPO, STEPS, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="./run.sh", description="Run the botify experiment: day 0 (Random), day 1 "
        "(Contextual), the A/B day (Contextual vs ContextualUpdated) and its report.")
    parser.add_argument("--scale", default="small", help="session counts from conf/pipeline.yml: "
                        "small (default, about 10 minutes here) or full (the original 100,000 + 5,000)")
    parser.add_argument("--seed", type=int, help="seed of the world, the simulator, the service "
                        "and the jobs (default: conf/pipeline.yml)")
    parser.add_argument("--step", choices=STEPS, help="run only this step (with --run, inside "
                        "an earlier run's folder, whose tables it uses)")
    parser.add_argument("--run", type=Path, help="the run folder to continue (default: a new "
                        "runs/<timestamp>/)")
    parser.add_argument("--keep-running", action="store_true", help="leave HDFS, Redis and the "
                        "service running afterwards, on the ports of conf/stack.yml")
    parser.add_argument("--config", type=Path, default=REPO / "conf" / "pipeline.yml")
    args = parser.parse_args(argv)
    if args.step and args.step != "world" and not args.run:
        parser.error(f"--step {args.step} needs --run RUN_FOLDER (the run whose earlier days it uses)")
    steps = (args.step,) if args.step else STEPS
    return run(args.config, args.scale, args.seed, steps, args.run, args.keep_running)


if __name__ == "__main__":
    sys.exit(main())
