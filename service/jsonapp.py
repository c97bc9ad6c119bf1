"""A JSON API as a standard ASGI application, without a framework: a routing table, requests
read whole before their handler runs, JSON answers and errors, and the lifespan protocol
(start-up and shutdown).

Why no framework: the service has six routes, all JSON, no middleware; a routing table and one
ASGI callable are all it needs, and they keep the per-request work small under load.

Every answer is `application/json`. A handler gets a Request (path parameters, headers, the
whole body) and returns the body of a 200 answer, or raises HttpError, which becomes
`{"detail": message}` with its status. An unknown path is a 404, a known path with another
method a 405 (with an `Allow` header), a body over the limit a 413 (the rest is not read), an
exception the app does not map to an HttpError a logged 500. A client that leaves before its
body arrived gets no answer.
"""
from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager
from types import MappingProxyType
from typing import Awaitable, Callable, Iterable, Mapping

import orjson

log = logging.getLogger("service.jsonapp")

Handler = Callable[["Request"], Awaitable[bytes]]
JSON_CONTENT_TYPE = (b"content-type", b"application/json")
_NO_PARAMS: Mapping[str, str] = MappingProxyType({})


class HttpError(Exception):
    """An answer other than 200: `{"detail": message}` with `status` (and extra headers)."""

    def __init__(self, status: int, message: str, headers: Iterable[tuple[str, str]] = ()):
        super().__init__(message)
        self.status, self.message = status, message
        # As ASGI sends them: latin-1 bytes.
        self.headers = tuple((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers)


class ClientGone(Exception):
    """The client disconnected before its request body arrived: nobody to answer."""


class Request:
    __slots__ = ("headers", "path_params", "body")

    def __init__(self, headers: list[tuple[bytes, bytes]], path_params: Mapping[str, str], body: bytes):
        self.headers, self.path_params, self.body = headers, path_params, body  # ASGI's headers

    def header(self, name: bytes) -> str | None:
        """The value of the header called `name` (lower case, as ASGI sends it: bytes), or None."""
        for raw_name, value in self.headers:
            if raw_name == name:
                return value.decode("latin-1")
        return None


class Router:
    """The routing table: (method, path pattern, handler). A pattern is an exact path
    ("/openapi.json") or a path whose last segment is a parameter ("/next/{user}"), which
    matches any non-empty segment without "/". A GET route also answers HEAD."""

    def __init__(self, routes: Iterable[tuple[str, str, Handler]]):
        self._exact: dict[str, dict[str, Handler]] = {}
        self._parameter: dict[str, tuple[str, dict[str, Handler]]] = {}  # "/next" -> ("user", ...)
        for method, pattern, handler in routes:
            prefix, _, last = pattern.rpartition("/")
            if last.startswith("{") and last.endswith("}") and "{" not in prefix:
                name, methods = self._parameter.setdefault(prefix, (last[1:-1], {}))
                if name != last[1:-1]:
                    raise ValueError(f"route {pattern!r}: {prefix}/ already has parameter {{{name}}}")
            elif "{" in pattern or not pattern.startswith("/"):
                raise ValueError(f"route {pattern!r}: a pattern is an absolute path whose last "
                                 f"segment may be a {{parameter}}")
            else:
                methods = self._exact.setdefault(pattern, {})
            if method in methods:
                raise ValueError(f"route {method} {pattern!r} is defined twice")
            methods[method] = handler
            if method == "GET":
                methods.setdefault("HEAD", handler)

    def match(self, method: str, path: str) -> tuple[Handler, Mapping[str, str]]:
        """The handler and path parameters of a request; HttpError 404 or 405 when none."""
        methods, params = self._exact.get(path), _NO_PARAMS
        if methods is None:
            prefix, _, value = path.rpartition("/")
            route = self._parameter.get(prefix) if value else None
            if route is None:
                raise HttpError(404, f"no route {path!r}; see /openapi.json")
            name, methods = route
            params = {name: value}
        handler = methods.get(method)
        if handler is None:
            raise HttpError(405, f"method {method} is not allowed on {path!r}; see /openapi.json",
                            [("allow", ", ".join(sorted(methods)))])
        return handler, params


class JsonApp:
    """The ASGI application: routes HTTP requests, answers in JSON; `lifespan` is entered at
    server start-up and left at shutdown (the ASGI lifespan protocol).

    A request's body is read whole before its handler runs; past `max_body_bytes` the answer
    is a 413 and the rest is not read. `errors` maps exception types raised by handlers (other
    than HttpError) to the HttpError they answer with, looked up along the exception's class
    hierarchy."""

    def __init__(self, router: Router, lifespan: Callable[[], AbstractAsyncContextManager],
                 max_body_bytes: int,
                 errors: Mapping[type[Exception], Callable[[Exception], HttpError]] = MappingProxyType({})):
        self.router, self.lifespan, self._max_body = router, lifespan, max_body_bytes
        self._errors = errors

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self._not_http(scope, receive, send)
        try:
            handler, params = self.router.match(scope["method"], scope["path"])
            body = await _asgi_body(receive, self._max_body)
            status, answer, extra_headers = 200, await handler(
                Request(scope["headers"], params, body)), ()
        except ClientGone:
            return
        except Exception as e:
            status, answer, extra_headers = self._error_answer(e)
        await send({"type": "http.response.start", "status": status,
                    "headers": [JSON_CONTENT_TYPE, (b"content-length", b"%d" % len(answer)), *extra_headers]})
        await send({"type": "http.response.body", "body": answer})

    async def _not_http(self, scope: dict, receive: Callable, send: Callable) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._run_lifespan(receive, send)
        elif kind == "websocket":  # no websocket routes: refuse the handshake (HTTP 403)
            await send({"type": "websocket.close", "code": 1000})
        else:
            raise RuntimeError(f"unsupported ASGI scope type {kind!r}")

    async def _run_lifespan(self, receive: Callable, send: Callable) -> None:
        await receive()  # lifespan.startup
        started = False
        try:
            async with self.lifespan():
                await send({"type": "lifespan.startup.complete"})
                started = True
                await receive()  # lifespan.shutdown
        except Exception as e:
            phase = "shutdown" if started else "startup"
            await send({"type": f"lifespan.{phase}.failed", "message": f"{type(e).__name__}: {e}"})
            raise
        await send({"type": "lifespan.shutdown.complete"})

    def _error_answer(self, exception: Exception) -> tuple[int, bytes, tuple[tuple[bytes, bytes], ...]]:
        """(status, body, extra headers) of the answer to a request that raised `exception`."""
        error = exception if isinstance(exception, HttpError) else self._http_error(exception)
        return error.status, orjson.dumps({"detail": error.message}), error.headers

    def _http_error(self, exception: Exception) -> HttpError:
        for cls in type(exception).__mro__:
            if cls in self._errors:
                return self._errors[cls](exception)
        log.error("unhandled error, answered 500", exc_info=exception)
        return HttpError(500, f"internal error ({type(exception).__name__}); see the service log")


async def _asgi_body(receive: Callable, max_bytes: int) -> bytes:
    """A request's whole body from its ASGI messages; 413 past `max_bytes` (the rest unread)."""
    body, more = b"", True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        body += message.get("body", b"")  # a body in one message is not copied
        if len(body) > max_bytes:
            raise _too_large(max_bytes)
        more = message.get("more_body", False)
    return body


def _too_large(max_bytes: int) -> HttpError:
    return HttpError(413, f"request body is too large: over {max_bytes} bytes")
