"""The HTTP server the service runs under: granian (HTTP/1 in Rust, on hyper) embedded in this
process's uvloop event loop, calling the app through RSGI (service/jsonapp.py).

Why granian over RSGI: the server's own work is most of a `/next`'s CPU. Under uvicorn
(httptools, uvloop) each answer is two ASGI messages and two socket writes made by Python
protocol code; through RSGI the body comes in one call and the answer goes out in one, the
parsing and writing done in Rust (measured in service/README.md, Speed). One process, one
worker: the app's state (event log, sessions, reload) stays in this process.
"""
from __future__ import annotations

import asyncio
import signal

import uvloop
from granian.constants import HTTPModes, Interfaces
from granian.server.embed import Server

from service.jsonapp import JsonApp

BACKLOG = 2048  # connections waiting to be accepted (uvicorn's default; a simulator opens many)


def serve(app: JsonApp, host: str, port: int) -> None:
    """Serve `app` until SIGTERM/SIGINT: the server stops taking connections, answers what it
    is serving, then the app's lifespan ends (the event log is flushed and closed)."""
    uvloop.run(_serve(app, host, port))


async def _serve(app: JsonApp, host: str, port: int) -> None:
    server = Server(app, address=host, port=port, interface=Interfaces.RSGI, http=HTTPModes.http1,
                    websockets=False, backlog=BACKLOG, log_enabled=False)
    loop = asyncio.get_running_loop()
    async with app.lifespan():
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, server.stop)
        await server.serve()
