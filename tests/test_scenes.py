"""The Scenes recommender (service/recommenders/scenes.py): its choice rule, no repeats, its
registration. No JVM."""
from __future__ import annotations

import numpy as np
import pytest

from service.recommenders.registry import lookup
from service.recommenders.scenes import Scenes
from support.artists import artist_world, ask

SEED = 5


@pytest.fixture
def world(tmp_path):
    """support/artists.py's artists; rows: A -> C (its track 8), B, D; C -> E."""
    return artist_world(tmp_path, {0: [8, 4, 10], 7: [12]})


def recommender(world, **params):
    catalog, table = world
    return Scenes(table, catalog, Scenes.Params(**params), SEED)


def test_choice_rule(world):
    rec = recommender(world, fresh_prior=0.5)
    assert ask(rec, [(1, 1.0)]) == 0                      # first: the first track's artist again
    # A's row (C, by its row track) once a fresh artist is valued above a replay of A (0.8)
    assert ask(recommender(world, fresh_prior=0.9), [(1, 1.0)]) == 8
    # A's track was listened 0.9: replaying A (0.9 x 0.8 = 0.72) beats a fresh artist (prior 0.5)
    assert ask(rec, [(1, 1.0), (0, 0.9)]) == 2
    # listened 0.5: 0.5 x 0.8 < 0.5, so the first fresh artist of A's row, C, by its row track
    assert ask(rec, [(1, 1.0), (0, 0.5)]) == 8
    # C was fresh and listened 1.0: fresh artists are worth 1.0 > any replay; C's row (E) joins
    # the anchors with weight 1.0 - 0.75 (its excess over the session's mean) at rank 0
    assert ask(rec, [(1, 1.0), (0, 0.5), (8, 1.0)]) == 4
    assert ask(recommender(world, fresh_prior=0.5, first_weight=0.2), [(1, 1.0), (0, 0.5), (8, 1.0)]) == 12
    # every artist of the rows played: the best replay (C at 1.0), its first unplayed track
    assert ask(rec, [(1, 1.0), (0, 0.5), (8, 1.0), (4, 0.3), (10, 0.2), (12, 0.1)]) == 7


def test_anchors_off_follow_the_first_artists_row_only(world):
    history = [(1, 1.0), (0, 0.1), (8, 0.9), (4, 0.1), (10, 0.1)]
    assert ask(recommender(world, anchors=0, repeat_factor=0.0), history) == 7   # replay C
    assert ask(recommender(world, anchors=6, repeat_factor=0.0), history) == 12  # C's row: E


def test_never_a_track_already_played(world):
    rng = np.random.default_rng(0)
    for params in ({}, {"anchors": 0}, {"repeat_factor": 1.0}, {"repeat_factor": 0.0},
                   {"fresh_prior": 1.0}):
        rec = recommender(world, **params)
        for _ in range(300):
            length = int(rng.integers(1, 13))   # at least one track left
            tracks = rng.choice(13, size=length, replace=False).tolist()
            history = [(t, float(rng.choice([0.0, 0.3, 1.0]))) for t in tracks]
            history[0] = (history[0][0], 1.0)
            assert ask(rec, history) not in tracks


def test_registered_with_its_table_slot_and_bounded_params():
    spec = lookup("scenes")
    assert spec.cls is Scenes and spec.tables["scenes"].kind == "tracks"
    with pytest.raises(ValueError):
        spec.params.model_validate({"repeat_factor": 1.5})
