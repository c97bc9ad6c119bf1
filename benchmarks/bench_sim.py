"""Simulator speed: in-process steps/s, and remote steps/s with the share of time in the sim.

    .venv/bin/python benchmarks/bench_sim.py [--world data/world] [--seed 42] [--url URL]
                                             [--episodes N] [--remote-episodes N] [--workers 1,2,4]

The world folder is generated from --seed when it does not exist; an existing world made from
another seed or config is refused (exit 2), never overwritten.

- dummy, in-process, one core: the simulator's own cost per step;
- the long term's cost: dummy in-process, a one-day run of --episodes sessions against
  `--days 5` with returns on (--episodes / 5 expected sessions a day), alternated `--repeats`
  times, best of each: steps/s by wall time and by CPU time, and their ratios;
- remote: against --url (the botify service), or else against a trivial peer started here
  (a bare ASGI app under uvicorn in its own process, answering random track ids), with
  1, 2 and 4 worker processes (--workers): steps/s per worker and the share of the workers'
  time spent in the simulator rather than waiting on the service.

Each line printed names its target, where the simulator has one.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import sys
import time
from pathlib import Path

import orjson
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infra.ports import free_port  # noqa: E402
from sim.config import load_config  # noqa: E402
from sim.remote import check_service  # noqa: E402
from sim.run import RunSpec, episode_users, run_episodes, run_parallel  # noqa: E402
from sim.world import MANIFEST_FILE, ensure_world, load_world, world_is_current  # noqa: E402

LONG_TERM_DAYS = 5
# what the simulator must sustain (printed beside the figures)
TARGET_IN_PROCESS = 50_000      # dummy steps/s, one process
TARGET_LONG_TERM = 0.8          # returns on / off, steps/s
TARGET_PER_WORKER = 2_500       # remote steps/s per worker against the service

PEER_TRACKS = {"n": 0}


async def trivial_peer(scope, receive, send):
    """The cheapest thing that speaks the botify API: random recommendations."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    path = scope["path"]
    if path.startswith("/next/"):
        body = orjson.dumps({"user": int(path[6:]), "track": random.randrange(PEER_TRACKS["n"])})
    elif path.startswith("/last/"):
        body = orjson.dumps({"user": int(path[6:])})
    else:
        body = b"trivial peer"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def _serve_peer(port: int, n_tracks: int) -> None:
    PEER_TRACKS["n"] = n_tracks
    uvicorn.run(trivial_peer, host="127.0.0.1", port=port, log_level="warning",
                access_log=False, lifespan="off", http="httptools")


def start_peer(n_tracks: int) -> tuple[multiprocessing.Process, str]:
    port = free_port()
    process = multiprocessing.get_context("spawn").Process(
        target=_serve_peer, args=(port, n_tracks), daemon=True)
    process.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            check_service(url, 1.0)
            return process, url
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def refuse_other_world(folder: Path, config, config_path: str, seed: int) -> str | None:
    """Why the benchmark must not use `folder`, or None: an existing, non-empty folder that
    does not hold this seed's world is someone's other world (it was once regenerated in
    place here, silently)."""
    if not folder.exists() or not any(folder.iterdir()) or world_is_current(folder, config, seed):
        return None
    try:
        found = f"a world with seed {json.loads((folder / MANIFEST_FILE).read_text())['seed']}"
    except (OSError, ValueError, KeyError, TypeError):
        found = "files that are not a complete world"
    return (f"{folder} holds {found}, not the world of seed {seed} and {config_path}; pass "
            f"--world with a new folder, or the world's own --seed")


def measure(world, config, agent: str, episodes: int, processes: int, url: str,
            days: int = 0) -> dict:
    if days:
        spec = RunSpec(agent, 1, [url], config, days=days, episodes_per_day=episodes // days)
    else:
        users = episode_users(1, episodes, world.n_users)
        spec = RunSpec(agent, 1, [url], config, [(e, int(u)) for e, u in enumerate(users)])
    started, started_cpu = time.perf_counter(), time.process_time()
    if processes == 1:
        _, stats = run_episodes(world, spec, lambda count: None)
    else:
        _, stats = run_parallel(world, spec, processes, lambda count: None)
    wall = time.perf_counter() - started
    cpu = time.process_time() - started_cpu
    return {"steps": stats.steps, "wall_s": wall, "steps_per_s": stats.steps / wall,
            "steps_per_cpu_s": stats.steps / cpu if cpu > 0 else float("nan"),
            "per_worker": stats.steps / stats.worker_seconds,
            "sim_share": stats.worker_cpu_seconds / stats.worker_seconds,
            "sim_us_per_step": stats.worker_cpu_seconds / stats.steps * 1e6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="conf/sim.yml")
    parser.add_argument("--world", default="data/world")
    parser.add_argument("--seed", type=int, default=42, help="world seed if generated")
    parser.add_argument("--url", help="botify service to measure against (default: a "
                                      "trivial peer started by this script)")
    parser.add_argument("--episodes", type=int, default=20000, help="dummy sessions")
    parser.add_argument("--remote-episodes", type=int, default=3000, help="remote sessions")
    parser.add_argument("--workers", type=lambda text: [int(n) for n in text.split(",")],
                        default=[1, 2, 4], help="remote worker processes to measure, comma-separated "
                                                "(the plans' small scale uses 4)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each side of the long-term comparison (best kept)")
    args = parser.parse_args()

    config = load_config(args.config)
    refusal = refuse_other_world(Path(args.world), config, args.config, args.seed)
    if refusal is not None:
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    ensure_world(Path(args.world), config, args.seed)
    world = load_world(Path(args.world))

    dummy = measure(world, config, "dummy", args.episodes, 1, "")
    print(f"dummy in-process, 1 process: {dummy['steps']} steps in {dummy['wall_s']:.2f} s "
          f"= {dummy['steps_per_s']:,.0f} steps/s (target >= {TARGET_IN_PROCESS:,})")

    returns = config.model_copy(update={"returns": config.returns.model_copy(
        update={"enabled": True})})
    best: dict[str, dict] = {}
    for _ in range(args.repeats):  # alternated, so both sides see the same machine load
        for name, run_config, days in (("off", config, 0), ("on", returns, LONG_TERM_DAYS)):
            result = measure(world, run_config, "dummy", args.episodes, 1, "", days)
            side = best.setdefault(name, {})
            for key in ("steps_per_s", "steps_per_cpu_s"):
                side[key] = max(side.get(key, 0), result[key])
    off, on = best["off"], best["on"]
    print(f"returns off (one day, {args.episodes} sessions): {off['steps_per_s']:,.0f} steps/s "
          f"wall, {off['steps_per_cpu_s']:,.0f} steps per CPU second")
    print(f"returns on ({LONG_TERM_DAYS} days, {args.episodes // LONG_TERM_DAYS} expected "
          f"sessions a day): {on['steps_per_s']:,.0f} steps/s wall, "
          f"{on['steps_per_cpu_s']:,.0f} steps per CPU second")
    print(f"returns on / off (best of {args.repeats}): "
          f"{on['steps_per_s'] / off['steps_per_s']:.2f} by wall time, "
          f"{on['steps_per_cpu_s'] / off['steps_per_cpu_s']:.2f} by CPU time "
          f"(target >= {TARGET_LONG_TERM})")

    peer = None
    url = args.url
    if url is None:
        peer, url = start_peer(world.n_tracks)
        print(f"remote: trivial peer (bare ASGI app, uvicorn+httptools) at {url}")
    else:
        check_service(url, config.run.timeout_s)
        print(f"remote: service at {url}")
    try:
        for processes in args.workers:
            remote = measure(world, config, "remote", args.remote_episodes, processes, url)
            print(f"remote, {processes} process(es): {remote['steps']} steps in "
                  f"{remote['wall_s']:.2f} s = {remote['steps_per_s']:,.0f} steps/s total, "
                  f"{remote['per_worker']:,.0f} steps/s per worker; time in the simulator "
                  f"{remote['sim_share']:.0%} ({remote['sim_us_per_step']:.0f} us CPU/step incl. the "
                  f"HTTP client), the rest waiting on the service"
                  + ("" if peer is not None else f" (target >= {TARGET_PER_WORKER:,} steps/s per worker)"))
    finally:
        if peer is not None:
            peer.terminate()
            peer.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
