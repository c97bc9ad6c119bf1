"""Polling until something holds: the tests that start servers and processes wait this way."""
from __future__ import annotations

import subprocess
import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float, what: str,
             process: subprocess.Popen | None = None,
             retry_on: tuple[type[BaseException], ...] = (), interval: float = 0.05,
             details: Callable[[], str] = lambda: "") -> T:
    """The first truthy value of `condition()`, polled every `interval` seconds. Fails (an
    AssertionError naming `what`, then `details()`, e.g. a log's tail) after `timeout`
    seconds, or at once when `process` has exited. An exception of a `retry_on` type (a
    server not listening yet) counts as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the process exited with status {process.returncode}"
                                 f"{details()}")
        try:
            value = condition()
            if value:
                return value
        except retry_on:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{details()}")
        time.sleep(interval)
