"""Recommenders, session histories and the experiment split, against both stores (the Redis
store talks to the real redis-server of `./run.sh test`)."""
from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import mmh3
import orjson
import pytest
import redis

from contract.catalog import load_catalog
from service.config import Arm, Experiment
from service import experiments
from service.experiments import Split
from service.recommenders import Listen
from service.recommenders.contextual import Contextual
from service.recommenders.contextual_updated import ContextualUpdated
from service.recommenders.indexed import Indexed
from service.recommenders.random import Random
from service.recommenders.sticky_artist import StickyArtist
from service.recommenders.toppop import TopPop
from service.stores import open_store
from service.stores.memory import MemoryStore
from service.stores.redis import RedisHistory, RedisStore
from service.tables import read_keyed, read_list

SEED = 3
IDLE_S = 1800.0  # a store forgets a session idle this long
# 30 tracks: artist a0 has tracks 0-9, a1 10-19, a2 20-29.
ARTISTS = {track: f"a{track // 10}" for track in range(30)}


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.slow)])
def store(request):
    if request.param == "memory":
        yield MemoryStore(IDLE_S)
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"test-{uuid.uuid4().hex}"
    store = RedisStore(url, prefix, IDLE_S)
    yield store
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    asyncio.run(store.close())


@pytest.fixture
def files(tmp_path):
    def jsonl(name, records):
        (tmp_path / name).write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
        return tmp_path / name
    catalog = load_catalog(jsonl("tracks.jsonl", [{"track": t, "artist": a, "title": f"t{t}"}
                                                 for t, a in ARTISTS.items()]))
    tracks = jsonl("contextual.jsonl", [{"track": 0, "recommendations": [5, 6, 7]},
                                        {"track": 1, "recommendations": []}])
    users = jsonl("svd.jsonl", [{"user": 1, "tracks": [11, 12]}])
    (tmp_path / "top.json").write_bytes(orjson.dumps([20, 21, 22, 23]))
    return catalog, tracks, users, tmp_path / "top.json"


@pytest.fixture
def tables(store, files):
    catalog, tracks, users, top = files
    return (catalog, store.keyed_table(read_keyed(tracks, "tracks", catalog.id_array)),
            store.keyed_table(read_keyed(users, "users", catalog.id_array)),
            store.track_list(read_list(top, catalog.id_array)))


def listen(user=1, track=0, time=0.5, history=None):
    return Listen(user, track, time, history if history is not None else [(track, time)])


def outcomes(recommender, **kwargs) -> set[int]:
    """Every track the recommender gives at 60 positions in the session: well-listened filler
    tracks (29, by artist a2) are inserted after the first track, which keeps the first track
    and the end of the history."""
    base = listen(**kwargs)
    at = 1 if len(base.history) > 1 else 0
    return {recommender.recommend(Listen(base.user, base.track, base.time,
                                         [*base.history[:at], *[(29, 1.0)] * n, *base.history[at:]]))
            for n in range(60)}


def test_random_is_uniform_over_the_catalog_and_request_derived(files):
    catalog = files[0]
    random = Random(catalog, SEED)
    picks = [random.recommend(listen(user=u, track=u % 30)) for u in range(3000)]
    assert set(picks) == set(range(30))
    assert max(Counter(picks).values()) < 3 * 3000 / 30
    # the same request gives the same track; another seed gives other tracks
    assert picks == [random.recommend(listen(user=u, track=u % 30)) for u in range(3000)]
    assert picks != [Random(catalog, SEED + 1).recommend(listen(user=u, track=u % 30)) for u in range(3000)]


def test_contextual_picks_from_the_previous_tracks_list_else_falls_back(tables):
    catalog, tracks, _, _ = tables
    contextual = Contextual(tracks, Random(catalog, SEED), SEED)
    assert outcomes(contextual, track=0) == {5, 6, 7}
    assert len(outcomes(contextual, track=3)) > 5     # no row: Random over the catalog
    assert len(outcomes(contextual, track=1)) > 5     # empty row: Random too
    assert Contextual(tracks, None, SEED).recommend(listen(track=3)) is None


def test_indexed_uses_the_users_list_then_its_fallback(tables):
    catalog, _, users, top = tables
    indexed = Indexed(users, TopPop(top, 2, SEED), SEED)
    assert outcomes(indexed, user=1) == {11, 12}
    assert outcomes(indexed, user=2) == {20, 21}      # no list: top-pop, top_k = 2


def test_toppop_picks_among_the_top_k(tables):
    top = tables[3]
    assert outcomes(TopPop(top, 3, SEED)) == {20, 21, 22}
    assert outcomes(TopPop(top, 100, SEED)) == {20, 21, 22, 23}


def test_sticky_artist_follows_its_anchor_and_avoids_played_tracks(files):
    catalog = files[0]
    previous = StickyArtist(catalog, "previous", SEED)
    first = StickyArtist(catalog, "first", SEED)
    history = [(25, 1.0), (13, 0.4)]
    assert outcomes(previous, track=13, history=history) <= set(range(10, 20)) - {13}
    assert outcomes(first, track=13, history=history) <= set(range(20, 30)) - {25}
    everything = [(t, 1.0) for t in range(20, 30)]    # all of a2 played: replay rather than fail
    assert first.recommend(listen(track=29, history=everything)) in range(20, 30)


@pytest.fixture
def updated(tables):
    catalog, tracks, users, top = tables
    return ContextualUpdated(
        main=Contextual(tracks, None, SEED),
        fallback=Indexed(users, TopPop(top, 100, SEED), SEED),
        sticky_first_artist=StickyArtist(catalog, "first", SEED),
        min_time=0.1, low_mean_time=0.3, window=3)


def test_contextual_updated_uses_the_nn_table_first(updated):
    assert outcomes(updated, user=2, track=0, time=0.5, history=[(28, 1.0)]) == {5, 6, 7}


def test_contextual_updated_low_previous_time_goes_straight_to_the_fallback(updated):
    history = [(28, 1.0), (0, 0.05)]
    assert outcomes(updated, user=1, track=0, time=0.05, history=history) == {11, 12}
    assert outcomes(updated, user=2, track=0, time=0.05, history=history) == {20, 21, 22, 23}


def test_contextual_updated_unknown_track_goes_to_svd_then_toppop(updated):
    assert outcomes(updated, user=1, track=4, time=0.9, history=[(28, 1.0)]) == {11, 12}
    assert outcomes(updated, user=2, track=4, time=0.9, history=[(28, 1.0)]) == {20, 21, 22, 23}


def test_contextual_updated_low_recent_mean_goes_to_the_first_tracks_artist(updated):
    bad_run = [(28, 1.0), (2, 0.2), (3, 0.2), (0, 0.2)]   # last three mean 0.2 < 0.3
    assert outcomes(updated, user=1, track=0, time=0.2, history=bad_run) <= set(range(20, 30))
    good_run = [(28, 1.0), (2, 0.2), (3, 0.9), (0, 0.5)]
    assert outcomes(updated, user=2, track=0, time=0.5, history=good_run) == {5, 6, 7}


def test_contextual_updated_with_nothing_found_goes_to_the_first_tracks_artist(tables):
    catalog, tracks, users, _ = tables
    bare = ContextualUpdated(Contextual(tracks, None, SEED), Indexed(users, None, SEED),
                             StickyArtist(catalog, "first", SEED), 0.1, 0.3, 3)
    assert outcomes(bare, user=2, track=4, time=0.9, history=[(28, 1.0)]) <= set(range(20, 30))


def test_sessions_accumulate_and_reset(store):
    async def scenario():
        sessions = store.sessions
        assert list(await sessions.listen(7, 3, 1.0)) == [(3, 1.0)]
        assert list(await sessions.listen(7, 4, 0.25)) == [(3, 1.0), (4, 0.25)]
        assert list(await sessions.listen(8, 9, 1.0)) == [(9, 1.0)]          # users are separate
        await sessions.end(7)
        assert list(await sessions.listen(7, 5, 0.5)) == [(5, 0.5)]
        await store.close()  # in the loop that used it
    asyncio.run(scenario())


@pytest.mark.parametrize("backend", ["memory", pytest.param("redis", marks=pytest.mark.slow)])
def test_an_idle_session_is_forgotten(backend, request):
    """Idle limit 1 s; sleeps only overrun, so each "not idle yet" has 0.4 s of margin."""
    redis_url = request.getfixturevalue("redis_url") if backend == "redis" else None
    store = open_store(backend, redis_url, f"test-{uuid.uuid4().hex}", session_idle_s=1.0)

    async def scenario():
        await store.sessions.listen(7, 3, 1.0)
        await store.sessions.listen(8, 9, 1.0)
        await asyncio.sleep(0.6)
        assert list(await store.sessions.listen(7, 4, 0.5)) == [(3, 1.0), (4, 0.5)]  # not idle yet
        await asyncio.sleep(0.6)   # user 8 idle 1.2 s, user 7 only 0.6 s
        assert list(await store.sessions.listen(8, 5, 0.5)) == [(5, 0.5)]
        assert list(await store.sessions.listen(7, 6, 0.5)) == [(3, 1.0), (4, 0.5), (6, 0.5)]
        await asyncio.sleep(1.2)
        assert list(await store.sessions.listen(7, 1, 1.0)) == [(1, 1.0)]
        await store.close()
    asyncio.run(scenario())


def test_a_redis_history_reads_as_the_list_of_its_entries():
    history = RedisHistory([b"3:1.0", b"40:0.25", b"7:0"])
    expected = [(3, 1.0), (40, 0.25), (7, 0.0)]
    assert len(history) == 3 and history == expected and list(history) == expected
    assert history[0] == (3, 1.0) and history[-1] == (7, 0.0)
    assert history[-2:] == expected[-2:] and history[1:] == expected[1:]
    assert [track for track, _ in history] == [3, 40, 7] and history != expected[:2]
    assert history == RedisHistory([b"3:1.0", b"40:0.25", b"7:0"])


@pytest.mark.slow
def test_redis_sessions_survive_a_redis_script_flush_and_batch_concurrent_calls(redis_url):
    store = RedisStore(redis_url, f"test-{uuid.uuid4().hex}", IDLE_S)

    async def scenario():
        histories = await asyncio.gather(*(store.sessions.listen(u, 1, 1.0) for u in range(50)))
        assert histories == [[(1, 1.0)]] * 50            # 50 concurrent calls, one pipeline
        redis.Redis.from_url(url=redis_url).script_flush()  # e.g. Redis restarted
        assert await store.sessions.listen(3, 2, 0.5) == [(1, 1.0), (2, 0.5)]
        await asyncio.gather(*(store.sessions.end(u) for u in range(50)))
        assert await store.sessions.listen(3, 4, 1.0) == [(4, 1.0)]
        await store.sessions.end(3)
        await store.close()
    asyncio.run(scenario())


@pytest.mark.slow
def test_both_stores_give_the_same_recommendations(files, redis_url):
    """Request-derived randomness: the same traffic gives the same tracks on any store (and
    Redis's read-ahead of rows with the session update answers like direct lookups)."""
    catalog, tracks_path, users_path, top_path = files

    async def play(store) -> list[int]:
        tracks = store.keyed_table(read_keyed(tracks_path, "tracks", catalog.id_array))
        users = store.keyed_table(read_keyed(users_path, "users", catalog.id_array))
        store.in_service([tracks, users])  # Redis: rows come with the session update
        recommender = ContextualUpdated(
            Contextual(tracks, None, SEED),
            Indexed(users, TopPop(store.track_list(read_list(top_path, catalog.id_array)), 100, SEED), SEED),
            StickyArtist(catalog, "first", SEED), 0.1, 0.3, 3)
        picks = []
        for user in range(20):
            track, time = user % 3, 1.0
            for _ in range(5):
                history = await store.sessions.listen(user, track, time)
                track = recommender.recommend(Listen(user, track, time, history))
                picks.append(track)
                time = (track % 10) / 10
            await store.sessions.end(user)
        await store.close()
        return picks

    assert asyncio.run(play(MemoryStore(IDLE_S))) == asyncio.run(play(RedisStore(redis_url, f"test-{uuid.uuid4().hex}", IDLE_S)))


def arms(*weights: float) -> Experiment:
    return Experiment("EXP", tuple(Arm(f"A{i}", w, "random", {}, {}) for i, w in enumerate(weights)))


def test_split_follows_the_weights_and_the_documented_hash():
    experiment = arms(1, 1)
    split = Split((experiment,), {("EXP", "A0"): "r0", ("EXP", "A1"): "r1"})
    counts = Counter(split.assign(user)[1]["EXP"] for user in range(10_000))
    assert abs(counts["A0"] - 5_000) < 300
    for user in range(100):  # mmh3("<experiment>:<user>") mapped to [0, 1) against 0.5
        expected = "A0" if mmh3.hash(f"EXP:{user}", signed=False) / 2**32 < 0.5 else "A1"
        recommender, assigned = split.assign(user)
        assert assigned == {"EXP": expected}
        assert recommender == {"A0": "r0", "A1": "r1"}[expected]


def test_split_gives_a_user_the_same_arms_again_after_its_recent_users_are_forgotten(monkeypatch):
    """Assignments of recent users are kept, and the keeper emptied when full: a user seen
    before, kept or forgotten, gets the arms of the documented hash."""
    monkeypatch.setattr(experiments, "_RECENT_USERS", 7)
    second = Experiment("OTHER", (Arm("X", 1, "random", {}, {}), Arm("Y", 2, "random", {}, {})))
    split = Split((arms(1, 1), second), {("EXP", "A0"): "r0", ("EXP", "A1"): "r1",
                                         ("OTHER", "X"): "x", ("OTHER", "Y"): "y"})

    def expected(user: int) -> dict[str, str]:
        exp = mmh3.hash(f"EXP:{user}", signed=False) / 2**32
        other = mmh3.hash(f"OTHER:{user}", signed=False) / 2**32
        return {"EXP": "A0" if exp < 0.5 else "A1", "OTHER": "X" if other < 1 / 3 else "Y"}

    for user in [*range(20), *range(20), 3, 3, 19]:
        recommender, assigned = split.assign(user)
        assert assigned == expected(user)
        assert recommender == {"A0": "r0", "A1": "r1"}[assigned["EXP"]]


def test_split_one_arm_takes_everyone_and_zero_weight_takes_no_one():
    one = Split((arms(1),), {("EXP", "A0"): "r"})
    assert {one.assign(u)[1]["EXP"] for u in range(1000)} == {"A0"}
    skewed = Split((arms(0, 3),), {("EXP", "A0"): "r0", ("EXP", "A1"): "r1"})
    assert {skewed.assign(u)[1]["EXP"] for u in range(1000)} == {"A1"}


def test_every_experiment_is_logged_and_the_first_one_serves():
    first, second = arms(1, 1), Experiment("OTHER", (Arm("X", 1, "random", {}, {}), Arm("Y", 1, "random", {}, {})))
    split = Split((first, second), {("EXP", "A0"): "r0", ("EXP", "A1"): "r1",
                                    ("OTHER", "X"): "x", ("OTHER", "Y"): "y"})
    pairs = Counter(tuple(split.assign(u)[1].values()) for u in range(4000))
    assert len(pairs) == 4 and min(pairs.values()) > 800   # independent splits
    assert {split.assign(u)[0] for u in range(100)} == {"r0", "r1"}


def test_registry_lists_every_built_in_module_with_its_slots_and_defaults():
    from service.recommenders.registry import built_in
    specs = built_in()
    assert set(specs) >= {"random", "toppop", "sticky_artist", "indexed", "contextual",
                          "contextual_updated"}
    assert specs["contextual_updated"].tables["nn"].kind == "tracks"
    assert specs["contextual_updated"].params().window == 3
    assert not specs["indexed"].tables["toppop"].required


def test_an_arm_may_name_a_recommender_class_outside_the_service(tmp_path, monkeypatch, files):
    """`package.module:Class` from the Python path is validated and built like a built-in."""
    (tmp_path / "my_recs.py").write_text(
        "from pydantic import Field\n"
        "from service.recommenders.registry import Params, Slot, register\n"
        "class FirstOfTop:\n"
        "    tables = {'toppop': Slot('toppop')}\n"
        "    class Params(Params):\n"
        "        offset: int = Field(0, ge=0)\n"
        "    def __init__(self, items, offset):\n"
        "        self.items, self.offset = items, offset\n"
        "    @classmethod\n"
        "    def build(cls, ctx):\n"
        "        return cls(ctx.table('toppop').items(), ctx.params.offset)\n"
        "    def recommend(self, listen):\n"
        "        return int(self.items[self.offset])\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from service.recommenders.registry import lookup
    from service.serving import _Tables
    spec = lookup("my_recs:FirstOfTop")
    catalog, _, _, top = files
    recommender = spec.build(spec.params(offset=2), {"toppop": top}, catalog, SEED,
                             _Tables(MemoryStore(IDLE_S), catalog).load)
    assert recommender.recommend(Listen(1, 0, 1.0, ((0, 1.0),))) == 22
