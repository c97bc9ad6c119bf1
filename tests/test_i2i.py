"""The i2i recommender: its anchor rule, no repeats, its fallback, and its config checks."""
from __future__ import annotations

from collections import Counter

import orjson
import pytest

from contract.catalog import load_catalog
from service.recommenders import Listen
from service.recommenders.i2i import I2I
from service.recommenders.random import Random
from service.recommenders.toppop import TopPop
from service.recommenders.registry import check_arm, lookup
from service.tables import read_keyed, read_list
from service.stores.memory import MemoryStore
from settings import ConfigError

SEED = 11
N_TRACKS = 40


@pytest.fixture
def world(tmp_path):
    def jsonl(name, records):
        path = tmp_path / name
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
        return path
    catalog = load_catalog(jsonl("tracks.jsonl", [{"track": t, "artist": f"a{t // 10}", "title": f"t{t}"}
                                                 for t in range(N_TRACKS)]))
    neighbours = jsonl("nn.jsonl", [{"track": 1, "recommendations": [2, 3, 4]},
                                    {"track": 2, "recommendations": [1, 3, 5]},
                                    {"track": 7, "recommendations": [8]}])
    (tmp_path / "top.json").write_bytes(orjson.dumps([30, 31, 32]))
    store = MemoryStore(session_idle_s=1800)
    return catalog, store.keyed_table(read_keyed(neighbours, "tracks")), \
        store.track_list(read_list(tmp_path / "top.json"))


def listen(history, user=1):
    track, time = history[-1]
    return Listen(user, track, time, list(history))


def make(world, history=10):
    catalog, neighbours, _ = world
    return I2I(neighbours, Random(catalog, SEED), catalog, history, SEED)


def test_the_anchors_first_unplayed_neighbour_answers(world):
    i2i = make(world)
    assert i2i.recommend(listen([(1, 1.0)])) == 2
    assert i2i.recommend(listen([(1, 1.0), (2, 0.0)])) in {3, 4}     # anchor 1 (only one listened): 2 played
    assert i2i.recommend(listen([(2, 0.0), (1, 1.0)])) == 3            # anchor 1: 2 played, 3 next


def test_anchors_are_drawn_by_listen_time_among_the_last_listens(world):
    i2i = make(world, history=2)
    anchors = Counter(i2i.anchor(listen([(7, 1.0), (1, 0.75), (2, 0.25)], user=user)) for user in range(4000))
    assert set(anchors) == {1, 2}                       # 7 is outside the last 2 listens
    assert 0.70 < anchors[1] / 4000 < 0.80              # weights 0.75 : 0.25
    assert make(world).anchor(listen([(1, 0.0), (2, 0.0)])) == 2   # nothing listened: the last track


def test_never_repeats_a_played_track_even_through_the_fallback(world):
    i2i = make(world)
    for user in range(300):
        history = [(7, 1.0), (8, 0.5)]                   # 7's only neighbour is played: fallback
        for _ in range(30):
            answer = i2i.recommend(listen(history, user=user))
            assert answer not in {track for track, _ in history}
            history.append((answer, 0.5))


def test_the_same_request_gets_the_same_answer(world):
    history = [(1, 0.3), (2, 0.9), (9, 0.4)]
    assert len({make(world).recommend(listen(history, user=5)) for _ in range(5)}) == 1


def test_config_checks_the_table_and_the_fallback(tmp_path, world):
    spec, params = check_arm("i2i", {"fallback": "toppop", "history": 5}, {"neighbours": "x", "toppop": "y"},
                             tmp_path / "plan.yml", "arms[0]", "<day>/<file>")
    assert (params.fallback, params.history) == ("toppop", 5)
    with pytest.raises(ConfigError, match="neighbours is required"):
        check_arm("i2i", {}, {}, tmp_path / "plan.yml", "arms[0]", "<day>/<file>")
    with pytest.raises(ConfigError, match="fallback"):
        check_arm("i2i", {"fallback": "svd"}, {"neighbours": "x"}, tmp_path / "plan.yml", "arms[0]", "f")
    with pytest.raises(ConfigError, match="fallback toppop needs a `toppop` table"):
        check_arm("i2i", {"fallback": "toppop"}, {"neighbours": "x"}, tmp_path / "plan.yml", "arms[0]", "f")
    catalog, neighbours, top = world
    tables = {"neighbours": tmp_path / "nn.jsonl", "toppop": tmp_path / "top.json"}
    load = {"tracks": lambda path: neighbours, "toppop": lambda path: top}
    built = spec.build(params, tables, catalog, SEED, lambda kind, path: load[kind](path))
    assert built.recommend(listen([(7, 1.0), (8, 1.0)])) in {30, 31, 32}
    assert lookup("i2i").tables["neighbours"].kind == "tracks"


def test_the_default_window_is_the_courses_last_10_listens_and_a_rowless_anchor_falls_back(world):
    catalog, neighbours, top = world
    i2i = I2I(neighbours, TopPop(top, 100, SEED), catalog, I2I.Params().history, SEED)
    history = [(1, 1.0)] + [(t, 0.5) for t in range(10, 20)]     # 1 is the 11th listen back
    assert {i2i.anchor(listen(history, user=user)) for user in range(500)} == set(range(10, 20))
    answers = {i2i.recommend(listen([(9, 1.0)], user=user)) for user in range(200)}
    assert answers == {30, 31, 32}                                 # 9 has no row: top-pop answers
