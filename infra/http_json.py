"""GET a JSON document from a server on TCP (http://host:port) or on a Unix socket
(unix:///path, the service's when it serves on one); None when it does not answer."""
from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client's connection over a Unix socket."""

    def __init__(self, path: Path, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self.unix_path))


def connection(base_url: str, timeout: float) -> http.client.HTTPConnection:
    if base_url.startswith("unix://"):
        return UnixHTTPConnection(Path(base_url.removeprefix("unix://")), timeout)
    if base_url.startswith("http://"):
        return http.client.HTTPConnection(base_url.removeprefix("http://").rstrip("/"), timeout=timeout)
    raise ValueError(f"not an http:// or unix:// url: {base_url!r}")


def get_json(base_url: str, route: str, timeout: float = 2) -> dict | None:
    """The JSON answer to GET `route` (e.g. "/", "/jmx?qry=...") of the server at `base_url`;
    None when it does not answer, answers another status than 200, or not JSON."""
    conn = connection(base_url, timeout)
    try:
        conn.request("GET", route)
        response = conn.getresponse()
        return json.load(response) if response.status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()
