"""The motivating experiment, end to end (what `./run.sh` runs).

    world  generate the simulated world (catalog + the simulator's secrets) from the seed
    day0   cold start: everyone gets Random; logs -> HDFS; jobs build the course-style Contextual
           table (dim 100, unordered), top-pop and SVD
    day1   everyone gets Contextual on the day-0 table; jobs build the NN table (dim 200,
           ordered), a fresh SVD table and top-pop
    ab     the A/B day: control Contextual (day-0 table) vs treatment ContextualUpdated (day-1
           NN + SVD + top-pop), assigned by the generated service config; logs -> HDFS
           (--cleanup); the analysis job writes the report

Every step runs the project's own CLIs as subprocesses (the same commands a person would type),
with their output in runs/<id>/logs/<step>/*.log, and records itself in the run's manifest.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

from infra import stack as stack_module
from infra.stack import Stack, StackError
from pipeline.record import RunRecord

REPO = Path(__file__).resolve().parent.parent
STEPS = ("world", "day0", "day1", "ab")
BIN = Path(sys.executable).parent


class StepFailed(Exception):
    pass


def load_yaml(path: Path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


class Experiment:
    def __init__(self, config: dict, record: RunRecord, stack: Stack, stack_config: dict,
                 scale: str, seed: int):
        self.config, self.record, self.stack, self.stack_config = config, record, stack, stack_config
        self.sizes = config["scales"][scale]
        self.seed = seed
        self.run_id = record.folder.name
        self.world = REPO / config["world"].format(seed=seed)
        self.env = {**os.environ, **stack.env(), "PYSPARK_PYTHON": sys.executable,
                    "PYSPARK_DRIVER_PYTHON": sys.executable}
        self.user = stack.env()["BOTIFY_HDFS_USER"]
        self.last_service_config: Path | None = None

    # ---- helpers

    def folder(self, *parts: str) -> Path:
        path = self.record.folder.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def hdfs_path(self, *parts: str) -> str:
        """Home-relative (for the dataclient) path of this run's data on HDFS."""
        return "/".join((self.config["hdfs_root"], self.run_id, *parts))

    def hdfs_uri(self, *parts: str) -> str:
        return f"{self.stack.env()['BOTIFY_HDFS_FS']}/user/{self.user}/{self.hdfs_path(*parts)}"

    def run(self, step: str, name: str, argv: list[str], timings: dict, show: bool = False) -> None:
        """Run one command; its output goes to the step's log (and the terminal when `show`)."""
        log = self.folder("logs", step) / f"{name}.log"
        print(f"  {step}: {name} ...", flush=True)
        started = time.monotonic()
        with open(log, "w") as out:
            out.write("$ " + " ".join(argv) + "\n")
            out.flush()
            if show:  # progress bars on the terminal, the summary in the log as well
                process = subprocess.Popen(argv, cwd=REPO, env=self.env, stdout=subprocess.PIPE,
                                           text=True)
                for line in process.stdout:
                    sys.stdout.write(line)
                    out.write(line)
                code = process.wait()
            else:
                code = subprocess.run(argv, cwd=REPO, env=self.env, stdout=out,
                                      stderr=subprocess.STDOUT).returncode
        seconds = time.monotonic() - started
        timings[name] = round(seconds, 2)
        if code != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise StepFailed(f"{step}: {name} failed (exit {code}) after {seconds:.0f} s; "
                             f"full log: {log}\n{tail}")
        print(f"  {step}: {name} done in {seconds:.1f} s", flush=True)

    def spark_job(self, step: str, script: str, args: list[str], timings: dict) -> None:
        self.run(step, Path(script).stem, [str(BIN / "spark-submit"), "--master", "local[2]",
                                           str(REPO / script), *args], timings)

    # ---- steps

    def step_world(self, timings: dict) -> None:
        self.run("world", "sim.world", [sys.executable, "-m", "sim.world", "--config", "conf/sim.yml",
                                        "--seed", str(self.seed), "--out", str(self.world)], timings)

    def service_config(self, step: str, arms: list[dict]) -> Path:
        """The service config of one day: conf/service.yml with this day's experiment and store."""
        config = load_yaml(REPO / "conf" / "service.yml")
        config["seed"] = self.seed
        config["catalog"] = str(self.world / "tracks.jsonl")
        config["store"] = {"backend": self.config["service"]["store"],
                           "redis_url": self.stack.env()["BOTIFY_REDIS_URL"],
                           "redis_prefix": f"botify:{self.run_id}:{step}"}
        config["experiments"] = [{"name": self.config["experiment"], "arms": arms}]
        path = self.folder("conf") / f"service-{step}.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def arm(self, name: str, spec: dict, weight: float = 1) -> dict:
        tables = {slot: str(self.folder("tables") / table) for slot, table in spec.get("tables", {}).items()}
        for table in tables.values():
            if not Path(table).exists():
                raise StepFailed(f"table {table} is missing: run the earlier day first "
                                 f"(./run.sh --run {self.record.folder} --step <day>)")
        return {"name": name, "weight": weight, "recommender": spec["recommender"], "tables": tables}

    def serve_and_simulate(self, step: str, arms: list[dict], sessions: int, seed: int,
                           timings: dict) -> Path:
        """Serve the day's config, let the simulator play `sessions` sessions, stop the service."""
        logs = self.folder("logs", step, "events")
        self.last_service_config = self.service_config(step, arms)
        self.stack.start_service(self.stack_config, self.last_service_config, logs)
        try:
            self.run(step, "simulate", [
                sys.executable, "-m", "sim.run", "--episodes", str(sessions), "--recommender", "remote",
                "--url", self.stack.service_url, "--config", "conf/sim.yml", "--seed", str(seed),
                "--world", str(self.world), "--processes", str(self.sizes["processes"]),
                "--output", str(self.folder("sim") / f"{step}.jsonl")], timings, show=True)
        finally:
            self.stack.stop_service()  # SIGTERM: the event log is flushed before the upload
        return logs

    def upload(self, step: str, logs: Path, timings: dict, cleanup: bool = False) -> None:
        replicas = sorted(p for p in logs.iterdir() if p.is_dir())
        argv = [sys.executable, "-m", "dataclient", "--user", self.user, "log2hdfs"]
        argv += ["--cleanup"] if cleanup else []
        for replica in replicas:
            argv += ["--log-dir", str(replica)]
        self.run(step, "log2hdfs", argv + [self.hdfs_path(step, "events")], timings)

    def build_tables(self, step: str, nn_args: list[str], timings: dict) -> None:
        aggregates = self.hdfs_uri(step, "aggregates")  # sessions/, users/, quarantine/
        sessions, tables = f"{aggregates}/sessions", self.hdfs_uri(step, "tables")
        seed = ["--seed", str(self.seed)]
        self.spark_job(step, "jobs/sessions.py", ["--events", self.hdfs_uri(step, "events"),
                                                  "--out", aggregates], timings)
        self.spark_job(step, "jobs/toppop.py", ["--sessions", sessions, "--out", tables], timings)
        self.spark_job(step, "jobs/nn.py", ["--sessions", sessions, "--out", tables, *nn_args, *seed],
                       timings)
        self.spark_job(step, "jobs/svd.py", ["--sessions", sessions, "--out", tables, *seed], timings)
        local = self.folder("tables", step)
        self.run(step, "fetch", [sys.executable, "-m", "jobs.fetch", tables, str(local)], timings)
        for table in sorted(local.iterdir()):
            self.record.add_table(step, table)

    def step_day0(self, timings: dict) -> None:
        logs = self.serve_and_simulate("day0", [self.arm("random", self.config["days"]["day0"]["arm"])],
                                       self.sizes["day0_sessions"], self.seed, timings)
        self.upload("day0", logs, timings)
        self.build_tables("day0", ["--dim", "100", "--unordered"], timings)

    def step_day1(self, timings: dict) -> None:
        logs = self.serve_and_simulate("day1", [self.arm("contextual", self.config["days"]["day1"]["arm"])],
                                       self.sizes["day1_sessions"], self.seed + 1, timings)
        self.upload("day1", logs, timings)
        self.build_tables("day1", ["--dim", "200"], timings)

    def step_ab(self, timings: dict) -> None:
        ab = self.config["days"]["ab"]
        arms = [self.arm("C", ab["control"], 0.5), self.arm("T1", ab["treatment"], 0.5)]
        logs = self.serve_and_simulate("ab", arms, self.sizes["ab_sessions"], self.seed + 2, timings)
        self.upload("ab", logs, timings, cleanup=True)
        report = self.folder("report")
        self.spark_job("ab", "analysis/ab_test.py", [
            "--events", self.hdfs_uri("ab", "events"), "--experiment", self.config["experiment"],
            "--control", "C", "--treatment", "T1", "--out", str(report), "--seed", str(self.seed)],
            timings)
        results = json.loads((report / "results.json").read_text())
        self.record.set("results", results)

    def run_steps(self, steps: tuple[str, ...]) -> None:
        for step in steps:
            print(f"== {step}", flush=True)
            with self.record.step(step) as timings:
                getattr(self, f"step_{step}")(timings)


def print_results(record: RunRecord) -> None:
    report = record.folder / "report"
    table = report / "ab_report.md"
    if table.exists():
        print(table.read_text())
    for name in ("ab_report.png", "ab_report.md", "results.json"):
        print(f"{name}: {report / name}")
    print(f"manifest: {record.path}")


def run(config_path: Path, scale: str, seed: int | None, steps: tuple[str, ...],
        run_folder: Path | None, keep_running: bool) -> int:
    config = load_yaml(config_path)
    seed = config["seed"] if seed is None else seed
    if scale not in config["scales"]:
        print(f"error: unknown scale {scale!r}; conf/pipeline.yml has {sorted(config['scales'])}",
              file=sys.stderr)
        return 2
    folder = run_folder or REPO / config["runs_dir"] / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    record = RunRecord(folder, {"scale": scale, "seed": seed, "steps": list(steps),
                                "sizes": config["scales"][scale], "pipeline": config,
                                "sim": load_yaml(REPO / "conf" / "sim.yml"),
                                "service": load_yaml(REPO / "conf" / "service.yml")})
    print(f"run folder: {folder}")
    stack_config = stack_module.load_config()
    # --keep-running uses the ports of conf/stack.yml, so `./run.sh down` stops it afterwards.
    stack = stack_module.new_stack(stack_config, ephemeral=not keep_running)
    code = 0
    try:
        stack.up(stack_config)
        experiment = Experiment(config, record, stack, stack_config, scale, seed)
        experiment.run_steps(steps)
        if "ab" in steps:
            print_results(record)
        if keep_running and experiment.last_service_config:
            # Serve the last day's config again, for poking at by hand.
            stack.start_service(stack_config, experiment.last_service_config,
                                experiment.folder("logs", "after-run", "events"))
    except (StepFailed, StackError) as error:
        print(f"error: {error}\nthe run's logs stay in {folder}/logs", file=sys.stderr)
        code = 1
    finally:
        record.set("finished", datetime.now(timezone.utc).isoformat(timespec="seconds"))
        if keep_running and code == 0:
            print("the stack keeps running (`./run.sh status`, `./run.sh down`)")
        else:
            stack.down()
    return code
