"""Calibration of an interleaved day (pipeline/calibrate_interleaving.py, analysis/calibration.py's
pair scores): on a small world played in process, and on synthetic replications whose answers
are known."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.calibration import score_pair, users_for_power
from support.sim import one_day_run

SEED, SESSIONS = 23, 600
ARMS = [{"name": "random", "weight": 0.0, "recommender": "random"},
        {"name": "sticky", "weight": 0.0, "recommender": "sticky_artist",
         "params": {"anchor": "first"}},
        {"name": "random-sticky", "weight": 1.0, "interleave": {"a": "random", "b": "sticky"}}]


@pytest.fixture(scope="module")
def interleaved_run(tmp_path_factory):
    """A run folder whose one day interleaves Random (a) with StickyArtist (b): all the
    calibration reads (the pool is played in process, no service runs)."""
    run, _ = one_day_run(tmp_path_factory.mktemp("interleaved-run"), SEED, "IL",
                         {"name": "screen", "sessions": {"smoke": SESSIONS}, "arms": ARMS})
    return run


def test_an_interleaved_day_is_replicated_against_its_truth(interleaved_run):
    from pipeline import calibrate_interleaving

    scores, info, table = calibrate_interleaving.calibrate(interleaved_run, 12, 2, 1, 4,
                                                           "screen", "smoke")
    (pair,) = scores
    assert (pair.arm, pair.a, pair.b) == ("random-sticky", "random", "sticky")
    # StickyArtist(first) beats Random in the A/B truth and in every replication's interleaving
    assert pair.truth > 0.03 and pair.agreement.value == 1.0 and pair.share.lower > 0.5
    assert pair.trusted and info["ab_method"] == "bootstrap"       # no previous day: no CUPED
    # the pair has the whole day's weight: each replication interleaves as many users as it has
    assert (table["users"] == info["users"]).all() and len(table) == 12
    # the users' own spread counts: a sample with replacement, not every user every time
    assert table["share"].std() > 0.005
    assert 0 < pair.interleaving_users < np.inf and 0 < pair.ab_users < np.inf
    calibrate_interleaving.write(interleaved_run / "calibration", scores, info, table)
    document = json.loads((interleaved_run / "calibration" / "interleaving_calibration.json")
                          .read_text())
    assert document["pairs"][0]["ratio"] == pytest.approx(pair.ab_users / pair.interleaving_users)
    png = (interleaved_run / "calibration" / "interleaving_calibration.png").read_bytes()
    assert png[:4] == b"\x89PNG"
    assert "| random-sticky |" in (interleaved_run / "calibration"
                                   / "interleaving_calibration.md").read_text()


def test_the_pool_credits_each_team_with_the_listen_time_of_its_tracks(interleaved_run):
    """An interleaved arm's two credits add up to its sessions' listen time (the log view's
    time total less the first track's 1.0 per session)."""
    from pipeline.outcomes import interleaved_day, potential_outcomes

    day = interleaved_day(interleaved_run)
    assert day.arms == ["random", "sticky"] and day.control is None
    outcomes = potential_outcomes(day, 1, 1, arms=[*day.arms, "random-sticky"])
    credit = outcomes.credit[2, 0]
    assert np.allclose(credit.sum(axis=0), outcomes.time_total[2, 0] - outcomes.sessions)
    assert (credit[1] > 0).any() and (credit[0] > 0).any()
    assert (outcomes.credit[:2] == 0).all()      # plain arms have no teams


def test_users_for_power_follow_the_spread_and_the_shift():
    rng = np.random.default_rng(3)
    estimates = rng.normal(0.1, 0.02, size=4000)
    # (1.96 + 0.84)^2 * (0.02 / 0.1)^2 = 0.314 of the replications' 1000 users
    assert users_for_power(1000, estimates, 0.0) == pytest.approx(314, rel=0.06)
    assert users_for_power(1000, estimates / 2 + 0.25, 0.25) == pytest.approx(314, rel=0.06)
    assert users_for_power(1000, np.array([-1.0, 1.0]), 0.0) == np.inf


def test_a_pair_whose_verdict_often_has_the_wrong_side_is_not_trusted():
    rng = np.random.default_rng(4)
    b_wins = rng.binomial(400, 0.52, size=100)
    interleaved = pd.DataFrame({"users": 500, "share": rng.normal(0.52, 0.02, size=100),
                                "b_wins": b_wins, "a_wins": 400 - b_wins, "p": 0.01})
    ab = pd.DataFrame({"effect": rng.normal(0.05, 0.04, size=100)})
    right = score_pair("AB", "x", "y", 0.05, interleaved, ab, 2000, "cuped")
    assert 0.6 < right.agreement.value < 0.95 and not right.trusted      # about 4 in 5 on its side
    assert right.wins.lower < 0.52 < right.wins.upper
    wrong = score_pair("AB", "x", "y", -0.05, interleaved, ab, 2000, "cuped")
    assert wrong.agreement.value < 0.4 and wrong.share_agreement.value < 0.25
    assert wrong.sign_test_power.value < 0.4
    clear = interleaved.assign(b_wins=b_wins + 60, a_wins=340 - b_wins)
    sure = score_pair("AB", "x", "y", 0.05, clear, ab, 2000, "cuped")
    assert sure.trusted and sure.agreement.value == 1.0
    # the sign test's users follow its spread: (2.8 * sd / |mean - 0.5|)^2 of the 500 users
    wins = clear["b_wins"] / 400
    assert sure.interleaving_users == pytest.approx(
        500 * (2.8016 * wins.std() / (wins.mean() - 0.5)) ** 2, rel=1e-3)
    assert sure.ratio == pytest.approx(sure.ab_users / sure.interleaving_users)


def test_the_interleaving_needs_at_least_the_users_its_sign_test_can_reject_with():
    from analysis.calibration import sign_test_minimum

    assert sign_test_minimum(0.05) == 6 and 2 * 0.5 ** 6 < 0.05 < 2 * 0.5 ** 5
    rng = np.random.default_rng(5)
    b_wins = rng.binomial(400, 0.99, size=50)       # nearly every user prefers b
    interleaved = pd.DataFrame({"users": 500, "share": 0.7, "b_wins": b_wins,
                                "a_wins": 400 - b_wins, "p": 1e-9})
    ab = pd.DataFrame({"effect": rng.normal(0.05, 0.04, size=50)})
    found = score_pair("AB", "x", "y", 0.05, interleaved, ab, 2000, "cuped")
    assert found.interleaving_users == pytest.approx(6 / 0.8)   # a fifth of the users tie
