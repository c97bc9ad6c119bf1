"""A/B/n analysis of an experiment from the event logs: every treatment against the control,
per-user metrics with Poisson-bootstrap (and CUPED, delta-method) intervals computed in Spark,
Holm-adjusted verdicts per metric role, a sample-ratio check, always-valid (sequential)
intervals of the primary metric at each tenth of the sessions, on multi-day logs the primary
effect per day since exposure, the client latency guardrail, and the report.

    spark-submit analysis/ab_test.py --events PATH --experiment NAME --control C \\
        [--treatments T1 T2 ...] --out DIR [--seed S] [--bootstrap B] [--primary METRIC] \\
        [--config conf/analysis.yml] [--pre-events PATH] [--truth FILE] \\
        [--latency-quantile Q] [--latency-margin-ms M]

or `python analysis/ab_test.py ...` (Spark local[*]), or `main(argv, spark)` inside a running
SparkSession. Writes ab_report.png, ab_report.md, results.json and results.csv into DIR and
prints the results table.
Exit status: 0 on success, 2 on bad input or configuration (the message says what to do).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from rich.console import Console

from analysis.compare import Settings, compare_spark
from analysis.config import DEFAULT_CONFIG, AnalysisConfig, load_config
from analysis.decisions import ResultRow, decide
from analysis.effects import sample_ratio_check
from analysis.errors import AnalysisError
from analysis.exposure import exposure_curve
from analysis.latency import client_guardrail
from analysis.looks import monitor_primary
from analysis.report import SESSION_TIME_VIEW, print_table, write_outputs
from analysis.user_metrics import (CONFLICT, INVALID, METRICS, OUTSIDE, RATIOS,
                                   RETENTION_METRICS, Period, analysed_events, check_arms,
                                   metric_table, per_user, pre_period, read_events, summarize,
                                   with_covariates)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ab_test.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", required=True,
                        help="folder, file or glob of JSON-lines event logs (hdfs://, file:// "
                             "or a local path); folders are read recursively")
    parser.add_argument("--experiment", required=True, help="experiment name in `experiments`")
    parser.add_argument("--control", required=True, help="control arm name")
    parser.add_argument("--treatments", nargs="+", metavar="T", default=[],
                        help="treatment arms; default: every other arm in the logs")
    parser.add_argument("--treatment", action="append", dest="treatment", metavar="T",
                        default=[], help="one treatment arm (repeatable; adds to --treatments)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--bootstrap", type=int, metavar="B",
                        help="bootstrap replicates (default: bootstrap.replicates in config)")
    parser.add_argument("--seed", type=int, help="seed (default: bootstrap.seed in config)")
    parser.add_argument("--primary", metavar="METRIC",
                        help="primary metric (default: roles.primary in config); the configured "
                             "primary becomes a secondary")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG),
                        help=f"analysis config (default: {DEFAULT_CONFIG})")
    parser.add_argument("--pre-events", metavar="PATH",
                        help="pre-period logs (e.g. the previous day's): adds CUPED rows")
    parser.add_argument("--weights", nargs="+", metavar="ARM=W", type=_weight, default=[],
                        help="the split the experiment was configured with, for the sample-ratio "
                             "check (default: srm.splits in the config, else equal arms)")
    parser.add_argument("--truth", type=Path, metavar="FILE",
                        help="truth.json of a simulated day (python -m pipeline.truth): the "
                             "report shows each row's true effect and marks intervals that "
                             "miss it")
    parser.add_argument("--latency-quantile", type=float, metavar="Q",
                        help="the client latency guardrail's quantile (default: "
                             "latency_guardrail.quantile in config)")
    parser.add_argument("--latency-margin-ms", type=float, metavar="M",
                        help="its margin in milliseconds (default: latency_guardrail.margin_ms)")
    args = parser.parse_args(argv)
    args.treatments = [*args.treatments, *args.treatment] or None
    return args


def _weight(text: str) -> tuple[str, float]:
    arm, _, weight = text.partition("=")
    try:
        value = float(weight)
    except ValueError:
        value = -1.0
    if not arm or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: write ARM=WEIGHT, a weight >= 0")
    return arm, value


def spark_session():
    """The active session (tests, notebooks) or a new one from conf/spark.yml (sparkapp)."""
    from pyspark.sql import SparkSession

    from sparkapp.session import spark_session as new_session

    return SparkSession.getActiveSession() or new_session("ab-test")


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


ROLE_ORDER = {"primary": 0, "secondary": 1, "guardrail": 2}
METHOD_ORDER = {"bootstrap": 0, "cuped": 1, "delta": 2}


def job_settings(config: AnalysisConfig, present: set[str], covariates: bool) -> Settings:
    """The engine's settings for the columns this run has: retention metrics only on
    multi-day logs, CUPED covariates only with pre-period logs."""
    base = config.settings
    metrics = {m: d for m, d in base.metrics.items() if m in present}
    primary = config.roles.primary
    if primary not in metrics and primary not in base.quantiles:
        raise AnalysisError(f"primary metric {primary!r} cannot be computed from these logs "
                            f"({', '.join(RETENTION_METRICS)} need logs spanning 2 or more "
                            f"UTC days); pass --primary with another metric")
    return dataclasses.replace(
        base, metrics=metrics,
        covariates={m: f"pre_{m}" for m in METRICS if m in metrics} if covariates else {},
        ratios={m: pair for m, pair in RATIOS.items() if m in metrics})


def analyze(spark, args: argparse.Namespace, config: AnalysisConfig, console: Console,
            timings: dict[str, float] | None = None) -> tuple[dict, list[ResultRow]]:
    """Read, check, compare, decide. Returns the results document (without rows) and the
    rows; `timings` (if given) receives the seconds to the per-user table and to the end of
    the bootstrap."""
    timings = {} if timings is None else timings
    truth = read_truth(args.truth) if args.truth is not None else None
    started = time.perf_counter()
    events = read_events(spark, args.events)
    users = per_user(events, args.experiment)
    cached = []
    try:
        summary = summarize(users)
        timings["per_user_s"] = time.perf_counter() - started
        console.log(f"per-user table built ({timings['per_user_s']:.1f} s)")
        arms = check_arms(summary, args.experiment, args.control, args.treatments, events)
        _warn(summary, arms, console)
        in_experiment = [s for g, s in summary.items() if g not in (INVALID, OUTSIDE, CONFLICT)]
        period = Period.of(min(s.first_ts for s in in_experiment),
                           max(s.last_ts for s in in_experiment))
        table = metric_table(users, arms, period)
        covariates = {}
        settings = job_settings(config, set(table.columns), args.pre_events is not None)
        if args.pre_events is not None:
            # one row per user, read twice (the covariates' fill, then the table): parse once
            pre = pre_period(read_events(spark, args.pre_events)).cache()
            cached.append(pre)
            table, covariates = with_covariates(table, pre, list(settings.covariates))
            table = table.cache()
            cached.append(table)
        comparison = compare_spark(table, arms, settings)
        primary = config.roles.primary
        analysed = analysed_events(events, args.experiment, table).cache()
        cached.append(analysed)
        sequential = monitor_primary(analysed, arms, primary,
                                     settings.metrics.get(primary, "higher"), config.family_alpha)
        exposure = exposure_curve(analysed, arms, primary, settings, period.days)
        guard = config.latency_guardrail
        latency = client_guardrail(analysed, arms, guard.quantile, guard.margin_ms,
                                   settings.replicates, settings.seed, config.alpha)
    finally:
        users.unpersist()
        for frame in cached:
            frame.unpersist()
    timings["bootstrap_s"] = time.perf_counter() - started
    console.log(f"bootstrap done ({timings['bootstrap_s']:.1f} s)")
    if comparison.quantile_escapes:
        console.print(f"warning: {comparison.quantile_escapes} bootstrap quantiles fell outside "
                      f"their window; raise quantiles.window_sd in the config", style="yellow",
                      soft_wrap=True)
    directions = {**settings.metrics,
                  **{q: settings.quantile_direction for q in settings.quantiles}}
    rows = decide(comparison.rows, config.roles, directions, config.family_alpha, config.power)
    rows.sort(key=lambda r: (ROLE_ORDER[r.role], list(directions).index(r.metric),
                             arms.index(r.treatment), METHOD_ORDER[r.method]))
    weights = dict(args.weights)
    missing = [arm for arm in arms if weights and arm not in weights]
    if missing:
        raise AnalysisError(f"--weights gives no weight for arm(s) {missing}")
    split = {arm: weights[arm] for arm in arms} if weights else config.expected_split(args.experiment, arms)
    srm = sample_ratio_check(comparison.users, split, config.srm.alpha)
    decision_method = "cuped" if args.pre_events is not None else "bootstrap"
    results = {
        "experiment": args.experiment, "control": arms[0], "treatments": arms[1:],
        "session_time_view": SESSION_TIME_VIEW,
        "parameters": {
            "events": args.events, "pre_events": args.pre_events, "config": args.config,
            "replicates": settings.replicates, "seed": settings.seed, "alpha": settings.alpha,
            "family_alpha": config.family_alpha, "power": config.power,
            "partitions": settings.partitions, "metrics": settings.metrics,
            "roles": config.roles.model_dump(), "quantiles": settings.quantiles,
            "quantile_variable": settings.quantile_variable, "quantile_bins": settings.bins,
            "quantile_window_sd": settings.window_sd, "srm_alpha": config.srm.alpha},
        "data": {
            "first_event": _iso(min(s.first_ts for s in in_experiment)),
            "last_event": _iso(max(s.last_ts for s in in_experiment)),
            "days": period.days,
            "valid_events": sum(s.events for g, s in summary.items() if g != INVALID),
            "invalid_lines": summary[INVALID].users if INVALID in summary else 0,
            "users_outside_experiment": summary[OUTSIDE].users if OUTSIDE in summary else 0,
            "users_in_several_arms": summary[CONFLICT].users if CONFLICT in summary else 0,
            "arms": {arm: {"users_in_logs": summary[arm].users,
                           "users_analysed": comparison.users[arm],
                           "users_with_open_session": summary[arm].open_users,
                           "events": summary[arm].events, "sessions": summary[arm].sessions}
                     for arm in arms},
            "covariates": covariates},
        "srm": srm,
        "quantile_escapes": comparison.quantile_escapes,
        "decision": primary_decision(rows, config.roles.primary, decision_method),
        "sequential": sequential,
        "latency_guardrail": latency,
    }
    if exposure is not None:
        results["exposure"] = exposure
    if truth is not None:
        results["truth"] = truth
    return results, rows


def read_truth(path: Path) -> dict:
    """A truth.json (analysis/truth.py), or an AnalysisError saying what is wrong."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise AnalysisError(f"--truth {path}: cannot read it ({error}); pass the truth.json "
                            f"that python -m pipeline.truth wrote") from None
    if not isinstance(document, dict) or "effects" not in document:
        raise AnalysisError(f"--truth {path}: not a truth.json (no \"effects\")")
    return {**document, "file": str(path)}


def primary_decision(rows: list[ResultRow], primary: str, method: str) -> dict:
    """The headline: per treatment, the primary metric's row of the deciding method."""
    chosen = {r.treatment: r for r in rows if r.metric == primary and r.method == method}
    return {"metric": primary, "method": method,
            "treatments": {t: {"verdict": r.verdict, "effect": r.effect, "lower": r.lower,
                               "upper": r.upper, "p_adjusted": r.p_adjusted, "mde": r.mde}
                           for t, r in chosen.items()}}


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


def main(argv: list[str] | None = None, spark=None) -> int:
    """Run the job. With `spark` given, run inside that session and leave it running (a
    long-lived driver runs a day's jobs); otherwise use the active session or start one."""
    args = parse_args(argv)
    log = Console(stderr=True)
    try:
        latency = {key: value for key, value in [("quantile", args.latency_quantile),
                                                 ("margin_ms", args.latency_margin_ms)]
                   if value is not None}
        config = load_config(args.config, replicates=args.bootstrap, seed=args.seed,
                             primary=args.primary, latency=latency)
        results, rows = analyze(spark or spark_session(), args, config, log)
        write_outputs(args.out, results, rows)
    except AnalysisError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print_table(results, rows, Console(width=180))
    log.print(f"wrote ab_report.png, ab_report.md, results.json, results.csv to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
