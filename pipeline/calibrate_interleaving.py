"""Calibration of an interleaved day on the simulator: does each pair's preference have the sign
of the true A/B effect, and how many users does it need beside an A/B test of the same pair?

    ./run.sh calibrate --plan screen [--replications N] [--day NAME] ...

(pipeline/calibrate.py's command: a plan's interleaved day is calibrated like its A/B day.)

The pool (pipeline/calibrate.py's design): every team's arm and every interleaved arm serves
all the day's users, K independent simulator draws each (pipeline/outcomes.py). The truth of a
pair is the A/B effect of b over a on mean_session_time over the pool (b serving everyone
against a serving everyone, the same users and draws). Each replication then, per pair:
- interleaving: a sample of the pair's share of the day's users (as many as the service's
  split gives the pair, on average), each with one of its K interleaved draws, analysed as the
  report does (analysis/interleaving.py's `preference`: b's share of the credit and the sign
  test);
- A/B: a sample of as many users as the day has, split 50/50 between a and b, each with one of
  its K draws of its arm, analysed by the report's engine (analysis/compare.py) with CUPED on the
  previous day's mean_session_time (bootstrap when the day has no previous one).
Users do not affect each other (the tables are fixed and a recommender's answer depends only
on the user's own session), so a user's sessions under an arm, interleaved or not, are a draw
from that user's outcome distribution under it whoever else is served by what: resampling
splits and draws over the pool is randomization inference over simulated potential outcomes.
Each replication's users are drawn with replacement from the day's (the day's users stand for
the population they came from): an interleaving of every user of a fixed day would vary only
by the simulator's draws, so its spread would omit the users' own spread, which the users
needed for power must count, for both methods alike.
Scored by analysis/calibration.py's `score_pair`; writes interleaving_calibration.{md,json,png}.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.ab_test import job_settings
from analysis.calibration import PairScore, score_pair
from analysis.compare import compare_numpy
from analysis.config import load_config as load_analysis_config
from analysis.interleaving import preference
from pipeline.calibration_pool import (Pool, covariates_of, markdown_table, print_rich_table,
                                       replication_table)
from pipeline.outcomes import interleaved_day, potential_outcomes, previous_day_metrics

METRIC = "mean_session_time"
# The replications need only each method's point estimate; the bootstrap intervals they come
# with are kept short.
REPLICATES = 50


def true_effect(pool: Pool, a: int, b: int) -> float:
    """The relative effect of arm b over arm a on the mean over users of the per-user
    mean_session_time, over the pool's draws."""
    o = pool.outcomes
    per_user = o.time_total / o.sessions
    return float(per_user[b].mean() / per_user[a].mean() - 1)


def interleaving_replication(pool: Pool, pair: int, share: float, rng: np.random.Generator,
                             seed: int) -> dict:
    """One interleaving replication of the pool's arm `pair`: its users, b's share, the users
    preferring each team, the sign test."""
    o = pool.outcomes
    n = len(o.users)
    chosen = rng.integers(n, size=rng.binomial(n, share))
    draw = rng.integers(o.draws, size=len(chosen))
    credit = o.credit[pair, draw, :, chosen]              # (users, 2)
    found = preference("", "a", "b", credit[:, 0], credit[:, 1],
                       o.sessions[chosen].astype(float), REPLICATES, seed)
    return {key: found[key] for key in ("users", "share", "b_wins", "a_wins", "p")}


def ab_replication(pool: Pool, a: int, b: int, arms: list[str], settings, method: str,
                   rng: np.random.Generator) -> float:
    """One A/B replication of b against a over all the pool's users: the method's effect."""
    n = len(pool.outcomes.users)
    users = rng.integers(n, size=n)
    split, draw = rng.integers(2, size=n), rng.integers(pool.outcomes.draws, size=n)
    table = replication_table(pool, split, np.where(split == 0, a, b), draw, users)
    rows = compare_numpy(table, arms, settings).rows
    (row,) = [r for r in rows if r.metric == METRIC and r.method == method]
    return row.effect


def calibrate(run: Path, replications: int, draws: int, processes: int, seed: int,
              plan_name: str, scale: str, day_name: str | None = None,
              progress=None) -> tuple[list[PairScore], dict, pd.DataFrame]:
    """Pool, truths, replications and scores of the run's interleaved day."""
    started = time.perf_counter()
    day = interleaved_day(run, day_name)
    pair_arms = [arm for arm, _, _ in day.pairs]
    outcomes = potential_outcomes(day, draws, processes, arms=[*day.arms, *pair_arms])
    pool_seconds = time.perf_counter() - started
    config = load_analysis_config()
    previous = previous_day_metrics(run, day)
    method = "cuped" if previous is not None else "bootstrap"
    settings = dataclasses.replace(
        job_settings(config, {METRIC}, covariates=previous is not None),
        quantiles={}, replicates=REPLICATES)
    # (no split weights: each replication splits by the pair's share, or 50/50)
    pool = Pool(outcomes, np.array([]), covariates_of(outcomes, previous, [METRIC]))
    rows = []
    for r in range(replications):
        rng = np.random.default_rng([seed, r])
        for index, (arm, a, b) in enumerate(day.pairs):
            pair = len(day.arms) + index
            found = interleaving_replication(pool, pair, day.weights[index], rng,
                                             int(rng.integers(2**31)))
            run_settings = dataclasses.replace(settings, seed=int(rng.integers(2**31)))
            effect = ab_replication(pool, day.arms.index(a), day.arms.index(b), [a, b],
                                    run_settings, method, rng)
            rows.append({"replication": r, "pair": arm, **found, "effect": effect})
        if progress:
            progress(r + 1)
    table = pd.DataFrame(rows)
    scores = [score_pair(arm, a, b, true_effect(pool, day.arms.index(a), day.arms.index(b)),
                         table[table["pair"] == arm], table[table["pair"] == arm],
                         len(outcomes.users), method, alpha=config.family_alpha,
                         level=1 - config.alpha, seed=seed)
              for arm, a, b in day.pairs]
    info = {"plan": plan_name, "scale": scale, "run": str(run), "day": day.name,
            "replications": replications, "draws": draws, "users": int(len(outcomes.users)),
            "sessions": int(outcomes.sessions.sum()), "alpha": config.family_alpha,
            "seed": seed, "ab_method": method, "seconds": time.perf_counter() - started,
            "pool_seconds": pool_seconds}
    return scores, info, table


HEADER = ["pair", "a", "b", "true effect of b", "sign agreement", "share agreement", "share of b",
          "users preferring b", "sign test power", "users", "interleaving users (80%)",
          "A/B users (80%)", "fewer users", "trusted"]


def table_rows(scores: list[PairScore]) -> list[list[str]]:
    return [[s.arm, s.a, s.b, f"{s.truth:+.2%}",
             f"{s.agreement.value:.1%} [{s.agreement.lower:.1%}, {s.agreement.upper:.1%}]",
             f"{s.share_agreement.value:.1%}",
             f"{s.share.value:.3f} [{s.share.lower:.3f}, {s.share.upper:.3f}]",
             f"{s.wins.value:.3f} [{s.wins.lower:.3f}, {s.wins.upper:.3f}]",
             f"{s.sign_test_power.value:.1%}", f"{s.users:.0f}", f"{s.interleaving_users:,.0f}",
             f"{s.ab_users:,.0f}", f"{s.ratio:.1f}x", "yes" if s.trusted else "NO"]
            for s in scores]


def median_ratio(scores: list[PairScore]) -> float:
    return float(np.median([s.ratio for s in scores]))


def markdown(scores: list[PairScore], info: dict) -> str:
    lines = [f"# Calibration of the interleaved day {info['day']} of plan {info['plan']} "
             f"({info['scale']}), run {info['run']}", "",
             f"{info['replications']} replications of every pair over a pool of {info['draws']} "
             f"simulator draws of every arm serving all {info['users']} users "
             f"({info['sessions']} sessions). True effect: b serving everyone against a serving "
             f"everyone, on {METRIC}. Sign agreement: the replications whose verdict (the sign "
             f"test over users) leans to the truth's side (Wilson 95%); a pair is trusted at 95% "
             f"or more. Share agreement: the same of b's share of the credit. Users for 80% "
             f"power at {info['alpha']:.0%} (two-sided), from the replications' spread: the "
             f"interleaving's sign test (b's share of the users preferring a team, against "
             f"0.5); the A/B test ({info['ab_method']}) of b against a, 50/50.", "",
             *markdown_table(HEADER, table_rows(scores))]
    lines += ["", f"Median pair: the interleaving needs {median_ratio(scores):.1f}x fewer users "
                  f"than the A/B test.", "",
              f"Wall time {info['seconds']:.0f} s (pool {info['pool_seconds']:.0f} s).", ""]
    return "\n".join(lines)


def plot(path: Path, scores: list[PairScore], info: dict) -> None:
    """Per pair: the sign agreement, and the users each method needs (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 1.5 + 0.5 * len(scores)), sharey=True)
    for y, s in enumerate(scores):
        colour = "#1a9850" if s.trusted else "#d73027"
        left.hlines(y, 100 * s.agreement.lower, 100 * s.agreement.upper, color=colour, linewidth=3)
        left.plot(100 * s.agreement.value, y, "o", color=colour)
        right.plot(s.interleaving_users, y, "o", color="tab:green", label="interleaving" if y == 0 else None)
        right.plot(s.ab_users, y, "s", color="tab:blue", label=f"A/B ({s.ab_method})" if y == 0 else None)
    left.axvline(95, color="black", linestyle="--", linewidth=1)
    left.set_title("sign agreement with the true effect, % (95% bar)", fontsize=10, loc="left")
    right.set_xscale("log")
    right.set_title("users for 80% power", fontsize=10, loc="left")
    right.legend(fontsize=8)
    left.set_yticks(range(len(scores)), [f"{s.b} vs {s.a} ({s.truth:+.1%})" for s in scores])
    left.invert_yaxis()
    fig.suptitle(f"Calibration of the interleaved day {info['day']} of plan {info['plan']}: "
                 f"{info['replications']} replications", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(folder: Path, scores: list[PairScore], info: dict, table: pd.DataFrame) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "interleaving_calibration.json").write_text(json.dumps(
        {**info, "median_ratio": median_ratio(scores), "pairs": [s.as_dict() for s in scores]},
        indent=2, default=float) + "\n")
    table.to_csv(folder / "interleaving_replications.csv", index=False)
    (folder / "interleaving_calibration.md").write_text(markdown(scores, info))
    plot(folder / "interleaving_calibration.png", scores, info)


def metrics(scores: list[PairScore]) -> dict[str, float]:
    """MLflow metrics: `<pair>.<score>` and the median ratio."""
    found = {"median_ratio": median_ratio(scores)}
    for s in scores:
        found.update({f"{s.arm}.truth": s.truth, f"{s.arm}.agreement": s.agreement.value,
                      f"{s.arm}.share_agreement": s.share_agreement.value,
                      f"{s.arm}.share": s.share.value, f"{s.arm}.wins": s.wins.value,
                      f"{s.arm}.ratio": s.ratio,
                      f"{s.arm}.interleaving_users": s.interleaving_users,
                      f"{s.arm}.ab_users": s.ab_users, f"{s.arm}.trusted": float(s.trusted)})
    return found


def print_table(scores: list[PairScore], info: dict) -> None:
    print_rich_table(f"interleaving calibration: plan {info['plan']}, day {info['day']}, "
                     f"{info['replications']} replications, pool of {info['draws']} draws",
                     HEADER, table_rows(scores))
    print(f"median pair: {median_ratio(scores):.1f}x fewer users with interleaving")
