"""From the bootstrap sums to estimates: relative effects, intervals and p-values per method.

Effect of a treatment on a metric: (treatment value - control value) / control value.

- `bootstrap`: arm means over users of the per-user metric; percentile interval of the
  replicate effects (Poisson weights over users); p-value = the interval inverted (the
  smallest level at which the percentile interval excludes 0), so p < alpha exactly when the
  interval excludes 0; 0 when every replicate falls on one side of 0 (below 1/B).
- `cuped`: the same estimand with the CUPED-adjusted arm means (Deng et al. 2013)
      Y_cv(arm) = mean(Y) - theta * (mean(X) - mean_all(X)),
      theta = sum_arms cov(X, Y) / sum_arms var(X)   (within-arm moments, pooled over arms),
  X being the user's pre-period value of the metric; each replicate reweights mean(Y) and
  mean(X) with the same Poisson weights (theta fixed at the sample's), and the interval and p
  come from those replicates like `bootstrap`'s.
- `delta`: the ratio-of-sums metric sum(Y) / sum(N) over the arm's users (e.g. all session
  time / all sessions) with the delta method (Deng, Knoblich, Lu 2018; GrowthBook gbstats'
  RatioStatistic): per arm
      var(R) = (var(Y)/mu_N^2 - 2 mu_Y cov(Y,N)/mu_N^3 + mu_Y^2 var(N)/mu_N^4) / n,
  and for the relative effect R_t/R_c - 1
      var = var(R_t)/R_c^2 + R_t^2 var(R_c)/R_c^4;
  normal interval and two-sided p-value.
- Sample-ratio mismatch: chi-square goodness of fit of users per arm against the configured split.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from analysis.bootstrap import ArmReplicates


@dataclass(frozen=True)
class Estimate:
    """One treatment, metric and method before roles and corrections (analysis/decisions.py)."""

    treatment: str
    metric: str
    method: str           # "bootstrap", "cuped" or "delta"
    estimand: str
    control_value: float
    treatment_value: float
    effect: float
    lower: float
    upper: float
    p: float
    se: float             # standard error of the effect (bootstrap sd for bootstrap/cuped)
    variance_reduction: float | None  # cuped: 1 - var(cuped effect) / var(plain effect)
    control_users: int
    treatment_users: int


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


def cuped_theta(reps: ArmReplicates, y: int, x: int) -> float:
    """Slope of Y on X from within-arm moments pooled over the arms (Deng et al. 2013)."""
    arms = range(len(reps.users))
    cov = sum((reps.users[a] - 1) * reps.covariance(a, y, x) for a in arms)
    var = sum((reps.users[a] - 1) * reps.covariance(a, x, x) for a in arms)
    return cov / var if var > 0 else 0.0


def ratio_delta(reps: ArmReplicates, arm: int, y: int, n: int) -> tuple[float, float]:
    """(sum Y / sum N, its delta-method variance) over one arm's users."""
    users = reps.users[arm]
    mu_y, mu_n = reps.means[arm, y, 0], reps.means[arm, n, 0]
    var_y, var_n = reps.covariance(arm, y, y), reps.covariance(arm, n, n)
    cov = reps.covariance(arm, y, n)
    variance = (var_y / mu_n**2 - 2 * mu_y * cov / mu_n**3 + mu_y**2 * var_n / mu_n**4) / users
    return float(mu_y / mu_n), float(variance)


def delta_relative(ratio_t: float, var_t: float, ratio_c: float,
                   var_c: float) -> tuple[float, float]:
    """(R_t / R_c - 1, its delta-method standard error)."""
    variance = var_t / ratio_c**2 + ratio_t**2 * var_c / ratio_c**4
    return ratio_t / ratio_c - 1, float(np.sqrt(variance))


def normal_interval(effect: float, se: float, alpha: float) -> tuple[float, float, float]:
    """(lower, upper, two-sided p) of a normal estimate."""
    if not (np.isfinite(effect) and np.isfinite(se)) or se <= 0:
        return float("nan"), float("nan"), float("nan")
    half = stats.norm.ppf(1 - alpha / 2) * se
    return effect - half, effect + half, float(2 * stats.norm.sf(abs(effect) / se))


@dataclass(frozen=True)
class Columns:
    """Where each input of the estimates sits among the bootstrap's columns."""

    metrics: dict[str, int]
    covariates: dict[str, int]          # metric -> its pre-period covariate's column
    ratios: dict[str, tuple[int, int]]  # metric -> (numerator, denominator) columns
    quantiles: list[str]
    estimands: dict[str, str]           # metric (and "<metric>:ratio") -> what is estimated


def estimates(reps: ArmReplicates, arm_names: list[str], columns: Columns,
              quantile_points: np.ndarray, alpha: float) -> list[Estimate]:
    """Per treatment: every metric by bootstrap, then by CUPED where it has a covariate, then
    its ratio of sums by the delta method where it has one; then the quantiles."""
    rows = []
    n = reps.users

    def row(t, metric, method, estimand, c_value, t_value, replicates=None, delta=None,
            reduction=None):
        effect = float(relative_effect(np.float64(t_value), np.float64(c_value)))
        if replicates is not None:
            lower, upper = percentile_interval(replicates, alpha)
            p = bootstrap_p_value(replicates)
            finite = replicates[np.isfinite(replicates)]
            se = float(finite.std(ddof=1)) if len(finite) > 1 else float("nan")
        else:
            effect, se = delta
            lower, upper, p = normal_interval(effect, se, alpha)
        rows.append(Estimate(arm_names[t], metric, method, estimand, float(c_value),
                             float(t_value), effect, lower, upper, p, se, reduction,
                             int(n[0]), int(n[t])))

    all_users = n.sum()
    for t in range(1, len(arm_names)):
        for metric, j in columns.metrics.items():
            estimand = columns.estimands[metric]
            plain = relative_effect(reps.means[t, j, 1:], reps.means[0, j, 1:])
            row(t, metric, "bootstrap", estimand, reps.means[0, j, 0], reps.means[t, j, 0],
                replicates=plain)
            if metric in columns.covariates:
                x = columns.covariates[metric]
                theta = cuped_theta(reps, j, x)
                pooled_x = (reps.means[:, x, 0] * n).sum() / all_users
                adjusted = reps.means[:, j, :] - theta * (reps.means[:, x, :] - pooled_x)
                cuped = relative_effect(adjusted[t, 1:], adjusted[0, 1:])
                with np.errstate(invalid="ignore"):
                    reduction = 1 - np.nanvar(cuped) / np.nanvar(plain)
                row(t, metric, "cuped", estimand + " (CUPED-adjusted by its pre-period value)",
                    adjusted[0, 0], adjusted[t, 0], replicates=cuped,
                    reduction=float(reduction))
            if metric in columns.ratios:
                y, d = columns.ratios[metric]
                ratio_c, var_c = ratio_delta(reps, 0, y, d)
                ratio_t, var_t = ratio_delta(reps, t, y, d)
                row(t, metric, "delta", columns.estimands[f"{metric}:ratio"], ratio_c, ratio_t,
                    delta=delta_relative(ratio_t, var_t, ratio_c, var_c))
        for q, metric in enumerate(columns.quantiles):
            replicates = relative_effect(reps.quantiles[t, q], reps.quantiles[0, q])
            row(t, metric, "bootstrap", columns.estimands[metric], quantile_points[0, q],
                quantile_points[t, q], replicates=replicates)
    return rows


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
