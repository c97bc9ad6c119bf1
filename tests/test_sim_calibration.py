"""Calibration of the default world (conf/sim.yml as committed): the room recommenders have.

- random recommendations (dummy): mean session time in [1.0, 2.5] (simulator's view, without
  the first track); the course's world gave about 1.1;
- the oracle's ceiling: at least 5x the dummy.
"""
from __future__ import annotations

import numpy as np
import pytest

from support.sim import DEFAULT_CONFIG, read_sessions, run_module

pytestmark = pytest.mark.heavy(1)


@pytest.fixture(scope="module")
def default_world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("default-world")
    result = run_module("sim.world", "--config", str(DEFAULT_CONFIG), "--seed", "42",
                        "--out", str(folder / "world"))
    assert result.returncode == 0, result.stderr
    return folder


def mean_session_time(folder, recommender: str, episodes: int) -> float:
    output = folder / f"{recommender}.jsonl"
    result = run_module("sim.run", "--recommender", recommender, "--episodes", str(episodes),
                        "--config", str(DEFAULT_CONFIG), "--seed", "42",
                        "--world", str(folder / "world"), "--output", str(output))
    assert result.returncode == 0, result.stderr
    sessions = read_sessions(output)
    assert len(sessions) == episodes
    return float(np.mean([s["session_time"] for s in sessions]))


def test_dummy_and_oracle_bound_the_room_for_recommenders(default_world):
    dummy = mean_session_time(default_world, "dummy", 5000)
    assert 1.0 <= dummy <= 2.5
    oracle = mean_session_time(default_world, "oracle", 200)
    assert oracle >= 5 * dummy
