"""The stack's processes by pid: start one in a session of its own with its output in a log,
wait for it to be ready, tell whether it runs, stop a set of them.

Each runs in its own session so that stopping it stops whatever it started too; a stack bound
to its launcher starts them with `die_with_parent` (infra/lifetime.py), so they end with it even
when it is SIGKILLed.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from infra.errors import StackError
from infra.lifetime import die_with_parent
from infra.logtail import tail


def spawn(argv: list[str], log: Path, cwd: Path, bound_to_launcher: bool) -> int:
    """Start `argv` with stdout and stderr appended to `log`; its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True, cwd=cwd,
                                   preexec_fn=die_with_parent if bound_to_launcher else None)
    return process.pid


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); it is dead for our purpose.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_until(pid: int, name: str, log: Path, ready: Callable[[], bool], timeout: float,
               what: str, interval: float = 0.25) -> None:
    """Poll `ready` until it holds; a StackError quoting `log` when the process exits first or
    `timeout` seconds pass (`what` says what did not happen)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            raise StackError(f"{name} exited during start-up; see {log}:\n" + tail(log))
        if ready():
            return
        time.sleep(interval)
    raise StackError(f"{what} within {timeout:.0f} s; see {log}:\n" + tail(log))


def stop_processes(pids: dict[str, int], timeout: float = 20) -> None:
    """SIGTERM each process's whole session (each was started in its own), all at once so that
    they shut down side by side, then SIGKILL those still running after `timeout`."""
    running = dict(pids)
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        for name, pid in list(running.items()):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                del running[name]
        deadline = time.monotonic() + wait
        while running and time.monotonic() < deadline:
            for name, pid in list(running.items()):
                try:
                    os.waitpid(pid, os.WNOHANG)  # reap it when it is our child
                except ChildProcessError:
                    pass
                if not process_alive(pid):
                    del running[name]
            time.sleep(0.02)
        if not running:
            return
    for name, pid in running.items():
        print(f"warning: {name} (pid {pid}) did not stop", file=sys.stderr)


def stop_process(pid: int, name: str, timeout: float = 20) -> None:
    stop_processes({name: pid}, timeout)
