"""The truth of a run's simulated A/B day, written to runs/<id>/report/truth.json.

    python -m pipeline.truth --run runs/<id> [--day ab] [--draws K] [--processes P]

Each arm of the day serves all its users in process (pipeline/outcomes.py), K times (draw 0 on
the day's own random streams); analysis/truth.py turns those potential outcomes into each
estimand's true value per arm and each treatment's true relative effect with their Monte-Carlo
errors. The pipeline runs it after every one-day A/B day and hands the file to the analysis
(`analysis/ab_test.py --truth`), which shows the truth beside every estimate.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from analysis.config import load_config as load_analysis_config
from analysis.report import json_safe
from analysis.truth import true_values
from pipeline.outcomes import ab_day, potential_outcomes
from settings import ConfigError

DEFAULT_DRAWS = 4   # the MC error needs 2 or more; 4 keeps the step a few seconds


def compute(run: Path, day: str | None = None, draws: int = DEFAULT_DRAWS,
            processes: int = 1) -> dict:
    """truth.json's document for the run's A/B day."""
    started = time.perf_counter()
    plan_day = ab_day(run, day)
    outcomes = potential_outcomes(plan_day, draws, processes)
    quantiles = load_analysis_config().quantiles
    document = {
        "day": plan_day.name, "experiment": plan_day.experiment, "control": plan_day.control,
        "arms": outcomes.arms, "users": int(len(outcomes.users)),
        "sessions": int(outcomes.sessions.sum()), "draws": draws, "seed": plan_day.seed,
        "estimand": "per arm serving all the day's users: each report estimand's value, "
                    "averaged over independent simulator draws (draw 0: the day's own "
                    "streams); mc_se: its Monte-Carlo standard error",
        **true_values(outcomes.arms, outcomes.sessions, outcomes.time_total, outcomes.events,
                      dict(quantiles.levels), quantiles.variable),
        "seconds": round(time.perf_counter() - started, 2)}
    return document


def write(run: Path, document: dict) -> Path:
    path = run / "report" / "truth.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_safe(document), indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.truth",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a pipeline run's folder")
    parser.add_argument("--day", help="the A/B day (default: the plan's last)")
    parser.add_argument("--draws", type=int, default=DEFAULT_DRAWS,
                        help=f"independent simulator draws per arm (default {DEFAULT_DRAWS})")
    parser.add_argument("--processes", type=int, default=1, help="worker processes")
    args = parser.parse_args(argv)
    if args.draws < 1 or args.processes < 1:
        parser.error("--draws and --processes must be at least 1")
    try:
        document = compute(args.run, args.day, args.draws, args.processes)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    path = write(args.run, document)
    for treatment, effects in document["effects"].items():
        effect = effects["mean_session_time"]
        print(f"{treatment}: true mean_session_time effect {effect['effect']:+.2%} "
              f"(MC error {effect['mc_se']:.2%})" if effect["mc_se"] == effect["mc_se"] else
              f"{treatment}: true mean_session_time effect {effect['effect']:+.2%}")
    print(f"wrote {path} ({document['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
