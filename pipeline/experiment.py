"""A plan, end to end (what `./run.sh` runs; the plan format is in docs/DESIGN.md, "Plans").

    world  generate the simulated world (catalog + the simulator's secrets) from the world seed
    <day>  for each day of the plan in order: serve its arms (a generated service config), let
           the simulator play its sessions, upload the logs to HDFS, run its jobs there and
           fetch the tables they write to runs/<id>/tables/<day>/; an A/B day's logs are
           analysed instead of (or besides) building tables

Every step runs the project's own CLIs as subprocesses (the same commands a person would type),
with their output in runs/<id>/logs/<step>/*.log, and records itself in the run's manifest and
its MLflow run. Nothing here knows a recommender, arm, day or job by name: the plan says.
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

from infra.config import StackConfig, load_config as load_stack_config
from infra.errors import StackError
from infra.lifetime import die_with_parent
from infra.logtail import tail
from infra.stack import Stack, new_stack
from pipeline import offline_vs_online, tracking
from pipeline.job_server import JobServer, JobServerFailed
from pipeline.plan import PLACEHOLDER, DayPlan, JobPlan, Plan, user_table
from pipeline.record import RunRecord
from pipeline.config import PipelineConfig
from service.config import shipped_with
from settings import REPO_ROOT as REPO
from settings import read_yaml


class StepFailed(Exception):
    pass


class Experiment:
    def __init__(self, config: PipelineConfig, plan: Plan, record: RunRecord, stack: Stack,
                 stack_config: StackConfig, scale: str, seed: int):
        self.config, self.plan, self.record, self.stack = config, plan, record, stack
        self.stack_config, self.scale, self.seed = stack_config, scale, seed
        self.world_seed = plan.world_seed_for(seed)
        self.run_id = record.folder.name
        self.world = REPO / config.world.format(seed=self.world_seed)
        self.catalog = self.world / "tracks.jsonl"   # the world's public part
        self.env = {**os.environ, **stack.env(), "PYSPARK_PYTHON": sys.executable,
                    "PYSPARK_DRIVER_PYTHON": sys.executable}
        self.user = stack.env()["BOTIFY_HDFS_USER"]
        self.last_service_config: Path | None = None
        self._job_server: JobServer | None = None

    # ---- helpers

    def folder(self, *parts: str) -> Path:
        path = self.record.folder.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def hdfs_path(self, *parts: str) -> str:
        """Home-relative (for the dataclient) path of this run's data on HDFS."""
        return "/".join((self.config.hdfs_root, self.run_id, *parts))

    def hdfs_uri(self, *parts: str) -> str:
        return f"{self.stack.env()['BOTIFY_HDFS_FS']}/user/{self.user}/{self.hdfs_path(*parts)}"

    def day_uri(self, day: str, what: str) -> str:
        """A day's data on HDFS: events/, aggregates/ (sessions/ inside) and tables/."""
        if what == "sessions":
            return self.hdfs_uri(day, "aggregates", "sessions")
        return self.hdfs_uri(day, what)

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
                                           text=True, preexec_fn=die_with_parent)
                for line in process.stdout:
                    sys.stdout.write(line)
                    out.write(line)
                code = process.wait()
            else:
                code = subprocess.run(argv, cwd=REPO, env=self.env, stdout=out,
                                      stderr=subprocess.STDOUT, preexec_fn=die_with_parent).returncode
        seconds = time.monotonic() - started
        timings[name] = round(seconds, 2)
        if code != 0:
            raise StepFailed(f"{step}: {name} failed (exit {code}) after {seconds:.0f} s; "
                             f"full log: {log}\n{tail(log, 20)}")
        print(f"  {step}: {name} done in {seconds:.1f} s", flush=True)

    def run_jobs(self, day: DayPlan, invocations: list[tuple[str, list[str]]], timings: dict) -> None:
        """The day's jobs as one batch of the run's Spark application (pipeline/job_server.py)."""
        timings_file = self.folder("logs", day.name) / "jobs-timings.json"
        try:
            timings["spark-wait"] = round(self.job_server().wait_ready(), 2)
        except JobServerFailed as error:
            raise StepFailed(f"{day.name}: {error}") from None
        try:
            self.run(day.name, "spark-jobs", self.job_server().argv(timings_file, invocations), timings)
        finally:
            if timings_file.exists():
                self.record_jobs(day, json.loads(timings_file.read_text()), timings)

    def job_server(self) -> JobServer:
        """The run's Spark application, started on first use (start_job_server starts it early)."""
        if self._job_server is None:
            self._job_server = JobServer(self.config.spark.master, self.folder("logs") / "spark-server.log",
                                         self.env, self.config.spark.startup_timeout)
        return self._job_server

    def start_job_server(self, steps: tuple[str, ...]) -> None:
        """Boot the JVM now if a step will need it, so that it starts while the world is made
        and the first day is simulated."""
        if any(day.jobs or day.control is not None for day in self.plan.days if day.name in steps):
            self.job_server()

    def request_job_server_stop(self) -> None:
        if self._job_server is not None:
            self._job_server.request_stop()

    def stop_job_server(self) -> None:
        if self._job_server is not None:
            self._job_server.stop()
            self._job_server = None

    def record_jobs(self, day: DayPlan, report: dict, timings: dict) -> None:
        """Each job's seconds into the step's timings, its offline checks into the manifest."""
        for entry in report["jobs"]:
            timings[entry["job"]] = entry["seconds"]
            checks = {k: v for k, v in entry.get("summary", {}).items() if k in ("offline", "mse")}
            if checks:
                self.record.data.setdefault("offline", {})[f"{day.name}.{entry['job']}"] = checks
        self.record.save()

    # ---- steps

    def step_world(self, timings: dict) -> None:
        self.run("world", "sim.world", [sys.executable, "-m", "sim.world", "--config", "conf/sim.yml",
                                        "--seed", str(self.world_seed), "--out", str(self.world)],
                 timings)

    def service_config(self, day: DayPlan) -> Path:
        """The service config of one day: conf/service.yml with this day's arms and store."""
        config = shipped_with({
            "seed": self.seed, "catalog": str(self.catalog),
            "store": {"backend": self.config.service.store,
                      "redis_url": self.stack.env()["BOTIFY_REDIS_URL"],
                      "redis_prefix": f"botify:{self.run_id}:{day.name}"},
            "experiments": [{"name": self.plan.experiment_of(day),
                             "arms": [self.arm(arm) for arm in day.arms]}]})
        path = self.folder("conf") / f"service-{day.name}.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def arm(self, arm) -> dict:
        tables = {}
        for slot, ref in arm.tables.items():
            own = user_table(ref)
            if own is not None:
                self.record.add_table("user", own)
            tables[slot] = str(own or self.folder("tables") / ref)
        for table in tables.values():
            if not Path(table).exists():
                raise StepFailed(f"table {table} is missing: run the earlier day first "
                                 f"(./run.sh --run {self.record.folder} --step <day>)")
        if arm.interleave is not None:
            return {"name": arm.name, "weight": arm.weight, "interleave": arm.interleave.model_dump()}
        return {"name": arm.name, "weight": arm.weight, "recommender": arm.recommender,
                "tables": tables, "params": arm.params}

    def serve_and_simulate(self, day: DayPlan, seed: int, timings: dict) -> Path:
        """Serve the day's config, let the simulator play its sessions, stop the service."""
        logs = self.folder("logs", day.name, "events")
        long_term = ([f"--days={day.sim_days}"] if day.sim_days > 1 else []) \
            + (["--returns"] if day.returns else []) + (["--trending"] if day.trending else [])
        self.last_service_config = self.service_config(day)
        processes = self.plan.scales[self.scale].processes
        self.stack.start_service(self.stack_config, self.last_service_config, logs,
                                 unix_socket=self.config.service.unix_socket,
                                 replicas=min(self.config.service.replicas, processes))
        try:
            self.run(day.name, "simulate", [
                sys.executable, "-m", "sim.run", "--episodes", str(day.sessions[self.scale]),
                "--recommender", "remote", "--url", *self.stack.service_urls, "--config", "conf/sim.yml",
                "--seed", str(seed), "--world", str(self.world), "--processes", str(processes),
                "--output", str(self.folder("sim") / f"{day.name}.jsonl"), *long_term], timings,
                show=True)
        finally:
            self.stack.stop_service()  # SIGTERM: the event log is flushed before the upload
        return logs

    def upload(self, day: DayPlan, logs: Path, timings: dict) -> None:
        started = time.monotonic()
        self.stack.wait_hdfs(self.stack_config)  # it boots while the world and day 0 are made
        timings["hdfs-wait"] = round(time.monotonic() - started, 2)
        replicas = sorted(p for p in logs.iterdir() if p.is_dir())
        argv = [sys.executable, "-m", "dataclient", "--user", self.user, "log2hdfs"]
        # The last day's local logs are not needed again once they are on HDFS.
        argv += ["--cleanup"] if day is self.plan.days[-1] else []
        for replica in replicas:
            argv += ["--log-dir", str(replica)]
        self.run(day.name, "log2hdfs", argv + [self.hdfs_path(day.name, "events")], timings)

    def job_args(self, day: DayPlan, job: JobPlan) -> list[str]:
        """The job's plan arguments with their placeholders filled in."""
        def fill(match) -> str:
            name, other_day = match.groups()
            if name == "seed":
                return str(self.seed)
            if name == "catalog":
                return str(self.catalog)
            return self.day_uri(other_day or day.name, name)
        return [PLACEHOLDER.sub(fill, arg) for arg in job.args]

    def check_tables(self, day: DayPlan) -> None:
        """Every table the plan says the day's jobs write was fetched; checksummed in the record."""
        local = self.folder("tables", day.name)
        for job in day.jobs:
            for file in job.writes:
                if not (local / file).exists():
                    raise StepFailed(f"{day.name}: job {job.job} did not write {file} "
                                     f"(the plan says it writes it)")
                self.record.add_table(day.name, local / file)

    def analysis_args(self, index: int, day: DayPlan) -> list[str]:
        # Arms that serve users on their own: an interleaved arm's users are the interleaving
        # analysis's, and an arm of weight 0 serves only inside interleaved pairs.
        served = [arm for arm in day.arms if arm.interleave is None and arm.weight > 0]
        treatments = [arm.name for arm in served if arm.name != day.control]
        # The previous day's logs are the pre-period of CUPED (the same users, before the split).
        pre = ["--pre-events", self.day_uri(self.plan.days[index - 1].name, "events")] if index else []
        latency = self.plan.latency_guardrail
        return ["--events", self.day_uri(day.name, "events"), "--experiment", self.plan.experiment_of(day),
                "--control", day.control, "--treatments", *treatments, *pre,
                "--primary", self.plan.primary_metric, "--out", str(self.folder("report")),
                "--seed", str(self.seed),
                "--weights", *[f"{arm.name}={arm.weight}" for arm in served],
                *[arg for flag, value in [("--latency-quantile", latency.quantile),
                                          ("--latency-margin-ms", latency.margin_ms)]
                  if value is not None for arg in (flag, str(value))],
                *(["--truth", str(self.folder("report") / "truth.json")]
                  if self.simulated_truth(day) else [])]

    def interleaving_args(self, day: DayPlan) -> list[str]:
        pairs = [f"{arm.name}={arm.interleave.a}:{arm.interleave.b}" for arm in day.arms if arm.interleave]
        return ["--events", self.day_uri(day.name, "events"), "--experiment", self.plan.experiment_of(day),
                *[arg for pair in pairs for arg in ("--pair", pair)],
                "--out", str(self.folder("report")), "--seed", str(self.seed)]

    def simulated_truth(self, day: DayPlan) -> bool:
        """Is the truth of this A/B day known (a one-day A/B day of plain arms' traffic)?"""
        return (day.control is not None and day.sim_days == 1 and not day.returns
                and not day.trending and not day.interleaved)

    def step_truth(self, day: DayPlan, timings: dict) -> None:
        """The day's truth (pipeline/truth.py): every arm serving all its users, in process."""
        # The scale's processes are the simulator's, which mostly wait on the service; the
        # truth's workers compute, so more of them than cores would only take turns.
        processes = min(self.plan.scales[self.scale].processes, os.cpu_count() or 1)
        self.run(day.name, "truth", [sys.executable, "-m", "pipeline.truth", "--run",
                                     str(self.record.folder), "--day", day.name,
                                     "--processes", str(processes)], timings)

    def step_day(self, index: int, day: DayPlan, timings: dict) -> None:
        logs = self.serve_and_simulate(day, self.seed + index, timings)
        if self.simulated_truth(day):
            self.step_truth(day, timings)
        self.upload(day, logs, timings)
        invocations = [(job.job, self.job_args(day, job)) for job in day.jobs]
        writes = any(job.writes for job in day.jobs)
        if writes:  # the tables the service loads, copied to runs/<id>/tables/<day>/
            invocations.append(("fetch", [self.day_uri(day.name, "tables"), str(self.folder("tables", day.name))]))
        if day.control is not None:  # the A/B analysis runs in the same Spark application
            invocations.append(("analysis.ab_test", self.analysis_args(index, day)))
        if day.interleaved:
            invocations.append(("analysis.interleaving", self.interleaving_args(day)))
        if invocations:
            self.run_jobs(day, invocations, timings)
        if writes:
            self.check_tables(day)
        if day.control is not None:
            report = self.record.folder / "report" / "results.json"
            self.record.set("results", json.loads(report.read_text()))
            self.record.set("offline_vs_online", offline_vs_online.write(
                self.plan, day, self.record.data, self.record.folder / "report"))
        if self.simulated_truth(day):
            self.record.set("truth", json.loads(
                (self.record.folder / "report" / "truth.json").read_text()))
        if day.interleaved:
            report = self.record.folder / "report" / "interleaving.json"
            self.record.set("interleaving", json.loads(report.read_text()))

    def run_steps(self, steps: tuple[str, ...]) -> None:
        for step in steps:
            print(f"== {step}", flush=True)
            with self.record.step(step) as timings:
                if step == "world":
                    self.step_world(timings)
                else:
                    index = [day.name for day in self.plan.days].index(step)
                    self.step_day(index, self.plan.days[index], timings)


def print_results(record: RunRecord) -> None:
    report = record.folder / "report"
    for name in ("interleaving.md", "ab_report.md", "offline_vs_online.md"):
        if (report / name).exists():
            print((report / name).read_text())
    for name in tracking.REPORT_FILES:
        if (report / name).exists():
            print(f"{name}: {report / name}")
    print(f"manifest: {record.path}")


def track(config: PipelineConfig, plan_name: str, plan: Plan, record: RunRecord, scale: str,
          seed: int, succeeded: bool) -> None:
    """Record the run in MLflow; a tracking failure is reported but loses nothing on disk."""
    params = tracking.plan_params(plan_name, plan, scale, seed,
                                  record.data["versions"]["botify_commit"])
    try:
        run_id = tracking.record_run(REPO / config.runs_dir, plan_name, record.folder, params, succeeded)
    except Exception as error:  # noqa: BLE001 - any tracking-store failure: the run folder stays
        print(f"warning: the run was not recorded in MLflow ({error}); its folder {record.folder} "
              f"has everything", file=sys.stderr)
        return
    print(f"MLflow run {run_id} (experiment {plan_name}) in {tracking.tracking_uri(REPO / config.runs_dir)}")


def run(config: PipelineConfig, plan_name: str, plan: Plan, scale: str, seed: int | None,
        steps: tuple[str, ...], run_folder: Path | None, keep_running: bool,
        stack_from_env: bool = False) -> int:
    seed = plan.seed if seed is None else seed
    if scale not in plan.scales:
        print(f"error: unknown scale {scale!r}; plan {plan_name} has {sorted(plan.scales)}",
              file=sys.stderr)
        return 2
    folder = run_folder or REPO / config.runs_dir / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    record = RunRecord(folder, {"plan": plan_name, "scale": scale, "seed": seed, "steps": list(steps),
                                "plan_config": plan.model_dump(mode="json"),
                                "pipeline": config.model_dump(mode="json"),
                                "sim": read_yaml(REPO / "conf" / "sim.yml"),
                                "service": read_yaml(REPO / "conf" / "service.yml")})
    print(f"run folder: {folder}")
    tracking.preload()
    stack_config = load_stack_config()
    if stack_from_env:  # the stack of `./run.sh test` (or `up`): HDFS and Redis already run
        stack = Stack.load(Path(os.environ.get("BOTIFY_STACK_RUNTIME", "")))
        if stack is None:
            print("error: --stack-from-env needs BOTIFY_STACK_RUNTIME naming a running stack's "
                  "folder (./run.sh test and ./run.sh up set it)", file=sys.stderr)
            return 2
    else:
        # --keep-running uses the ports of conf/stack.yml, so `./run.sh down` stops it afterwards.
        stack = new_stack(stack_config, ephemeral=not keep_running)
    code, experiment = 0, None
    try:
        if not stack_from_env:
            stack.up(stack_config, wait_for_hdfs=False)
        experiment = Experiment(config, plan, record, stack, stack_config, scale, seed)
        experiment.start_job_server(steps)
        experiment.run_steps(steps)
        experiment.request_job_server_stop()  # its JVM exits while the run is recorded
        if any(day.name in steps for day in plan.ab_days):
            print_results(record)
        if keep_running and experiment.last_service_config:
            # Serve the last day's config again, for poking at by hand.
            stack.start_service(stack_config, experiment.last_service_config,
                                experiment.folder("logs", "after-run", "events"))
    except (StepFailed, StackError) as error:
        print(f"error: {error}\nthe run's logs stay in {folder}/logs", file=sys.stderr)
        code = 1
    except (KeyboardInterrupt, SystemExit) as stop:  # Ctrl-C, SIGTERM, SIGHUP (infra/lifetime.py)
        code = stop.code if isinstance(stop, SystemExit) and isinstance(stop.code, int) else 130
        print(f"interrupted: stopping the run's stack; what it did so far stays in {folder}",
              file=sys.stderr)
    finally:
        record.set("finished", datetime.now(timezone.utc).isoformat(timespec="seconds"))
        track(config, plan_name, plan, record, scale, seed, succeeded=code == 0)
        if experiment is not None:
            experiment.stop_job_server()
        if keep_running and code == 0:
            print("the stack keeps running (`./run.sh status`, `./run.sh down`)")
        elif stack_from_env:
            stack.stop_service()
        else:
            stack.down()
    return code
