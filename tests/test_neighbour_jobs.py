"""The neighbour-table jobs (item2vec, implicit ALS) on a small log with a planted structure:
the table's format, no track its own neighbour, and neighbours that follow co-listening."""
from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from contract.events import make_event
from jobs import common, implicit_als, item2vec, sessions

pytestmark = pytest.mark.slow

GROUPS = 4           # tracks 0-9 are group 0, 10-19 group 1, ...: users listen within one group
TRACKS_PER_GROUP = 10


@pytest.fixture(scope="module")
def planted_sessions(spark, tmp_path_factory) -> Path:
    """Sessions of 300 users, each listening long to tracks of one group (the planted structure)
    and skipping the odd track of another."""
    rng = random.Random(5)
    root = tmp_path_factory.mktemp("neighbours")
    lines, ts = [], 1_700_000_000_000
    for user in range(300):
        group = user % GROUPS
        for _ in range(3):
            tracks = rng.sample(range(group * TRACKS_PER_GROUP, (group + 1) * TRACKS_PER_GROUP), 6)
            for position, track in enumerate(tracks):
                if position and rng.random() < 0.2:     # a skipped track of another group
                    lines.append(make_event("next", ts, user, rng.randrange(GROUPS * TRACKS_PER_GROUP),
                                            0.0, 0.001, track, {"E": "C"}, position))
                    ts += 1
                lines.append(make_event("next" if position < 5 else "last", ts, user, track,
                                        round(rng.uniform(0.8, 1.0), 2), 0.001,
                                        None if position == 5 else 0, {"E": "C"}))
                ts += 1
    events = root / "events"
    events.mkdir()
    (events / "log.jsonl").write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    out = root / "aggregates"
    sessions.run(spark, common.parse_args(sessions.NAME, "test", sessions.add_arguments,
                                          ["--events", str(events), "--out", str(out)]))
    return out / "sessions"


def run_job(spark, job, planted_sessions, tmp_path, extra):
    args = common.parse_args(job.NAME, "test", job.add_arguments,
                             ["--sessions", str(planted_sessions), "--out", str(tmp_path),
                              "--top-k", "5", "--partitions", "3", "--seed", "7", *extra])
    result = job.run(spark, args)
    rows = [orjson.loads(line) for line in (tmp_path / args.table).read_bytes().splitlines()]
    return result, rows


@pytest.mark.parametrize("job, extra", [
    (item2vec, ["--dim", "16", "--iterations", "5", "--min-count", "1"]),
    (implicit_als, ["--rank", "8", "--iterations", "8"]),
])
def test_neighbour_table_is_track_keyed_and_follows_co_listening(spark, planted_sessions, tmp_path, job, extra):
    result, rows = run_job(spark, job, planted_sessions, tmp_path, extra)
    assert [row["track"] for row in rows] == sorted(row["track"] for row in rows)
    assert all(set(row) == {"track", "recommendations"} for row in rows)
    assert all(row["track"] not in row["recommendations"] for row in rows)
    assert all(len(row["recommendations"]) == len(set(row["recommendations"])) == 5 for row in rows)
    same_group = [neighbour // TRACKS_PER_GROUP == row["track"] // TRACKS_PER_GROUP
                  for row in rows for neighbour in row["recommendations"][:3]]
    assert sum(same_group) / len(same_group) > 0.9
    assert result["tracks"] == len(rows) == GROUPS * TRACKS_PER_GROUP
    assert set(result["offline"]) == {args_table(job), "top-pop"}


def args_table(job) -> str:
    return common.parse_args(job.NAME, "test", job.add_arguments, ["--sessions", "x", "--out", "y"]).table


@pytest.mark.parametrize("job, extra", [(item2vec, ["--dim", "8", "--iterations", "2"]),
                                        (implicit_als, ["--rank", "8", "--iterations", "4"])])
def test_the_same_seed_gives_the_same_table(spark, planted_sessions, tmp_path, job, extra):
    _, first = run_job(spark, job, planted_sessions, tmp_path / "a", extra)
    _, second = run_job(spark, job, planted_sessions, tmp_path / "b", extra)
    assert first == second


def test_no_well_listened_pairs_is_a_clear_error(spark, planted_sessions, tmp_path):
    with pytest.raises(common.JobError, match="nothing to learn from"):
        run_job(spark, item2vec, planted_sessions, tmp_path, ["--min-time", "1.5"])
