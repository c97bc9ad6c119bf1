"""The baseline of bench_service.py: the least an ASGI app can do for a /next request under
uvicorn at its fastest (uvloop event loop, httptools parser, no access log): read the body,
parse it with orjson, answer a fixed JSON object. No routing, no checks, no state. The service
runs under the same server and settings (service/__main__.py).

    python benchmarks/bare_app.py --port P
"""
from __future__ import annotations

import argparse

import orjson
import uvicorn

BODY = orjson.dumps({"user": 1, "track": 2})
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if body:  # the benchmark's readiness probe is a GET without one
        orjson.loads(body)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    # The per-request settings of service/__main__.py: no proxy-headers middleware, no `server`
    # header, no websocket protocol.
    uvicorn.run(app, host="127.0.0.1", port=parser.parse_args().port, loop="uvloop", http="httptools",
                ws="none", access_log=False, log_level="warning", proxy_headers=False, server_header=False)
