"""Calibration on the simulator: how often each analysis method's interval covers the truth.

    ./run.sh calibrate --plan NAME [--replications N] [--scale S] [--run runs/<id>] [--draws K]
                       [--day D]

Every one-day A/B or interleaved day of the plan (`--day`: one of them); an interleaved day is
calibrated by pipeline/calibrate_interleaving.py. On an A/B day:
N replications of the plan's A/B day (a fresh user split and fresh simulator randomness each,
the same tables) and N A/A replications (the control against itself), each analysed with every
method of the A/B analysis (analysis/compare.py's numpy engine: the same estimator code as the
report's; and the always-valid monitoring of mean_session_time at each tenth of the sessions,
analysis/sequential.py), scored by analysis/calibration.py against the day's truth
(analysis/truth.py).
Writes calibration.{md,json,csv,png} into runs/<id>/calibration/ and an MLflow run.

Simulated traffic is reused where that is statistically equivalent. Users do not affect each
other (a recommender's answer depends on the request and the user's own session, the tables
are fixed), so a user's sessions under an arm are a draw from that user's outcome distribution
under the arm, whoever else is served by what. The day's traffic is therefore played once per
arm and draw into a pool of potential outcomes (every arm serving every user of the day, K
independent simulator draws), and a replication draws a fresh split and, per user, one of the
K draws of the arm the user lands in: randomization inference over a simulated pool. What it
changes: the between-replication variation of the simulator's randomness is limited to K draws
per user (a user's outcome takes at most K values across replications), and the truth the
replications scatter around is the pool's (the mean over its K draws), whose own MC error
against the simulator's expectation is stated beside it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.ab_test import job_settings
from analysis.calibration import Score, score, wilson
from analysis.compare import compare_numpy
from analysis.latency import a_a_verdicts
from analysis.report import LATENCY_HISTOGRAMS
from analysis.config import load_config as load_analysis_config
from analysis.sequential import moments, monitor
from analysis.truth import estimand_key, true_values
from pipeline import calibrate_interleaving
from pipeline.calibration_pool import (Pool, covariates_of, markdown_table, print_rich_table,
                                       replication_table)
from pipeline.outcomes import Outcomes, ab_day, potential_outcomes, previous_day_metrics
from settings import ConfigError

DEFAULT_DRAWS = 8
SEQUENTIAL_METRIC = "mean_session_time"   # the sequential method monitors the session time


def analyse(table: pd.DataFrame, arm_names: list[str], settings, replication: int,
            kind: str) -> list[dict]:
    comparison = compare_numpy(table, arm_names, settings)
    return [{"kind": kind, "replication": replication, "treatment": r.treatment,
             "metric": r.metric, "method": r.method, "effect": r.effect, "lower": r.lower,
             "upper": r.upper} for r in comparison.rows]


def monitored(pool: Pool, arm_of_user: np.ndarray, source_arm: np.ndarray, draw: np.ndarray,
              arm_names: list[str], alpha: float, direction: str, replication: int,
              kind: str) -> list[dict]:
    """The sequential method (analysis/sequential.py) on mean_session_time at each look, per
    treatment: the final look's effect, and as its interval the intersection of every look's
    always-valid interval. It holds the truth when every look's did, and excludes 0 when some
    look's did: when the experiment could have stopped under continuous monitoring."""
    o = pool.outcomes
    users = np.arange(len(o.users))
    time_at_looks = o.look_time_total[source_arm, draw, :, users].T   # (looks, n)
    looks = []
    for k in range(len(o.look_episodes)):
        came = o.look_sessions[k] > 0
        value = time_at_looks[k, came] / o.look_sessions[k, came]
        arms = arm_of_user[came]
        looks.append([moments(value[arms == a]) for a in range(len(arm_names))])
    rows = []
    for t in range(1, len(arm_names)):
        result = monitor(arm_names[t], [(look[0], look[t]) for look in looks],
                         o.look_episodes.tolist(), alpha, direction)
        rows.append({"kind": kind, "replication": replication, "treatment": arm_names[t],
                     "metric": SEQUENTIAL_METRIC, "method": "sequential",
                     "effect": result.looks[-1].effect,
                     "lower": max(look.lower for look in result.looks),
                     "upper": min(look.upper for look in result.looks)})
    return rows


def replicate(pool: Pool, arms: list[str], settings, family_alpha: float, replications: int,
              seed: int, progress=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every A/B and A/A replication's estimates (rows of `analyse`)."""
    import dataclasses

    n, draws = len(pool.outcomes.users), pool.outcomes.draws
    # as the report monitors: each treatment at the family's alpha over the treatments
    sequential_alpha = family_alpha / (len(arms) - 1)
    direction = settings.metrics.get(SEQUENTIAL_METRIC, "higher")
    ab, aa = [], []
    for r in range(replications):
        rng = np.random.default_rng([seed, r])
        # a fresh bootstrap stream per replication, as a fresh run's analysis would draw
        run_settings = dataclasses.replace(settings, seed=int(rng.integers(2**31)))
        split, draw = rng.choice(len(arms), size=n, p=pool.weights), rng.integers(draws, size=n)
        ab += analyse(replication_table(pool, split, split, draw), arms, run_settings, r, "A/B")
        ab += monitored(pool, split, split, draw, arms, sequential_alpha, direction, r, "A/B")
        halves, draw = rng.integers(2, size=n), rng.integers(draws, size=n)
        control = np.zeros(n, dtype=int)
        null_arms = [arms[0], f"{arms[0]}'"]
        rows = analyse(replication_table(pool, halves, control, draw), null_arms, run_settings,
                       r, "A/A")
        rows += monitored(pool, halves, control, draw, null_arms, sequential_alpha, direction, r,
                          "A/A")
        aa += [{**row, "treatment": t} for row in rows for t in arms[1:]]
        if progress:
            progress(r + 1)
    return pd.DataFrame(ab), pd.DataFrame(aa)


def truths(outcomes: Outcomes, settings) -> tuple[dict, dict]:
    """truth.json's document of the pool and (treatment, metric, method) -> true effect."""
    document = true_values(outcomes.arms, outcomes.sessions, outcomes.time_total,
                           outcomes.events, dict(settings.quantiles), settings.quantile_variable)
    methods = ["bootstrap", *(["cuped"] if settings.covariates else []), "delta", "sequential"]
    flat = {}
    for treatment, effects in document["effects"].items():
        for metric in [*settings.metrics, *settings.quantiles]:
            for method in methods:
                if method == "sequential" and metric != SEQUENTIAL_METRIC:
                    continue
                key = estimand_key(metric, method)
                if key in effects:
                    flat[(treatment, metric, method)] = effects[key]["effect"]
    return document, flat


def _share(share) -> str:
    if share is None:
        return "-"
    return f"{share.value:.1%} [{share.lower:.1%}, {share.upper:.1%}]"


def _mean(mean) -> str:
    return f"{mean.value:+.2%} [{mean.lower:+.2%}, {mean.upper:+.2%}]"


HEADER = ["treatment", "metric", "method", "truth", "coverage", "A/A false positives", "power",
          "bias", "mean width"]


def table_rows(scores: list[Score]) -> list[list[str]]:
    return [[s.treatment, s.metric, s.method, f"{s.truth:+.2%}", _share(s.coverage),
             _share(s.false_positive), _share(s.power), _mean(s.bias),
             f"{s.width.value:.2%} [{s.width.lower:.2%}, {s.width.upper:.2%}]"]
            for s in scores]


def markdown(scores: list[Score], info: dict) -> str:
    lines = [f"# Calibration of plan {info['plan']} ({info['scale']}), run {info['run']}", "",
             f"{info['replications']} A/B and {info['replications']} A/A replications of day "
             f"{info['day']} ({info['users']} users, {info['sessions']} sessions) over a pool "
             f"of {info['draws']} simulator draws per user and arm; {info['alpha']:.0%}-level "
             f"tests, {info['level']:.0%} intervals (Wilson for shares, bootstrap for means). "
             f"Nominal: coverage {1 - info['alpha']:.0%}, A/A false positives "
             f"{info['alpha']:.0%} (sequential: at least and at most, under monitoring at "
             f"every look). Truth: the pool's true relative effect of the row's estimand.", "",
             *markdown_table(HEADER, table_rows(scores))]
    if info.get("latency_guardrail_a_a") is not None:
        lines += ["", latency_line(info["latency_guardrail_a_a"])]
    lines += ["", f"Wall time {info['seconds']:.0f} s (pool {info['pool_seconds']:.0f} s).", ""]
    return "\n".join(lines)


def plot(path: Path, scores: list[Score], info: dict) -> None:
    """Coverage and A/A false positives per method and metric, with their intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{s.treatment} · {s.metric} · {s.method}" for s in scores]
    fig, axes = plt.subplots(1, 2, figsize=(14, 1.2 + 0.3 * len(scores)), sharey=True)
    for ax, name, nominal in [(axes[0], "coverage", 1 - info["alpha"]),
                              (axes[1], "false_positive", info["alpha"])]:
        for y, s in enumerate(scores):
            share = getattr(s, name)
            inside = share.lower <= nominal <= share.upper
            if s.method == "sequential":  # always valid: a guarantee of at least / at most
                inside = share.upper >= nominal if name == "coverage" else share.lower <= nominal
            colour = "#1a9850" if inside else "#d73027"
            ax.hlines(y, 100 * share.lower, 100 * share.upper, color=colour, linewidth=3)
            ax.plot(100 * share.value, y, "o", color=colour)
        ax.axvline(100 * nominal, color="black", linestyle="--", linewidth=1)
        ax.set_title(f"{'coverage of the truth' if name == 'coverage' else 'A/A false positives'}"
                     f", % (nominal {nominal:.0%})", fontsize=10, loc="left")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(scores)))
    axes[0].set_yticklabels(labels, fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle(f"Calibration of plan {info['plan']}: {info['replications']} + "
                 f"{info['replications']} replications (Wilson 95% intervals; red: the nominal "
                 f"value lies outside, for sequential: beyond its guarantee)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def latency_a_a(run: Path, config, replications: int, seed: int) -> dict | None:
    """The client latency guardrail on A/A re-splits of the A/B day's control users (the pool
    has no client latency: analysis/latency.py's a_a_verdicts says why), or None when the
    run's report has no client latency."""
    path = run / "report" / LATENCY_HISTOGRAMS
    if not path.exists():
        return None
    guard = config.latency_guardrail
    verdicts = a_a_verdicts(pd.read_csv(path), 0, guard.quantile, guard.margin_ms,
                            replications, config.bootstrap.replicates, seed, config.alpha)
    breached = wilson(verdicts.count("breached"), len(verdicts))
    return {"quantile": guard.quantile, "margin_ms": guard.margin_ms,
            "replications": len(verdicts), "breached": breached.count,
            "breach_rate": breached.value, "breach_rate_lower": breached.lower,
            "breach_rate_upper": breached.upper, "ok": verdicts.count("ok"),
            "inconclusive": verdicts.count("inconclusive")}


def latency_line(a_a: dict) -> str:
    """The latency guardrail's A/A verdicts in one line."""
    return (f"Client latency guardrail (p{a_a['quantile'] * 100:g}, margin {a_a['margin_ms']:g} "
            f"ms) on {a_a['replications']} A/A re-splits of the control's users: breached "
            f"{a_a['breached']} ({a_a['breach_rate']:.1%}, 95% [{a_a['breach_rate_lower']:.1%}, "
            f"{a_a['breach_rate_upper']:.1%}]), ok {a_a['ok']}, inconclusive "
            f"{a_a['inconclusive']}.")


def calibrate(run: Path, replications: int, draws: int, processes: int, seed: int,
              plan_name: str, scale: str, progress=None,
              day_name: str | None = None) -> tuple[list[Score], dict, pd.DataFrame, pd.DataFrame]:
    """Pool, truth, replications and scores of the run's A/B day `day_name` (default: its last)."""
    started = time.perf_counter()
    day = ab_day(run, day_name)
    config = load_analysis_config()
    outcomes = potential_outcomes(day, draws, processes)
    pool_seconds = time.perf_counter() - started
    present = {"sessions", "mean_session_time", "mean_session_length"}
    previous = previous_day_metrics(run, day)
    settings = job_settings(config, present, covariates=previous is not None)
    weights = np.array(day.weights) / sum(day.weights)
    pool = Pool(outcomes, weights, covariates_of(outcomes, previous, sorted(present)))
    document, flat = truths(outcomes, settings)
    ab, aa = replicate(pool, day.arms, settings, config.family_alpha, replications, seed,
                       progress)
    methods = ["bootstrap", "cuped", "delta", "sequential"]
    metrics = [*settings.metrics, *settings.quantiles]
    scores = sorted(score(ab, aa, flat, 1 - config.alpha, seed),
                    key=lambda s: (day.arms.index(s.treatment), metrics.index(s.metric),
                                   methods.index(s.method)))
    info = {"plan": plan_name, "scale": scale, "run": str(run), "day": day.name,
            "replications": replications, "draws": draws, "users": int(len(outcomes.users)),
            "sessions": int(outcomes.sessions.sum()), "alpha": config.alpha,
            "level": 1 - config.alpha, "seed": seed, "truth": document,
            "latency_guardrail_a_a": latency_a_a(run, config, replications, seed),
            "seconds": time.perf_counter() - started, "pool_seconds": pool_seconds}
    return scores, info, ab, aa


def write(folder: Path, scores: list[Score], info: dict, ab: pd.DataFrame,
          aa: pd.DataFrame) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "calibration.json").write_text(json.dumps(
        {**info, "scores": [s.as_dict() for s in scores]}, indent=2, default=float) + "\n")
    pd.concat([ab, aa]).to_csv(folder / "replications.csv", index=False)
    (folder / "calibration.md").write_text(markdown(scores, info))
    plot(folder / "calibration.png", scores, info)


def print_table(scores: list[Score], info: dict) -> None:
    print_rich_table(f"calibration: plan {info['plan']}, {info['replications']} A/B + "
                     f"{info['replications']} A/A replications, pool of {info['draws']} draws",
                     HEADER, table_rows(scores))


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="./run.sh calibrate",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", help="the plan (default: conf/pipeline.yml's)")
    parser.add_argument("--replications", type=int, default=200,
                        help="A/B replications, and as many A/A ones (default 200)")
    parser.add_argument("--scale", default="small", help="the plan's scale (default small)")
    parser.add_argument("--run", type=Path, help="a finished run of the plan whose tables and A/B "
                        "day are used (default: run the plan's days first)")
    parser.add_argument("--draws", type=int, default=DEFAULT_DRAWS,
                        help=f"simulator draws per user and arm in the pool (default "
                             f"{DEFAULT_DRAWS})")
    parser.add_argument("--processes", type=int, default=2, help="workers playing the pool")
    parser.add_argument("--seed", type=int, default=1, help="seed of the splits, the draws "
                        "chosen and the bootstrap (default 1)")
    parser.add_argument("--day", help="the A/B or interleaved day to calibrate (default: every "
                        "one the plan has)")
    parser.add_argument("--config", type=Path, help="pipeline settings (default "
                        "conf/pipeline.yml): where runs and MLflow's store are")
    return parser


def main(argv: list[str] | None = None) -> int:
    from infra.progress import progress_meter
    from pipeline import tracking
    from pipeline.config import load_pipeline_config
    from pipeline.experiment import run as run_plan
    from pipeline.plan import load_plan
    from settings import REPO_ROOT

    args = parser().parse_args(argv)
    if args.replications < 2 or args.draws < 1 or args.processes < 1:
        parser().error("--replications must be at least 2, --draws and --processes at least 1")
    try:
        config = load_pipeline_config(*([args.config] if args.config else []))
        plan_name = args.plan or config.plan
        plan = load_plan(plan_name)
        if args.scale not in plan.scales:
            raise ConfigError(f"unknown scale {args.scale!r}; plan {plan_name} has "
                              f"{sorted(plan.scales)}")
        days = [day.name for day in plan.days
                if (day.control is not None or day.interleaved) and args.day in (None, day.name)]
        if not days:
            raise ConfigError(f"plan {plan_name} has no A/B or interleaved day "
                              f"{args.day or ''} to calibrate".replace("  ", " "))
        run = args.run
        if run is None:
            run = REPO_ROOT / config.runs_dir / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            print(f"running plan {plan_name} ({args.scale}) first: {run}", flush=True)
            code = run_plan(config, Path(plan_name).stem, plan, args.scale, None,
                            ("world", *(day.name for day in plan.days)), run, False)
            if code != 0:
                return code
        for name in days:
            interleaved = {day.name: day for day in plan.days}[name].interleaved
            with progress_meter(args.replications, f"calibrate {name}", "replication") as bar:
                done = 0

                def progress(count: int) -> None:
                    nonlocal done
                    bar.update(count - done)
                    done = count

                if interleaved:
                    recorded = calibrate_interleaved_day(run, args, plan_name, name, progress)
                else:
                    recorded = calibrate_ab_day(run, args, plan_name, name, progress)
            try:
                run_id = tracking.record_calibration(REPO_ROOT / config.runs_dir,
                                                     Path(plan_name).stem, *recorded)
                print(f"MLflow run {run_id} (experiment {Path(plan_name).stem}-calibration)")
            except Exception as error:  # noqa: BLE001 - the folder has everything
                print(f"warning: not recorded in MLflow ({error})", file=sys.stderr)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def calibrate_ab_day(run: Path, args, plan_name: str, day: str, progress) -> tuple:
    """Calibrate, write and print the A/B day; what MLflow records of it."""
    from pipeline.tracking import calibration_metrics

    scores, info, ab, aa = calibrate(run, args.replications, args.draws, args.processes,
                                     args.seed, Path(plan_name).stem, args.scale, progress, day)
    folder = run / "calibration"
    write(folder, scores, info, ab, aa)
    print_table(scores, info)
    if info["latency_guardrail_a_a"] is not None:
        print(latency_line(info["latency_guardrail_a_a"]))
    print(f"wall time {info['seconds']:.0f} s (pool {info['pool_seconds']:.0f} s); "
          f"wrote calibration.md, calibration.png, calibration.json, replications.csv to {folder}")
    return folder, info, calibration_metrics(scores), ["calibration.md", "calibration.png",
                                                        "calibration.json"]


def calibrate_interleaved_day(run: Path, args, plan_name: str, day: str, progress) -> tuple:
    """Calibrate, write and print the interleaved day; what MLflow records of it."""
    scores, info, table = calibrate_interleaving.calibrate(
        run, args.replications, args.draws, args.processes, args.seed, Path(plan_name).stem,
        args.scale, day, progress)
    folder = run / "calibration"
    calibrate_interleaving.write(folder, scores, info, table)
    calibrate_interleaving.print_table(scores, info)
    print(f"wall time {info['seconds']:.0f} s (pool {info['pool_seconds']:.0f} s); wrote "
          f"interleaving_calibration.md, .png, .json, interleaving_replications.csv to {folder}")
    return folder, info, calibrate_interleaving.metrics(scores), [
        f"interleaving_calibration.{ext}" for ext in ("md", "png", "json")]

if __name__ == "__main__":
    sys.exit(main())
