"""The truth of a simulated A/B day: each estimand's true value per arm and each treatment's true
relative effect, from the day's potential outcomes (pipeline/outcomes.py plays them), with the
Monte-Carlo standard error of the simulator's randomness.

Input, per arm serving all the day's n users and per independent simulator draw k (K draws):
the users' sessions S_u (the same in every arm and draw), the sums of their events' `time`
T_u and their events E_u (analysis/user_metrics.py's log view). The estimands are the report's:

- `<metric>` (bootstrap and CUPED rows): the mean over users of the per-user metric
  (sessions S_u, mean_session_time T_u / S_u, mean_session_length E_u / S_u);
- `<metric>:ratio` (delta rows): the ratio of sums, sum T_u / sum S_u (or E);
- a quantile (e.g. median_session_time): the quantile over users of the per-user metric.

The truth of an arm is the estimand averaged over the K draws: its expectation over the
simulator's randomness for these users and sessions. The MC error of a mean or ratio
estimand (both linear in the per-user values X_u^k once S is fixed) is
sqrt(sum_u var_k(X_u^k) / K) / n, var_k the sample variance over the draws; for a relative
effect r = v_t / v_c - 1, X_u^k is the linearisation (X_u^k(t) - (1 + r) X_u^k(c)) / v_c,
whose draws share their streams across arms (common random numbers). A quantile's error is the
standard deviation of its per-draw values over sqrt(K). With K = 1 the errors are undefined.

`truth.json`: {"values": {arm: {estimand: {"value", "mc_se"}}}, "effects": {treatment:
{estimand: {"effect", "mc_se"}}}, ...}; `row_truth` finds a report row's.
"""
from __future__ import annotations

import math

import numpy as np

MEAN_METRICS = ("sessions", "mean_session_time", "mean_session_length")
RATIO_SUMS = {"mean_session_time": "time_total", "mean_session_length": "events"}


def per_user_metrics(sessions: np.ndarray, time_total: np.ndarray,
                     events: np.ndarray) -> dict[str, np.ndarray]:
    """The per-user metrics (any leading shape; users last) from the per-user sums."""
    return {"sessions": np.broadcast_to(sessions.astype(float), time_total.shape),
            "mean_session_time": time_total / sessions,
            "mean_session_length": events / sessions}


def _linear_se(draws: np.ndarray) -> float:
    """MC error of mean_{k,u} X_u^k for (K, n) draws: sqrt(sum_u var_k / K) / n."""
    k, n = draws.shape
    if k < 2:
        return float("nan")
    return float(math.sqrt(draws.var(axis=0, ddof=1).sum() / k) / n)


def _per_user_values(sessions, time_total, events) -> dict[str, np.ndarray]:
    """Per estimand of mean or ratio type: (K, n) values X_u^k whose mean over users and draws
    is the arm's value."""
    values = per_user_metrics(sessions, time_total, events)
    mean_sessions = sessions.mean()
    sums = {"time_total": time_total, "events": events}
    values.update({f"{m}:ratio": sums[s] / mean_sessions for m, s in RATIO_SUMS.items()})
    return values


def true_values(arms: list[str], sessions: np.ndarray, time_total: np.ndarray,
                events: np.ndarray, quantiles: dict[str, float],
                quantile_variable: str = "mean_session_time") -> dict:
    """`values` and `effects` (every arm after the first against the first) of truth.json from
    (arms, K, n) per-user sums."""
    per_arm = [_per_user_values(sessions, time_total[a], events[a]) for a in range(len(arms))]
    points = [{name: x.mean() for name, x in v.items()} for v in per_arm]
    quantile_draws = []  # per arm: name -> (K,) per-draw quantile
    for values in per_arm:
        x = values[quantile_variable]
        quantile_draws.append({q: np.quantile(x, level, axis=1) for q, level in quantiles.items()})
    draws = time_total.shape[1]
    result = {"values": {}, "effects": {}}
    for a, arm in enumerate(arms):
        entry = {name: {"value": float(points[a][name]), "mc_se": _linear_se(x)}
                 for name, x in per_arm[a].items()}
        for q, per_draw in quantile_draws[a].items():
            entry[q] = {"value": float(per_draw.mean()),
                        "mc_se": float(per_draw.std(ddof=1) / math.sqrt(draws))
                        if draws > 1 else float("nan")}
        result["values"][arm] = entry
    for t in range(1, len(arms)):
        effects = {}
        for name, x_t in per_arm[t].items():
            v_c, v_t = points[0][name], points[t][name]
            effect = v_t / v_c - 1 if v_c else float("nan")
            linear = (x_t - (1 + effect) * per_arm[0][name]) / v_c if v_c else x_t * np.nan
            effects[name] = {"effect": float(effect), "mc_se": _linear_se(linear)}
        for q in quantiles:
            q_t, q_c = quantile_draws[t][q], quantile_draws[0][q]
            with np.errstate(divide="ignore", invalid="ignore"):
                per_draw = q_t / q_c - 1
            effects[q] = {"effect": float(q_t.mean() / q_c.mean() - 1),
                          "mc_se": float(per_draw.std(ddof=1) / math.sqrt(draws))
                          if draws > 1 else float("nan")}
        result["effects"][arms[t]] = effects
    return result


def estimand_key(metric: str, method: str) -> str:
    """The truth.json estimand a report row estimates: delta rows estimate the ratio of sums."""
    return f"{metric}:ratio" if method == "delta" else metric


def row_truth(truth: dict, treatment: str, metric: str, method: str) -> tuple[float, float] | None:
    """(true effect, its MC error) of a report row, or None when the simulator does not know it
    (e.g. mean_request_time, or a treatment the truth was not computed for)."""
    entry = truth.get("effects", {}).get(treatment, {}).get(estimand_key(metric, method))
    if entry is None or entry.get("effect") is None:
        return None
    se = entry.get("mc_se")
    return float(entry["effect"]), float("nan") if se is None else float(se)


def covers(lower: float, upper: float, value: float) -> bool | None:
    """Does the interval hold the value (None when the interval is undefined)?"""
    if not (math.isfinite(lower) and math.isfinite(upper)):
        return None
    return bool(lower <= value <= upper)
