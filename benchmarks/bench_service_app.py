"""CPU time of the service's own work per POST /next, without the server: both ASGI apps are
called in-process, as uvicorn would call them, with the body in one message.

    .venv/bin/python benchmarks/bench_service_app.py [--tracks 50000] [--width 100]
                                                     [--requests 50000] [--rounds 5]

Alternates the baseline (benchmarks/bare_app.py: parse the body, answer a fixed object) and
the service (memory store, the Contextual arm and world of bench_service.py) and prints each
one's process CPU time per request (all threads, so the event-log writer counts). CPU time,
unlike wall time, hardly moves when other processes load the machine. What the server adds
per request (HTTP parsing, the socket writes) is not counted; bench_service.py measures the
whole.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bare_app import app as bare_app  # noqa: E402
from benchmarks.bench_service import OUT, make_world, write_config  # noqa: E402
from service.app import create_app  # noqa: E402
from service.config import load_config  # noqa: E402


def request(n: int, tracks: int) -> tuple[str, bytes]:
    """The n-th /next request's path and body, users and tracks varied as benchmarks/next.lua does."""
    return f"/next/{n % 10_000}", b'{"track": %d, "time": %.2f}' % ((n * 7919) % tracks, (n % 100) / 100)


async def asgi_cpu_us(app, requests: int, tracks: int) -> float:
    """Process CPU time per /next request of an ASGI app."""
    async def send(message: dict) -> None:
        pass

    started = time.process_time()
    for n in range(requests):
        path, body = request(n, tracks)

        async def receive(body=body) -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        scope = {"type": "http", "method": "POST", "path": path,
                 "headers": [(b"content-type", b"application/json")]}
        await app(scope, receive, send)
    return 1e6 * (time.process_time() - started) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=50_000)
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--requests", type=int, default=50_000, help="per app and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    world = OUT / f"world-{args.tracks}x{args.width}"
    make_world(world, args.tracks, args.width)
    with tempfile.TemporaryDirectory(prefix="bench-service-app-") as tmp:
        tmp = Path(tmp)
        write_config(tmp / "service.yml", world, tmp / "logs", "memory", None, "app")
        service = create_app(load_config(tmp / "service.yml"))
        apps = {"bare": bare_app, "service": service}

        async def measure() -> dict[str, list[float]]:
            results = {name: [] for name in apps}
            for _ in range(args.rounds):
                for name, app in apps.items():
                    results[name].append(await asgi_cpu_us(app, args.requests, args.tracks))
            return results

        results = asyncio.run(measure())
        asyncio.run(service.service.close())
    for name, values in results.items():
        print(f"{name:8} CPU us per /next: median {statistics.median(values):5.1f}, "
              f"rounds {' '.join(f'{v:.1f}' for v in values)}")


if __name__ == "__main__":
    main()
