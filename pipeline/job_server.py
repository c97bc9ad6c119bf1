"""The run's one Spark application: jobs/server.py started when the run starts (its JVM boots
while the first day is simulated), given every day's jobs and the analysis, stopped at the end.
It dies with the run even when the run is killed (infra/lifetime.py)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from infra.lifetime import die_with_parent
from infra.logtail import tail
from infra.unix_socket import new_socket_path
from jobs import batch, server
from settings import REPO_ROOT as REPO
from sparkapp.config import spark_config

BIN = Path(sys.executable).parent


class JobServerFailed(Exception):
    pass


def serve_command(master: str, socket: str) -> list[str]:
    """`spark-submit jobs/server.py serve SOCKET` as a run starts it, with conf/spark.yml's
    driver memory and driver JVM options."""
    # The driver's JVM starts before any SparkConf is read: spark-submit must be told.
    config = spark_config()
    memory = config.conf.get("spark.driver.memory")
    options = " ".join(config.driver_java_options)
    return [str(BIN / "spark-submit"), "--master", master,
            *(["--driver-memory", memory] if memory else []),
            *(["--driver-java-options", options] if options else []),
            str(REPO / "jobs" / "server.py"), "serve", socket]


class JobServer:
    def __init__(self, master: str, log: Path, env: dict, startup_timeout: float):
        socket = new_socket_path("jobs.sock")   # not in the run's folder: too deep for a socket
        self.folder, self.socket = socket.parent, str(socket)
        self.log, self.startup_timeout = log, startup_timeout
        self.started, self.stop_requested = time.monotonic(), False
        argv = serve_command(master, self.socket)
        with open(log, "w") as out:
            self.process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                            preexec_fn=die_with_parent)

    def wait_ready(self) -> float:
        """Block until the server answers; the seconds waited. JobServerFailed if it died or
        did not come up in time, with the tail of its log."""
        waited = time.monotonic()
        while not server.ready(self.socket):
            if self.process.poll() is not None:
                raise JobServerFailed(f"the Spark job server exited ({self.process.returncode}) "
                                      f"before serving; its log {self.log}:\n{tail(self.log, 20)}")
            if time.monotonic() - self.started > self.startup_timeout:
                raise JobServerFailed(f"the Spark job server did not come up in "
                                      f"{self.startup_timeout:.0f} s; its log {self.log}:\n"
                                      f"{tail(self.log, 20)}")
            time.sleep(0.2)
        return time.monotonic() - waited

    def argv(self, timings: Path, invocations: list[tuple[str, list[str]]]) -> list[str]:
        """The command that runs a batch of jobs on this server (jobs/server.py `run`)."""
        return [sys.executable, "-m", "jobs.server", "run", self.socket, "--timings", str(timings),
                "--", *batch.join_invocations(invocations)]

    def request_stop(self) -> None:
        """Ask the server to stop once its batch is done, without waiting for its JVM to exit:
        Spark shuts down while the run does its last work (stop() waits for it)."""
        if self.process.poll() is None and not self.stop_requested:
            try:
                server.stop(self.socket, timeout=10)
                self.stop_requested = True
            except (server.NotServing, OSError):
                pass  # stop() terminates it

    def stop(self) -> None:
        """Ask the server to stop (Spark shuts down cleanly); terminate it if it does not soon
        (a batch a killed client left running is not waited for)."""
        if self.process.poll() is None:
            try:
                if not self.stop_requested:
                    server.stop(self.socket, timeout=10)
                self.process.wait(timeout=60)
            except (server.NotServing, OSError, subprocess.TimeoutExpired):
                self.process.terminate()
                try:
                    self.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
