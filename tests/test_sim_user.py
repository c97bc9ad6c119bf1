"""The simulated user's formulas against hand-computed values (docs/DESIGN.md, simulated user)."""
from __future__ import annotations

import pytest

from sim.user import UserModel, listen_time
from support.sim import tiny_world


@pytest.mark.parametrize("score, bias, sharpness, gamma, plays, expected", [
    (5.0, 5.0, 1.0, 0.8, 0, 0.5),    # expit(0) = 0.5
    (7.0, 5.0, 1.5, 0.8, 0, 0.95),   # expit(3) = 0.952574
    (7.0, 5.0, 1.5, 0.8, 2, 0.61),   # 0.952574 * 0.8**2 = 0.609647
    (4.0, 5.0, 0.5, 0.8, 1, 0.30),   # expit(-0.5) * 0.8 = 0.302033
    (0.0, 10.0, 2.0, 0.8, 0, 0.0),   # expit(-20) ~ 2e-9
    (9.0, 0.0, 2.0, 0.8, 0, 1.0),    # expit(18) rounds to 1.0: no budget drop
])
def test_listen_time_matches_hand_computed_values(score, bias, sharpness, gamma, plays,
                                                  expected):
    assert listen_time(score, bias, sharpness, gamma, plays) == expected


class ScriptedRng:
    """Stands in for the user's generator: scripted uniforms for the budget draws."""

    def __init__(self, uniforms):
        self.uniforms = list(uniforms)

    def integers(self, high):
        return 0

    def random(self):
        return self.uniforms.pop(0)


def test_session_repeat_rule_and_artist_discount():
    # draws below every time listened: the budget never drops here
    session = UserModel(tiny_world(), 100).start_session(0, ScriptedRng([0.0] * 5), None)
    assert session.first_track == 0 and session.artist_plays == {0: 1}
    assert session.listen(0) == 0.0    # repeat of the first track; artist 0 now played twice
    assert session.listen(1) == 0.10   # expit((0.8 - 1) * 2) = 0.401312 * 0.5**2
    assert session.listen(3) == 0.88   # expit((2 - 1) * 2) = 0.880797, artist 1 new
    assert session.listen(2) == 0.06   # expit((0 - 1) * 2) = 0.119203 * 0.5**1
    assert session.listen(3) == 0.0    # repeat
    assert session.session_time == pytest.approx(0.10 + 0.88 + 0.06)
    assert session.tracks == 5 and session.budget == 2 and not session.over
    assert session.result(7) == {"user": 0, "episode": 7, "session_time": 1.04, "tracks": 5,
                                 "failed_steps": 0}


def test_budget_drops_when_the_draw_exceeds_the_time_listened():
    # listen(3) gives 0.88: a draw of 0.9 > 0.88 drops the budget, 0.5 does not
    session = UserModel(tiny_world(budget=2), 100).start_session(
        0, ScriptedRng([0.5, 0.9, 0.95]), None)
    session.listen(3)
    assert session.budget == 2
    session.listen(1)  # 0.10 (artist 0 played once: 0.401312 * 0.5), draw 0.9 > 0.10
    assert session.budget == 1 and not session.over
    session.fail()     # failed step: time 0, budget drops, counted
    assert session.budget == 0 and session.over and session.failed_steps == 1
    assert session.tracks == 2


def test_time_one_never_drops_the_budget_and_long_sessions_are_truncated():
    world = tiny_world(budget=2)
    world.consume_bias[0] = -20.0  # every new track is listened fully before the discount
    session = UserModel(world, max_session_tracks=2).start_session(
        0, ScriptedRng([0.999999, 0.999999]), None)
    assert session.listen(3) == 1.0 and session.budget == 2
    assert session.listen(1) == 0.5  # artist 0 already played once: 1.0 * 0.5; draw drops
    assert session.budget == 1 and session.truncated and session.over


def test_unknown_user_is_refused():
    with pytest.raises(ValueError, match="user 5 is not in 0..0"):
        UserModel(tiny_world(), 10).start_session(5, ScriptedRng([]), None)


@pytest.mark.parametrize("candidates", [1, 4])
def test_oracle_picks_the_longest_listen_and_widens_its_candidates(candidates):
    from sim.agents import OracleAgent

    world = tiny_world(budget=10)
    session = UserModel(world, 100).start_session(0, ScriptedRng([0.0] * 4), None)
    oracle = OracleAgent(world, candidates)
    picks = []
    for _ in range(3):
        # would-be times: t3 0.88 first; then t1 0.20 (artist 0 played once) beats
        # t2 0.06 (artist 1 played once, after t3); the first track 0 is never repeated
        picks.append(oracle.recommend(session, session.history[-1], 1.0))
        session.listen(picks[-1])
    assert picks == [3, 1, 2]
