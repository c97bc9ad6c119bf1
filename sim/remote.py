"""The `remote` agent: asks the botify service over HTTP, one keep-alive connection.

    POST /next/{user}  {"track": int, "time": float} -> {"user": int, "track": int}
    POST /last/{user}  {"track": int, "time": float} -> {"user": int}
    GET  /             alive

http.client keeps one connection per worker process and sets TCP_NODELAY, and sends small
bodies in the same packet as the headers, so no request waits on Nagle's algorithm (the
course simulator lost 44 ms per request to that stall). A timeout, an HTTP error or an answer
that is not a valid track id is a failed step: the session continues and the connection is
reopened if it broke.
"""
from __future__ import annotations

import http.client
import time as clock
from urllib.parse import urlsplit

import orjson

from sim.user import Session

_HEADERS = {"Content-Type": "application/json", "Connection": "keep-alive"}


class ServiceUnreachable(RuntimeError):
    """The service did not answer GET / at start."""


def _split(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"service url must look like http://host:port, got {url!r}")
    return parts.hostname, parts.port or 80, parts.path.rstrip("/")


def check_service(url: str, timeout_s: float) -> None:
    """Raise ServiceUnreachable (naming the url) unless GET / answers 2xx."""
    host, port, base = _split(url)
    connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        connection.request("GET", base + "/")
        response = connection.getresponse()
        response.read()
        if not 200 <= response.status < 300:
            raise ServiceUnreachable(
                f"botify service at {url} answered GET / with HTTP {response.status}")
    except (OSError, http.client.HTTPException) as error:
        raise ServiceUnreachable(
            f"botify service is not reachable at {url} ({error or type(error).__name__}); "
            f"start it or pass --url") from None
    finally:
        connection.close()


class RemoteAgent:
    def __init__(self, url: str, timeout_s: float, n_tracks: int):
        self.host, self.port, self.base = _split(url)
        self.timeout_s = timeout_s
        self.n_tracks = n_tracks
        self.seconds_in_requests = 0.0   # wall time spent waiting on the service
        self.requests = 0
        self._connection: http.client.HTTPConnection | None = None

    def _post(self, endpoint: str, user: int, track: int, time: float) -> dict | None:
        """POST and parse the JSON answer; None (connection reset if broken) on any failure."""
        if self._connection is None:
            self._connection = http.client.HTTPConnection(self.host, self.port,
                                                          timeout=self.timeout_s)
        body = orjson.dumps({"track": track, "time": time})
        started = clock.perf_counter()
        try:
            self._connection.request("POST", f"{self.base}/{endpoint}/{user}", body, _HEADERS)
            response = self._connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            return None
        finally:
            self.seconds_in_requests += clock.perf_counter() - started
            self.requests += 1
        if response.will_close:
            self.close()
        if response.status != 200:
            return None
        try:
            answer = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
        return answer if isinstance(answer, dict) and answer.get("user") == user else None

    def recommend(self, session: Session, track: int, time: float) -> int | None:
        answer = self._post("next", session.user, track, time)
        if answer is None:
            return None
        recommended = answer.get("track")
        # bool is an int subclass: refuse true/false as track ids
        if type(recommended) is not int or not 0 <= recommended < self.n_tracks:
            return None
        return recommended

    def finish(self, session: Session, track: int, time: float) -> bool:
        return self._post("last", session.user, track, time) is not None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
