"""The `remote` agent against a tiny in-test HTTP peer speaking the botify API.

The peer is not the botify service: it answers deterministic or deliberately broken
recommendations so that the simulator's client (keep-alive, failed-step counting, session
ordering, reachability check) can be tested on its own. The real service is driven by the
end-to-end run.
"""
from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from infra.ports import free_port
from infra.unix_socket import new_socket_path
from support.sim import SMALL_WORLD, read_sessions, run_module, write_config
from support.waiting import wait_for

N_TRACKS = SMALL_WORLD["tracks"]
TIMEOUT_S = 0.3


def deterministic_track(user: int, track: int) -> int:
    return (track * 31 + user * 7 + 1) % N_TRACKS


class Peer:
    """A starlette app on a free port (or on the Unix socket `uds`) in a background thread;
    records every request."""

    def __init__(self, mode: str, uds: Path | None = None):
        self.mode, self.uds = mode, uds
        self.requests: list[tuple[str, int, int, float]] = []   # (endpoint, user, track, time)
        self.bad_answers = 0
        self.connections: set[tuple[str, int]] = set()
        app = Starlette(routes=[
            Route("/", self.alive),
            Route("/next/{user:int}", self.next, methods=["POST"]),
            Route("/last/{user:int}", self.last, methods=["POST"]),
        ])
        config = uvicorn.Config(app, host="127.0.0.1", port=0, uds=str(uds) if uds else None,
                                log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "Peer":
        self.thread.start()
        wait_for(lambda: self.server.started, 10, "the test peer to start", interval=0.01)
        if self.uds is not None:
            self.url = f"unix://{self.uds}"
        else:
            port = self.server.servers[0].sockets[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    async def alive(self, request: Request) -> Response:
        return PlainTextResponse("botify test peer")

    async def _record(self, endpoint: str, request: Request) -> tuple[int, int]:
        user = request.path_params["user"]
        body = await request.json()
        self.requests.append((endpoint, user, body["track"], body["time"],
                              time.time_ns() // 1_000_000,
                              request.headers.get("x-client-latency")))
        self.connections.add(request.client)
        return user, body["track"]

    async def next(self, request: Request) -> Response:
        user, track = await self._record("next", request)
        good = JSONResponse({"user": user, "track": deterministic_track(user, track)})
        if self.mode == "deterministic":
            return good
        if self.mode == "closing":  # every third answer closes the connection after it
            if (track + user) % 3 == 0:
                good.headers["connection"] = "close"
            return good
        # "broken": one answer in five is good, the others fail in a different way each
        kind = (track * 31 + user) % 5
        if kind == 4:
            return good
        self.bad_answers += 1
        if kind == 0:
            return PlainTextResponse("boom", status_code=500)
        if kind == 1:
            return JSONResponse({"user": user, "track": N_TRACKS + 5})
        if kind == 2:
            return PlainTextResponse("not json")
        if user % 2 == 0:
            return JSONResponse({"user": user, "track": "abc"})
        await asyncio.sleep(TIMEOUT_S * 2)  # a timeout
        return good

    async def last(self, request: Request) -> Response:
        user, _ = await self._record("last", request)
        return JSONResponse({"user": user})


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("remote")
    config = write_config(folder, run={"timeout_s": TIMEOUT_S})
    result = run_module("sim.world", "--config", str(config), "--seed", "42",
                        "--out", str(folder / "world"))
    assert result.returncode == 0, result.stderr
    return folder, config


def simulate(setup, peer: Peer, name: str, *args: str):
    folder, config = setup
    output = folder / f"{name}.jsonl"
    result = run_module("sim.run", "--recommender", "remote", "--config", str(config),
                        "--world", str(folder / "world"), "--url", peer.url,
                        "--output", str(output), *args)
    assert result.returncode == 0, result.stderr
    return result, read_sessions(output)


def sessions_in_requests(requests) -> dict[int, list[list[tuple]]]:
    """Cut each user's requests after every /last, as the jobs do with the logs."""
    sessions: dict[int, list[list[tuple]]] = defaultdict(lambda: [[]])
    for request in requests:
        endpoint, user = request[0], request[1]
        sessions[user][-1].append(request)
        if endpoint == "last":
            sessions[user].append([])
    return {user: cut[:-1] for user, cut in sessions.items() if not cut[-1]}


def test_remote_sessions_follow_the_protocol(setup):
    with Peer("deterministic") as peer:
        result, sessions = simulate(setup, peer, "det", "--episodes", "200", "--seed", "3",
                                    "--processes", "2")
    assert sum(s["failed_steps"] for s in sessions) == 0
    by_user = sessions_in_requests(peer.requests)
    assert sum(len(cut) for cut in by_user.values()) == 200  # every session closed by /last
    for user, cuts in by_user.items():
        expected = [s for s in sessions if s["user"] == user]
        assert [len(cut) - 1 for cut in cuts] == [s["tracks"] for s in expected]
        for cut, session in zip(cuts, expected):
            assert cut[0][3] == 1.0   # the first track is reported listened fully
            # each /next carries the track the peer recommended just before
            for previous, current in zip(cut, cut[1:]):
                assert current[2] == deterministic_track(user, previous[2])
            assert round(sum(r[3] for r in cut[1:]), 2) == session["session_time"]
    # one keep-alive connection per worker process (plus the parent's reachability check)
    assert len(peer.connections) <= 3
    assert "workers' time in the simulator" in result.stdout


def test_every_request_but_a_users_first_reports_the_wait_for_the_previous_one(setup):
    with Peer("deterministic") as peer:
        simulate(setup, peer, "waits", "--episodes", "100", "--seed", "5", "--processes", "2")
    firsts = set()
    for endpoint, user, *_, waited in peer.requests:
        if user not in firsts:
            firsts.add(user)
            assert waited is None
        else:  # seconds, from the batch's write to the answer: positive, below the timeout
            assert 0 < float(waited) < TIMEOUT_S
    assert sum(r[5] is not None for r in peer.requests) == len(peer.requests) - len(firsts)


def test_a_users_sessions_never_share_a_millisecond(tmp_path):
    """The service's logs order a user's events by millisecond timestamps (and, within a
    session, by position): a user's next session must start in a later millisecond than the
    previous one ended. Three users, so most sessions follow one of the same user."""
    config = write_config(tmp_path, users={"users": 3})
    assert run_module("sim.world", "--config", str(config), "--out", str(tmp_path / "world")).returncode == 0
    with Peer("deterministic") as peer:
        simulate((tmp_path, config), peer, "three-users", "--episodes", "300")
    for cuts in sessions_in_requests(peer.requests).values():
        for before, after in zip(cuts, cuts[1:]):
            assert after[0][4] > before[-1][4]


def test_same_seed_same_remote_sessions_with_any_number_of_processes(setup):
    # a patient client: on a loaded machine a 0.3 s timeout can make a failed step in one run
    folder, _ = setup
    patient = (folder, write_config(folder, run={"timeout_s": 30.0}, name="patient.yml"))
    with Peer("deterministic") as peer:
        _, one = simulate(patient, peer, "r1", "--episodes", "150", "--processes", "1")
        _, three = simulate(patient, peer, "r3", "--episodes", "150", "--processes", "3")
    assert sum(s["failed_steps"] for s in one) == 0
    assert one == three


def test_sessions_over_a_unix_socket_are_those_over_tcp(setup):
    """The pipeline's simulator talks to the service on a Unix socket: the same seed plays the
    same sessions, with the same requests, as over TCP."""
    with Peer("deterministic") as peer:
        _, over_tcp = simulate(setup, peer, "tcp", "--episodes", "120", "--processes", "2")
        tcp_requests = sorted(r[:4] for r in peer.requests)
    path = new_socket_path("peer.sock")   # short enough for the kernel, whatever tmp_path's depth
    try:
        with Peer("deterministic", uds=path) as peer:
            _, over_unix = simulate(setup, peer, "unix", "--episodes", "120", "--processes", "2")
            unix_requests = sorted(r[:4] for r in peer.requests)
    finally:
        shutil.rmtree(path.parent)
    assert sum(s["failed_steps"] for s in over_unix) == 0
    assert over_unix == over_tcp
    assert unix_requests == tcp_requests


def test_broken_answers_are_failed_steps_and_never_crash_the_run(setup):
    """One request at a time, every broken answer is one failed step, and only that one."""
    folder, _ = setup
    one_at_a_time = (folder, write_config(folder, run={"timeout_s": TIMEOUT_S, "sessions_in_flight": 1},
                                          name="one-at-a-time.yml"))
    with Peer("broken") as peer:
        result, sessions = simulate(one_at_a_time, peer, "broken", "--episodes", "40", "--seed", "4")
    failed = sum(s["failed_steps"] for s in sessions)
    assert failed == peer.bad_answers > 0
    assert len(sessions) == 40
    assert f"{failed} in" in result.stdout
    by_user = sessions_in_requests(peer.requests)
    assert sum(len(cut) for cut in by_user.values()) == 40
    for user, cuts in by_user.items():
        for cut in cuts:
            for previous, current in zip(cut, cut[1:]):
                if (previous[2] * 31 + user) % 5 == 4:  # a good answer was listened to
                    assert current[2] == deterministic_track(user, previous[2])
                else:  # after a failure the same track and time are re-sent
                    assert current[2:4] == previous[2:4]


def test_pipelined_sessions_are_those_played_one_request_at_a_time(setup):
    """Sessions in flight side by side (HTTP/1.1 pipelining) change nothing a user does: the
    same sessions, and every user's requests in the same order."""
    folder, _ = setup
    played = {}
    for in_flight in (1, 16):
        config = write_config(folder, run={"timeout_s": 30.0, "sessions_in_flight": in_flight},
                              name=f"in-flight-{in_flight}.yml")
        with Peer("deterministic") as peer:
            _, sessions = simulate((folder, config), peer, f"in-flight-{in_flight}",
                                   "--episodes", "300", "--seed", "5", "--processes", "2")
        by_user = defaultdict(list)
        for request in peer.requests:
            by_user[request[1]].append(request[:4])
        played[in_flight] = sessions, dict(by_user)
    assert sum(s["failed_steps"] for s in played[16][0]) == 0
    assert played[16] == played[1]


def test_a_timeout_fails_the_requests_pipelined_behind_it_and_the_run_goes_on(setup):
    """A timed-out answer leaves the requests sent after it on the same connection unanswered:
    each is a failed step of its own session, re-sent on a new connection."""
    with Peer("broken") as peer:
        result, sessions = simulate(setup, peer, "broken-pipelined", "--episodes", "30", "--seed", "4")
    assert result.returncode == 0 and len(sessions) == 30
    # more failed steps than bad answers: the requests behind a timed-out one failed too
    assert sum(s["failed_steps"] for s in sessions) > peer.bad_answers > 0
    by_user = sessions_in_requests(peer.requests)
    assert sum(len(cut) for cut in by_user.values()) == 30   # every session closed by /last
    for user, cuts in by_user.items():
        for cut in cuts:
            for previous, current in zip(cut, cut[1:]):
                # a good answer is listened to, or the failed request is sent again
                assert (current[2] == deterministic_track(user, previous[2])
                        or current[2:4] == previous[2:4])


def test_an_answer_that_closes_the_connection_fails_only_the_requests_behind_it(setup):
    """The requests pipelined behind an answer that closes the connection are never served:
    each is a failed step, and every request the peer served had its answer used."""
    with Peer("closing") as peer:
        _, sessions = simulate(setup, peer, "closing", "--episodes", "60", "--seed", "6")
    assert len(sessions) == 60 and len(peer.connections) > 2
    served_next = sum(1 for request in peer.requests if request[0] == "next")
    assert served_next == sum(s["tracks"] for s in sessions)   # each answer listened to
    assert sum(s["failed_steps"] for s in sessions) > 0


def test_replicas_each_serve_whole_users_and_the_sessions_are_those_of_one(setup):
    """With several urls, worker i asks replica i mod n: a user's requests all reach one
    replica (which keeps the user's session state), and the sessions are those of one."""
    with Peer("deterministic") as one:
        _, alone = simulate(setup, one, "one-replica", "--episodes", "200", "--seed", "8", "--processes", "4")
    with Peer("deterministic") as first, Peer("deterministic") as second:
        _, replicated = simulate(setup, first, "two-replicas", "--episodes", "200", "--seed", "8",
                                 "--processes", "4", "--url", first.url, second.url)
        users = [{request[1] for request in peer.requests} for peer in (first, second)]
    assert replicated == alone
    assert users[0] and users[1] and not users[0] & users[1]
    assert {user % 4 for user in users[0]} == {0, 2}


def test_more_replicas_than_workers_are_refused(setup):
    folder, config = setup
    result = run_module("sim.run", "--recommender", "remote", "--config", str(config),
                        "--world", str(folder / "world"), "--episodes", "5", "--processes", "1",
                        "--url", "http://127.0.0.1:1", "http://127.0.0.1:2")
    assert result.returncode == 2 and "fewer than the 2 service urls" in result.stderr


def test_unreachable_service_is_one_clear_error(setup):
    folder, config = setup
    url = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    result = run_module("sim.run", "--recommender", "remote", "--config", str(config),
                        "--world", str(folder / "world"), "--url", url, "--episodes", "5")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert f"not reachable at {url}" in result.stderr


@pytest.mark.parametrize("url", ["unix:///nowhere/botify.sock", "unix://host/botify.sock", "ftp://x"])
def test_a_bad_or_absent_unix_socket_is_one_clear_error(setup, url):
    folder, config = setup
    result = run_module("sim.run", "--recommender", "remote", "--config", str(config),
                        "--world", str(folder / "world"), "--url", url, "--episodes", "5")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    expected = "not reachable at" if url.startswith("unix:///") else "must look like"
    assert expected in result.stderr and url in result.stderr
