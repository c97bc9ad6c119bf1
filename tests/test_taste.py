"""Taste: the job that learns artist neighbourhoods from co-listening (jobs/taste.py) and the
session-aware recommender over its table (service/recommenders/taste.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jobs import common, sessions, taste as job
from contract.catalog import load_catalog
from service.recommenders.registry import lookup
from service.recommenders.taste import Taste, row_key
from service.tables import read_keyed
from dataclient.synthetic_logs import synthetic_sessions, write_event_log
from support.artists import artist_world, ask, write_catalog

pytestmark = [pytest.mark.xdist_group("spark"), pytest.mark.heavy(8)]

SEED = 5


# --- the job -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_artist_graph_links_liked_tracks_to_the_first_and_to_each_other(spark):
    # one session: first track's artist 0; liked tracks of artists 1 and 2 (tails 0.02, 0.05),
    # then a liked track of artist 0 again (no self-link); artist 3 liked in another session
    weight = {tail: float(np.log(0.1 / tail)) for tail in (0.02, 0.05, 0.08)}
    liked = spark.createDataFrame(
        [(1, 0, 1, 2, 1, 0, weight[0.02]), (1, 0, 3, 4, 2, 0, weight[0.05]), (1, 0, 4, 0, 0, 0, weight[0.08]),
         (1, 1, 1, 6, 3, 3, weight[0.02])],
        "user long, session long, pos long, track long, artist long, first_artist long, weight double")
    graph = job.artist_graph(job.artist_links(liked).toPandas(), 5).toarray()
    assert graph[0, 1] == pytest.approx(np.log(0.1 / 0.02) + np.log(0.1 / 0.08)) == graph[1, 0]
    assert graph[0, 2] == pytest.approx(np.log(0.1 / 0.05) + np.log(0.1 / 0.08))
    assert graph[1, 2] == pytest.approx(np.log(0.1 / 0.05))   # the weaker of the pair
    assert graph[:, 3].sum() == 0 and np.trace(graph) == 0     # artist 3 was liked only with itself
    lists = job.neighbours(job.artist_graph(job.artist_links(liked).toPandas(), 5), hops=1, top_k=5)
    assert list(lists[0]) == [1, 2] and list(lists[3]) == []


@pytest.fixture(scope="module")
def synthetic_tables(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("taste")
    write_event_log(synthetic_sessions(4_000, n_tracks=1_000, n_users=400, seed=3), root / "events")
    catalog = root / "tracks.jsonl"
    write_catalog(catalog, {t: f"artist{t % 150}" for t in range(1_000)})
    sessions.run(spark, common.parse_args(sessions.NAME, "test", sessions.add_arguments,
                                          ["--events", str(root / "events"), "--out", str(root / "work")]))
    argv = ["--sessions", str(root / "work" / "sessions"), "--catalog", str(catalog), "--seed", str(SEED)]

    def run(out):
        return job.run(spark, common.parse_args(job.NAME, "test", job.add_arguments, argv + ["--out", str(out)]))
    return root, catalog, run(root / "tables"), run


@pytest.mark.slow
def test_job_writes_a_track_keyed_table_of_artist_rows(synthetic_tables):
    root, catalog_path, result, _ = synthetic_tables
    catalog = load_catalog(catalog_path)
    path = root / "tables" / "tracks_taste.json"
    rows = read_keyed(path, "tracks", catalog.id_array)          # the service's own reader
    assert len(rows.keys) == result["rows"] > 100
    for key, start, end in zip(rows.keys, rows.offsets[:-1], rows.offsets[1:]):
        artist = catalog.artist_of[int(key)]
        assert row_key(catalog, artist) == key                   # keyed by the artist's first track
        values = rows.flat[start:end].tolist()
        neighbours = [catalog.artist_of[t] for t in values]
        assert artist not in neighbours and len(set(neighbours)) == len(values) <= 100
        assert all(row_key(catalog, a) == t for a, t in zip(neighbours, values))
    checks = result["offline"]
    assert set(checks) == {"tracks_taste.json", "top-pop"}
    assert checks["tracks_taste.json"]["queries"] == checks["top-pop"]["queries"] > 50


@pytest.mark.slow
def test_job_is_deterministic(synthetic_tables, tmp_path):
    root, _, _, run = synthetic_tables
    run(tmp_path)
    assert (tmp_path / "tracks_taste.json").read_bytes() == (root / "tables" / "tracks_taste.json").read_bytes()


@pytest.mark.slow
def test_job_entry_runs_inside_a_given_session_and_leaves_it_running(spark, synthetic_tables, tmp_path):
    root, catalog, _, _ = synthetic_tables
    code = job.main(["--sessions", str(root / "work" / "sessions"), "--catalog", str(catalog),
                     "--out", str(tmp_path), "--nn-table", str(root / "tables" / "tracks_taste.json")], spark)
    assert code == 0 and (tmp_path / "tracks_taste.json").exists()
    assert spark.range(3).count() == 3                            # still usable
    assert job.main(["--sessions", str(tmp_path / "nope"), "--catalog", str(catalog),
                     "--out", str(tmp_path)], spark) == 2


# --- the recommender ---------------------------------------------------------------------------

@pytest.fixture
def world(tmp_path):
    """support/artists.py's artists; rows: A -> C, B, D; C -> E."""
    return artist_world(tmp_path, {0: [7, 4, 10], 7: [12]})


def recommender(world, **params):
    catalog, table = world
    return Taste(table, catalog, Taste.Params(**params), SEED)


def test_choice_rule(world):
    rec = recommender(world, fresh_prior=0.5)
    assert ask(rec, [(1, 1.0)]) == 0                      # first: the first track's artist again
    # A's track was listened 0.9: replaying A (0.9 x 0.8 = 0.72) beats a fresh artist (prior 0.5)
    assert ask(rec, [(1, 1.0), (0, 0.9)]) == 2
    # listened 0.5: 0.5 x 0.8 < 0.5, so the first fresh artist of A's row, C
    assert ask(rec, [(1, 1.0), (0, 0.5)]) == 7
    # C was fresh and listened 1.0: fresh artists are now worth 1.0 > any replay: B next
    assert ask(rec, [(1, 1.0), (0, 0.5), (7, 1.0)]) == 4
    # every artist of the row played: the best replay (C at 1.0), its next unplayed track
    assert ask(rec, [(1, 1.0), (0, 0.5), (7, 1.0), (4, 0.3), (10, 0.2)]) == 8


def test_session_anchors_widen_the_candidates(world):
    history = [(1, 1.0), (0, 0.1), (7, 0.9), (4, 0.1), (10, 0.1)]
    assert ask(recommender(world, anchors=0, repeat_factor=0.0), history) == 8   # replay C
    # C was listened far above the session's median: its row (E) joins the candidates
    assert ask(recommender(world, anchors=6, repeat_factor=0.0), history) == 12


def test_never_a_track_already_played(world):
    rng = np.random.default_rng(0)
    for params in ({}, {"anchors": 0}, {"repeat_factor": 1.0}, {"repeat_factor": 0.0}):
        rec = recommender(world, **params)
        for _ in range(300):
            length = int(rng.integers(1, 13))   # at least one track left
            tracks = rng.choice(13, size=length, replace=False).tolist()
            history = [(t, float(rng.choice([0.0, 0.3, 1.0]))) for t in tracks]
            history[0] = (history[0][0], 1.0)
            assert ask(rec, history) not in tracks


def test_registered_with_its_table_slot_and_bounded_params():
    spec = lookup("taste")
    assert spec.cls is Taste and spec.tables["taste"].kind == "tracks"
    with pytest.raises(ValueError):
        spec.params.model_validate({"repeat_factor": 1.5})
