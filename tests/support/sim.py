"""Helpers shared by the simulator's test modules: small worlds, configs, runs of its modules."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import yaml

from infra.ports import free_port
from sim.remote import ServiceUnreachable, check_service
from sim.world import World

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / "conf" / "sim.yml"

# a world small enough to generate in well under a second, with the same structure
SMALL_WORLD = {"tracks": 3000, "artists": 300, "genres": 12, "dimension": 16}
SMALL_USERS = {"users": 300}


def write_config(folder: Path, world: dict | None = None, users: dict | None = None,
                 run: dict | None = None, name: str = "sim.yml") -> Path:
    """conf/sim.yml with overrides (defaults: a small world), written into `folder`."""
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["world"].update(SMALL_WORLD if world is None else world)
    config["users"].update(SMALL_USERS if users is None else users)
    config["run"].update(run or {})
    path = folder / name
    path.write_text(yaml.safe_dump(config))
    return path


def run_module(module: str, *args: str, stdin: str | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m module args` from the repository root, capturing text output."""
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def generate_small_world(folder: Path, seed: int) -> Path:
    """A small world generated into folder/world by `sim.world`; returns its config's path."""
    config = write_config(folder)
    result = run_module("sim.world", "--config", str(config), "--seed", str(seed),
                        "--out", str(folder / "world"))
    assert result.returncode == 0, result.stderr
    return config


def read_sessions(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def tiny_world(budget=2) -> World:
    """A four-track, one-user world whose listen times can be computed by hand."""
    # interest track 0 at (1, 0); scores against it: t0 1.0, t1 0.8, t2 0.0, t3 2.0
    embeddings = np.array([[1, 0], [0.8, 0.6], [0, 1], [2, 0]], dtype=np.float32)
    return World(seed=0, embeddings=embeddings,
                 track_artist=np.array([0, 0, 1, 1], dtype=np.int32),
                 track_genre=np.zeros(4, dtype=np.int32), artist_names=["A", "B"],
                 titles=["a", "b", "c", "d"], interests=np.array([[0]], dtype=np.int32),
                 interest_neighbours=np.array([[[0]]], dtype=np.int32),
                 consume_bias=np.array([1.0]), consume_sharpness=np.array([2.0]),
                 session_budget=budget, artist_discount_gamma=0.5)


def serve_config(config_path: Path) -> tuple[subprocess.Popen, str]:
    """A real `python -m service` on a free port, once it answers: (its process, its URL)."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "service", "--config", str(config_path),
                                "--port", str(port)], cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            check_service(url, 1.0)
            return process, url
        except ServiceUnreachable:
            assert process.poll() is None, "the service exited at start"
            assert time.monotonic() < deadline, "the service did not start in 60 s"
            time.sleep(0.2)
