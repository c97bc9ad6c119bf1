"""The `remote` agent: asks the botify service over HTTP, one keep-alive connection, over TCP
(`http://host:port`) or over a Unix socket (`unix:///path/to/socket`, the service's
`--uds`; the pipeline serves its days there).

    POST /next/{user}  {"track": int, "time": float} -> {"user": int, "track": int}
    POST /last/{user}  {"track": int, "time": float} -> {"user": int}
    GET  /             alive

In multi-day runs every /next and /last also carries `X-Simulated-Time: <ms since the epoch>`,
the simulated time of the request (sim/calendar.py); the service logs the event with it.
Every request of a user after their first also carries `X-Client-Latency: <seconds>`, how long
this client waited for that user's previous answer: from the write that sent the request to
the moment its answer was parsed, so a request pipelined behind others waits for theirs too.
The service logs it as the event's `client_latency` (contract/events.py): the request time a
user sees, which the latency guardrail compares between arms (analysis/latency.py). Why with
the next request: the event log is the one channel from the traffic to the analysis, and the
event of the next request carries the same user and arm, so no second log has to be joined.
A user's last request of the run, and a request without an answer, are not reported.

The client is small because the simulator shares the machine with the service: its CPU is
the service's loss. A worker plays several sessions at once (of different users,
`run.sessions_in_flight`) and sends one request of each in a single write, HTTP/1.1
pipelining: the service reads them in one go and answers them in order, so both sides make one
system call and one wake-up per round instead of one per request. The socket is TCP_NODELAY
(Nagle's algorithm would hold each small request back until the previous one is acknowledged),
or a Unix socket, where the kernel does less per request than on loopback TCP; answers are
parsed with httptools, the HTTP parser uvicorn uses. A timeout, a broken connection, an HTTP
error or an answer that is not a valid track id is a failed step: the session goes on, the
connection is reopened.
"""
from __future__ import annotations

import socket
from time import perf_counter
from typing import Sequence
from urllib.parse import urlsplit

import httptools
import orjson

from sim.play import NEXT, Answer, Request


# The header carrying a request's simulated time (ms since the epoch) in multi-day runs; the
# service stamps the event with it instead of its own clock (service/app.py).
TIME_HEADER = b"X-Simulated-Time"
# The header carrying the client's wait for the user's previous request, in seconds.
LATENCY_HEADER = b"X-Client-Latency"


class ServiceUnreachable(RuntimeError):
    """The service did not answer GET / at start."""


class RequestFailed(Exception):
    """No complete HTTP answer: timeout, refused or reset connection, unparseable reply."""


class Responses:
    """httptools parser callbacks for a stream of answers: each one's status, keep-alive and
    body, in order (fed with `parser.feed_data`)."""

    def __init__(self):
        self.parser = httptools.HttpResponseParser(self)
        self.done: list[tuple[int, bytes]] = []
        self.arrived: list[float] = []  # perf_counter() when each answer was complete
        self.closing = False  # the last answer closes the connection: no more will come
        self._body: list[bytes] = []
        self._status, self._keep_alive = 0, False

    def on_headers_complete(self) -> None:
        # read here: the parser resets its keep-alive state once the message is complete
        self._status = self.parser.get_status_code()
        self._keep_alive = self.parser.should_keep_alive()

    def on_body(self, chunk: bytes) -> None:
        self._body.append(chunk)

    def on_message_complete(self) -> None:
        if not self.closing:
            self.done.append((self._status, b"".join(self._body)))
            self.arrived.append(perf_counter())
        self.closing = self.closing or not self._keep_alive
        self._body = []


class KeepAliveClient:
    """One persistent HTTP/1.1 connection to host:port or to a Unix socket, reopened after any
    failure."""

    def __init__(self, url: str, timeout_s: float):
        parts = urlsplit(url)
        if parts.scheme == "unix" and parts.path and not parts.netloc:
            self.unix_path, self.base = parts.path, b""
            self._head = b"Host: localhost\r\n"
        elif parts.scheme == "http" and parts.hostname:
            self.unix_path, self.host, self.port = None, parts.hostname, parts.port or 80
            self.base = parts.path.rstrip("/").encode()
            self._head = b"Host: %s:%d\r\n" % (self.host.encode(), self.port)
        else:
            raise ValueError(f"service url must look like http://host:port or "
                             f"unix:///path/to/socket, got {url!r}")
        self.timeout_s = timeout_s
        self._socket: socket.socket | None = None
        self.failure = ""  # why the last exchange got fewer answers than requests
        self.waited: list[float] = []  # seconds from the last exchange's write to each answer

    def _connect(self) -> socket.socket:
        if self.unix_path is not None:
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                connection.settimeout(self.timeout_s)
                connection.connect(self.unix_path)
            except OSError:
                connection.close()
                raise
            return connection
        connection = socket.create_connection((self.host, self.port), self.timeout_s)
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection

    def message(self, method: bytes, path: bytes, body: bytes = b"", headers: bytes = b"") -> bytes:
        """One request's bytes (`headers`: extra header lines)."""
        return (b"%s %s%s HTTP/1.1\r\n%s%sContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s"
                % (method, self.base, path, self._head, headers, len(body), body))

    def exchange(self, messages: list[bytes]) -> list[tuple[int, bytes] | None]:
        """Send the requests in one write (pipelined) and read their answers in order:
        (status, body) each, or None for a request left without a complete answer (timeout,
        refused or reset connection, unparseable reply, or an earlier answer that closed the
        connection)."""
        responses, self.failure = Responses(), ""
        sent = perf_counter()
        try:
            if self._socket is None:
                self._socket = self._connect()
                sent = perf_counter()  # the connection's set-up is not the request's wait
            self._socket.sendall(b"".join(messages))
            while len(responses.done) < len(messages) and not responses.closing:
                data = self._socket.recv(65536)
                if not data:
                    raise RequestFailed("connection closed by the service")
                responses.parser.feed_data(data)
        except (OSError, httptools.HttpParserError, RequestFailed) as error:
            self.failure = str(error) or type(error).__name__
            self.close()
        if responses.closing:  # the service closes the connection after its last answer
            self.close()
            if len(responses.done) < len(messages):
                self.failure = self.failure or "the service closed the connection"
        answers = responses.done[:len(messages)]
        self.waited = [arrived - sent for arrived in responses.arrived[:len(messages)]]
        return answers + [None] * (len(messages) - len(answers))

    def request(self, method: bytes, path: bytes, body: bytes = b"",
                headers: bytes = b"") -> tuple[int, bytes]:
        """(status, body) of one request; raises RequestFailed."""
        answer, = self.exchange([self.message(method, path, body, headers)])
        if answer is None:
            raise RequestFailed(self.failure)
        return answer

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def check_service(url: str, timeout_s: float) -> None:
    """Raise ServiceUnreachable (naming the url) unless GET / answers 2xx."""
    client = KeepAliveClient(url, timeout_s)
    try:
        status, _ = client.request(b"GET", b"/")
    except RequestFailed as error:
        raise ServiceUnreachable(
            f"botify service is not reachable at {url} ({error}); start it or pass --url"
        ) from None
    finally:
        client.close()
    if not 200 <= status < 300:
        raise ServiceUnreachable(f"botify service at {url} answered GET / with HTTP {status}")


class RemoteAgent:
    """The botify service as the simulator's recommender: a round of requests, one per session
    in flight, goes out in one pipelined exchange."""

    def __init__(self, url: str, timeout_s: float, n_tracks: int):
        self.client = KeepAliveClient(url, timeout_s)
        self.n_tracks = n_tracks
        self.waited: dict[int, float] = {}  # user -> seconds waited for their previous answer

    def answer_all(self, batch: Sequence[Request]) -> list[Answer]:
        """The service's answers to requests of different users, sent in one pipelined write."""
        messages = []
        for session, endpoint, track, time in batch:
            # multi-day runs tell the service the simulated time of the event (sim/calendar.py)
            clock = session.clock
            headers = b"" if clock is None else b"%s: %d\r\n" % (TIME_HEADER, clock.stamp(session))
            waited = self.waited.pop(session.user, None)
            if waited is not None:
                headers += b"%s: %.6f\r\n" % (LATENCY_HEADER, waited)
            messages.append(self.client.message(b"POST", b"/%s/%d" % (endpoint, session.user),
                                                orjson.dumps({"track": track, "time": time}), headers))
        replies = self.client.exchange(messages)
        for request, waited in zip(batch, self.client.waited):
            self.waited[request.session.user] = waited
        return [self._answer(request, reply) for request, reply in zip(batch, replies)]

    def _answer(self, request: Request, reply: tuple[int, bytes] | None) -> Answer:
        """/next: the recommended track, or None unless it is a valid track id for this user;
        /last: whether the service took it."""
        answer = None
        if reply is not None and reply[0] == 200:
            try:
                answer = orjson.loads(reply[1])
            except orjson.JSONDecodeError:
                pass
        if not isinstance(answer, dict) or answer.get("user") != request.session.user:
            return None if request.endpoint == NEXT else False
        if request.endpoint != NEXT:
            return True
        recommended = answer.get("track")
        # bool is an int subclass: refuse true/false as track ids
        if type(recommended) is not int or not 0 <= recommended < self.n_tracks:
            return None
        return recommended

    def close(self) -> None:
        self.client.close()
