"""The botify service through its public interfaces: HTTP (in-process and as a real
`python -m service` process), its event log, its CLI and its config."""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
with warnings.catch_warnings():  # starlette would rather have httpx2; httpx is the project's client
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient, WebSocketDisconnect

from infra.ports import free_port
from infra.unix_socket import new_socket_path
from service.app import create_app
from service.jsonapp import HttpError, JsonApp, Router
from service.config import ConfigError, load_config, shipped_with
from service.eventlog import EventLog
from contract.events import make_event, validation_error
from service.tables import TableError, read_keyed
from sim.remote import Responses
from support.sim import serve_config
from support.waiting import wait_for

pytestmark = pytest.mark.heavy(5)

REPO = Path(__file__).resolve().parents[1]
TOKEN = "test-token"
TRACKS = 100  # tracks 0..99, artist a<track // 10>


def jsonl(path: Path, records) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


@pytest.fixture
def world(tmp_path) -> dict[str, Path]:
    return make_world(tmp_path)


def make_world(tmp_path: Path) -> dict[str, Path]:
    return {
        "catalog": jsonl(tmp_path / "tracks.jsonl", [{"track": t, "artist": f"a{t // 10}", "title": f"t{t}"}
                                                     for t in range(TRACKS)]),
        "tracks": jsonl(tmp_path / "contextual.jsonl", [{"track": t, "recommendations": [(t + 1) % TRACKS, (t + 2) % TRACKS]}
                                                        for t in range(TRACKS)]),
        "other": jsonl(tmp_path / "contextual2.jsonl", [{"track": t, "recommendations": [(t + 50) % TRACKS]}
                                                        for t in range(TRACKS)]),
        "users": jsonl(tmp_path / "svd.jsonl", [{"user": u, "tracks": [u % TRACKS]} for u in range(50)]),
        "toppop": (tmp_path / "top.json", (tmp_path / "top.json").write_bytes(b"[1, 2, 3]"))[0],
    }


def ab_arms(world) -> list[dict]:
    return [{"name": "C", "recommender": "contextual", "tables": {"tracks": str(world["tracks"])}},
            {"name": "T1", "recommender": "contextual_updated",
             "tables": {"nn": str(world["tracks"]), "users": str(world["users"]), "toppop": str(world["toppop"])}}]


def write_config(tmp_path: Path, world, arms: list[dict] | None = None, **log) -> Path:
    config = shipped_with({
        "seed": 5, "catalog": str(world["catalog"]), "admin": {"token": TOKEN},
        "experiments": [{"name": "AB", "arms": arms or ab_arms(world)}],
        "log": {"dir": str(tmp_path / "logs"), "replica": "r0", "flush_interval_s": 0.01, **log}})
    path = tmp_path / "service.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def event_lines(folder: Path) -> list[dict]:
    """Every event of a replica folder, checking that no line is torn or off-contract."""
    events = []
    for file in folder.glob("events.jsonl*"):
        data = file.read_bytes()
        assert not data or data.endswith(b"\n"), f"{file.name} ends in a partial line"
        for line in data.splitlines():
            event = orjson.loads(line)
            assert validation_error(event) is None, (validation_error(event), line)
            events.append(event)
    return events


@pytest.fixture
def config_path(tmp_path, world) -> Path:
    return write_config(tmp_path, world)


@pytest.fixture
def asgi_client(config_path):
    """The app in process, through ASGI."""
    with TestClient(create_app(load_config(config_path))) as client:
        yield client


@pytest.fixture(scope="module")
def served_url(tmp_path_factory):
    """The URL of one real `python -m service` for the module's stateless HTTP checks."""
    folder = tmp_path_factory.mktemp("served")
    process, url = serve_config(write_config(folder, make_world(folder)))
    yield url
    stop_service(process)


@pytest.fixture
def client(served_url):
    """An HTTP client of the real server (uvicorn serving the app)."""
    with httpx.Client(base_url=served_url) as client:
        yield client


def test_api_answers_like_the_course_service(client, tmp_path):
    assert client.get("/").status_code == 200
    assert client.get("/track/42").json() == {"track": 42, "artist": "a4", "title": "t42"}
    missing = client.get("/track/4242")
    assert missing.status_code == 404 and "not in the catalog" in missing.json()["detail"]
    answer = client.post("/next/7", json={"track": 3, "time": 0.5})
    assert answer.status_code == 200 and answer.json()["user"] == 7
    assert 0 <= answer.json()["track"] < TRACKS
    assert client.post("/last/7", json={"track": answer.json()["track"], "time": 0.0}).json() == {"user": 7}
    document = client.get("/openapi.json").json()
    assert {"/", "/track/{track}", "/next/{user}", "/last/{user}"} <= set(document["paths"])


BAD_REQUESTS = [
    ("POST", "/next/1", b'{"track": 1,', 400, "not valid JSON"),
    ("POST", "/next/1", b"", 400, "not valid JSON"),
    ("POST", "/next/1", b'{"track": 1, "time": NaN}', 400, "not valid JSON"),
    ("POST", "/next/1", b"[1, 0.5]", 422, "JSON object"),
    ("POST", "/next/1", b'{"track": 1}', 422, "missing field(s) ['time']"),
    ("POST", "/next/1", b'{"track": 1, "time": 0.5, "user": 2}', 422, "unexpected field(s) ['user']"),
    ("POST", "/next/1", b'{"track": "1", "time": 0.5}', 422, "track must be an integer"),
    ("POST", "/next/1", b'{"track": true, "time": 0.5}', 422, "track must be an integer"),
    ("POST", "/next/1", b'{"track": 1.0, "time": 0.5}', 422, "track must be an integer"),
    ("POST", "/next/1", b'{"track": -3, "time": 0.5}', 422, "track must be an integer"),
    ("POST", "/next/1", b'{"track": 1, "time": true}', 422, "time must be a number"),
    ("POST", "/next/1", b'{"track": 1, "time": 1.5}', 422, "time must be a number between 0 and 1"),
    ("POST", "/last/1", b'{"track": 1, "time": -0.1}', 422, "time must be a number between 0 and 1"),
    ("POST", "/next/1", b'{"track": 18446744073709551616, "time": 0.5}', 422, "track must be an integer"),
    ("POST", "/next/1", b'{"track": 9223372036854775807, "time": 0.5}', 422, "not in the catalog"),
    ("POST", "/next/1", b'{"track": 4242, "time": 0.5}', 422, "not in the catalog"),
    ("POST", "/next/-1", b'{"track": 1, "time": 0.5}', 422, "user must be an integer"),
    ("POST", "/next/abc", b'{"track": 1, "time": 0.5}', 422, "user must be an integer"),
    ("POST", "/next/99999999999999999999", b'{"track": 1, "time": 0.5}', 422, "user must be an integer"),
    ("POST", "/next/1", b"x" * 5000, 413, "too large"),
    ("GET", "/next/1", b"", 405, "not allowed"),
    ("GET", "/track/-1", b"", 422, "track must be an integer"),
    ("GET", "/nowhere", b"", 404, "no route"),
    ("POST", "/admin/reload", b"", 403, "X-Admin-Token"),
    ("POST", "/next/1", b'\xff{"track": 1, "time": 0.5}', 400, "not valid JSON"),
    ("POST", "/next/1", b'{"track": 1, "time": 0.5}' + b" " * 4072, 413, "too large"),
    ("POST", "/next/9223372036854775808", b'{"track": 1, "time": 0.5}', 422, "user must be an integer"),
    ("POST", "/next/%D9%A3", b'{"track": 1, "time": 0.5}', 422, "user must be an integer"),  # a non-ASCII digit
    ("POST", "/next/", b'{"track": 1, "time": 0.5}', 404, "no route '/next/'"),
    ("POST", "/next/1/2", b'{"track": 1, "time": 0.5}', 404, "no route '/next/1/2'"),
    ("DELETE", "/", b"", 405, "method DELETE is not allowed on '/'"),
    ("POST", "/openapi.json", b"", 405, "not allowed"),
]


@pytest.mark.parametrize("method,path,body,status,message", BAD_REQUESTS,
                         ids=[f"{m} {p} {b[:30]!r}" for m, p, b, *_ in BAD_REQUESTS])
def test_bad_input_gets_a_4xx_json_message(client, method, path, body, status, message):
    response = client.request(method, path, content=body)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


@pytest.mark.parametrize("path,body", [
    ("/next/9223372036854775807", b'{"track": 1, "time": 0.5}'),      # the largest id
    ("/next/007", b'{"time": 0.5, "track": 1}'),                      # leading zeros, any key order
    ("/next/1", b'{"track": 1, "time": 1}'),                          # an integer time
    ("/next/1", b'  {"track":1,"time":0}\n'),
    ("/next/1", b'{"track": 1, "time": 0.5}' + b" " * 4071),          # exactly 4096 bytes
])
def test_good_input_in_any_json_form_is_answered(client, path, body):
    response = client.post(path, content=body)
    assert response.status_code == 200, response.text
    assert response.json()["user"] == int(path.rsplit("/", 1)[1])


def test_every_answer_is_json_with_its_length(client):
    """Answers of other lengths in turn, and of the same length again (their start messages are
    built once per length)."""
    nexts = [("POST", f"/next/{user}", b'{"track": 1, "time": 0.5}') for user in (1, 123456, 1, 2, 123456)]
    for method, path, body in [("GET", "/", b""), ("GET", "/track/1", b""), ("GET", "/openapi.json", b""),
                               *nexts, ("GET", "/nowhere", b""),
                               ("GET", "/next/1", b""), ("POST", "/next/1", b"{"), ("POST", "/next/1", b"x" * 5000)]:
        response = client.request(method, path, content=body)
        assert response.headers["content-type"] == "application/json", (method, path)
        assert int(response.headers["content-length"]) == len(response.content)
        orjson.loads(response.content)


def test_a_wrong_method_is_told_the_allowed_ones(client):
    assert client.get("/next/1").headers["allow"] == "POST"
    assert client.post("/").headers["allow"] == "GET, HEAD"
    assert client.head("/track/1").status_code == 200


def test_the_request_content_type_is_not_checked(client):
    """Clients need not label the body: it is parsed as JSON whatever the header says."""
    for content_type in ("application/json", "text/plain", "application/octet-stream"):
        response = client.post("/next/1", content=b'{"track": 1, "time": 0.5}',
                               headers={"content-type": content_type})
        assert response.status_code == 200, (content_type, response.text)


# ---- the ASGI interface called directly: bodies in several messages, clients that leave

def call_asgi(app, method: str, path: str, chunks: list[bytes]) -> tuple[list[dict], list[bytes]]:
    """Call an ASGI app as a server would, the body arriving as one `http.request` message per
    chunk; return the messages the app sent and the chunks it did not read."""
    unread = list(chunks)
    sent = []

    async def receive() -> dict:
        if not unread:
            return {"type": "http.disconnect"}
        chunk = unread.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(unread)}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": [(b"host", b"test")]}
    asyncio.run(app(scope, receive, send))
    return sent, unread


@pytest.fixture
def asgi_app(config_path):
    app = create_app(load_config(config_path))
    yield app
    asyncio.run(app.service.close())


def answer(sent: list[dict]) -> tuple[int, dict]:
    start, body = sent
    assert start["type"] == "http.response.start" and body["type"] == "http.response.body"
    return start["status"], orjson.loads(body["body"])


def test_a_body_in_several_messages_is_read_whole(asgi_app, tmp_path):
    sent, unread = call_asgi(asgi_app, "POST", "/next/5", [b'{"track"', b": 3, ", b'"time": 0.5}'])
    status, body = answer(sent)
    assert status == 200 and body["user"] == 5 and not unread
    asyncio.run(asgi_app.service.close())
    assert [(e["user"], e["track"]) for e in event_lines(tmp_path / "logs" / "r0")] == [(5, 3)]


def test_a_body_over_the_limit_is_refused_without_reading_the_rest(asgi_app):
    sent, unread = call_asgi(asgi_app, "POST", "/next/5", [b" " * 3000] * 5)
    status, body = answer(sent)
    assert status == 413 and "over 4096 bytes" in body["detail"]
    assert len(unread) == 3  # the first 6000 bytes were enough to refuse


def test_a_client_gone_before_its_body_gets_no_answer_and_no_event(asgi_app, tmp_path):
    sent, _ = call_asgi(asgi_app, "POST", "/next/5", [])  # the first message is a disconnect
    assert sent == []
    asyncio.run(asgi_app.service.close())
    assert event_lines(tmp_path / "logs" / "r0") == []


def test_an_unexpected_error_is_a_logged_json_500_and_mapped_errors_follow_subclasses(caplog):
    async def broken(request):
        raise ZeroDivisionError("boom")

    async def missing(request):
        raise KeyError("k")  # a LookupError: mapped below

    app = JsonApp(Router([("GET", "/broken", broken), ("GET", "/missing", missing)]), None, 100,
                  errors={LookupError: lambda e: HttpError(409, f"mapped {type(e).__name__}")})
    status, body = answer(call_asgi(app, "GET", "/broken", [b""])[0])
    assert status == 500 and "ZeroDivisionError" in body["detail"]
    assert "boom" in caplog.text  # the traceback is in the log, not in the answer
    assert answer(call_asgi(app, "GET", "/missing", [b""])[0]) == (409, {"detail": "mapped KeyError"})


@pytest.mark.parametrize("routes,message", [
    ([("GET", "/a/{x}/b", None)], "last segment"),
    ([("GET", "a", None)], "absolute path"),
    ([("GET", "/a", None), ("GET", "/a", None)], "defined twice"),
    ([("GET", "/a/{x}", None), ("POST", "/a/{y}", None)], "already has parameter {x}"),
])
def test_the_routing_table_refuses_patterns_it_cannot_match(routes, message):
    with pytest.raises(ValueError) as error:
        Router(routes)
    assert message in str(error.value)


def test_websockets_are_refused(asgi_client):
    with pytest.raises(WebSocketDisconnect):
        with asgi_client.websocket_connect("/"):
            pass


def test_a_redis_outage_is_a_503_with_a_json_message(tmp_path, world):
    """A real redis-server, stopped while the service runs."""
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"],
                                        capture_output=True).stdout == b"PONG\n",
                 30, "redis-server to answer", server)
        path = write_config(tmp_path, world)
        data = yaml.safe_load(path.read_text())
        data["store"].update({"backend": "redis", "redis_url": f"redis://127.0.0.1:{port}/0"})
        path.write_text(yaml.safe_dump(data))
        with TestClient(create_app(load_config(path))) as client:
            assert client.post("/next/1", json={"track": 3, "time": 0.5}).status_code == 200
            server.terminate()
            server.wait(30)
            response = client.post("/next/1", json={"track": 3, "time": 0.5})
            assert response.status_code == 503, response.text
            assert "the store is unavailable" in response.json()["detail"]
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(30)


def test_only_answered_requests_are_logged_by_the_contract(config_path, tmp_path):
    answered = 0
    with TestClient(create_app(load_config(config_path))) as client:
        for user in range(40):
            for method, path, body, *_ in BAD_REQUESTS[:8]:   # refused: not logged
                client.request(method, path.replace("/1", f"/{user}"), content=body)
            track = user % TRACKS
            for _ in range(3):
                response = client.post(f"/next/{user}", json={"track": track, "time": 0.5})
                track = response.json()["track"]
                answered += response.status_code == 200
            answered += client.post(f"/last/{user}", json={"track": track, "time": 0.25}).status_code == 200
    events = event_lines(tmp_path / "logs" / "r0")
    assert len(events) == answered == 160
    assert {e["experiments"]["AB"] for e in events} == {"C", "T1"}
    assert all((e["recommendation"] is None) == (e["message"] == "last") for e in events)
    assert all(0 <= e["latency"] < 1 for e in events)
    # "next" events carry their position in the user's session (0, 1, 2 here), for ordering
    # requests that share a millisecond.
    assert sorted(e["position"] for e in events if e["message"] == "next") == [0] * 40 + [1] * 40 + [2] * 40


def play(client, users) -> dict[int, list[int]]:
    """Three requests per user, users interleaved in the given order."""
    tracks = {user: user % TRACKS for user in users}
    picks = {user: [] for user in users}
    for _ in range(3):
        for user in users:
            tracks[user] = client.post(f"/next/{user}", json={"track": tracks[user], "time": 0.9}).json()["track"]
            picks[user].append(tracks[user])
    return picks


def test_same_traffic_gives_the_same_recommendations_whatever_the_interleaving(tmp_path, world):
    arms = [{"name": "R", "recommender": "random"}]
    results = []
    for order in (range(30), reversed(range(30))):
        folder = tmp_path / f"run{len(results)}"
        folder.mkdir()
        with TestClient(create_app(load_config(write_config(folder, world, arms)))) as client:
            results.append(play(client, list(order)))
    assert results[0] == results[1]
    assert len({track for picks in results[0].values() for track in picks}) > 20  # and random


@pytest.mark.slow
def test_two_redis_replicas_share_sessions_and_answer_like_one_memory_replica(tmp_path, world, redis_url):
    """A user's requests alternate between two replicas on one Redis: the session history
    (which ContextualUpdated reads) is shared, so the answers equal one memory replica's."""
    def config(folder: str, backend: str) -> Path:
        (tmp_path / folder).mkdir()
        path = write_config(tmp_path / folder, world)
        data = yaml.safe_load(path.read_text())
        data["store"].update({"backend": backend, "redis_url": redis_url, "redis_prefix": f"test-{tmp_path.name}"})
        path.write_text(yaml.safe_dump(data))
        return path

    def session(clients, user: int) -> list[int]:
        track, answers = user % TRACKS, []
        for step in range(12):
            time_ = [1.0, 0.05, 0.0, 0.1, 0.9][step % 5]   # exercises every ContextualUpdated branch
            track = clients[step % len(clients)].post(f"/next/{user}", json={"track": track, "time": time_}).json()["track"]
            answers.append(track)
        clients[0].post(f"/last/{user}", json={"track": track, "time": 0.5})
        return answers

    with TestClient(create_app(load_config(config("a", "redis")))) as a, \
            TestClient(create_app(load_config(config("b", "redis")))) as b:
        shared = [session([a, b], user) for user in range(40)]
    with TestClient(create_app(load_config(config("m", "memory")))) as memory:
        alone = [session([memory], user) for user in range(40)]
    assert shared == alone


def test_reload_swaps_tables_and_refuses_bad_files(tmp_path, world):
    def arm(table):
        return [{"name": "C", "recommender": "contextual", "tables": {"tracks": str(table)}}]
    path = write_config(tmp_path, world, arm(world["tracks"]))
    with TestClient(create_app(load_config(path), lambda: load_config(path))) as client:
        def next_of(track):
            return client.post("/next/1", json={"track": track, "time": 1.0}).json()["track"]
        assert next_of(10) in (11, 12)
        assert client.post("/admin/reload", headers={"X-Admin-Token": "wrong"}).status_code == 403
        write_config(tmp_path, world, arm(world["other"]))
        reloaded = client.post("/admin/reload", headers={"X-Admin-Token": TOKEN})
        assert reloaded.status_code == 200 and str(world["other"]) in reloaded.json()["tables"]
        assert next_of(10) == 60
        broken = tmp_path / "broken.jsonl"
        for content, message in [(world["other"].read_bytes()[:-40], "truncated"),
                                 (world["users"].read_bytes(), "is this a tracks-keyed table"),
                                 (b'{"track": 1, "recommendations": [4242]}\n', "not in the catalog")]:
            broken.write_bytes(content)
            write_config(tmp_path, world, arm(broken))
            refused = client.post("/admin/reload", headers={"X-Admin-Token": TOKEN})
            assert refused.status_code == 422 and message in refused.json()["detail"]
            assert next_of(10) == 60                       # the previous tables stay in service
        write_config(tmp_path, world, arm(tmp_path / "absent.jsonl"))
        refused = client.post("/admin/reload", headers={"X-Admin-Token": TOKEN})
        assert "not found" in refused.json()["detail"] and next_of(10) == 60


@pytest.mark.parametrize("content", [
    b'{"track":1,"recommendations":[2,3]}\n{"track":2,"recommendations":[]}\n{"track":10,"recommendations":[1]}\n',
    b'{"track": 1, "recommendations": [2, 3]}\n\n{"track": 2, "recommendations": []}\n{"track": 10, "recommendations": [1]}',
    b'{"recommendations":[2,3],"track":1}\r\n{"track":2,"recommendations":[]}\r\n{"recommendations":[1],"track":10}\r\n',
], ids=["compact", "spaced-blank-line-no-final-newline", "reordered-crlf"])
def test_track_tables_in_any_json_layout_read_the_same(tmp_path, content):
    path = tmp_path / "table.jsonl"
    path.write_bytes(content)
    rows = read_keyed(path, "tracks", np.arange(TRACKS))
    assert rows.keys.tolist() == [1, 2, 10] and rows.offsets.tolist() == [0, 2, 2, 3]
    assert rows.flat.tolist() == [2, 3, 1]


@pytest.mark.parametrize("content,message", [
    (b'{"track":1,"recommendations":[2,,3]}\n', "invalid JSON"),
    (b'{"track":1,"recommendations":[2 3]}\n', "invalid JSON"),
    (b'{"track":1,"recommendations":[2.5]}\n', "must be integers, found 2.5"),
    (b'{"track":1,"recommendations":[true]}\n', "must be integers, found True"),
    (b'{"track":1,"recommendations":[-2]}\n', "must be non-negative"),
    (b'{"track":1,"recommendations":[02]}\n', "leading zero"),
    (b'{"track":1,"recommendations":[99999999999999999999]}\n', "must be integers"),
    (b'{"track":1,"recommendations":[2]}\n{"track":1,"recommendations":[3]}\n', "duplicate 'track' keys"),
    (b'{"track":1,"recommendations":[2]}\n{"track":2,"recommen', "truncated"),
    (b'{"track":1,"recommendations":[2],"score":1}\n', "expected an object with keys"),
    (b'{"track":1,"recommendations":[500]}\n', "track 500 is not in the catalog"),
    (b"", "table is empty"),
])
def test_bad_track_tables_are_refused_saying_why(tmp_path, content, message):
    path = tmp_path / "table.jsonl"
    path.write_bytes(content)
    with pytest.raises(TableError) as error:
        read_keyed(path, "tracks", np.arange(TRACKS))
    assert message in str(error.value) and str(path) in str(error.value)


@pytest.mark.parametrize("change,message", [
    (lambda c: c.update(seed="x"), "seed: Input should be a valid integer"),
    (lambda c: c.update(colour="red"), "colour: unknown key (a typo?)"),
    (lambda c: c["log"].update(max_bytes=10), "log.max_bytes: Input should be greater than or equal to 1024"),
    (lambda c: c["store"].update(backend="sqlite"), "store.backend: Input should be 'memory' or 'redis'"),
    (lambda c: c["store"].update(session_idle_s=0), "store.session_idle_s: Input should be greater than or equal to 0.001"),
    (lambda c: c["experiments"][0]["arms"][0].update(recommender="magic"),
     "experiments[0].arms[0].recommender: unknown recommender 'magic': use one of "),
    (lambda c: c["experiments"][0]["arms"][0].update(recommender="no_such_module:Thing"),
     "experiments[0].arms[0].recommender: recommender 'no_such_module:Thing': cannot import"),
    (lambda c: c["experiments"][0]["arms"][0].update(weight=True), "experiments[0].arms[0].weight: Input should be a valid number"),
    (lambda c: c["experiments"][0]["arms"][1]["tables"].pop("nn"), "experiments[0].arms[1].tables.nn is required"),
    (lambda c: c["experiments"][0]["arms"][0]["tables"].update(nn="x"), "experiments[0].arms[0].tables: unknown slot(s) ['nn']"),
    (lambda c: c["experiments"][0]["arms"][1].update(params={"min_time": 2}),
     "experiments[0].arms[1].params.min_time: Input should be less than or equal to 1"),
    (lambda c: c["experiments"][0]["arms"][1].update(params={"windw": 2}),
     "experiments[0].arms[1].params.windw: unknown key (a typo?)"),
    (lambda c: c["experiments"].append(c["experiments"][0]), "experiment name(s) ['AB'] used twice"),
    (lambda c: c["server"].update(uds="/tmp/" + "s" * 120), "server.uds: a Unix socket path must be at most 107 bytes"),
    (lambda c: c["experiments"][0]["arms"][0].update(weight=0) or c["experiments"][0]["arms"][1].update(weight=0),
     "must have at least one arm with a positive weight"),
])
def test_config_mistakes_are_refused_naming_the_key(config_path, change, message):
    config = yaml.safe_load(config_path.read_text())
    change(config)
    config_path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as error:
        load_config(config_path)
    assert message in str(error.value)


def test_cli_refuses_a_bad_table_with_a_clear_message(tmp_path, world):
    world["tracks"].write_bytes(world["tracks"].read_bytes()[:-5])   # truncated
    result = subprocess.run([sys.executable, "-m", "service", "--config", str(write_config(tmp_path, world))],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "arm 'C'" in result.stderr and "truncated" in result.stderr and str(world["tracks"]) in result.stderr


def test_event_log_rotates_by_size_and_a_restart_continues_the_numbering(tmp_path):
    folder = tmp_path / "r0"
    for run in range(2):
        log = EventLog(folder, max_bytes=1024, flush_interval_s=0.001)
        for i in range(100):
            log.append(make_event("next", 1_700_000_000_000 + i, run, i, 0.5, 0.0001, i + 1, {"AB": "C"}))
        log.close()
    names = sorted(p.name for p in folder.iterdir())
    numbers = sorted(int(n.rsplit(".", 1)[1]) for n in names if n != "events.jsonl")
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) > 20
    events = event_lines(folder)
    assert len(events) == 200
    assert sorted((e["user"], e["track"]) for e in events) == [(r, i) for r in range(2) for i in range(100)]
    assert all(p.stat().st_size <= 1024 for p in folder.iterdir())



_FULL_DISK_WRITER = """
import resource, signal, sys, time
from pathlib import Path
from service.eventlog import EventLog
from contract.events import make_event
folder, limit = Path(sys.argv[1]), int(sys.argv[2])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)    # a write past the limit fails with EFBIG instead
log = EventLog(folder, max_bytes=10**9, flush_interval_s=0.01)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))  # the disk is full
for i in range(300):
    log.append(make_event("next", 1_700_000_000_000 + i, i, i, 0.5, 0.0001, i + 1, {"AB": "C"}))
    time.sleep(0.001)
time.sleep(0.3)                                  # several failed, retried writes
data = (folder / "events.jsonl").read_bytes()
print(len(data), data.endswith(b"\\n"), flush=True)
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))  # space again
log.close()
"""


def test_event_log_survives_a_full_disk_without_torn_or_lost_lines(tmp_path):
    """A write cut short by a full disk (here the kernel's file-size limit: a real short write,
    then EFBIG) leaves no partial line; once space is back every event is written once."""
    folder = tmp_path / "r0"
    result = subprocess.run([sys.executable, "-c", _FULL_DISK_WRITER, str(folder), "5000"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    size, whole_lines = result.stdout.split()
    assert 0 < int(size) <= 5000 and whole_lines == "True"   # while full: no partial line
    assert "will retry" in result.stderr
    data = (folder / "events.jsonl").read_bytes()
    assert data.endswith(b"\n")
    events = event_lines(folder)                     # parses every line: none torn
    assert sorted(e["user"] for e in events) == list(range(300))

# ---- the real process: signals, concurrency, rotation

def stop_service(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


@pytest.fixture
def serve():
    """Start `python -m service` on a config; stop it (SIGTERM) at the end if still running."""
    processes = []

    def start(config: Path, *flags: str) -> tuple[subprocess.Popen, str]:
        process, url = serve_config(config, *flags)
        processes.append(process)
        return process, url

    yield start
    for process in processes:
        stop_service(process)


class Load:
    """Simulated users playing sessions against a URL until `stop`, counting 2xx answers."""

    def __init__(self, url: str, users: int):
        self.url, self.users, self.answered = url, users, 0
        self.stop = asyncio.Event()

    async def run(self) -> None:
        await asyncio.gather(*(self.user(n) for n in range(self.users)))

    async def user(self, number: int) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
            track, step = number % TRACKS, 0
            while not self.stop.is_set():
                step += 1
                endpoint = "last" if step % 7 == 0 else "next"
                try:
                    response = await http.post(f"/{endpoint}/{number}", json={"track": track, "time": 0.5})
                except httpx.TransportError:
                    await asyncio.sleep(0.01)  # shutting down: this request was not answered
                    continue
                if response.status_code == 200:
                    self.answered += 1
                    track = response.json().get("track", track)


def test_under_load_with_rotation_and_sigterm_every_answer_is_one_whole_line(tmp_path, world, serve):
    """Event lines == 2xx answers: nothing lost, nothing doubled, no torn line, across
    rotations, with SIGTERM arriving in the middle of the load."""
    process, url = serve(write_config(tmp_path, world, max_bytes=2048),
                         "--replica", "loaded")

    async def scenario() -> int:
        load = Load(url, 32)
        task = asyncio.create_task(load.run())
        deadline = time.monotonic() + 30  # the machine may be busy: wait for work, not time
        while load.answered < 400 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        process.send_signal(signal.SIGTERM)      # mid-load
        assert await asyncio.to_thread(process.wait, 30) == 0  # a clean stop
        load.stop.set()
        await task
        return load.answered

    answered = asyncio.run(scenario())
    folder = tmp_path / "logs" / "loaded"
    events = event_lines(folder)
    assert answered >= 400
    assert len(events) == answered
    rotated = sorted(int(p.suffix[1:]) for p in folder.glob("events.jsonl.*"))
    assert len(rotated) > 10 and rotated == list(range(1, len(rotated) + 1))
    assert all(os.path.getsize(p) <= 2048 for p in folder.glob("events.jsonl*"))


def test_the_real_server_reads_chunked_bodies_and_answers_head(tmp_path, world, serve):
    _, url = serve(write_config(tmp_path, world))

    def chunks(*parts: bytes):
        yield from parts  # sent with Transfer-Encoding: chunked

    response = httpx.post(f"{url}/next/1", content=chunks(b'{"track": ', b'3, "time": 0.5}'))
    assert response.status_code == 200 and response.json()["user"] == 1
    response = httpx.post(f"{url}/next/1", content=chunks(*[b" " * 1000] * 10))
    assert response.status_code == 413 and "too large" in response.json()["detail"]
    body = b'{"track": 3, "time": 0.5}'
    with raw_connection(url) as connection:   # a chunked body followed by a trailer field
        connection.sendall(b"POST /next/2 HTTP/1.1\r\nhost: botify\r\ntransfer-encoding: chunked\r\n\r\n"
                           b"%x\r\n%s\r\n0\r\nx-checksum: 1\r\n\r\n" % (len(body), body))
        (status, answer), = read_answers(connection, 1)
    assert status == 200 and answer["user"] == 2
    head, get = httpx.head(f"{url}/"), httpx.get(f"{url}/")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(get.content))


def test_the_real_server_serves_on_a_unix_socket_and_stops_cleanly(tmp_path, world):
    """`--uds`: the service answers and logs on the socket (the pipeline's simulator talks to
    it there), and SIGTERM still stops it cleanly with every event written."""
    path = new_socket_path("service.sock")   # short enough for the kernel, whatever tmp_path's depth
    process = subprocess.Popen([sys.executable, "-m", "service", "--config",
                                str(write_config(tmp_path, world)), "--uds", str(path)],
                               cwd=REPO)
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), base_url="http://botify") as http:
            wait_for(lambda: http.get("/").json()["status"] == "ok", 30, "the service to answer",
                     process, retry_on=(httpx.TransportError,))
            answers = [http.post(f"/next/{user}", json={"track": 3, "time": 0.5}) for user in range(20)]
        assert [a.json()["user"] for a in answers] == list(range(20))
    finally:
        stop_service(process)
        shutil.rmtree(path.parent)
    assert process.returncode == 0
    assert sorted(e["user"] for e in event_lines(tmp_path / "logs" / "r0")) == list(range(20))


def raw_connection(url: str) -> socket.socket:
    """A plain TCP connection to the service at `url`, for requests written byte by byte."""
    return socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=30)


def next_request(user: int) -> bytes:
    """A whole POST /next/<user> request, as raw bytes."""
    body = b'{"track": 3, "time": 0.5}'
    return b"POST /next/%d HTTP/1.1\r\nhost: botify\r\ncontent-length: %d\r\n\r\n%s" % (user, len(body), body)


def test_the_real_server_neither_answers_nor_logs_a_request_whose_client_left(tmp_path, world, serve):
    """A client that leaves before its whole body arrived (by Content-Length or before the last
    chunk), even with a complete JSON document sent: no event. Whole requests are logged."""
    process, url = serve(write_config(tmp_path, world))
    body = b'{"track": 3, "time": 0.5}'
    head = b"POST /next/%d HTTP/1.1\r\nhost: botify\r\n"
    requests = {  # user -> what the client sends, then leaves (the last two are whole)
        11: head % 11 + b"content-length: %d\r\n\r\n%s" % (len(body) + 10, body),
        12: head % 12 + b"transfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(body), body),
        13: head % 13 + b"content-length: %d\r\n\r\n%s" % (len(body), body),
        14: head % 14 + b"transfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body),
    }
    for user, sent in requests.items():
        with raw_connection(url) as connection:
            connection.sendall(sent)
            if user in (13, 14):
                assert connection.recv(4096).startswith(b"HTTP/1.1 200 OK\r\n")
    stop_service(process)  # after the requests in flight
    assert sorted(e["user"] for e in event_lines(tmp_path / "logs" / "r0")) == [13, 14]


def read_answers(connection: socket.socket, count: int) -> list[tuple[int, dict]]:
    """`count` HTTP answers read from the connection: (status, JSON body) each, in order
    (parsed by the simulator's client, sim/remote.py)."""
    answers = Responses()
    while len(answers.done) < count:
        data = connection.recv(65536)
        assert data, "the service closed the connection"
        answers.parser.feed_data(data)
    return [(status, orjson.loads(body)) for status, body in answers.done]


def test_pipelined_requests_are_answered_in_order(tmp_path, world, serve):
    """The simulator's client writes a round of requests at once on one connection (HTTP/1.1
    pipelining) and reads their answers in order, an error answer among them included."""
    _, url = serve(write_config(tmp_path, world))
    requests = [next_request(user) for user in range(16)]
    requests[5] = b"GET /nowhere HTTP/1.1\r\nhost: botify\r\n\r\n"   # an error answer among them
    with raw_connection(url) as connection:
        for _ in range(3):
            connection.sendall(b"".join(requests))
            answers = read_answers(connection, len(requests))
            assert [status for status, _ in answers] == [404 if i == 5 else 200 for i in range(16)]
            assert [a["user"] for i, (_, a) in enumerate(answers) if i != 5] == [u for u in range(16) if u != 5]


def test_a_client_that_half_closes_after_its_request_is_answered(tmp_path, world, serve):
    """A client may shut its side down once its request is sent: the request is answered,
    then the connection closed."""
    _, url = serve(write_config(tmp_path, world))
    with raw_connection(url) as connection:
        connection.sendall(next_request(9))
        connection.shutdown(socket.SHUT_WR)
        (status, answer), = read_answers(connection, 1)
        assert connection.recv(4096) == b""
    assert status == 200 and answer["user"] == 9


def test_the_real_server_answers_100_continue_before_the_body(tmp_path, world, serve):
    """An interim answer is written at once: the client waits for it before sending the body."""
    _, url = serve(write_config(tmp_path, world))
    body = b'{"track": 3, "time": 0.5}'
    with raw_connection(url) as connection:
        connection.sendall(b"POST /next/7 HTTP/1.1\r\nhost: botify\r\nexpect: 100-continue\r\n"
                           b"content-length: %d\r\n\r\n" % len(body))
        assert connection.recv(4096).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        connection.sendall(body)
        (status, answer), = read_answers(connection, 1)
    assert status == 200 and answer["user"] == 7


def test_sighup_reloads_the_experiments(tmp_path, world, serve):
    arms = [{"name": "C", "recommender": "contextual", "tables": {"tracks": str(world["tracks"])}}]
    config = write_config(tmp_path, world, arms)
    process, url = serve(config)
    assert httpx.post(f"{url}/next/1", json={"track": 10, "time": 1.0}).json()["track"] in (11, 12)
    write_config(tmp_path, world, [{"name": "D", "recommender": "contextual",
                                    "tables": {"tracks": str(world["other"])}}])
    process.send_signal(signal.SIGHUP)
    wait_for(lambda: httpx.post(f"{url}/next/1", json={"track": 10, "time": 1.0}).json()["track"] == 60,
             20, "SIGHUP to reload the tables")
    process.send_signal(signal.SIGTERM)
    process.wait(30)
    arms_logged = [e["experiments"]["AB"] for e in event_lines(tmp_path / "logs" / "r0")]
    assert arms_logged[0] == "C" and arms_logged[-1] == "D"


# ---- property-based: no input from the OpenAPI document makes a 5xx

@pytest.fixture
def api_schema(config_path):
    app = create_app(load_config(config_path))
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    asyncio.run(app.service.close())


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_requests_never_get_a_5xx(case):
    response = case.call()
    assert response.status_code < 500, response.text
    assert "detail" in response.json() or response.status_code == 200
