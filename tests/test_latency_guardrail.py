"""The client latency guardrail's statistic (analysis/latency.py) on synthetic per-request
waits, no JVM: its interval covers a known difference of p95s, an A/A split breaches a margin
at most at the interval's one-sided level however noisy, and the verdict follows the margin."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.latency import EDGES, guardrail


def histograms(users: int, mean_ms: dict[int, float], seed: int) -> pd.DataFrame:
    """Per (user, cell) request counts: each user in arm 0 or 1 at random, 5-40 requests,
    each an exponential wait of the arm's mean times a per-user factor (users differ)."""
    rng = np.random.default_rng(seed)
    arm = rng.integers(0, 2, users)
    requests = rng.integers(5, 41, users)
    user = np.repeat(np.arange(users), requests)
    factor = rng.lognormal(0, 0.3, users)[user]
    ms = rng.exponential(1.0, len(user)) * factor * np.array([mean_ms[0], mean_ms[1]])[arm[user]]
    cell = np.searchsorted(EDGES, ms, side="right")
    frame = pd.DataFrame({"user": user, "arm": arm[user], "cell": cell})
    return frame.groupby(["user", "arm", "cell"]).size().rename("requests").reset_index()


def true_p95(mean_ms: float, seed: int = 99) -> float:
    """The p95 of the population the arm's requests come from, by a large sample."""
    rng = np.random.default_rng(seed)
    factor = rng.lognormal(0, 0.3, 400_000)
    return float(np.quantile(rng.exponential(1.0, 400_000) * factor * mean_ms, 0.95))


def test_interval_covers_a_known_difference_of_p95s():
    covered = 0
    truth = true_p95(6.0) - true_p95(4.0)
    for seed in range(20):
        found = guardrail(histograms(1500, {0: 4.0, 1: 6.0}, seed), ["C", "T1"], 0.95, 2.0,
                          300, seed, 0.05)["treatments"]["T1"]
        covered += found["lower_ms"] <= truth <= found["upper_ms"]
        assert found["control_ms"] == pytest.approx(true_p95(4.0), rel=0.1)
        assert found["verdict"] == "breached"  # ~4.5 ms slower against a 2 ms margin
    assert covered >= 16  # 95% intervals: 19 of 20 expected; 16 or more with prob. > 0.98


def test_a_a_split_breaches_its_margin_at_most_at_the_nominal_rate():
    breached = 0
    for seed in range(40):
        found = guardrail(histograms(1000, {0: 4.0, 1: 4.0}, seed), ["C", "T1"], 0.95, 1.0,
                          300, seed, 0.05)["treatments"]["T1"]
        breached += found["verdict"] == "breached"
    assert breached <= 3  # the lower end exceeds a positive margin in under 2.5% of A/As


def test_verdict_follows_the_margin_and_seed():
    frame = histograms(800, {0: 4.0, 1: 8.0}, seed=7)
    tight = guardrail(frame, ["C", "T1"], 0.99, 0.01, 200, 1, 0.05)
    loose = guardrail(frame, ["C", "T1"], 0.99, 50.0, 200, 1, 0.05)
    assert tight["metric"] == "p99_client_request_time"
    assert tight["treatments"]["T1"]["verdict"] == "breached"
    assert loose["treatments"]["T1"]["verdict"] == "ok"
    assert guardrail(frame, ["C", "T1"], 0.99, 50.0, 200, 1, 0.05) == loose
    assert tight["treatments"]["T1"]["control_requests"] == int(
        frame.loc[frame.arm == 0, "requests"].sum())
