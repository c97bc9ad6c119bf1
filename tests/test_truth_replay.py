"""The truth's potential outcomes are played in process (pipeline/outcomes.py): that equals the
simulator playing against the real service (`python -m service`, `sim.run --recommender
remote`) session by session, on a small world with a run folder shaped like the pipeline's."""
from __future__ import annotations

import json
import signal

import numpy as np
import pytest

from pipeline.outcomes import ab_day, per_user, potential_outcomes, replay
from support.sim import one_day_run, read_sessions, run_module, serve_config

pytestmark = pytest.mark.slow  # a real service

SEED, SESSIONS = 31, 400
ARMS = [{"name": "RANDOM", "weight": 1.0, "recommender": "random"},
        {"name": "STICKY", "weight": 1.0, "recommender": "sticky_artist"}]


@pytest.fixture(scope="module")
def simulated_run(tmp_path_factory):
    """A run folder with one A/B day the simulator played against the service."""
    folder = tmp_path_factory.mktemp("truth-replay")
    run, sim_config = one_day_run(folder, SEED, "AB", {
        "name": "ab", "sessions": {"smoke": SESSIONS}, "control": "RANDOM", "arms": ARMS})
    (run / "sim").mkdir()
    process, url = serve_config(run / "conf" / "service-ab.yml")
    try:
        result = run_module("sim.run", "--recommender", "remote", "--url", url,
                            "--episodes", str(SESSIONS), "--seed", str(SEED), "--processes", "2",
                            "--world", str(folder / "world"), "--config", str(sim_config),
                            "--output", str(run / "sim" / "ab.jsonl"))
        assert result.returncode == 0, result.stderr[-2000:]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    return run


def test_in_process_play_equals_the_simulator_against_the_service(simulated_run):
    logged = read_sessions(simulated_run / "sim" / "ab.jsonl")
    day = ab_day(simulated_run)
    played = replay(day)
    assert len(logged) == len(played.users) == SESSIONS
    assert [r["user"] for r in logged] == played.users.tolist()
    assert [r["session_time"] for r in logged] == played.session_time.tolist()
    assert [r["tracks"] for r in logged] == played.tracks.tolist()
    assert all(r["failed_steps"] == 0 for r in logged)
    # the two arms answer differently, so the comparison could fail
    outcomes = potential_outcomes(day, 1)
    assert not np.array_equal(outcomes.time_total[0, 0], outcomes.time_total[1, 0])


def test_draw_0_of_each_arm_is_what_its_users_got_on_the_day(simulated_run):
    """Potential outcomes under the day's own streams: each user's observed sessions are the
    outcome of the arm the split gave them; a fresh draw differs."""
    import mmh3

    day = ab_day(simulated_run)
    outcomes = potential_outcomes(day, 2, processes=2)
    logged = replay(day)
    _, observed, _ = per_user(logged, outcomes.users)
    arm = np.array([int(mmh3.hash(f"AB:{u}", signed=False) / 2**32 >= 0.5)
                    for u in outcomes.users])
    own = outcomes.time_total[arm, 0, np.arange(len(arm))]
    assert np.allclose(own, observed)
    assert not np.allclose(outcomes.time_total[:, 1], outcomes.time_total[:, 0])


def test_the_truth_command_writes_truth_json(simulated_run):
    result = run_module("pipeline.truth", "--run", str(simulated_run), "--draws", "3")
    assert result.returncode == 0, result.stderr[-2000:]
    truth = json.loads((simulated_run / "report" / "truth.json").read_text())
    assert truth["arms"] == ["RANDOM", "STICKY"] and truth["draws"] == 3
    effect = truth["effects"]["STICKY"]["mean_session_time"]
    assert 0 < effect["mc_se"] < 0.1 and effect["effect"] != 0
    assert truth["effects"]["STICKY"]["sessions"]["effect"] == 0
    bad = run_module("pipeline.truth", "--run", str(simulated_run / "nowhere"))
    assert bad.returncode == 2 and "manifest.json" in bad.stderr
