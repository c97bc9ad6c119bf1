"""The interleaving analysis (analysis/interleaving.py) and the `team` field through the sessions
job: synthetic interleaved logs with a known preference."""
from __future__ import annotations

import json
import random

import orjson
import pytest

from analysis import interleaving
from contract.events import make_event
from jobs import common, sessions

pytestmark = pytest.mark.slow

EXPERIMENT = "SCREEN"


def interleaved_log(path, users: int, time_a: float, time_b: float, seed: int = 3,
                    first: tuple[float, float] | None = None) -> None:
    """Sessions of an interleaved arm "AB": the teams alternate in pairs (a random leader per
    pair); team a's tracks are listened for about `time_a`, team b's for about `time_b`, except
    a session's first recommended track: about first[0] or first[1] when given."""
    rng = random.Random(seed)
    lines, ts = [], 1_700_000_000_000
    for user in range(users):
        for _ in range(2):
            teams = [t for _ in range(4) for t in rng.choice([("a", "b"), ("b", "a")])]
            track, time = rng.randrange(1000), 1.0
            for position, team in enumerate(teams):
                recommended = rng.randrange(1000)
                lines.append(make_event("next", ts, user, track, time, 0.001, recommended,
                                        {EXPERIMENT: "AB"}, position, team))
                mean = time_a if team == "a" else time_b
                if first is not None and position == 0:
                    mean = first[0] if team == "a" else first[1]
                track, time, ts = recommended, round(min(1.0, max(0.0, rng.gauss(mean, 0.2))), 2), ts + 1
            lines.append(make_event("last", ts, user, track, time, 0.001, None, {EXPERIMENT: "AB"}))
            ts += 1
    path.mkdir(parents=True)
    (path / "events.jsonl").write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))


def test_a_known_preference_is_found_with_an_interval_around_it(spark, tmp_path):
    interleaved_log(tmp_path / "events", users=400, time_a=0.3, time_b=0.6)
    args = interleaving.parse_args(["--events", str(tmp_path / "events"), "--experiment", EXPERIMENT,
                                    "--pair", "AB=ctx:taste", "--out", str(tmp_path / "report"),
                                    "--bootstrap", "500"])
    (found,) = interleaving.analyze(spark, args)
    assert (found.a, found.b, found.users) == ("ctx", "taste", 400)
    assert found.share_lower < 2 / 3 < found.share_upper and found.share_upper - found.share_lower < 0.05
    assert found.difference_lower < 4 * 0.3 < found.difference_upper    # 4 tracks per team per session
    assert found.verdict == "taste preferred" and found.p_adjusted < 1e-6
    # the first steps prefer taste alike: no carryover
    assert found.first_step_lower < 2 / 3 < found.first_step_upper and found.trusted
    interleaving.write_outputs(tmp_path / "report", [found], EXPERIMENT)
    document = json.loads((tmp_path / "report" / "interleaving.json").read_text())
    assert document["pairs"][0]["verdict"] == "taste preferred"
    assert (tmp_path / "report" / "interleaving.png").stat().st_size > 0


def test_a_pair_whose_first_step_prefers_the_other_team_is_flagged(spark, tmp_path):
    """b earns more over the sessions but less on their first track, the one no team's earlier
    tracks shaped: the pair shows carryover and the report says so."""
    interleaved_log(tmp_path / "events", users=400, time_a=0.3, time_b=0.6, first=(0.7, 0.2))
    args = interleaving.parse_args(["--events", str(tmp_path / "events"), "--experiment", EXPERIMENT,
                                    "--pair", "AB=ctx:taste", "--out", str(tmp_path / "report"),
                                    "--bootstrap", "500"])
    (found,) = interleaving.analyze(spark, args)
    assert found.share_lower > 0.5 and found.first_step_upper < 0.5 and not found.trusted
    assert "⚠ carryover" in interleaving.markdown([found], EXPERIMENT)


def test_the_sessions_table_says_which_team_recommended_each_track(spark, tmp_path):
    interleaved_log(tmp_path / "events", users=3, time_a=0.3, time_b=0.6)
    out = tmp_path / "aggregates"
    sessions.run(spark, common.parse_args(sessions.NAME, "test", sessions.add_arguments,
                                          ["--events", str(tmp_path / "events"), "--out", str(out)]))
    rows = spark.read.parquet(str(out / "sessions")).collect()
    assert len(rows) == 6
    for row in rows:
        # 8 recommended tracks after the user's own first one, drafted in 4 pairs
        assert row.teams[0] is None and len(row.teams) == len(row.tracks) == 9
        for pair in range(4):
            assert sorted(row.teams[1 + 2 * pair:3 + 2 * pair]) == ["a", "b"]
