"""TCP ports for the stack's servers: free ones for servers started a moment later, chosen
outside the kernel's ephemeral range, and a clear error when a configured one is taken.

A port found free by binding port 0 comes from the ephemeral range, the one the kernel also
hands to every connect() and every other bind to port 0. In the seconds before a JVM binds the
port it was given, any of those can take it, and the JVM fails with "BindException: Address
already in use". Outside that range only an explicit bind takes a port.
"""
from __future__ import annotations

import random
import socket
from pathlib import Path

from infra.errors import StackError

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LINUX_DEFAULT_RANGE = (32_768, 60_999)
LOWEST = 10_000   # below: the ports of well-known services (8080, 9000, 6379, ...)
ATTEMPTS = 200


def ephemeral_range() -> tuple[int, int]:
    try:
        low, high = map(int, EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        return LINUX_DEFAULT_RANGE
    return low, high


def is_free(host: str, port: int, reuse_address: bool = False) -> bool:
    """Whether a server could bind the port now (with reuse_address: also while connections
    closed on it linger in TIME_WAIT, as servers that set SO_REUSEADDR can)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(reuse_address))
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing is bound to on `host` now, outside the ephemeral range."""
    low, high = ephemeral_range()
    ports = [*range(LOWEST, low), *range(high + 1, 65_536)]
    # Not seeded, on purpose: stacks started at once (two test workers) must not try the same
    # ports in the same order. Which port a server gets changes no result.
    for port in random.SystemRandom().sample(ports, min(ATTEMPTS, len(ports))):
        if is_free(host, port):
            return port
    raise OSError(f"no free TCP port on {host} outside the ephemeral range {low}-{high} "
                  f"in {ATTEMPTS} tries")


def require_port_free(host: str, port: int, what: str) -> None:
    if not is_free(host, port, reuse_address=True):
        raise StackError(
            f"port {port} ({what}) is in use on {host}: stop what listens there "
            f"(see `ss -ltnp 'sport = :{port}'`; `./run.sh down` if it is an earlier stack) "
            f"or choose another port with BOTIFY_PORT_<NAME> (names in conf/stack.yml).")
