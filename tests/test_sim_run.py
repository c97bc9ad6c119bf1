"""sim.run with the in-process agents: output, summary, determinism across processes."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from sim.world import load_world
from support.sim import REPO, read_sessions, run_module, write_config


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    return folder, write_config(folder)


def simulate(setup, name: str, *args: str):
    folder, config = setup
    output = folder / f"{name}.jsonl"
    result = run_module("sim.run", "--config", str(config), "--world", str(folder / "world"),
                        "--output", str(output), *args)
    assert result.returncode == 0, result.stderr
    return result, read_sessions(output)


def test_dummy_run_generates_the_world_on_demand_and_writes_sessions(setup):
    folder, _ = setup
    result, sessions = simulate(setup, "dummy", "--recommender", "dummy", "--episodes", "400",
                                "--seed", "5")
    assert "generated world" in result.stderr  # the world folder did not exist yet
    world = load_world(folder / "world")
    assert world.seed == 5
    assert [s["episode"] for s in sessions] == list(range(400))
    assert all(set(s) == {"user", "episode", "session_time", "tracks", "failed_steps"}
               for s in sessions)
    assert all(0 <= s["user"] < world.n_users for s in sessions)
    assert all(0 <= s["session_time"] <= s["tracks"] for s in sessions)
    assert sum(s["failed_steps"] for s in sessions) == 0
    mean = np.mean([s["session_time"] for s in sessions])
    assert "simulation summary (dummy)" in result.stdout
    assert f"{mean:.3f} ±" in result.stdout
    assert "sessions" in result.stdout and "400" in result.stdout


def test_same_seed_same_sessions_with_any_number_of_processes(setup):
    _, one = simulate(setup, "p1", "--recommender", "dummy", "--episodes", "300",
                      "--seed", "9", "--processes", "1")
    _, three = simulate(setup, "p3", "--recommender", "dummy", "--episodes", "300",
                        "--seed", "9", "--processes", "3")
    _, other = simulate(setup, "p1b", "--recommender", "dummy", "--episodes", "300",
                        "--seed", "10")
    assert one == three
    assert one != other


def test_oracle_is_far_above_dummy(setup):
    _, dummy = simulate(setup, "d", "--recommender", "dummy", "--episodes", "300")
    _, oracle = simulate(setup, "o", "--recommender", "oracle", "--episodes", "100")
    dummy_mean = np.mean([s["session_time"] for s in dummy])
    oracle_mean = np.mean([s["session_time"] for s in oracle])
    assert oracle_mean > 5 * dummy_mean


def test_console_agent_plays_typed_tracks(setup):
    folder, config = setup
    simulate(setup, "warm", "--recommender", "dummy", "--episodes", "1")  # world exists
    world = load_world(folder / "world")
    # a bad answer, a track id, a random pick (Enter), then quit
    result = run_module("sim.run", "--config", str(config), "--world", str(folder / "world"),
                        "--recommender", "console", "--episodes", "3",
                        stdin="nonsense\n12\n\nq\n")
    assert result.returncode == 0, result.stderr
    assert "'nonsense' is not a track id" in result.stdout
    artist = world.artist_names[world.track_artist[12]]
    assert f"listened #12 {artist} - {world.titles[12]}" in result.stdout
    assert "simulation summary (console)" in result.stdout


def test_bad_arguments_are_refused(setup):
    folder, config = setup
    result = run_module("sim.run", "--config", str(config), "--recommender", "console",
                        "--processes", "2")
    assert result.returncode == 2 and "needs --processes 1" in result.stderr
    result = run_module("sim.run", "--config", str(config), "--recommender", "dummy",
                        "--episodes", "0")
    assert result.returncode == 2 and "--episodes must be at least 1" in result.stderr


def test_progress_off_a_terminal_is_about_ten_plain_lines(setup):
    folder, config = setup
    simulate(setup, "warm", "--recommender", "dummy", "--episodes", "1")  # world exists
    command = [sys.executable, "-m", "sim.run", "--config", str(config), "--world",
               str(folder / "world"), "--recommender", "dummy", "--episodes", "600"]
    for processes in ("1", "2"):
        # bytes: text mode would turn the carriage returns we look for into newlines
        result = subprocess.run([*command, "--processes", processes], cwd=REPO,
                                capture_output=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert b"\r" not in result.stderr
        lines = [line for line in result.stderr.decode().splitlines()
                 if line.startswith("sim dummy:")]
        assert lines[-1].startswith("sim dummy: 100% 600/600")
        # one process reports every session, so each tenth gets its line; workers report in
        # batches, which may jump over several tenths
        assert len(lines) == 10 if processes == "1" else 1 <= len(lines) <= 10

