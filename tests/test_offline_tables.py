"""The offline_tables job (jobs/offline_tables.py) on a small log with a planted structure: every
kind of table checked on the same held-out queries, the executors' counts equal to the driver's
(jobs/offline.py), and a table that follows the structure ahead of one that does not."""
from __future__ import annotations

import orjson
import pytest
from pyspark.sql import functions as F

from jobs import common, offline, offline_tables
from test_neighbour_jobs import GROUPS, TRACKS_PER_GROUP, planted_sessions  # noqa: F401 (fixture)
from test_scenes_job import TRACKS_PER_ARTIST, catalog_path  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

TRACKS = GROUPS * TRACKS_PER_GROUP


def group(track: int) -> list[int]:
    """The track's group mates, itself excluded: the planted structure's ideal neighbours."""
    first = track // TRACKS_PER_GROUP * TRACKS_PER_GROUP
    return [t for t in range(first, first + TRACKS_PER_GROUP) if t != track]


def other_group(track: int) -> list[int]:
    return group((track + TRACKS_PER_GROUP) % TRACKS)


def write_lines(path, rows) -> str:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return str(path)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("offline_tables")
    artists = TRACKS // TRACKS_PER_ARTIST
    per_group = TRACKS_PER_GROUP // TRACKS_PER_ARTIST
    (root / "top.json").write_bytes(orjson.dumps(list(range(10))))
    return {
        "day1/group.json": ("tracks", write_lines(root / "group.json", (
            {"track": t, "recommendations": group(t)} for t in range(TRACKS)))),
        "day1/other.json": ("tracks", write_lines(root / "other.json", (
            {"track": t, "recommendations": other_group(t)} for t in range(TRACKS)))),
        "day1/half.json": ("tracks", write_lines(root / "half.json", (   # half the tracks have a row
            {"track": t, "recommendations": group(t)} for t in range(0, TRACKS, 2)))),
        "day1/users.json": ("users", write_lines(root / "users.json", (
            {"user": u, "tracks": group(u % GROUPS * TRACKS_PER_GROUP)} for u in range(300)))),
        "day1/top.json": ("toppop", str(root / "top.json")),
        # artist a's row: the other artists of its group, one track each (Taste's and Scenes' form)
        "day1/artists.json": ("artists", write_lines(root / "artists.json", (
            {"track": a * TRACKS_PER_ARTIST,
             "recommendations": [b * TRACKS_PER_ARTIST for b in range(a // per_group * per_group,
                                                                      (a // per_group + 1) * per_group) if b != a]}
            for a in range(artists)))),
    }


def run_job(spark, sessions, catalog, tables, *extra):
    argv = ["--sessions", str(sessions), "--catalog", str(catalog), "--seed", "7",
            "--holdout-share", "0.3", "--eval-k", "5", *extra]
    for name, (kind, path) in tables.items():
        argv += ["--table", f"{name}={kind}:{path}"]
    return offline_tables.run(spark, common.parse_args(offline_tables.NAME, "test", offline_tables.add_arguments, argv))


def test_every_table_on_the_same_queries_and_the_structure_wins(spark, planted_sessions, catalog_path, tables):
    results = run_job(spark, planted_sessions, catalog_path, tables)["offline"]
    assert list(results) == [*tables, "top-pop"]
    assert len({r["queries"] for r in results.values()}) == 1 and results["top-pop"]["queries"] > 50
    assert all(r["k"] == 5 for r in results.values())
    assert results["day1/group.json"]["coverage"] == results["day1/users.json"]["coverage"] == 1.0
    assert 0.3 < results["day1/half.json"]["coverage"] < 0.7
    assert results["day1/group.json"]["hit_rate"] > 0.5
    assert results["day1/other.json"]["hit_rate"] == 0.0
    assert results["day1/group.json"]["ndcg"] > results["day1/half.json"]["ndcg"] > 0
    assert results["day1/artists.json"]["hit_rate"] > 0.5


def test_executor_counts_equal_the_drivers(spark, planted_sessions, catalog_path, tables):
    """The one-pass join on the executors counts as jobs/offline.py's driver-side check."""
    results = run_job(spark, planted_sessions, catalog_path, tables)["offline"]
    split = (spark.read.parquet(str(planted_sessions))
             .withColumn("heldout", common.holdout_flag(7, 0.3)).where(F.col("heldout")))
    queries = offline.heldout_queries(split, 0.8).select("user", "context", "target").toPandas()
    for name, lookup, key in [("day1/half.json", {t: group(t) for t in range(0, TRACKS, 2)}.get, "context"),
                              ("day1/users.json", lambda u: group(u % GROUPS * TRACKS_PER_GROUP), "user"),
                              ("day1/top.json", lambda _: list(range(10)), "context")]:
        expected = offline.hit_rate_ndcg(lookup, queries[key].tolist(), queries["target"].tolist(), 5)
        assert results[name] == {**expected, "k": 5}


@pytest.mark.parametrize("spec", ["day1/x.json", "x=nope:/tmp/x.json", "=tracks:/tmp/x.json", "x=tracks:"])
def test_a_malformed_table_flag_is_refused(spec):
    with pytest.raises(SystemExit):
        common.parse_args(offline_tables.NAME, "test", offline_tables.add_arguments,
                          ["--sessions", "s", "--table", spec])


def test_an_artists_table_without_the_catalog_is_a_clear_error(spark, planted_sessions, tables):
    args = common.parse_args(offline_tables.NAME, "test", offline_tables.add_arguments,
                             ["--sessions", str(planted_sessions), "--seed", "7",
                              "--table", f"a={tables['day1/artists.json'][0]}:{tables['day1/artists.json'][1]}"])
    with pytest.raises(common.JobError, match="needs --catalog"):
        offline_tables.run(spark, args)
