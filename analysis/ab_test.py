"""A/B analysis of an experiment from the event logs: per-user metrics, Poisson-bootstrap
intervals computed in Spark, a sample-ratio check, and the report.

    spark-submit analysis/ab_test.py --events PATH --experiment NAME --control C \\
        [--treatment T ...] --out DIR [--bootstrap B] [--seed S] [--config conf/analysis.yml]

or `.venv/bin/python analysis/ab_test.py ...` (Spark local[*]). Writes ab_report.png,
ab_report.md, results.json and results.csv into DIR and prints the results table.
Exit status: 0 on success, 2 on bad input or configuration (the message says what to do).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console

from analysis.compare import compare_spark
from analysis.config import DEFAULT_CONFIG, AnalysisConfig, load_config
from analysis.effects import sample_ratio_check
from analysis.errors import AnalysisError
from analysis.report import SESSION_TIME_VIEW, print_table, write_outputs
from analysis.user_metrics import (CONFLICT, INVALID, OUTSIDE, check_arms, metric_table,
                                   per_user, read_events, summarize)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ab_test.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", required=True,
                        help="folder, file or glob of JSON-lines event logs (hdfs://, file:// "
                             "or a local path); folders are read recursively")
    parser.add_argument("--experiment", required=True, help="experiment name in `experiments`")
    parser.add_argument("--control", required=True, help="control arm name")
    parser.add_argument("--treatment", action="append", dest="treatments", metavar="T",
                        help="treatment arm (repeat for several); default: every other arm")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--bootstrap", type=int, metavar="B",
                        help="bootstrap replicates (default: bootstrap.replicates in config)")
    parser.add_argument("--seed", type=int, help="seed (default: bootstrap.seed in config)")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG),
                        help=f"analysis config (default: {DEFAULT_CONFIG})")
    return parser.parse_args(argv)


def spark_session():
    """The active session (tests, notebooks) or the jobs' session from conf/spark.yml
    (spark-submit's --master and --conf win over it)."""
    from pyspark.sql import SparkSession

    from jobs.common import spark_session as jobs_spark_session

    return SparkSession.getActiveSession() or jobs_spark_session("ab-test")


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def analyze(spark, args: argparse.Namespace, config: AnalysisConfig, console: Console,
            timings: dict[str, float] | None = None) -> tuple[dict, list]:
    """Read, check, compare. Returns the results document (without rows) and the rows;
    `timings` (if given) receives the seconds to the per-user table and to the bootstrap."""
    timings = {} if timings is None else timings
    settings = config.settings
    started = time.perf_counter()
    events = read_events(spark, args.events)
    users = per_user(events, args.experiment)
    try:
        summary = summarize(users)
        timings["per_user_s"] = time.perf_counter() - started
        console.log(f"per-user table built ({timings['per_user_s']:.1f} s)")
        arms = check_arms(summary, args.experiment, args.control, args.treatments, events)
        _warn(summary, arms, console)
        table = metric_table(users, arms)
        comparison = compare_spark(table, arms, settings)
    finally:
        users.unpersist()
    timings["bootstrap_s"] = time.perf_counter() - started
    console.log(f"bootstrap done ({timings['bootstrap_s']:.1f} s)")
    if comparison.quantile_escapes:
        console.print(f"warning: {comparison.quantile_escapes} bootstrap quantiles fell outside "
                      f"their window; raise quantiles.window_sd in the config", style="yellow",
                      soft_wrap=True)
    split = config.expected_split(args.experiment, arms)
    srm = sample_ratio_check(comparison.users, split, config.srm_alpha)
    in_experiment = [s for g, s in summary.items() if g not in (INVALID, OUTSIDE, CONFLICT)]
    results = {
        "experiment": args.experiment, "control": arms[0], "treatments": arms[1:],
        "session_time_view": SESSION_TIME_VIEW,
        "parameters": {
            "events": args.events, "config": args.config, "replicates": settings.replicates,
            "seed": settings.seed, "alpha": settings.alpha, "partitions": settings.partitions,
            "metrics": settings.metrics, "quantiles": settings.quantiles,
            "quantile_variable": settings.quantile_variable, "quantile_bins": settings.bins,
            "quantile_window_sd": settings.window_sd, "srm_alpha": config.srm_alpha},
        "data": {
            "first_event": _iso(min(s.first_ts for s in in_experiment)),
            "last_event": _iso(max(s.last_ts for s in in_experiment)),
            "valid_events": sum(s.events for g, s in summary.items() if g != INVALID),
            "invalid_lines": summary[INVALID].users if INVALID in summary else 0,
            "users_outside_experiment": summary[OUTSIDE].users if OUTSIDE in summary else 0,
            "users_in_several_arms": summary[CONFLICT].users if CONFLICT in summary else 0,
            "arms": {arm: {"users_in_logs": summary[arm].users,
                           "users_analysed": comparison.users[arm],
                           "users_with_open_session": summary[arm].open_users,
                           "events": summary[arm].events, "sessions": summary[arm].sessions}
                     for arm in arms}},
        "srm": srm,
        "quantile_escapes": comparison.quantile_escapes,
    }
    return results, comparison.rows


def _warn(summary: dict, arms: list[str], console: Console) -> None:
    notes = []
    if INVALID in summary:
        notes.append(f"skipped {summary[INVALID].users} line(s) that break the event-log "
                     f"contract (not JSON, a missing or mistyped field, or an unknown message)")
    if CONFLICT in summary:
        notes.append(f"left out {summary[CONFLICT].users} user(s) seen in more than one arm")
    for arm in arms:
        s = summary[arm]
        if s.users > s.closed_users:
            notes.append(f"arm {arm}: left out {s.users - s.closed_users} user(s) without a "
                         f"closed session")
        if s.open_users:
            notes.append(f"arm {arm}: {s.open_users} user(s) have events after their last "
                         f"\"last\"; they count in the user's sums as the design defines them")
    for note in notes:
        console.print(f"warning: {note}", style="yellow", markup=False, highlight=False,
                      soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = Console(stderr=True)
    try:
        config = load_config(args.config, replicates=args.bootstrap, seed=args.seed)
        spark = spark_session()
        results, rows = analyze(spark, args, config, log)
        write_outputs(args.out, results, rows)
    except AnalysisError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print_table(results, rows, Console(width=180))
    log.print(f"wrote ab_report.png, ab_report.md, results.json, results.csv to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
