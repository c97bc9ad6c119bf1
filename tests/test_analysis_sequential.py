"""The always-valid interval of analysis/sequential.py on synthetic per-user numbers: the
false-positive rate under continuous monitoring, stopping under a real effect, determinism,
and the stopping distribution analysis.design reports."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from analysis.sequential import (ArmMoments, half_width, mixing_rho2, monitor,
                                 stopping_distribution)
from dataclient.synthetic_logs import synthetic_events
from support.user_metrics import per_user_metrics

ALPHA = 0.05
REPLICATIONS = 500


@pytest.fixture(scope="module")
def session_times() -> np.ndarray:
    """Skewed per-user values: mean_session_time of 40,000 synthetic users of one arm."""
    table = per_user_metrics(synthetic_events(40_000, seed=5, split={"C": 1.0}), ["C"])
    return table["mean_session_time"].to_numpy()


def monitored(values: np.ndarray, arm: np.ndarray, looks: int, lift: float = 0.0):
    """Monitoring of users arriving in the given order, a look after each 1/looks of them."""
    treated = values * np.where(arm == 1, 1 + lift, 1.0)
    ends = [round(len(values) * k / looks) for k in range(1, looks + 1)]
    sums = {a: [np.cumsum(np.where(arm == a, treated**p, 0.0)) for p in (0, 1, 2)]
            for a in (0, 1)}

    def at(a, end):
        n, total, squares = (s[end - 1] for s in sums[a])
        return ArmMoments(int(round(n)), total / n, (squares - total**2 / n) / (n - 1))

    return monitor("T1", [(at(0, end), at(1, end)) for end in ends], ends, ALPHA)


def stream(session_times: np.ndarray, rng, users: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.choice(session_times, size=users), rng.integers(0, 2, size=users)


@pytest.mark.parametrize("looks", [10, 100])
def test_false_positive_rate_under_continuous_monitoring(session_times, looks):
    """A/A: stopping at the first of every look whose interval excludes 0 rejects in at most
    alpha of the replications (one-sided binomial test at 1%)."""
    rng = np.random.default_rng(20260101 + looks)
    stops = sum(monitored(*stream(session_times, rng, 4000), looks).stop_look is not None
                for _ in range(REPLICATIONS))
    print(f"A/A false positives with {looks} looks: {stops}/{REPLICATIONS}")
    assert stats.binomtest(stops, REPLICATIONS, ALPHA, alternative="greater").pvalue > 0.01


def test_fixed_horizon_interval_would_inflate_it(session_times):
    """The same A/A data with the fixed-horizon 95% interval at every look rejects more often
    than alpha: the reason for the always-valid one."""
    rng = np.random.default_rng(7)
    z = stats.norm.ppf(1 - ALPHA / 2)
    stops = 0
    for _ in range(REPLICATIONS):
        result = monitored(*stream(session_times, rng, 4000), looks=10)
        stops += any(abs(row.effect) > z * (row.upper - row.effect) / _inflation(row)
                     for row in result.looks)
    assert stats.binomtest(stops, REPLICATIONS, ALPHA, alternative="greater").pvalue < 0.01


def _inflation(row) -> float:
    """A look's always-valid half width / its standard error (tuned to 4,000 users)."""
    n = row.control_users + row.treatment_users
    return float(half_width(math.sqrt(n), n, ALPHA, mixing_rho2(ALPHA, 4000)))


def test_stops_under_a_real_effect(session_times):
    """+10% on 4,000 users: the interval excludes 0 before the end in most replications, the
    stop says "better", and the saved sessions are those after the stop."""
    rng = np.random.default_rng(3)
    results = [monitored(*stream(session_times, rng, 4000), looks=10, lift=0.10)
               for _ in range(100)]
    early = [r for r in results if r.stop_look is not None and r.stop_look < 10]
    assert len(early) >= 80
    for r in early:
        assert r.verdict == "better" and r.looks[r.stop_look - 1].lower > 0
        assert not any(row.excludes_zero for row in r.looks[:r.stop_look - 1])
        assert r.sessions_saved == 4000 - r.stop_sessions > 0


def test_interval_is_wider_than_the_fixed_horizon_one_and_narrows(session_times):
    result = monitored(*stream(session_times, np.random.default_rng(4), 4000), looks=10)
    widths = [row.upper - row.lower for row in result.looks]
    assert all(a > b for a, b in zip(widths, widths[1:]))
    assert all(_inflation(row) > stats.norm.ppf(1 - ALPHA / 2) for row in result.looks)


def test_deterministic_for_a_seed(session_times):
    first = monitored(*stream(session_times, np.random.default_rng(9), 3000), looks=10)
    again = monitored(*stream(session_times, np.random.default_rng(9), 3000), looks=10)
    assert first == again
    assert np.array_equal(stopping_distribution(0.05, 0.02, 4000, ALPHA, seed=1),
                          stopping_distribution(0.05, 0.02, 4000, ALPHA, seed=1))


def test_stopping_distribution_matches_monitoring(session_times):
    """The designer's Gaussian-walk model predicts how often the monitored synthetic users
    stop, and no effect stops at most alpha of the time."""
    rng = np.random.default_rng(11)
    results = [monitored(*stream(session_times, rng, 4000), looks=10, lift=0.06)
               for _ in range(300)]
    observed = np.mean([r.stop_look is not None for r in results])
    final = results[0].looks[-1]
    se = (final.upper - final.effect) / _inflation(final)
    predicted = 1 - stopping_distribution(0.06, se, 4000, ALPHA, seed=2)[-1]
    assert observed == pytest.approx(predicted, abs=0.1)
    assert 1 - stopping_distribution(0.0, se, 4000, ALPHA, seed=2)[-1] <= ALPHA


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        mixing_rho2(1.5, 100)
    with pytest.raises(ValueError):
        monitor("T1", [(ArmMoments(10, 1.0, 1.0), ArmMoments(10, 1.0, 1.0))], [1, 2], ALPHA)


def test_designer_expected_stop():
    """No effect: an early stop at most alpha of the time and (almost) the whole experiment
    run; a larger effect stops sooner."""
    from analysis.design import Population, expected_stop

    pop = Population(mean=10.0, sd=8.0, users=10_000, sessions_per_user=1.3)
    early, share = expected_stop(pop, 5000, 0.0)
    assert early <= ALPHA and share > 0.95
    shares = [expected_stop(pop, 5000, effect)[1] for effect in (0.03, 0.06, 0.12)]
    assert shares[0] > shares[1] > shares[2] and shares[2] < 0.5
