"""The `remote` agent: asks the botify service over HTTP, one keep-alive connection, over TCP
(`http://host:port`) or over a Unix socket (`unix:///path/to/socket`, the service's
`--uds`; the pipeline serves its days there).

    POST /next/{user}  {"track": int, "time": float} -> {"user": int, "track": int}
    POST /last/{user}  {"track": int, "time": float} -> {"user": int}
    GET  /             alive

In multi-day runs every /next and /last also carries `X-Simulated-Time: <ms since the epoch>`,
the simulated time of the request (sim/calendar.py); the service logs the event with it.

Speed matters here: the simulator shares the machine with the service, so every microsecond
of client CPU is taken from the service. The client writes each request with one `sendall`
on a TCP_NODELAY socket (no Nagle stall: the course simulator lost 44 ms per request to it),
or on a Unix socket, where the kernel does less per request than on loopback TCP, and parses
answers with httptools, the HTTP parser uvicorn uses. Measured against a trivial peer, that
costs ~30 us of CPU per request, against ~130 us for http.client and ~540 us for
httpx (see sim/README.md). A timeout, a broken connection, an HTTP error or an answer that
is not a valid track id is a failed step: the session goes on, the connection is reopened.
"""
from __future__ import annotations

import socket
from urllib.parse import urlsplit

import httptools
import orjson

from sim.user import Session


# The header carrying a request's simulated time (ms since the epoch) in multi-day runs; the
# service stamps the event with it instead of its own clock (service/app.py).
TIME_HEADER = b"X-Simulated-Time"


class ServiceUnreachable(RuntimeError):
    """The service did not answer GET / at start."""


class RequestFailed(Exception):
    """No complete HTTP answer: timeout, refused or reset connection, unparseable reply."""


class _Response:
    """httptools parser callbacks: status, keep-alive, body, and when the message is done."""

    def __init__(self):
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.keep_alive = False
        self.body: list[bytes] = []
        self.complete = False

    def on_headers_complete(self) -> None:
        # read here: the parser resets its keep-alive state once the message is complete
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, chunk: bytes) -> None:
        self.body.append(chunk)

    def on_message_complete(self) -> None:
        self.complete = True


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

    def request(self, method: bytes, path: bytes, body: bytes = b"",
                headers: bytes = b"") -> tuple[int, bytes]:
        """(status, body) of one request (`headers`: extra header lines); raises RequestFailed."""
        message = (b"%s %s%s HTTP/1.1\r\n%s%sContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n%s"
                   % (method, self.base, path, self._head, headers, len(body), body))
        try:
            if self._socket is None:
                self._socket = self._connect()
            self._socket.sendall(message)
            response = _Response()
            while not response.complete:
                data = self._socket.recv(65536)
                if not data:
                    raise RequestFailed("connection closed by the service")
                response.parser.feed_data(data)
        except (OSError, httptools.HttpParserError) as error:
            self.close()
            raise RequestFailed(str(error) or type(error).__name__) from None
        except RequestFailed:
            self.close()
            raise
        if not response.keep_alive:
            self.close()
        return response.status, b"".join(response.body)

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
    def __init__(self, url: str, timeout_s: float, n_tracks: int):
        self.client = KeepAliveClient(url, timeout_s)
        self.n_tracks = n_tracks

    def _post(self, endpoint: bytes, session: Session, track: int,
              time: float) -> dict | None:
        """The JSON answer for this user, or None on any failure."""
        user = session.user
        # multi-day runs tell the service the simulated time of the event (sim/calendar.py)
        clock = session.clock
        headers = b"" if clock is None else b"%s: %d\r\n" % (TIME_HEADER, clock.stamp(session))
        try:
            status, payload = self.client.request(
                b"POST", b"/%s/%d" % (endpoint, user),
                orjson.dumps({"track": track, "time": time}), headers)
        except RequestFailed:
            return None
        if status != 200:
            return None
        try:
            answer = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
        return answer if isinstance(answer, dict) and answer.get("user") == user else None

    def recommend(self, session: Session, track: int, time: float) -> int | None:
        answer = self._post(b"next", session, track, time)
        if answer is None:
            return None
        recommended = answer.get("track")
        # bool is an int subclass: refuse true/false as track ids
        if type(recommended) is not int or not 0 <= recommended < self.n_tracks:
            return None
        return recommended

    def finish(self, session: Session, track: int, time: float) -> bool:
        return self._post(b"last", session, track, time) is not None

    def close(self) -> None:
        self.client.close()
