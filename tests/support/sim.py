"""Helpers shared by the simulator's test modules: small worlds, configs, runs of its modules."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import yaml

from infra.ports import free_port
from sim.remote import ServiceUnreachable, check_service
from service.config import shipped_with
from sim.world import World
from support.waiting import wait_for

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


def one_day_run(folder: Path, seed: int, experiment: str, day: dict) -> tuple[Path, Path]:
    """A run folder as the pipeline leaves it for a plan of one `day` (a small world, the day's
    service config, the manifest's settings): what the truth and the calibrations read. Returns
    the run folder and the simulator's config."""
    sim_config = generate_small_world(folder, seed=21)
    run = folder / "run"
    (run / "conf").mkdir(parents=True)
    service = shipped_with({"seed": seed, "catalog": str(folder / "world" / "tracks.jsonl"),
                            "experiments": [{"name": experiment, "arms": day["arms"]}],
                            "log": {"dir": str(folder / "logs")}})
    (run / "conf" / f"service-{day['name']}.yml").write_text(yaml.safe_dump(service))
    plan = {"experiment": experiment, "days": [day]}
    (run / "manifest.json").write_bytes(orjson.dumps({"settings": {
        "seed": seed, "scale": "smoke", "plan_config": plan,
        "sim": yaml.safe_load(sim_config.read_text())}}))
    return run, sim_config


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


def serve_config(config_path: Path, *flags: str) -> tuple[subprocess.Popen, str]:
    """A real `python -m service` on a free port (with the CLI's `flags`), once it answers:
    (its process, its URL). A service that never answers is killed before the test fails."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "service", "--config", str(config_path),
                                "--port", str(port), *flags], cwd=REPO)
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        check_service(url, 1.0)
        return True

    try:
        wait_for(answers, 60, "the service to answer", process, retry_on=(ServiceUnreachable,))
    except AssertionError:
        process.kill()
        process.wait()
        raise
    return process, url
