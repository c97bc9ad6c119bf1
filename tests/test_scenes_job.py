"""The scenes job (jobs/scenes.py) on a small log with a planted structure: its table's format
(the service's own reader), artist rows keyed as Taste's, and rows that list the row artist's
own group first."""
from __future__ import annotations

import pytest

from jobs import common, scenes
from contract.catalog import load_catalog
from service.recommenders.taste import row_key
from service.tables import read_keyed
from support.artists import write_catalog
from test_neighbour_jobs import GROUPS, TRACKS_PER_GROUP, planted_sessions  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

TRACKS_PER_ARTIST = 2    # artist a holds tracks 2a, 2a + 1: five artists per planted group


@pytest.fixture(scope="module")
def catalog_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("scenes") / "tracks.jsonl"
    write_catalog(path, {t: f"artist{t // TRACKS_PER_ARTIST}" for t in range(GROUPS * TRACKS_PER_GROUP)})
    return path


def run_job(spark, sessions, catalog_path, out, *extra):
    args = common.parse_args(scenes.NAME, "test", scenes.add_arguments,
                             ["--sessions", str(sessions), "--catalog", str(catalog_path),
                              "--out", str(out), "--seed", "7", "--max-tail", "0.5",
                              "--dim", "6", "--top-k", "8", *extra])
    return scenes.run(spark, args), out / args.table


def test_rows_are_artist_keyed_and_list_the_artists_own_group_first(spark, planted_sessions, catalog_path, tmp_path):
    result, path = run_job(spark, planted_sessions, catalog_path, tmp_path)
    catalog = load_catalog(catalog_path)
    rows = read_keyed(path, "tracks", catalog.id_array)          # the service's own reader
    artists_per_group = TRACKS_PER_GROUP // TRACKS_PER_ARTIST
    assert len(rows.keys) == result["rows"] == GROUPS * artists_per_group
    group = lambda track: track // TRACKS_PER_GROUP              # noqa: E731
    for key, start, end in zip(rows.keys, rows.offsets[:-1], rows.offsets[1:]):
        artist = catalog.artist_of[int(key)]
        assert row_key(catalog, artist) == key
        values = rows.flat[start:end].tolist()
        neighbours = [catalog.artist_of[t] for t in values]
        assert artist not in neighbours and len(set(neighbours)) == len(values) <= 8
        # the row artist's four group-mates come first
        assert [group(t) for t in values[:artists_per_group - 1]] == [group(int(key))] * (artists_per_group - 1)
    assert set(result["offline"]) == {"tracks_scenes.json", "top-pop"}


def test_the_same_seed_gives_the_same_table(spark, planted_sessions, catalog_path, tmp_path):
    _, first = run_job(spark, planted_sessions, catalog_path, tmp_path / "a")
    _, second = run_job(spark, planted_sessions, catalog_path, tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()


def test_no_liked_listen_is_a_clear_error(spark, planted_sessions, catalog_path, tmp_path):
    with pytest.raises(common.JobError, match="no two artists liked together"):
        run_job(spark, planted_sessions, catalog_path, tmp_path, "--max-tail", "0.0001")
