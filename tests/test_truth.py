"""The truth of a simulated day (analysis/truth.py) and the calibration's scoring
(analysis/calibration.py), on synthetic numbers whose answers are known."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.calibration import bootstrap_mean, score, wilson
from analysis.truth import covers, row_truth, true_values

QUANTILES = {"median_session_time": 0.5}


def outcomes(rng, n: int, draws: int, lift: float, noise: float):
    """Per-user sums of two arms: a user's session time is their own level (times 1 + lift
    in the treatment) plus simulator noise shared by the arms within a draw."""
    sessions = rng.integers(1, 4, size=n)
    level = rng.gamma(2.0, 2.0, size=n)
    shared = rng.normal(0, noise, size=(draws, n))
    own = rng.normal(0, noise, size=(2, draws, n))
    per_session = np.stack([level + shared + own[0], level * (1 + lift) + shared + own[1]])
    time_total = per_session * sessions
    events = np.round(per_session * 3) * sessions + sessions
    return sessions, time_total, events


def test_the_truth_is_the_estimand_of_every_arm_serving_everyone():
    rng = np.random.default_rng(1)
    sessions, time_total, events = outcomes(rng, 500, 3, lift=0.2, noise=0.5)
    truth = true_values(["C", "T"], sessions, time_total, events, QUANTILES)
    per_user = time_total / sessions
    for a, arm in enumerate(["C", "T"]):
        values = truth["values"][arm]
        assert values["mean_session_time"]["value"] == pytest.approx(per_user[a].mean())
        assert values["mean_session_time:ratio"]["value"] == pytest.approx(
            time_total[a].sum(axis=1).mean() / sessions.sum())
        assert values["sessions"]["value"] == pytest.approx(sessions.mean())
        assert values["mean_session_length"]["value"] == pytest.approx(
            (events[a] / sessions).mean())
        assert values["median_session_time"]["value"] == pytest.approx(
            np.quantile(per_user[a], 0.5, axis=1).mean())
    effect = truth["effects"]["T"]
    assert effect["mean_session_time"]["effect"] == pytest.approx(
        per_user[1].mean() / per_user[0].mean() - 1)
    # the arms serve the same users the same sessions: no effect on sessions, and no MC error
    assert effect["sessions"] == {"effect": 0.0, "mc_se": 0.0}


def test_no_simulator_noise_no_mc_error_and_one_draw_says_it_is_unknown():
    rng = np.random.default_rng(2)
    sessions, time_total, events = outcomes(rng, 200, 1, lift=0.1, noise=0.0)
    repeated = np.repeat(time_total, 3, axis=1), np.repeat(events, 3, axis=1)
    truth = true_values(["C", "T"], sessions, *repeated, QUANTILES)
    assert truth["effects"]["T"]["mean_session_time"]["mc_se"] == pytest.approx(0.0, abs=1e-12)
    assert truth["effects"]["T"]["mean_session_time"]["effect"] == pytest.approx(0.1, rel=1e-9)
    single = true_values(["C", "T"], sessions, time_total, events, QUANTILES)
    assert math.isnan(single["effects"]["T"]["mean_session_time"]["mc_se"])


def test_the_mc_error_is_the_spread_of_the_truth_over_independent_simulations():
    """Recompute the truth from fresh simulator noise many times: the spread of the truth
    across repeats matches the MC error each one states."""
    base = np.random.default_rng(3)
    sessions, _, _ = outcomes(base, 400, 1, 0.0, 0.0)
    level = base.gamma(2.0, 2.0, size=400)
    effects, errors = [], []
    for repeat in range(300):
        rng = np.random.default_rng([4, repeat])
        noise = rng.normal(0, 1.0, size=(2, 4, 400))
        per_session = np.stack([level + noise[0], level * 1.15 + noise[1]])
        truth = true_values(["C", "T"], sessions, per_session * sessions,
                            per_session * 0 + sessions * 2.0, {})
        entry = truth["effects"]["T"]["mean_session_time"]
        effects.append(entry["effect"])
        errors.append(entry["mc_se"])
    assert np.std(effects, ddof=1) == pytest.approx(np.mean(errors), rel=0.12)
    assert np.mean(effects) == pytest.approx(0.15, abs=0.005)


def test_a_report_row_finds_its_estimands_truth():
    truth = {"effects": {"T": {"mean_session_time": {"effect": 0.1, "mc_se": 0.01},
                               "mean_session_time:ratio": {"effect": 0.2, "mc_se": None}}}}
    assert row_truth(truth, "T", "mean_session_time", "bootstrap") == (0.1, 0.01)
    assert row_truth(truth, "T", "mean_session_time", "cuped") == (0.1, 0.01)
    effect, se = row_truth(truth, "T", "mean_session_time", "delta")
    assert effect == 0.2 and math.isnan(se)
    assert row_truth(truth, "T", "mean_request_time", "bootstrap") is None
    assert row_truth(truth, "T2", "mean_session_time", "bootstrap") is None
    assert covers(0.05, 0.15, 0.1) and covers(0.11, 0.15, 0.1) is False
    assert covers(float("nan"), 0.15, 0.1) is None


def test_wilson_intervals_match_their_textbook_values():
    # Newcombe (1998), table I: 81/263 -> [0.2553, 0.3662]; 0/10 -> [0, 0.2775]
    share = wilson(81, 263)
    assert (share.lower, share.upper) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    share = wilson(0, 10)
    assert share.value == 0 and share.lower == pytest.approx(0, abs=1e-12)
    assert share.upper == pytest.approx(0.2775, abs=1e-4)
    assert wilson(10, 10).upper == 1.0


def test_a_wilson_interval_covers_the_true_share_about_95_percent_of_the_time():
    rng = np.random.default_rng(5)
    hits = 0
    for _ in range(2000):
        share = wilson(int(rng.binomial(200, 0.05)), 200)
        hits += share.lower <= 0.05 <= share.upper
    assert 0.93 <= hits / 2000 <= 0.975


def test_bootstrap_mean_interval():
    rng = np.random.default_rng(6)
    values = rng.normal(1.0, 2.0, size=400)
    mean = bootstrap_mean(values, seed=1)
    half = 1.96 * values.std(ddof=1) / math.sqrt(400)
    assert mean.value == pytest.approx(values.mean())
    assert mean.upper - mean.lower == pytest.approx(2 * half, rel=0.1)
    assert math.isnan(bootstrap_mean(np.array([np.nan]), seed=1).value)


def intervals(rng, n: int, truth: float, se: float, z: float) -> pd.DataFrame:
    """n normal estimates around `truth` with +-z*se intervals."""
    effect = rng.normal(truth, se, size=n)
    return pd.DataFrame({"treatment": "T", "metric": "m", "method": "bootstrap",
                         "effect": effect, "lower": effect - z * se, "upper": effect + z * se})


def test_scores_of_a_calibrated_and_of_an_overconfident_method():
    rng = np.random.default_rng(7)
    truth = {("T", "m", "bootstrap"): 0.1}
    good = score(intervals(rng, 4000, 0.1, 0.04, 1.96), intervals(rng, 4000, 0.0, 0.04, 1.96),
                 truth)[0]
    assert good.coverage.lower <= 0.95 <= good.coverage.upper
    assert good.false_positive.lower <= 0.05 <= good.false_positive.upper
    # power of a z-test at effect / se = 2.5: Phi(2.5 - 1.96)
    assert good.power.lower <= 0.705 <= good.power.upper
    assert good.bias.lower <= 0 <= good.bias.upper
    assert good.width.value == pytest.approx(2 * 1.96 * 0.04)
    narrow = score(intervals(rng, 4000, 0.1, 0.04, 1.0), intervals(rng, 4000, 0.0, 0.04, 1.0),
                   truth)[0]
    assert narrow.coverage.upper < 0.75 and narrow.false_positive.lower > 0.25
    biased = score(intervals(rng, 4000, 0.13, 0.04, 1.96), intervals(rng, 4000, 0.0, 0.04, 1.96),
                   truth)[0]
    assert biased.bias.lower > 0.02 and biased.coverage.upper < 0.9
    null = score(intervals(rng, 100, 0.0, 0.04, 1.96), intervals(rng, 100, 0.0, 0.04, 1.96),
                 {("T", "m", "bootstrap"): 0.0})[0]
    assert null.power is None
    assert score(intervals(rng, 10, 0.0, 0.04, 1.96), intervals(rng, 10, 0.0, 0.04, 1.96),
                 {}) == []


def report_inputs():
    from analysis.decisions import ResultRow

    def row(metric, method, effect, lower, upper, role="primary"):
        return ResultRow(treatment="T", metric=metric, role=role, method=method, estimand="e",
                         direction="higher", control=1.0, treatment_value=1.0 + effect,
                         effect=effect, lower=lower, upper=upper, p=0.01, p_adjusted=0.01,
                         verdict="better", margin=None, mde=0.05, variance_reduction=None,
                         control_users=100, treatment_users=100)

    rows = [row("mean_session_time", "bootstrap", 0.2, 0.1, 0.3),
            row("mean_session_time", "delta", 0.2, 0.15, 0.25),
            row("mean_request_time", "bootstrap", 0.3, 0.2, 0.4, role="secondary")]
    results = {"experiment": "EXP", "control": "C", "treatments": ["T"],
               "data": {"first_event": "2026-01-01T00:00:00Z", "last_event": "2026-01-01T10:00Z"},
               "parameters": {"alpha": 0.05, "replicates": 1000, "seed": 1, "family_alpha": 0.05,
                              "power": 0.8, "pre_events": None},
               "decision": {"metric": "mean_session_time", "method": "bootstrap",
                            "treatments": {"T": {"verdict": "better", "effect": 0.2,
                                                 "p_adjusted": 0.01}}},
               "srm": {"users": {"C": 100, "T": 100}, "chi2": 0.0, "p_value": 1.0,
                       "passed": True}}
    truth = {"day": "ab", "draws": 4, "users": 200, "effects": {"T": {
        "mean_session_time": {"effect": 0.12, "mc_se": 0.004},
        "mean_session_time:ratio": {"effect": 0.3, "mc_se": 0.005}}}}
    return results, rows, truth


def test_the_report_shows_the_truth_and_marks_the_intervals_that_miss_it(tmp_path):
    import csv
    import json

    from analysis.report import write_outputs

    results, rows, truth = report_inputs()
    write_outputs(tmp_path / "real", results, rows)
    write_outputs(tmp_path / "simulated", {**results, "truth": truth}, rows)
    real = (tmp_path / "real" / "ab_report.md").read_text()
    assert "truth" not in real and "✗" not in real
    assert "truth" not in (tmp_path / "real" / "results.csv").read_text()
    md = (tmp_path / "simulated" / "ab_report.md").read_text()
    lines = {line.split(" | ")[3] + line.split(" | ")[1]: line for line in md.splitlines()
             if line.startswith("| T |")}
    assert "+12.00% ± 0.40%" in lines["bootstrapmean_session_time"]
    assert "✗" not in lines["bootstrapmean_session_time"]
    assert "[+15.00%, +25.00%] ✗" in lines["deltamean_session_time"]
    assert "n/a" in lines["bootstrapmean_request_time"]
    table = list(csv.DictReader((tmp_path / "simulated" / "results.csv").open()))
    assert [r["covers_truth"] for r in table] == ["True", "False", ""]
    document = json.loads((tmp_path / "simulated" / "results.json").read_text())
    assert document["results"][1]["truth"] == 0.3 and document["truth"]["draws"] == 4
    png = (tmp_path / "simulated" / "ab_report.png").read_bytes()
    assert png[:4] == b"\x89PNG"


def synthetic_pool(n: int = 300, draws: int = 3):
    from pipeline.calibration_pool import Pool
    from pipeline.outcomes import Outcomes

    rng = np.random.default_rng(8)
    sessions = rng.integers(1, 3, size=n)
    time_total = rng.gamma(2.0, 3.0, size=(2, draws, n)) * sessions
    time_total[1] = time_total[0] * 1.3
    events = np.round(time_total) + sessions
    outcomes = Outcomes(["C", "T"], np.arange(10, 10 + n), sessions, time_total, events,
                        np.stack([sessions] * 2), np.array([n, 2 * n]),
                        np.stack([time_total, time_total], axis=2))
    return Pool(outcomes, np.array([0.5, 0.5]), {"pre_mean_session_time": rng.normal(size=n)})


def test_a_replication_takes_each_users_draw_of_the_arm_it_is_split_into():
    from pipeline.calibration_pool import replication_table

    pool = synthetic_pool()
    o = pool.outcomes
    n = len(o.users)
    arm = np.arange(n) % 2
    draw = np.arange(n) % 3
    table = replication_table(pool, arm, arm, draw)
    assert table["arm"].tolist() == arm.tolist()
    expected = o.time_total[arm, draw, np.arange(n)] / o.sessions
    assert np.allclose(table["mean_session_time"], expected)
    assert np.allclose(table["pre_mean_session_time"], pool.covariates["pre_mean_session_time"])
    null = replication_table(pool, arm, np.zeros(n, dtype=int), draw)
    assert np.allclose(null["time_total"], o.time_total[0, draw, np.arange(n)])


def test_previous_day_covariates_fill_the_missing_with_the_mean_of_the_others():
    from pipeline.calibration_pool import covariates_of

    pool = synthetic_pool(n=4)
    previous = {"user": np.array([10, 12, 99]), "mean_session_time": np.array([1.0, 3.0, 50.0])}
    covariates = covariates_of(pool.outcomes, previous, ["mean_session_time"])
    assert covariates["pre_mean_session_time"].tolist() == [1.0, 2.0, 3.0, 2.0]
    assert covariates_of(pool.outcomes, None, ["mean_session_time"]) == {}


def test_replications_of_a_known_effect_cover_it():
    import dataclasses

    from analysis.ab_test import job_settings
    from analysis.config import load_config
    from pipeline.calibrate import replicate, truths

    pool = synthetic_pool(n=400, draws=4)
    settings = dataclasses.replace(
        job_settings(load_config(), {"sessions", "mean_session_time", "mean_session_length"},
                     covariates=False), replicates=200)
    pool = dataclasses.replace(pool, covariates={})
    document, flat = truths(pool.outcomes, settings)
    assert flat[("T", "mean_session_time", "bootstrap")] == pytest.approx(0.3)
    ab, aa = replicate(pool, ["C", "T"], settings, 0.05, 40, seed=3)
    assert set(ab["method"]) == {"bootstrap", "delta", "sequential"}
    assert len(ab["replication"].unique()) == 40
    scores = {(s.metric, s.method): s for s in score(ab, aa, flat)}
    for method in ("bootstrap", "delta", "sequential"):
        good = scores[("mean_session_time", method)]
        assert good.coverage.upper >= 0.95 and good.false_positive.lower <= 0.05
        assert good.power.value > 0.3 and good.bias.lower <= 0 <= good.bias.upper
    # always valid over the looks: wider than the fixed-horizon interval
    assert (scores[("mean_session_time", "sequential")].width.value
            > scores[("mean_session_time", "bootstrap")].width.value)
