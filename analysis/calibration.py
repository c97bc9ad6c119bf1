"""Scoring an analysis method over many replications of a simulated experiment.

Given each replication's estimate and interval of a relative effect, and the effect's truth:

- coverage: the share of A/B replications whose interval holds the true effect (nominal
  1 - alpha);
- false-positive rate: the share of A/A replications (the control against itself, true effect
  0) whose interval excludes 0 (nominal alpha);
- power: the share of A/B replications whose interval excludes 0 on the side of the true
  effect (undefined when the truth is 0);
- bias: the mean of estimate - truth; width: the mean interval width.

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
