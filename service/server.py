"""The HTTP server every botify ASGI app runs under: uvicorn with the uvloop event loop and the
httptools parser, no access log. `benchmarks/bench_service.py` runs its bare baseline app
through the same function, so the service and its baseline differ only in the app."""
from __future__ import annotations

import uvicorn


def serve(app, host: str, port: int) -> None:
    """Serve `app` until SIGTERM/SIGINT; in-flight requests get 10 s to finish."""
    uvicorn.Server(uvicorn.Config(
        app, host=host, port=port, loop="uvloop", http="httptools", lifespan="on",
        access_log=False, log_level="warning", timeout_graceful_shutdown=10)).run()
