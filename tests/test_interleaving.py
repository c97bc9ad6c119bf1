"""Team-draft interleaving (service/interleaving.py) and interleaved arms in configs and plans."""
from __future__ import annotations

from collections import Counter

import numpy as np

import orjson
import pytest
import yaml

from contract.events import make_event, validation_error
from contract.catalog import load_catalog
from service.interleaving import Interleaved
from service.recommenders import Listen
from service.config import shipped_with
from settings import ConfigError

SEED = 5


class Fixed:
    """A recommender that always answers the same track (or None)."""

    def __init__(self, track):
        self.track = track

    def recommend(self, listen):
        return self.track


@pytest.fixture
def catalog(tmp_path):
    path = tmp_path / "tracks.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"track": t, "artist": f"a{t % 7}", "title": "x"}) + b"\n"
                              for t in range(200)))
    return load_catalog(path)


def session(user, first=3, length=1):
    history = [(first, 1.0)] + [(100 + i, 0.5) for i in range(length - 1)]
    return Listen(user, history[-1][0], history[-1][1], history)


def test_each_pair_of_requests_has_one_answer_of_each_team_and_a_fair_coin(catalog):
    interleaved = Interleaved(Fixed(1), Fixed(2), catalog, SEED)
    leaders = Counter()
    for user in range(2000):
        teams = [interleaved.team(session(user, length=n)) for n in range(1, 21)]
        for pair in range(10):
            assert sorted(teams[2 * pair:2 * pair + 2]) == ["a", "b"]
        leaders[teams[0]] += 1
    assert 900 < leaders["a"] < 1100


def test_a_replay_gets_the_same_teams_and_answers(catalog):
    a = Interleaved(Fixed(1), Fixed(2), catalog, SEED)
    b = Interleaved(Fixed(1), Fixed(2), catalog, SEED)
    for user in range(50):
        for n in range(1, 8):
            assert a.draft(session(user, length=n)) == b.draft(session(user, length=n))
    other_seed = Interleaved(Fixed(1), Fixed(2), catalog, SEED + 1)
    assert [a.team(session(u)) for u in range(50)] != [other_seed.team(session(u)) for u in range(50)]


def test_the_answering_team_serves_and_never_a_played_track(catalog):
    interleaved = Interleaved(Fixed(1), Fixed(None), catalog, SEED)
    for user in range(300):
        listen = session(user, first=1, length=4)        # team a's only track is played
        track, team = interleaved.draft(listen)
        assert track not in {t for t, _ in listen.history}
    for user in range(300):
        listen = session(user, first=7, length=2)
        track, team = interleaved.draft(listen)
        assert track == 1 if team == "a" else track not in {1, 7, 100}


def test_the_team_field_is_part_of_the_event_contract():
    event = make_event("next", 1, 2, 3, 0.5, 0.01, 4, {"E": "AB"}, position=1, team="b")
    assert event["team"] == "b" and validation_error(event) is None
    assert "team" not in make_event("next", 1, 2, 3, 0.5, 0.01, 4, {"E": "C"})
    assert "team" in validation_error({**event, "team": "c"})


def config_with(tmp_path, arms):
    from service.config import load_config
    (tmp_path / "tracks.jsonl").write_text('{"track": 1, "artist": "a", "title": "t"}\n')
    path = tmp_path / "service.yml"
    path.write_text(yaml.safe_dump(shipped_with({"seed": 1, "catalog": str(tmp_path / "tracks.jsonl"),
                                                 "log": {"dir": str(tmp_path / "logs")},
                                                 "experiments": [{"name": "E", "arms": arms}]})))
    return load_config(path)


def test_a_config_interleaves_two_arms_of_its_experiment(tmp_path):
    arms = [{"name": "A", "weight": 0, "recommender": "random"},
            {"name": "B", "weight": 0, "recommender": "sticky_artist"},
            {"name": "AB", "interleave": {"a": "A", "b": "B"}}]
    (experiment,) = config_with(tmp_path, arms).experiments
    assert experiment.arms[2].interleave == ("A", "B") and experiment.arms[2].recommender is None
    with pytest.raises(ConfigError, match="interleaves 'C', which is not an arm"):
        config_with(tmp_path, arms[:2] + [{"name": "AB", "interleave": {"a": "A", "b": "C"}}])
    with pytest.raises(ConfigError, match="not both or neither"):
        config_with(tmp_path, arms[:2] + [{"name": "AB", "recommender": "random",
                                           "interleave": {"a": "A", "b": "B"}}])


def test_the_preference_is_calibrated_under_no_preference():
    """200 replications of 300 users whose two teams earn alike: the share's 95% interval covers
    0.5 and the sign test rejects about as often as the nominal 5%."""
    from analysis.interleaving import preference

    rng = np.random.default_rng(1)
    covered = rejected = 0
    for replication in range(200):
        sessions = rng.integers(1, 4, size=300).astype(float)
        credit_a = rng.gamma(2.0, 1.0, size=300) * sessions
        credit_b = rng.gamma(2.0, 1.0, size=300) * sessions
        found = preference("AB", "x", "y", credit_a, credit_b, sessions, 200, replication)
        covered += found["share_lower"] < 0.5 < found["share_upper"]
        rejected += found["p"] < 0.05
    assert covered >= 180 and rejected <= 20        # binomial 99.9% bounds around 95% and 5%


def test_the_first_step_share_compares_the_sessions_each_team_led():
    from analysis.interleaving import first_step_share

    rng = np.random.default_rng(2)
    led_a = rng.integers(0, 3, size=500).astype(float)
    led_b = rng.integers(0, 3, size=500).astype(float)
    first_a, first_b = 0.3 * led_a, 0.6 * led_b        # each led session's first listen
    counts = rng.multinomial(500, np.full(500, 1 / 500), size=200)
    share, lower, upper = first_step_share(first_a, first_b, led_a, led_b, counts)
    assert share == pytest.approx(2 / 3) and lower <= share <= upper
    alike = first_step_share(0.5 * led_a, 0.5 * led_b, led_a, led_b, counts)
    assert alike[0] == pytest.approx(0.5)


def test_a_pair_whose_first_step_prefers_the_other_team_is_flagged():
    from analysis.interleaving import carryover

    found = {"share_lower": 0.55, "share_upper": 0.6, "first_step_lower": 0.4,
             "first_step_upper": 0.45}
    assert carryover(found)
    assert not carryover({**found, "first_step_upper": 0.52})                 # overlaps 0.5
    assert not carryover({**found, "first_step_lower": 0.6, "first_step_upper": 0.7})
    assert carryover({"share_lower": 0.4, "share_upper": 0.45, "first_step_lower": 0.55,
                      "first_step_upper": 0.6})
    assert not carryover({**found, "share_lower": 0.45})                     # no preference
    assert not carryover({**found, "first_step_lower": float("nan")})       # no first steps
