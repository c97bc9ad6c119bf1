"""A plain ASGI application for a JSON API, without a framework: a routing table, requests
read whole before their handler runs, JSON answers and errors, the lifespan protocol.

Why no framework: under the same uvicorn server, Starlette's middleware stack, regex router
and Request/Response objects cost as much CPU per `/next` as the service's own work (see
service/README.md, Speed). What the service needs from them fits here.

Every answer is `application/json`. A handler gets a Request (path parameters, headers, the
whole body) and returns the body of a 200 answer, or raises HttpError, which becomes
`{"detail": message}` with its status. An unknown path is a 404, a known path with another
method a 405 (with an `Allow` header), a body over the limit a 413 (the rest is not read), an
exception the app does not map to an HttpError a logged 500.
"""
from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager
from types import MappingProxyType
from typing import Awaitable, Callable, Iterable, Mapping

import orjson

log = logging.getLogger("service.asgi")

Handler = Callable[["Request"], Awaitable[bytes]]
JSON_CONTENT_TYPE = (b"content-type", b"application/json")
_NO_PARAMS: Mapping[str, str] = MappingProxyType({})


class HttpError(Exception):
    """An answer other than 200: `{"detail": message}` with `status` (and extra headers)."""

    def __init__(self, status: int, message: str, headers: Iterable[tuple[bytes, bytes]] = ()):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, tuple(headers)


class ClientGone(Exception):
    """The client disconnected before its request body arrived: nobody to answer."""


async def _rest_of_body(receive: Callable, body: bytes, max_bytes: int) -> bytes:
    """The body of a request that came in several messages, `body` being the first part."""
    chunks, size, more = [body], len(body), True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _too_large(max_bytes: int) -> HttpError:
    return HttpError(413, f"request body is too large: over {max_bytes} bytes")


class Request:
    __slots__ = ("scope", "path_params", "body")

    def __init__(self, scope: dict, path_params: Mapping[str, str], body: bytes):
        self.scope, self.path_params, self.body = scope, path_params, body

    def header(self, name: bytes) -> bytes | None:
        """The raw value of the first header called `name` (lower case), or None."""
        for key, value in self.scope["headers"]:
            if key == name:
                return value
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
                            [(b"allow", ", ".join(sorted(methods)).encode())])
        return handler, params


class JsonApp:
    """The ASGI application: routes HTTP requests, answers in JSON, runs the lifespan.

    A request's body is read whole before its handler runs; past `max_body_bytes` the answer
    is a 413 and the rest is not read. `errors` maps exception types raised by handlers (other
    than HttpError) to the HttpError they answer with, looked up along the exception's class
    hierarchy; `lifespan` is entered at server start-up and left at shutdown."""

    def __init__(self, router: Router, lifespan: Callable[[], AbstractAsyncContextManager],
                 max_body_bytes: int,
                 errors: Mapping[type[Exception], Callable[[Exception], HttpError]] = MappingProxyType({})):
        self.router, self._lifespan, self._max_body = router, lifespan, max_body_bytes
        self._errors = errors
        # Answer length -> the start message of a 200 answer, shared by every answer of that
        # length (a server only reads it): no dict, list and header built per request.
        self._ok_starts: dict[int, dict] = {}

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        # HTTP is handled here, not in a helper coroutine: one coroutine less per request.
        if scope["type"] != "http":
            return await self._not_http(scope, receive, send)
        try:
            handler, params = self.router.match(scope["method"], scope["path"])
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            if len(body) > self._max_body:
                raise _too_large(self._max_body)
            if message.get("more_body", False):
                body = await _rest_of_body(receive, body, self._max_body)
            answer = await handler(Request(scope, params, body))
            start = self._ok_starts.get(len(answer)) or self._ok_start(len(answer))
        except ClientGone:
            return
        except Exception as e:
            error = e if isinstance(e, HttpError) else self._http_error(e)
            answer = orjson.dumps({"detail": error.message})
            start = {"type": "http.response.start", "status": error.status, "headers": [
                JSON_CONTENT_TYPE, (b"content-length", b"%d" % len(answer)), *error.headers]}
        await send(start)
        await send({"type": "http.response.body", "body": answer})

    def _ok_start(self, length: int) -> dict:
        """The start message of a 200 answer of `length` bytes, built once per length."""
        start = self._ok_starts[length] = {"type": "http.response.start", "status": 200, "headers": [
            JSON_CONTENT_TYPE, (b"content-length", b"%d" % length)]}
        return start

    async def _not_http(self, scope: dict, receive: Callable, send: Callable) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._run_lifespan(receive, send)
        elif kind == "websocket":  # no websocket routes: refuse the handshake (HTTP 403)
            await send({"type": "websocket.close", "code": 1000})
        else:
            raise RuntimeError(f"unsupported ASGI scope type {kind!r}")

    def _http_error(self, exception: Exception) -> HttpError:
        for cls in type(exception).__mro__:
            if cls in self._errors:
                return self._errors[cls](exception)
        log.error("unhandled error, answered 500", exc_info=exception)
        return HttpError(500, f"internal error ({type(exception).__name__}); see the service log")

    async def _run_lifespan(self, receive: Callable, send: Callable) -> None:
        await receive()  # lifespan.startup
        started = False
        try:
            async with self._lifespan():
                await send({"type": "lifespan.startup.complete"})
                started = True
                await receive()  # lifespan.shutdown
        except Exception as e:
            phase = "shutdown" if started else "startup"
            await send({"type": f"lifespan.{phase}.failed", "message": f"{type(e).__name__}: {e}"})
            raise
        await send({"type": "lifespan.shutdown.complete"})
