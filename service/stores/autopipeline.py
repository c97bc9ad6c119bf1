"""Automatic pipelining for redis.asyncio: the commands that requests issue while the event
loop is busy are sent together as one pipeline at the next loop turn.

Why: under load, one round trip and one pass through redis-py then serve dozens of requests
instead of one each. An idle service still sends a lone command at once: the batch is flushed
on the very next loop turn, no timer waits.
"""
from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio
from redis.exceptions import NoScriptError


class AutoPipeline:
    def __init__(self, client: redis.asyncio.Redis):
        self._client = client
        self._queued: list[tuple[tuple, asyncio.Future]] = []
        self._flushes: set[asyncio.Task] = set()  # referenced until done

    async def call(self, *command: Any) -> Any:
        """Run one Redis command (e.g. "EVALSHA", sha, 1, key, arg) in the next pipeline."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._queued:
            loop.call_soon(self._flush)
        self._queued.append((command, future))
        return await future

    async def script(self, script_text: str, sha: str, keys: list, args: list) -> Any:
        """EVALSHA through the pipeline, loading the script if Redis lost it (restart, flush)."""
        try:
            return await self.call("EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:
            await self._client.script_load(script_text)
            return await self.call("EVALSHA", sha, len(keys), *keys, *args)

    def _flush(self) -> None:
        batch, self._queued = self._queued, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _send(self, batch: list[tuple[tuple, asyncio.Future]]) -> None:
        try:
            if len(batch) == 1:  # an idle service: a plain call costs less than a pipeline
                results = [await self._client.execute_command(*batch[0][0])]
            else:
                pipe = self._client.pipeline(transaction=False)
                for command, _ in batch:
                    pipe.execute_command(*command)
                results = await pipe.execute(raise_on_error=False)
        except Exception as error:  # a lone command's error, or the connection lost:
            results = [error] * len(batch)  # every request of the batch learns it
        for (_, future), result in zip(batch, results):
            if future.done():      # the request was cancelled (client went away)
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
