"""From bootstrap replicates to the verdict: relative effects, intervals, p-values, SRM.

Effect of a treatment on a metric: (treatment mean - control mean) / control mean.
- Bootstrap interval: percentile interval of the replicate effects (Poisson weights over users).
- Bootstrap p-value: the interval inverted, i.e. the smallest level at which the percentile
  interval (same quantile interpolation) excludes 0, so p < alpha exactly when the interval
  excludes 0: the p-value never contradicts the verdict. `significant` means the interval
  excludes 0. p is 0 when every replicate falls on one side of 0 (below the 1/B resolution).
- Welch cross-check: Welch's t-test on the difference of means for the p-value, and the delta
  method on the ratio with Welch's degrees of freedom for the interval (means only).
- Sample-ratio mismatch: chi-square goodness of fit of users per arm against the configured split.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from analysis.bootstrap import ArmReplicates


@dataclass(frozen=True)
class EffectRow:
    treatment: str
    metric: str
    control_mean: float
    treatment_mean: float
    effect: float
    lower: float
    upper: float
    p_value: float
    significant: bool
    welch_lower: float | None
    welch_upper: float | None
    welch_p_value: float | None
    direction: str
    verdict: str  # "better", "worse" or "no difference" given the metric's direction
    control_users: int
    treatment_users: int

    def as_dict(self) -> dict:
        return asdict(self)


def relative_effect(treatment: np.ndarray, control: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return treatment / control - 1.0


def percentile_interval(replicate_effects: np.ndarray, alpha: float) -> tuple[float, float]:
    finite = replicate_effects[np.isfinite(replicate_effects)]
    if len(finite) == 0:
        return float("nan"), float("nan")
    lower, upper = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return float(lower), float(upper)


def bootstrap_p_value(replicate_effects: np.ndarray) -> float:
    """2 * the tail probability of 0 under np.quantile's linear interpolation, taking the
    tail on the side where the interval can exclude 0 soonest."""
    values = np.sort(replicate_effects[np.isfinite(replicate_effects)])
    n = len(values)
    if n < 2:
        return float("nan")
    # Highest quantile level at which the interpolated quantile is still <= 0 ...
    j = int(np.searchsorted(values, 0.0, side="right")) - 1
    if j < 0:
        at_most_zero = 0.0
    elif j == n - 1:
        at_most_zero = 1.0
    else:
        at_most_zero = (j - values[j] / (values[j + 1] - values[j])) / (n - 1)
    # ... and lowest level at which it is already >= 0.
    i = int(np.searchsorted(values, 0.0, side="left"))
    if i == 0:
        at_least_zero = 0.0
    elif i == n:
        at_least_zero = 1.0
    else:
        at_least_zero = (i - 1 - values[i - 1] / (values[i] - values[i - 1])) / (n - 1)
    return float(min(1.0, 2 * at_most_zero, 2 * (1 - at_least_zero)))


def welch(control_mean: float, control_var: float, control_n: int, treatment_mean: float,
          treatment_var: float, treatment_n: int, alpha: float) -> tuple[float, float, float]:
    """(lower, upper, p_value) of the relative effect by Welch's t and the delta method."""
    se_c2, se_t2 = control_var / control_n, treatment_var / treatment_n
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (se_c2 + se_t2) ** 2 / (se_c2**2 / (control_n - 1) + se_t2**2 / (treatment_n - 1))
        t_stat = (treatment_mean - control_mean) / np.sqrt(se_c2 + se_t2)
        effect = treatment_mean / control_mean - 1
        se_ratio = np.sqrt(se_t2 / control_mean**2 + treatment_mean**2 * se_c2 / control_mean**4)
    if not (np.isfinite(df) and np.isfinite(t_stat) and np.isfinite(se_ratio)):
        return float("nan"), float("nan"), float("nan")
    p_value = 2 * stats.t.sf(abs(t_stat), df)
    half = stats.t.ppf(1 - alpha / 2, df) * se_ratio
    return float(effect - half), float(effect + half), float(p_value)


def verdict(significant: bool, effect: float, direction: str) -> str:
    if not significant:
        return "no difference"
    return "better" if (effect > 0) == (direction == "higher") else "worse"


def effect_rows(replicates: ArmReplicates, arm_names: list[str], metric_names: list[str],
                directions: dict[str, str], quantile_names: list[str],
                quantile_points: np.ndarray, quantile_direction: str,
                alpha: float) -> list[EffectRow]:
    """One row per treatment (arm 1..) and metric (means first, then quantiles)."""
    rows = []
    n = replicates.users
    for t in range(1, len(arm_names)):
        for j, metric in enumerate(metric_names):
            c_mean, t_mean = replicates.means[0, j, 0], replicates.means[t, j, 0]
            boot = relative_effect(replicates.means[t, j, 1:], replicates.means[0, j, 1:])
            w_lower, w_upper, w_p = welch(c_mean, replicates.variances[0, j], n[0], t_mean,
                                          replicates.variances[t, j], n[t], alpha)
            rows.append(_row(arm_names[t], metric, c_mean, t_mean, boot, alpha,
                             (w_lower, w_upper, w_p), directions[metric], n[0], n[t]))
        for q, metric in enumerate(quantile_names):
            boot = relative_effect(replicates.quantiles[t, q], replicates.quantiles[0, q])
            rows.append(_row(arm_names[t], metric, quantile_points[0, q], quantile_points[t, q],
                             boot, alpha, (None, None, None), quantile_direction, n[0], n[t]))
    return rows


def _row(treatment, metric, c_mean, t_mean, boot, alpha, welch_columns, direction,
         control_users, treatment_users) -> EffectRow:
    effect = float(relative_effect(np.float64(t_mean), np.float64(c_mean)))
    lower, upper = percentile_interval(boot, alpha)
    significant = bool(lower > 0 or upper < 0)
    return EffectRow(treatment=treatment, metric=metric, control_mean=float(c_mean),
                     treatment_mean=float(t_mean), effect=effect, lower=lower, upper=upper,
                     p_value=bootstrap_p_value(boot), significant=significant,
                     welch_lower=welch_columns[0], welch_upper=welch_columns[1],
                     welch_p_value=welch_columns[2], direction=direction,
                     verdict=verdict(significant, effect, direction),
                     control_users=int(control_users), treatment_users=int(treatment_users))


def sample_ratio_check(users: dict[str, int], split: dict[str, float], alpha: float) -> dict:
    """Chi-square test of the users per arm against the expected split (weights, any scale)."""
    arms = list(users)
    observed = np.array([users[a] for a in arms], dtype=float)
    weights = np.array([split[a] for a in arms], dtype=float)
    expected = observed.sum() * weights / weights.sum()
    chi2, p_value = stats.chisquare(observed, expected)
    return {"users": {a: int(users[a]) for a in arms},
            "expected_share": {a: float(w) for a, w in zip(arms, weights / weights.sum())},
            "chi2": float(chi2), "p_value": float(p_value), "alpha": alpha,
            "passed": bool(p_value >= alpha)}
