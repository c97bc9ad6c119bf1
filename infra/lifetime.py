"""Nothing left behind: what the launchers (`./run.sh`, `./run.sh test`, `./run.sh up`) do so
that no NameNode, DataNode, Redis, Spark or service process outlives them by accident.

- `exit_on_signals()`: SIGTERM and SIGHUP raise SystemExit like Ctrl-C raises
  KeyboardInterrupt, so the launcher's `finally:` blocks stop what it started.
- `die_with_parent`: a Popen `preexec_fn` asking Linux to SIGTERM the child when its launcher
  dies, even by SIGKILL, when no `finally:` can run (prctl PR_SET_PDEATHSIG); the simulator's
  forked workers ask the same of their run.
"""
from __future__ import annotations

import ctypes
import signal
import sys

_PR_SET_PDEATHSIG = 1


def exit_on_signals() -> None:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda number, _frame: sys.exit(128 + number))


def die_with_parent() -> None:
    """SIGTERM this process when its parent dies. As a Popen `preexec_fn` it runs in the child
    between fork and exec (only async-signal-safe work here); forked workers call it first."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
