"""The long term: simulated days, returns (come back or leave for good) and trending tracks.

- with the switches off the simulator's output is byte for byte the one of the code before
  the long term existed;
- with returns on, better recommendations keep users: the oracle's users come back more and
  leave less than the dummy's;
- same seed, same days with any number of processes;
- the pieces (clock, listener, trending boosts, config) on their own.
"""
from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from datetime import date, datetime, timezone
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from sim.calendar import DAY_MS, Clock, day_start_ms
from sim.config import ConfigError, load_config
from sim.returns import Listener
from sim.trending import trending_boosts
from sim.user import UserModel
from sim.world import load_world
from support.sim import DEFAULT_CONFIG, REPO, generate_small_world, read_sessions, run_module, tiny_world, write_config

pytestmark = pytest.mark.heavy(2)

# `sim.run --output` on the small world (tests/support/sim.py, world seed 5), run seed 5,
# --processes 1, with the long term switched off: tests/golden/sim_longterm/, recorded when the
# simulator had no simulated days yet (tests/support/golden.py: how to regenerate).
SWITCHES_OFF_RUNS = [("dummy", "400"), ("oracle", "60")]


def shipped():
    """conf/sim.yml as the simulator reads it."""
    return load_config(DEFAULT_CONFIG)


def config_with(folder, name: str, **sections) -> str:
    """The small-world config with keys of its sections (calendar, returns, trending) set."""
    path = write_config(folder, name=name)
    config = yaml.safe_load(path.read_text())
    for section, values in sections.items():
        config[section].update(values)
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The small world with seed 5 (the seed of the golden outputs)."""
    folder = tmp_path_factory.mktemp("longterm")
    generate_small_world(folder, seed=5)
    return folder


def simulate(folder, config: str, name: str, *args: str) -> tuple[bytes, list[dict], str]:
    output = folder / f"{name}.jsonl"
    result = run_module("sim.run", "--config", config, "--world", str(folder / "world"),
                        "--output", str(output), *args)
    assert result.returncode == 0, result.stderr
    return output.read_bytes(), read_sessions(output), result.stdout


@pytest.mark.parametrize("explicit", [False, True])
def test_switches_off_give_the_output_of_the_code_before_the_long_term(small, explicit, golden):
    # without the new sections (their defaults), and with them written out, off, and --days 1
    if explicit:
        config = config_with(small, "off.yml", returns={"enabled": False},
                             trending={"enabled": False})
        extra = ("--days", "1")
    else:
        config, extra = str(write_config(small, name="plain.yml")), ()
    for agent, episodes in SWITCHES_OFF_RUNS:
        data, rows, _ = simulate(small, config, f"{agent}-{explicit}", "--recommender", agent,
                                 "--episodes", episodes, "--seed", "5", *extra)
        assert data == golden(f"sim_longterm/{agent}-{episodes}.jsonl", data), agent
        assert "day" not in rows[0]


def per_user(rows: list[dict], n_users: int, days: int) -> np.ndarray:
    """Sessions per user per day, over every user of the world (0 for those who never came)."""
    counts = np.bincount([r["user"] for r in rows], minlength=n_users)
    return counts / days


def gone(stdout: str) -> float:
    """The share of users gone for good, from the run's summary."""
    line = next(line for line in stdout.splitlines() if "gone for good" in line
                and "all days" in line)
    return float(line.split("day;")[1].split("%")[0]) / 100


def test_returns_keep_the_users_of_a_better_recommender(small):
    config = config_with(small, "returns.yml", returns={"enabled": True})
    n_users, days = load_world(small / "world").n_users, 5
    runs = {}
    for agent in ("dummy", "oracle"):
        _, rows, stdout = simulate(small, config, f"returns-{agent}", "--recommender", agent,
                                   "--episodes", "150", "--days", str(days), "--seed", "11")
        assert {r["day"] for r in rows} == set(range(days))
        runs[agent] = per_user(rows, n_users, days), gone(stdout)
    (dummy, dummy_gone), (oracle, oracle_gone) = runs["dummy"], runs["oracle"]
    # Welch's t on sessions per user per day, and a two-proportion z on the leave rate
    t = (oracle.mean() - dummy.mean()) / math.sqrt(oracle.var(ddof=1) / n_users
                                                   + dummy.var(ddof=1) / n_users)
    assert t > 4, (oracle.mean(), dummy.mean(), t)
    pooled = (dummy_gone + oracle_gone) / 2
    z = (dummy_gone - oracle_gone) / math.sqrt(pooled * (1 - pooled) * 2 / n_users)
    assert z > 4, (dummy_gone, oracle_gone, z)


def test_day_zero_of_a_multi_day_run_plays_the_one_day_runs_users(small):
    # returns off, several days: day 0 plays exactly the users a one-day run draws
    config = str(write_config(small, name="days.yml"))
    _, one_day, _ = simulate(small, config, "one-day", "--recommender", "dummy",
                             "--episodes", "200", "--seed", "8")
    _, days, _ = simulate(small, config, "three-days", "--recommender", "dummy",
                          "--episodes", "200", "--seed", "8", "--days", "3")
    assert len(days) == 600
    assert sorted(r["user"] for r in days if r["day"] == 0) == sorted(r["user"] for r in one_day)
    # a user's sessions on one day are the one-day run's sessions of that user, in order
    user = one_day[0]["user"]
    assert ([r["session_time"] for r in days if r["day"] == 0 and r["user"] == user]
            == [r["session_time"] for r in one_day if r["user"] == user])


def test_same_seed_same_days_with_any_number_of_processes(small):
    config = config_with(small, "all-on.yml", returns={"enabled": True},
                         trending={"enabled": True})
    args = ("--recommender", "dummy", "--episodes", "200", "--days", "4")
    one, rows, _ = simulate(small, config, "p1", *args, "--seed", "3", "--processes", "1")
    three, _, _ = simulate(small, config, "p3", *args, "--seed", "3", "--processes", "3")
    other, _, _ = simulate(small, config, "p1-other", *args, "--seed", "4")
    assert one == three
    assert one != other
    assert [r["episode"] for r in rows] == list(range(len(rows)))
    first = day_start_ms(date(2026, 1, 5), 0)
    for row in rows:  # each session starts on its own simulated day (UTC)
        assert 0 <= row["start"] - first - row["day"] * DAY_MS < DAY_MS


def test_command_line_switches_override_the_config(small):
    # --returns on a config with returns off is the config with returns on; --start-date
    # moves every session by whole days
    on = config_with(small, "start.yml", returns={"enabled": True})
    off = str(write_config(small, name="start-off.yml"))
    args = ("--recommender", "dummy", "--episodes", "100", "--days", "2", "--seed", "2")
    by_config, default, _ = simulate(small, on, "start-config", *args)
    by_flag, _, _ = simulate(small, off, "start-flag", *args, "--returns")
    assert by_config == by_flag
    not_by_flag, _, _ = simulate(small, on, "start-no", *args, "--no-returns")
    returns_off, _, _ = simulate(small, off, "start-off", *args)
    assert not_by_flag == returns_off != by_config
    _, moved, _ = simulate(small, on, "start-moved", *args, "--start-date", "2026-03-01")
    shift = day_start_ms(date(2026, 3, 1), 0) - day_start_ms(date(2026, 1, 5), 0)
    assert [r["start"] + shift for r in default] == [r["start"] for r in moved]


def test_too_many_sessions_per_user_is_refused(small):
    result = run_module("sim.run", "--config", str(write_config(small, name="too-many.yml")),
                        "--world", str(small / "world"), "--recommender", "dummy",
                        "--episodes", "5000", "--days", "2", "--returns")
    assert result.returncode == 2
    assert "returns.max_sessions_per_day" in result.stderr


def test_clock_strictly_increases_and_never_leaves_its_day():
    start = day_start_ms(date(2026, 1, 5), 3)
    assert datetime.fromtimestamp(start / 1000, timezone.utc) == datetime(2026, 1, 8,
                                                                         tzinfo=timezone.utc)
    clock = Clock(shipped().calendar.model_copy(update={"track_seconds": 200, "step_seconds": 5}), start)
    session = SimpleNamespace(tracks=0, failed_steps=0, session_time=0.0)
    assert clock.begin(1.0) == start + 3_600_000
    # the first request: after the first track, listened fully
    assert clock.stamp(session) == start + 3_600_000 + 205_000
    session.tracks, session.failed_steps, session.session_time = 3, 1, 1.5
    assert clock.stamp(session) == start + 3_600_000 + 5 * 5_000 + 2.5 * 200_000
    clock.close(session)
    assert clock.begin(0.5) == start + 3_600_000 + 525_000 + 1  # after the previous session
    stamps = []
    for _ in range(3):  # three sessions of 5,000 full tracks each: far past the day's end
        clock.begin(20.0)
        session = SimpleNamespace(tracks=0, failed_steps=0, session_time=0.0)
        for _ in range(5000):
            stamps.append(clock.stamp(session))
            session.tracks += 1
            session.session_time += 1.0
        clock.close(session)
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    assert stamps[-1] < start + DAY_MS


def test_listener_comes_back_more_when_happy_and_leaves_after_bad_days():
    config = shipped().returns.model_copy(update=dict(
        reference_spread=0.0, reference_session_time=3.0, smoothing=0.5, sensitivity=1.0,
        leave_threshold=-0.5, leave_after_days=2, max_sessions_per_day=50))
    happy, sad = Listener(config, 0.0), Listener(config, 0.0)
    uniforms = np.random.default_rng(1).random(4000).tolist()
    for _ in range(4):
        happy.after_session(30.0)
        sad.after_session(0.0)
    # mood moves halfway to log((1 + t) / (1 + 3)) per session
    assert happy.mood == pytest.approx(math.log(31 / 4) * (1 - 0.5 ** 4))
    assert sad.mood == pytest.approx(math.log(1 / 4) * (1 - 0.5 ** 4))
    # sessions a day: Poisson with mean exp(sensitivity * mood), by inverting the CDF
    happy_days = [happy.sessions_today(1.0, u) for u in uniforms]
    assert np.mean(happy_days) == pytest.approx(math.exp(happy.mood), rel=0.05)
    assert np.var(happy_days) == pytest.approx(math.exp(happy.mood), rel=0.1)
    assert np.mean([sad.sessions_today(1.0, u) for u in uniforms]) == pytest.approx(
        math.exp(sad.mood), rel=0.1)
    assert happy.sessions_today(1.0, 0.0) == 0
    capped = Listener(config.model_copy(update={"max_sessions_per_day": 3}), 0.0)
    assert capped.sessions_today(10.0, 0.99) == 3  # Poisson(10) is capped
    assert not happy.end_of_day() and not happy.end_of_day()
    assert not sad.end_of_day()       # one bad day
    assert sad.end_of_day()           # two in a row: gone
    assert sad.gone and sad.sessions_today(1.0, 0.99) == 0 and not sad.end_of_day()


def test_trending_boosts_start_per_genre_and_decay():
    # the tiny world of the user tests, with two genres of two tracks
    world = dataclasses.replace(tiny_world(budget=50),
                                track_genre=np.array([0, 0, 1, 1], dtype=np.int32))
    config = shipped().trending.model_copy(update=dict(per_genre=1, boost=2.0, decay=0.5))
    boosts = trending_boosts(world, config, seed=3, days=3)
    assert len(boosts) == 3
    for day, boost in enumerate(boosts):
        started = boost - (boosts[day - 1] * 0.5 if day else 0)
        # one new track per genre each day, with the full boost
        assert sorted(world.track_genre[np.flatnonzero(np.isclose(started, 2.0))]) == [0, 1]
    again, other = (trending_boosts(world, config, seed, days=3) for seed in (3, 4))
    assert all(np.array_equal(a, b) for a, b in zip(boosts, again))
    assert not all(np.array_equal(a, b) for a, b in zip(boosts, other))
    # the boost raises the score in the listen-time formula: a boosted track is listened longer
    rng = np.random.default_rng(0)
    plain = UserModel(world, 100).start_session(0, rng, rng)
    boosted = UserModel(world, 100).start_session(0, rng, rng, boost=np.full(4, 2.0))
    assert boosted.listen(2) > plain.listen(2)


def test_long_term_config_is_validated(tmp_path):
    config = yaml.safe_load(write_config(tmp_path).read_text())
    config["returns"] = {**config["returns"], "enabled": True, "smoothing": 1.5}
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="returns.smoothing"):
        load_config(path)
    config["returns"] = {**config["returns"], "smoothing": 0.3, "enabeld": True}
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="returns.enabeld"):
        load_config(path)


def test_the_benchmark_refuses_a_world_of_another_seed(small):
    # it once regenerated an existing world in place when --seed differed, silently
    manifest = (small / "world" / "world.json").read_bytes()
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_sim.py", "--config", str(write_config(small)),
         "--world", str(small / "world"), "--seed", "42"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "holds a world with seed 5, not the world of seed 42" in result.stderr
    assert (small / "world" / "world.json").read_bytes() == manifest
