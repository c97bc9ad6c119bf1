"""Always-valid inference on the primary metric: an interval of the relative effect that may be
looked at as often as one likes while the experiment runs and still covers the true effect at
every look at once with probability 1 - alpha, so stopping at the first look whose interval
excludes 0 keeps the false-positive rate at most alpha.

The boundary is the two-sided Gaussian mixture one, which is both the confidence sequence of
the mixture sequential probability ratio test (mSPRT; Johari, Pekelis, Walsh, "Always valid
inference: continuous monitoring of A/B tests", Operations Research 2022, arXiv 1512.04922)
and the asymptotic confidence sequence of Waudby-Smith, Arnold, Wu, Ramdas, "Time-uniform
central limit theory and asymptotic confidence sequences" (Annals of Statistics 2024,
arXiv 2103.06476). For an estimate over n users whose variance is s^2 / n, with mixing
parameter rho,
    half width = s * sqrt(2 (n rho^2 + 1) / (n^2 rho^2) * log(sqrt(n rho^2 + 1) / alpha)),
and rho is chosen to make the boundary tightest at `tuning` users (Waudby-Smith et al.):
    rho^2 = (-2 log alpha + log(1 - 2 log alpha)) / tuning.
The estimate is the A/B job's plain one: the relative effect of per-user means m_t / m_c - 1,
whose variance is the delta method's
    se^2 = v_t / (n_t m_c^2) + m_t^2 v_c / (n_c m_c^4),   s^2 = se^2 (n_t + n_c).
The guarantee is asymptotic (normal approximation, a stream of independent users); a user's
per-user value at a look covers their sessions so far.
With several treatments each is tested at alpha / (treatments) (Bonferroni).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

LOOKS = 10  # the report's looks: after each tenth of the sessions, in time order


def mixing_rho2(alpha: float, tuning: float) -> float:
    """rho^2 of the mixture whose boundary is tightest at `tuning` observations."""
    if not 0 < alpha < 1 or tuning <= 0:
        raise ValueError(f"need 0 < alpha < 1 and tuning > 0, got {alpha}, {tuning}")
    return (-2 * math.log(alpha) + math.log(1 - 2 * math.log(alpha))) / tuning


def half_width(sd, n, alpha: float, rho2: float):
    """The always-valid half width after `n` observations of standard deviation `sd`."""
    sd, n = np.asarray(sd, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return sd * np.sqrt(2 * (n * rho2 + 1) / (n**2 * rho2)
                            * np.log(np.sqrt(n * rho2 + 1) / alpha))


@dataclass(frozen=True)
class ArmMoments:
    """One arm's per-user values at a look: users, mean, sample variance."""

    users: int
    mean: float
    variance: float


def relative_effect(control: ArmMoments, treatment: ArmMoments) -> tuple[float, float]:
    """(m_t / m_c - 1, its delta-method standard error)."""
    mc, mt = control.mean, treatment.mean
    if control.users < 2 or treatment.users < 2 or mc == 0:
        return float("nan"), float("nan")
    se2 = (treatment.variance / (treatment.users * mc**2)
           + mt**2 * control.variance / (control.users * mc**4))
    return mt / mc - 1, math.sqrt(se2)


@dataclass(frozen=True)
class Look:
    look: int           # 1-based
    sessions: int       # sessions closed by this look, both arms
    control_users: int
    treatment_users: int
    effect: float
    lower: float
    upper: float
    excludes_zero: bool


@dataclass(frozen=True)
class Monitoring:
    """One treatment's looks and the first look at which it could have stopped."""

    treatment: str
    alpha: float          # per treatment (the family's alpha / treatments)
    tuning_users: int     # the boundary is tightest at this many users (both arms)
    looks: list[Look]
    stop_look: int | None
    stop_sessions: int | None
    sessions_saved: int   # sessions after the stop (0 when it never stops)
    verdict: str          # "better" / "worse" at the stop, else "no decision"

    def as_dict(self) -> dict:
        return asdict(self)


def monitor(treatment: str, looks: list[tuple[ArmMoments, ArmMoments]], sessions: list[int],
            alpha: float, direction: str = "higher",
            tuning_users: int | None = None) -> Monitoring:
    """Always-valid intervals at each look of (control, treatment) moments; the experiment
    could have stopped at the first look whose interval excludes 0. `tuning_users` defaults to
    the users of the last look (the experiment's planned size)."""
    if len(looks) != len(sessions) or not looks:
        raise ValueError("need one session count per look, and at least one look")
    last = looks[-1]
    tuning = tuning_users or (last[0].users + last[1].users)
    rho2 = mixing_rho2(alpha, tuning)
    estimates = [relative_effect(control, treated) for control, treated in looks]
    users = np.array([control.users + treated.users for control, treated in looks], dtype=float)
    ses = np.array([se for _, se in estimates])
    halves = half_width(ses * np.sqrt(users), users, alpha, rho2)
    rows = []
    for k, ((control, treated), closed, (effect, _), half) in enumerate(
            zip(looks, sessions, estimates, halves.tolist()), start=1):
        lower, upper = effect - half, effect + half
        rows.append(Look(k, int(closed), control.users, treated.users, effect, lower, upper,
                         bool(lower > 0 or upper < 0)))
    stop = next((row for row in rows if row.excludes_zero), None)
    verdict = "no decision"
    if stop is not None:
        verdict = "better" if (stop.effect > 0) == (direction == "higher") else "worse"
    total = int(sessions[-1])
    return Monitoring(treatment, alpha, int(tuning), rows,
                      stop.look if stop else None, stop.sessions if stop else None,
                      total - stop.sessions if stop else 0, verdict)


def moments(values: np.ndarray) -> ArmMoments:
    values = np.asarray(values, dtype=float)
    return ArmMoments(len(values), float(values.mean()) if len(values) else float("nan"),
                      float(values.var(ddof=1)) if len(values) > 1 else float("nan"))


def stopping_distribution(effect: float, se_final: float, users_final: int, alpha: float,
                          looks: int = LOOKS, paths: int = 20_000,
                          seed: int = 0) -> np.ndarray:
    """P(the experiment stops at look k), k = 1..looks, and P(it never stops) last, for a true
    relative `effect` whose estimate has standard error `se_final` with `users_final` users
    (both arms) at the end, looks evenly spaced in users. The estimate's path is a Gaussian
    random walk: the mean of the first n users has variance se_final^2 users_final / n and
    the increments are independent."""
    rng = np.random.default_rng(seed)
    fractions = np.arange(1, looks + 1) / looks
    users = fractions * users_final
    sd = se_final * math.sqrt(users_final)  # per-user standard deviation of the estimate
    block = np.diff(np.concatenate([[0.0], users]))
    sums = np.cumsum(rng.normal(0.0, 1.0, size=(paths, looks)) * sd * np.sqrt(block), axis=1)
    estimates = effect + sums / users
    half = half_width(sd, users, alpha, mixing_rho2(alpha, users_final))
    crossed = np.abs(estimates) > half
    stopped = crossed.any(axis=1)
    first = np.where(stopped, crossed.argmax(axis=1), looks)
    return np.bincount(first, minlength=looks + 1) / paths
