"""The HTTP server the service runs under, one of two (`server.engine` in its config), both in
this process on the uvloop event loop, one worker (the app's state - event log, sessions,
reload - stays in this process):

- granian (the default): HTTP/1 in Rust (hyper) on a thread of its own, calling the app through
  RSGI (service/jsonapp.py): the body comes in one call and the answer goes out in one. The
  most requests per second when many connections keep it busy: 0.88-0.89 x a bare uvicorn app
  at 64 connections, where uvicorn gives the service 0.68-0.69 x (service/README.md, Speed).
- uvicorn (httptools parser, ASGI): the least CPU per request when a few clients wait for each
  answer before their next request, as the simulator's workers do: 20,000 sessions took
  13.5-15.1 s under it against 20.6-24.0 s under granian (benchmarks/bench_engines.py), whose
  every request crosses between its thread and the event loop's. The pipeline serves its days
  with it. Its protocol here writes a round of pipelined answers in one system call
  (service/batched_writes.py), where uvicorn's own wrote two per answer.

It listens on host:port, or on a Unix socket instead (`server.uds`: clients on this machine,
like the pipeline's simulator, cost the kernel less per request; service/README.md, Speed).
Either way SIGTERM and SIGINT stop the server gracefully (it stops taking connections and
answers what it is serving), then the app's lifespan ends (the event log is flushed and
closed) and the process exits with status 0.
"""
from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import uvicorn
import uvloop
from granian.constants import HTTPModes, Interfaces
from granian.server.embed import Server

from service.batched_writes import BatchedHttpToolsProtocol
from service.jsonapp import JsonApp

BACKLOG = 2048  # connections waiting to be accepted (uvicorn's default; a simulator opens many)
GRACE_S = 10    # uvicorn: how long in-flight requests may take to finish after SIGTERM


def serve(app: JsonApp, host: str, port: int, engine: str, uds: Path | None = None) -> None:
    """Serve `app` with `engine` ("granian" or "uvicorn") on host:port, or on the Unix socket
    `uds` instead, until SIGTERM/SIGINT."""
    if engine == "granian":
        uvloop.run(_serve_granian(app, host, port, uds))
    elif engine == "uvicorn":
        _serve_uvicorn(app, host, port, uds)
    else:
        raise ValueError(f"unknown server engine {engine!r}: granian or uvicorn")


async def _serve_granian(app: JsonApp, host: str, port: int, uds: Path | None) -> None:
    server = Server(app, address=host, port=port, uds=uds, interface=Interfaces.RSGI, http=HTTPModes.http1,
                    websockets=False, backlog=BACKLOG, log_enabled=False)
    loop = asyncio.get_running_loop()
    async with app.lifespan():
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, server.stop)
        await server.serve()


def _serve_uvicorn(app: JsonApp, host: str, port: int, uds: Path | None) -> None:
    # uvicorn handles SIGTERM/SIGINT itself and, once shut down, raises the signal again for the
    # handler it found: these do nothing, so a clean stop exits 0 as under granian.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    # No proxy-headers middleware (the app never reads the client address) and no `server`
    # header: per-request work the simulator's load waits for (service/README.md, Speed).
    uvicorn.Server(uvicorn.Config(
        app, host=host, port=port, uds=str(uds) if uds else None, loop="uvloop", http=BatchedHttpToolsProtocol, lifespan="on", ws="none",
        backlog=BACKLOG, access_log=False, log_level="warning", proxy_headers=False, server_header=False,
        timeout_graceful_shutdown=GRACE_S)).run()
