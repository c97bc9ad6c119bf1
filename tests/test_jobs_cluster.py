"""The same job code on a Spark standalone cluster: the test starts a master and a worker with
pyspark's `spark-class`, submits jobs/sessions.py with `spark-submit --master spark://...`
reading events from the real HDFS, checks the Parquet it wrote there, and stops the cluster."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pyspark
import pytest

from infra.ports import free_port
from dataclient.synthetic_logs import synthetic_sessions, write_event_log
from support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.heavy(6)]

REPO = Path(__file__).resolve().parent.parent
SPARK_HOME = Path(pyspark.__file__).parent


def tails(logs: list[Path]) -> str:
    return "".join(f"\n--- {p}\n{p.read_text()[-2000:]}" for p in logs)


@pytest.fixture
def standalone_cluster(tmp_path):
    """spark://127.0.0.1:<free port> with one worker (1 core, 1 GiB); stopped afterwards."""
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOG_DIR": str(tmp_path),
           "PYSPARK_PYTHON": sys.executable}
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    port, ui = free_port(), free_port()
    master_url = f"spark://127.0.0.1:{port}"
    logs = [tmp_path / "master.log", tmp_path / "worker.log"]
    procs = [subprocess.Popen([spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                               "--port", str(port), "--webui-port", str(ui)],
                              env=env, stdout=open(logs[0], "w"), stderr=subprocess.STDOUT)]
    try:
        status = f"http://127.0.0.1:{ui}/json/"
        wait_for(lambda: httpx.get(status).status_code == 200, 60, "the master to start",
                 retry_on=(httpx.HTTPError,), interval=0.5, details=lambda: tails(logs))
        procs.append(subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.worker.Worker", master_url, "--host", "127.0.0.1",
             "--cores", "1", "--memory", "1g", "--webui-port", str(free_port()),
             "--work-dir", str(tmp_path / "work")],
            env=env, stdout=open(logs[1], "w"), stderr=subprocess.STDOUT))
        wait_for(lambda: httpx.get(status).json()["aliveworkers"] >= 1, 60, "a worker to register",
                 retry_on=(httpx.HTTPError,), interval=0.5, details=lambda: tails(logs))
        yield master_url, env, status
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_sessions_job_on_standalone_cluster_reading_hdfs(standalone_cluster, hdfs_client, hdfs_user,
                                                         hdfs_fs, tmp_path):
    master_url, env, status = standalone_cluster
    local = tmp_path / "events"
    lines = write_event_log(synthetic_sessions(200, n_tracks=300, n_users=40, seed=9), local, n_files=2)
    base = f"/user/{hdfs_user}/test_jobs_cluster_{os.getpid()}"
    hdfs_client.delete(base, recursive=True)
    hdfs_client.upload(f"{base}/events", str(local))
    try:
        submit = subprocess.run(
            [str(SPARK_HOME / "bin" / "spark-submit"), "--master", master_url,
             "--conf", "spark.executor.memory=512m", "--conf", "spark.ui.enabled=false",
             "--conf", "spark.sql.shuffle.partitions=2",
             str(REPO / "jobs" / "sessions.py"),
             "--events", f"{hdfs_fs}{base}/events", "--out", f"{hdfs_fs}{base}/work"],
            env=env, capture_output=True, text=True, timeout=240, cwd=REPO)
        # spark-submit passes the Python driver's stderr on to its stdout.
        log = "\n".join(line for line in submit.stdout.splitlines() if line.startswith("["))
        assert submit.returncode == 0, submit.stderr[-4000:]
        assert f"{lines} lines, 0 corrupt" in log and "200 sessions" in log, log
        # The application really ran on the cluster: the master lists it as completed.
        apps = httpx.get(status).json()["completedapps"]
        assert [a["name"] for a in apps] == ["botify-sessions"]
        parts = [n for n in hdfs_client.list(f"{base}/work/sessions") if n.endswith(".parquet")]
        assert parts and hdfs_client.status(f"{base}/work/sessions/{parts[0]}")["length"] > 0
    finally:
        hdfs_client.delete(base, recursive=True)
