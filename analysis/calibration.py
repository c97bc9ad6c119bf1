"""Scoring an analysis method over many replications of a simulated experiment.

Given each replication's estimate and interval of a relative effect, and the effect's truth:

- coverage: the share of A/B replications whose interval holds the true effect (nominal
  1 - alpha);
- false-positive rate: the share of A/A replications (the control against itself, true effect
  0) whose interval excludes 0 (nominal alpha);
- power: the share of A/B replications whose interval excludes 0 on the side of the true
  effect (undefined when the truth is 0);
- bias: the mean of estimate - truth; width: the mean interval width.

An interleaved pair (pipeline/calibrate_interleaving.py) is scored by its sign agreement: the
share of replications whose verdict (the sign test over users) leans to the side of the true
A/B effect of b over a; and by the users it needs for 80% power beside the A/B test's, both
from the replications' spread (`users_for_power`).

Shares come with Wilson's score interval (Wilson 1927), good at shares near 0 or 1 and at a
few hundred replications; means with a percentile bootstrap over the replications (seeded).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Share:
    value: float
    lower: float
    upper: float
    count: int       # replications that scored
    of: int          # replications


@dataclass(frozen=True)
class Mean:
    value: float
    lower: float
    upper: float


def wilson(successes: int, n: int, level: float = 0.95) -> Share:
    """The share successes / n with its Wilson score interval."""
    if n == 0:
        return Share(float("nan"), float("nan"), float("nan"), 0, 0)
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Share(p, max(0.0, centre - half), min(1.0, centre + half), int(successes), int(n))


def bootstrap_mean(values: np.ndarray, seed: int, level: float = 0.95,
                   replicates: int = 2000) -> Mean:
    """The mean of `values` (NaN dropped) with a percentile bootstrap interval."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return Mean(float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = values[rng.integers(len(values), size=(replicates, len(values)))].mean(axis=1)
    tail = (1 - level) / 2
    return Mean(float(values.mean()), float(np.quantile(means, tail)),
                float(np.quantile(means, 1 - tail)))


@dataclass(frozen=True)
class Score:
    treatment: str
    metric: str
    method: str
    truth: float
    coverage: Share
    false_positive: Share
    power: Share | None
    bias: Mean
    width: Mean

    def as_dict(self) -> dict:
        return asdict(self)


KEY = ["treatment", "metric", "method"]


def score(ab: pd.DataFrame, aa: pd.DataFrame, truth: dict[tuple[str, str, str], float],
          level: float = 0.95, seed: int = 0) -> list[Score]:
    """One Score per (treatment, metric, method) with a truth. `ab` and `aa` hold one row per
    replication and (treatment, metric, method) with `effect`, `lower` and `upper`; `aa`'s
    `treatment` is the A/B treatment whose method and metric it scores (its arms are two
    copies of the control)."""
    scores = []
    for key, rows in ab.groupby(KEY, sort=False):
        if key not in truth:
            continue
        true = truth[key]
        defined = rows[np.isfinite(rows["lower"]) & np.isfinite(rows["upper"])]
        covered = int(((defined["lower"] <= true) & (true <= defined["upper"])).sum())
        null = aa[(aa["treatment"] == key[0]) & (aa["metric"] == key[1])
                  & (aa["method"] == key[2])]
        null = null[np.isfinite(null["lower"]) & np.isfinite(null["upper"])]
        false_positive = int(((null["lower"] > 0) | (null["upper"] < 0)).sum())
        if true == 0 or not math.isfinite(true):
            power = None
        else:
            detected = defined["lower"] > 0 if true > 0 else defined["upper"] < 0
            power = wilson(int(detected.sum()), len(defined), level)
        scores.append(Score(
            treatment=key[0], metric=key[1], method=key[2], truth=float(true),
            coverage=wilson(covered, len(defined), level),
            false_positive=wilson(false_positive, len(null), level), power=power,
            bias=bootstrap_mean(rows["effect"].to_numpy() - true, seed, level),
            width=bootstrap_mean((defined["upper"] - defined["lower"]).to_numpy(), seed + 1,
                                 level)))
    return scores


def users_for_power(users: float, estimates: np.ndarray, null: float, alpha: float = 0.05,
                    power: float = 0.8) -> float:
    """The users a method needs for `power` in a two-sided `alpha`-level test of its estimate
    against `null`, from its replications at `users` users: an estimate's standard error falls
    as 1 / sqrt(users), so users * ((z_(1-alpha/2) + z_power) * sd / |mean - null|)^2. Inf when
    the estimates average the null."""
    estimates = np.asarray(estimates, dtype=float)
    shift = abs(float(estimates.mean()) - null)
    if shift == 0:
        return float("inf")
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    return float(users * (z * float(estimates.std(ddof=1)) / shift) ** 2)


def sign_test_minimum(alpha: float = 0.05) -> int:
    """The fewest users with a preference, all on one side, that a two-sided sign test rejects
    at `alpha`: 2 * 0.5^m < alpha."""
    return math.floor(math.log2(2 / alpha)) + 1


@dataclass(frozen=True)
class PairScore:
    """An interleaved pair scored against the true A/B effect of b over a."""

    arm: str
    a: str
    b: str
    truth: float                  # true relative effect of b over a (each serving everyone)
    agreement: Share              # replications whose verdict's side (more users preferring b
                                  # than a, or fewer) is the truth's
    share_agreement: Share        # replications whose share of b lies on the truth's side of 0.5
    share: Mean                   # b's share of the credit over the replications
    wins: Mean                    # b's share of the users with a preference (the sign test's)
    sign_test_power: Share        # replications whose sign test rejected on the truth's side
    users: float                  # mean users of an interleaving replication
    interleaving_users: float     # users the interleaving's sign test needs for 80% power
    ab_method: str                # the A/B method compared ("cuped", or "bootstrap" without a
                                  # pre-period)
    ab_users: float               # users the A/B test needs for 80% power
    trusted: bool                 # the agreement reaches the bar

    @property
    def ratio(self) -> float:
        """How many times fewer users the interleaving needs than the A/B test."""
        return self.ab_users / self.interleaving_users if self.interleaving_users else math.inf

    def as_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio}


def score_pair(arm: str, a: str, b: str, truth: float, interleaved: pd.DataFrame,
               ab: pd.DataFrame, ab_users: int, ab_method: str, *, alpha: float = 0.05,
               level: float = 0.95, seed: int = 0, agreement_bar: float = 0.95) -> PairScore:
    """`interleaved`: one row per replication with `users`, `share`, `b_wins`, `a_wins` and `p`
    (the sign test's); `ab`: one row per replication with the A/B test's `effect` (at `ab_users`
    users). The interleaving's verdict is its sign test's (analysis/interleaving.py), so its
    agreement and power are the verdict's: the side of b's share of the users with a preference
    (`wins`), whose spread gives the users it needs; a user without one (a tie) still counts
    among the users. A pair is trusted when the verdict's side is the truth's in
    `agreement_bar` of the replications."""
    sign = np.sign(truth)
    wins = interleaved["b_wins"] / (interleaved["b_wins"] + interleaved["a_wins"])
    agreement = wilson(int((np.sign(wins - 0.5) == sign).sum()), len(interleaved), level)
    share_agreed = int((np.sign(interleaved["share"] - 0.5) == sign).sum())
    detected = (interleaved["p"] < alpha) & (np.sign(wins - 0.5) == sign)
    users = float(interleaved["users"].mean())
    # The normal approximation of users_for_power fails for a handful of users: no fewer than
    # the sign test can reject with, counting the users without a preference.
    preferring = float(((interleaved["b_wins"] + interleaved["a_wins"]) / interleaved["users"]).mean())
    fewest = sign_test_minimum(alpha) / preferring
    return PairScore(
        arm=arm, a=a, b=b, truth=float(truth), agreement=agreement,
        share_agreement=wilson(share_agreed, len(interleaved), level),
        share=bootstrap_mean(interleaved["share"].to_numpy(), seed, level),
        wins=bootstrap_mean(wins.to_numpy(), seed + 1, level),
        sign_test_power=wilson(int(detected.sum()), len(interleaved), level), users=users,
        interleaving_users=max(users_for_power(users, wins.to_numpy(), 0.5, alpha), fewest),
        ab_method=ab_method,
        ab_users=users_for_power(ab_users, ab["effect"].to_numpy(), 0.0, alpha),
        trusted=bool(agreement.value >= agreement_bar))
