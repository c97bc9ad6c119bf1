"""Simulated days end to end: the simulator against the real botify service (`python -m
service`), its event log, and the sessions job's `sessionize` (Spark) over a multi-day log.

- the service stamps each event with the simulated time the simulator sends
  (X-Simulated-Time), so every event falls on its session's simulated UTC day;
- jobs/sessions.py cuts the multi-day log into exactly the simulator's sessions: none merges
  across days, none spans two days;
- a one-day run sends no simulated time: the events carry the service's own clock.
"""
from __future__ import annotations

import signal
import subprocess
import time
from collections import defaultdict
from datetime import date, datetime, timezone

import httpx
import orjson
import pytest
import yaml

from sim.calendar import day_start_ms
from service.config import shipped_with
from support.sim import generate_small_world, read_sessions, run_module, serve_config

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark"), pytest.mark.heavy(8)]

START = date(2026, 2, 2)
DAYS = 3


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("service-days")
    return folder, generate_small_world(folder, seed=21)


def start_service(folder, name: str) -> tuple[subprocess.Popen, str, object]:
    """`python -m service` on the small world's catalog, Random and StickyArtist arms."""
    config = shipped_with({
        "catalog": str(folder / "world" / "tracks.jsonl"),
        "experiments": [{"name": "AB", "arms": [{"name": "RANDOM", "recommender": "random"},
                                                {"name": "STICKY", "recommender": "sticky_artist"}]}],
        "log": {"dir": str(folder / name), "flush_interval_s": 0.01}})
    path = folder / f"{name}.yml"
    path.write_text(yaml.safe_dump(config))
    process, url = serve_config(path)
    return process, url, folder / name / config["log"]["replica"]


def stop(process: subprocess.Popen) -> None:
    # graceful: the service answers what it is serving, writes every queued event, then exits
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) in (0, -signal.SIGTERM)


def events_of(folder) -> list[dict]:
    return [orjson.loads(line) for file in sorted(folder.glob("events.jsonl*"))
            for line in file.read_bytes().splitlines()]


def utc_day(ms: int) -> int:
    """Simulated day index of a timestamp, by its UTC calendar date."""
    return (datetime.fromtimestamp(ms / 1000, timezone.utc).date() - START).days


@pytest.fixture(scope="module")
def multi_day_run(world):
    folder, config = world
    days = yaml.safe_load(config.read_text())
    days["returns"]["enabled"] = True
    days_config = folder / "days.yml"
    days_config.write_text(yaml.safe_dump(days))
    process, url, log = start_service(folder, "days-log")
    try:
        result = run_module("sim.run", "--recommender", "remote", "--url", url, "--config",
                            str(days_config), "--world", str(folder / "world"),
                            "--episodes", "120", "--days", str(DAYS), "--seed", "4",
                            "--processes", "2", "--start-date", START.isoformat(),
                            "--output", str(folder / "days.jsonl"))
        assert result.returncode == 0, result.stderr
    finally:
        stop(process)
    return read_sessions(folder / "days.jsonl"), events_of(log)


def test_events_carry_the_simulated_time_of_their_day(multi_day_run):
    sessions, events = multi_day_run
    assert {s["day"] for s in sessions} == set(range(DAYS))
    assert sum(s["failed_steps"] for s in sessions) == 0
    assert sum(e["message"] == "last" for e in events) == len(sessions)
    assert len(events) == sum(s["tracks"] + 1 for s in sessions)  # + the first track
    by_user = defaultdict(list)
    for event in events:
        by_user[event["user"]].append(event["timestamp"])
    for stamps in by_user.values():  # the log is written in order: a user's time only moves on
        assert all(b > a for a, b in zip(stamps, stamps[1:]))
    assert {utc_day(e["timestamp"]) for e in events} == set(range(DAYS))
    starts = {(s["user"], s["start"]) for s in sessions}
    assert all(day_start_ms(START, 0) <= start < day_start_ms(START, DAYS) for _, start in starts)


def test_sessions_job_cuts_the_multi_day_log_into_the_simulators_sessions(multi_day_run, spark):
    from jobs.sessions import sessionize
    from contract.events import spark_schema

    sessions, events = multi_day_run
    frame = spark.createDataFrame(
        [{**e, "position": e.get("position")} for e in events], schema=spark_schema())
    cut = sessionize(frame).collect()
    assert len(cut) == len(sessions) and all(row["closed"] for row in cut)
    for row in cut:
        assert utc_day(row["start_ts"]) == utc_day(row["end_ts"])  # no session spans two days
    # per user, the job's sessions in order are the simulator's: same day, same tracks
    ours = sorted((s["user"], s["day"], s["start"], s["tracks"] + 1) for s in sessions)
    theirs = sorted((r["user"], utc_day(r["start_ts"]), r["start_ts"], len(r["tracks"]))
                    for r in cut)
    assert [(u, d, n) for u, d, _, n in ours] == [(u, d, n) for u, d, _, n in theirs]
    # the first event of a session is stamped after the first track: start + one full track
    assert all(ts > start for (_, _, start, _), (_, _, ts, _) in zip(ours, theirs))


def test_a_one_day_run_leaves_the_time_to_the_service(world):
    folder, config = world
    process, url, log = start_service(folder, "one-day-log")
    try:
        before = time.time_ns() // 1_000_000
        result = run_module("sim.run", "--recommender", "remote", "--url", url, "--config",
                            str(config), "--world", str(folder / "world"), "--episodes", "30",
                            "--seed", "4")
        assert result.returncode == 0, result.stderr
        after = time.time_ns() // 1_000_000
        # a simulated time that is not a millisecond count is refused, and not logged
        bad = httpx.post(f"{url}/next/1", json={"track": 0, "time": 1.0},
                         headers={"X-Simulated-Time": "yesterday"})
        assert bad.status_code == 422 and "X-Simulated-Time" in bad.json()["detail"]
        # the client's telemetry is not the request: a bad wait is ignored, not refused
        odd = httpx.post(f"{url}/next/999999", json={"track": 0, "time": 1.0},
                         headers={"X-Client-Latency": "soon"})
        assert odd.status_code == 200
    finally:
        stop(process)
    events = events_of(log)
    assert len(events) > 30
    assert all(before <= e["timestamp"] <= after for e in events if e["user"] != 999999)
    # every event of a user but their first carries the client's wait for the previous one
    from contract.events import validation_error

    seen = set()
    for event in events:
        assert validation_error(event) is None
        first = event["user"] not in seen
        seen.add(event["user"])
        assert ("client_latency" in event) != (first or event["user"] == 999999), event
        assert event.get("client_latency", 1) > 0
