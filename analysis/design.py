"""Experiment designer: how many users (and sessions) per arm a relative effect needs, and the
smallest relative effect (MDE) a given size can detect, from existing event logs.

    python -m analysis.design --events PATH --metric mean_session_time --mde 0.05 \
        [--alpha 0.05] [--power 0.8] [--arms 2] [--users N] [--cuped-events PATH]

Model (the A/B job's estimand, per-user metric means): a treatment multiplies the metric by
(1 + d), so with n users per arm, mean m and per-user standard deviation s,
    se(relative effect) = s * sqrt((1 + (1 + d)^2) / n) / m,
and a two-sided test at level a' = alpha / (arms - 1) (Holm's first step over the treatments,
i.e. Bonferroni: the conservative bound) has power
    power = Phi(|d| / se - z_{1 - a'/2}).
Solving for n at the wanted power gives the users per arm; solving for d at a given n gives
the MDE. With `--cuped-events` (a pre-period's logs) the variance is the CUPED one,
s^2 (1 - rho^2), rho the correlation between a user's pre-period and current value (users
without a pre-period value take the pooled mean, as in the job). Sessions per arm = users per
arm x the logs' sessions per user.

Sequential monitoring (analysis/sequential.py): with the always-valid interval looked at after
each tenth of the sessions, the experiment stops at the first look whose interval excludes 0.
The designer gives, at the MDE line's size and a true effect of --mde, the chance it stops
before the end and the expected share of the sessions it runs for (a Gaussian random walk of
the estimate, seeded).
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from analysis.config import load_config
from analysis.errors import AnalysisError
from analysis.sequential import LOOKS, stopping_distribution


@dataclass(frozen=True)
class Population:
    mean: float
    sd: float
    users: int
    sessions_per_user: float
    rho: float = 0.0  # correlation with the pre-period value (CUPED), 0 without

    @property
    def adjusted_sd(self) -> float:
        return self.sd * math.sqrt(1 - self.rho**2)


def _z(alpha: float, arms: int) -> float:
    return NormalDist().inv_cdf(1 - alpha / (2 * max(arms - 1, 1)))


def relative_se(pop: Population, users: float, effect: float = 0.0) -> float:
    return pop.adjusted_sd * math.sqrt((1 + (1 + effect) ** 2) / users) / abs(pop.mean)


def power_at(pop: Population, users: float, effect: float, alpha: float = 0.05,
             arms: int = 2) -> float:
    """Chance that a true relative effect `effect` is detected with `users` per arm."""
    return float(NormalDist().cdf(abs(effect) / relative_se(pop, users, effect) - _z(alpha, arms)))


def users_needed(pop: Population, mde: float, alpha: float = 0.05, power: float = 0.8,
                 arms: int = 2) -> int:
    """Users per arm for `power` at a true relative effect `mde`."""
    z = _z(alpha, arms) + NormalDist().inv_cdf(power)
    return math.ceil((z * pop.adjusted_sd / (mde * pop.mean)) ** 2 * (1 + (1 + mde) ** 2))


def mde_at(pop: Population, users: float, alpha: float = 0.05, power: float = 0.8,
           arms: int = 2) -> float:
    """The smallest relative effect detected with `power` at `users` per arm (a fixed point:
    the treatment's spread grows with the effect)."""
    z = _z(alpha, arms) + NormalDist().inv_cdf(power)
    effect = 0.0
    for _ in range(50):
        effect = z * relative_se(pop, users, effect)
    return effect


def expected_stop(pop: Population, users: float, effect: float, alpha: float = 0.05,
                  arms: int = 2, seed: int = 0) -> tuple[float, float]:
    """(chance of stopping at a look before the last, expected share of the sessions run)
    under sequential monitoring with `users` per arm and a true relative `effect`; each
    treatment is monitored at alpha / (arms - 1)."""
    chances = stopping_distribution(effect, relative_se(pop, users, effect), round(2 * users),
                                    alpha / max(arms - 1, 1), LOOKS, seed=seed)
    shares = np.append(np.arange(1, LOOKS + 1) / LOOKS, 1.0)  # never stopping runs it all
    return float(chances[:LOOKS - 1].sum()), float(chances @ shares)


def population(spark, events_path: str, metric: str, cuped_events: str | None) -> Population:
    """The metric's per-user mean and spread over every user with a closed session in the logs."""
    from pyspark.sql import functions as F

    from analysis.user_metrics import METRICS, every_user, read_events, with_covariates

    if metric not in METRICS:
        raise AnalysisError(f"--metric {metric!r}: the designer knows {', '.join(METRICS)}")
    users = every_user(read_events(spark, events_path)).where(F.col("sessions").isNotNull())
    if cuped_events is not None:
        users, _ = with_covariates(users, every_user(read_events(spark, cuped_events), "pre_"),
                                   [metric])
    aggregates = [F.mean(metric).alias("mean"), F.stddev(metric).alias("sd"),
                  F.count(F.lit(1)).alias("users"), F.mean("sessions").alias("sessions")]
    if cuped_events is not None:
        aggregates.append(F.corr(metric, f"pre_{metric}").alias("rho"))
    row = users.agg(*aggregates).first()
    if not row["users"] or row["users"] < 2:
        raise AnalysisError(f"fewer than 2 users with a closed session in {events_path}")
    rho = row["rho"] if cuped_events is not None and row["rho"] is not None else 0.0
    return Population(mean=row["mean"], sd=row["sd"], users=row["users"],
                      sessions_per_user=row["sessions"], rho=rho)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    config = load_config()   # conf/analysis.yml: the report's alpha and power
    parser = argparse.ArgumentParser(prog="python -m analysis.design",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", required=True, help="logs the design is based on")
    parser.add_argument("--metric", default="mean_session_time")
    parser.add_argument("--mde", type=float, required=True,
                        help="relative effect to detect, e.g. 0.05 for +5%%")
    parser.add_argument("--alpha", type=float, default=config.alpha)
    parser.add_argument("--power", type=float, default=config.power)
    parser.add_argument("--arms", type=int, default=2, help="arms including the control")
    parser.add_argument("--users", type=int,
                        help="users per arm for the MDE line (default: the logs' users / arms)")
    parser.add_argument("--cuped-events", metavar="PATH",
                        help="pre-period logs: size the experiment for CUPED")
    args = parser.parse_args(argv)
    if not 0 < args.mde or not 0 < args.alpha < 1 or not 0 < args.power < 1 or args.arms < 2:
        parser.error("need --mde > 0, 0 < --alpha < 1, 0 < --power < 1 and --arms >= 2")
    return args


def main(argv: list[str] | None = None, spark=None) -> int:
    args = parse_args(argv)
    from analysis.ab_test import spark_session

    try:
        pop = population(spark or spark_session(), args.events, args.metric, args.cuped_events)
    except AnalysisError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    users = users_needed(pop, args.mde, args.alpha, args.power, args.arms)
    size = args.users or pop.users // args.arms
    cuped = f", CUPED rho {pop.rho:.3f}" if args.cuped_events else ""
    print(f"{args.metric}: mean {pop.mean:.6g}, sd {pop.sd:.6g} over {pop.users} users, "
          f"{pop.sessions_per_user:.3f} sessions per user{cuped}")
    print(f"to detect {args.mde:+.2%} with power {args.power:.0%} at alpha {args.alpha} "
          f"({args.arms} arms, alpha / {args.arms - 1} per treatment): {users} users per arm, "
          f"~{math.ceil(users * pop.sessions_per_user)} sessions per arm")
    print(f"MDE at {size} users per arm: {mde_at(pop, size, args.alpha, args.power, args.arms):.2%}")
    early, share = expected_stop(pop, size, args.mde, args.alpha, args.arms)
    print(f"sequential monitoring ({LOOKS} looks, always valid) at {size} users per arm and a "
          f"true {args.mde:+.2%}: stops before the last look with probability {early:.0%}; "
          f"expected stop after {share:.0%} of the sessions "
          f"(~{math.ceil(share * size * pop.sessions_per_user)} sessions per arm)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
