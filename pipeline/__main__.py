"""python -m pipeline: run a plan end to end (what `./run.sh` runs), list plans, compare runs.

    python -m pipeline [--plan NAME] [--scale S] [--seed N] [--step STEP --run FOLDER] [--keep-running]
    python -m pipeline plans                 # every plan in conf/plans/ with its description
    python -m pipeline compare [--plan NAME] # a leaderboard of recorded runs, from MLflow
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infra.lifetime import exit_on_signals
from pipeline import tracking
from pipeline.experiment import run
from pipeline.plan import available, load_plan
from pipeline.config import load_pipeline_config
from settings import ConfigError, resolve


def experiment_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="./run.sh", description="Run a plan (conf/plans/<name>.yml) end to end: its days, "
        "their jobs and the A/B report. Other commands: ./run.sh plans | compare | test | up | down.")
    parser.add_argument("--plan", help="the plan to run: a name from `./run.sh plans` or a path "
                        "(default: conf/pipeline.yml's plan, `seed`)")
    parser.add_argument("--scale", default="small", help="session counts from the plan: small "
                        "(default), smoke, or full (the original 100,000 + 5,000)")
    parser.add_argument("--seed", type=int, help="seed of the world (unless the plan fixes it), the "
                        "simulator, the service and the jobs (default: the plan's)")
    parser.add_argument("--step", help="run only this step, `world` or a day of the plan (with "
                        "--run, inside an earlier run's folder, whose tables it uses)")
    parser.add_argument("--run", type=Path, help="the run folder to continue (default: a new "
                        "runs/<timestamp>/)")
    parser.add_argument("--keep-running", action="store_true", help="leave HDFS, Redis and the "
                        "service running afterwards, on the ports of conf/stack.yml")
    parser.add_argument("--config", type=Path, help="pipeline settings (default conf/pipeline.yml)")
    parser.add_argument("--stack-from-env", action="store_true", help="use the running HDFS and "
                        "Redis named by BOTIFY_STACK_RUNTIME (set by ./run.sh test) instead of "
                        "starting a private stack")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    exit_on_signals()  # SIGTERM/SIGHUP stop the run's stack and service on the way out
    try:
        if argv[:1] == ["plans"]:
            for name, description in available().items():
                print(f"{name:<14} {description}")
            return 0
        if argv[:1] == ["compare"]:
            parser = argparse.ArgumentParser(prog="./run.sh compare",
                                             description="A leaderboard of recorded runs (MLflow).")
            parser.add_argument("--plan", help="only this plan's runs")
            parser.add_argument("--config", type=Path)
            args = parser.parse_args(argv[1:])
            config = load_pipeline_config(*([args.config] if args.config else []))
            print(tracking.format_leaderboard(tracking.leaderboard(resolve(config.runs_dir), args.plan)))
            return 0
        parser = experiment_parser()
        args = parser.parse_args(argv)
        config = load_pipeline_config(*([args.config] if args.config else []))
        plan_name = args.plan or config.plan
        plan = load_plan(plan_name)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    steps = ("world", *(day.name for day in plan.days))
    if args.step and args.step not in steps:
        parser.error(f"--step must be one of {', '.join(steps)} (the plan's days), got {args.step!r}")
    if args.step and args.step != "world" and not args.run:
        parser.error(f"--step {args.step} needs --run RUN_FOLDER (the run whose earlier days it uses)")
    return run(config, Path(plan_name).stem, plan, args.scale, args.seed,
               (args.step,) if args.step else steps, args.run, args.keep_running, args.stack_from_env)


if __name__ == "__main__":
    sys.exit(main())
