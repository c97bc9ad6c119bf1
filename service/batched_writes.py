"""uvicorn's httptools protocol with its answers written in one system call per batch.

uvicorn writes each answer's head and body to the socket as two writes, each a system call
that may wake the client. The simulator sends a round of pipelined requests and reads all of
their answers: written one by one, the answers woke it once per answer, and the writes took
about a third of py-spy's samples of the service (service/README.md, Speed). Here a connection's
writes are held while requests read behind the current one are still to be answered (uvicorn
answers pipelined requests in order), and the rest are written together at the end of the
event loop's turn: one write for a round of pipelined answers, one per answer otherwise.

Nothing is held across a turn of the loop unless a request behind it is queued, so an interim
answer (100 Continue) or an error answer still goes out in the turn it was written in. Once the
connection is closing (the client half-closed it, or uvicorn is closing it) writes go straight
through, as uvicorn's own would, and what is held goes out first.
"""
from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _BatchedTransport:
    """A transport whose writes are joined and written later (see the module's docstring);
    everything else goes to the socket's own transport."""

    def __init__(self, transport: asyncio.Transport, protocol: HttpToolsProtocol,
                 loop: asyncio.AbstractEventLoop):
        self._transport, self._protocol, self._loop = transport, protocol, loop
        self._held: list[bytes] = []
        self._flush_scheduled = False
        self._lost = False

    def write(self, data: bytes) -> None:
        self._held.append(data)
        if self._transport.is_closing():   # no later turn to wait for
            self.flush()
        # uvicorn queues the requests read behind the one being answered in `pipeline`
        elif not self._protocol.pipeline and not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self.flush()

    def flush(self) -> None:
        """Write what is held now (dropped once the connection is lost, as uvicorn drops
        answers to a client gone)."""
        if self._held and not self._lost:
            self._transport.write(b"".join(self._held))
        self._held.clear()

    def lost(self) -> None:
        self._lost = True
        self._held.clear()

    def writelines(self, chunks) -> None:
        for chunk in chunks:
            self.write(chunk)

    def get_write_buffer_size(self) -> int:
        return sum(map(len, self._held)) + self._transport.get_write_buffer_size()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held.clear()
        self._transport.abort()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


class BatchedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol writing through _BatchedTransport; pass it as uvicorn's `http`."""

    transport: _BatchedTransport

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_BatchedTransport(transport, self, self.loop))  # type: ignore[arg-type]

    def eof_received(self) -> bool | None:
        # the socket's transport closes itself when this returns: the held answers go first
        self.transport.flush()
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport.lost()
        super().connection_lost(exc)
