"""From estimates to decisions: metric roles, Holm's correction per family, verdicts, MDE.

Families (each method's rows form their own families, so the CUPED and the plain rows of a
metric are decided separately):
- primary: the primary metric across all treatments;
- secondary: every secondary metric x every treatment;
- a guardrail is its own family of one per treatment (not adjusted).

Holm (1979): sort a family's m p-values p_(1) <= ... <= p_(m); the adjusted value is
    p_adj(i) = max_{k <= i} min(1, (m - k + 1) p_(k)),
and rejecting where p_adj < family_alpha keeps the family-wise error rate at most
family_alpha under any dependence between the tests (treatments share their control).

Verdicts: primary and secondary rows are "better" / "worse" (given the metric's direction)
when p_adjusted < family_alpha, else "no difference". A guardrail is a non-inferiority check
with margin M (a fraction): in the metric's bad direction the interval's far end stays within
M -> "ok"; its near end lies beyond M -> "breached"; otherwise "inconclusive".

MDE: the relative effect the row could detect with the configured power,
    MDE = (z_{1 - a/2} + z_power) * se,
with a = family_alpha / (family size) (Holm's first step, Bonferroni) and se the row's
standard error (bootstrap sd of the replicate effects, or the delta-method se).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from analysis.effects import Estimate


@dataclass(frozen=True)
class ResultRow:
    treatment: str
    metric: str
    role: str             # "primary", "secondary" or "guardrail"
    method: str           # "bootstrap", "cuped" or "delta"
    estimand: str
    direction: str        # "higher" or "lower" is better
    control: float        # the control arm's value of the estimand
    treatment_value: float
    effect: float         # (treatment - control) / control
    lower: float
    upper: float
    p: float
    p_adjusted: float     # Holm within the row's family (guardrails: p)
    verdict: str          # better / worse / no difference; guardrails: ok / breached / inconclusive
    margin: float | None  # guardrails: the tolerated relative change in the bad direction
    mde: float            # relative effect detectable with the configured power
    variance_reduction: float | None  # cuped rows: 1 - var(cuped) / var(plain)
    control_users: int
    treatment_users: int

    def as_dict(self) -> dict:
        return asdict(self)


COLUMNS = [field for field in ResultRow.__dataclass_fields__]


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN counts as 1), in the input order."""
    p = np.nan_to_num(np.asarray(p_values, dtype=float), nan=1.0)
    m = len(p)
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(stepped)
    return adjusted


def guardrail_verdict(lower: float, upper: float, direction: str, margin: float) -> str:
    """Non-inferiority: `harm` is the relative change in the metric's bad direction."""
    if not (math.isfinite(lower) and math.isfinite(upper)):
        return "inconclusive"
    harm_low, harm_high = (-upper, -lower) if direction == "higher" else (lower, upper)
    if harm_high < margin:
        return "ok"
    return "breached" if harm_low > margin else "inconclusive"


def decide(rows: list[Estimate], roles, directions: dict[str, str], family_alpha: float,
           power: float) -> list[ResultRow]:
    """`roles` has .role(metric) and .guardrails (analysis.config.Roles); `directions` maps
    every reported metric to "higher" or "lower"."""
    families: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(rows):
        role = roles.role(r.metric)
        key = (role, r.method) if role != "guardrail" else (f"guardrail {r.metric} "
                                                            f"{r.treatment}", r.method)
        families.setdefault(key, []).append(i)
    adjusted = np.empty(len(rows))
    size = np.empty(len(rows), dtype=int)
    for members in families.values():
        adjusted[members] = holm([rows[i].p for i in members])
        size[members] = len(members)
    z_power = stats.norm.ppf(power)
    decided = []
    for i, r in enumerate(rows):
        role, direction = roles.role(r.metric), directions[r.metric]
        margin = roles.guardrails.get(r.metric)
        if role == "guardrail":
            verdict = guardrail_verdict(r.lower, r.upper, direction, margin)
        elif adjusted[i] < family_alpha:
            verdict = "better" if (r.effect > 0) == (direction == "higher") else "worse"
        else:
            verdict = "no difference"
        mde = (stats.norm.ppf(1 - family_alpha / (2 * size[i])) + z_power) * r.se
        decided.append(ResultRow(
            treatment=r.treatment, metric=r.metric, role=role, method=r.method,
            estimand=r.estimand, direction=direction, control=r.control_value,
            treatment_value=r.treatment_value, effect=r.effect, lower=r.lower, upper=r.upper,
            p=r.p, p_adjusted=float(adjusted[i]), verdict=verdict, margin=margin,
            mde=float(mde), variance_reduction=r.variance_reduction,
            control_users=r.control_users, treatment_users=r.treatment_users))
    return decided
