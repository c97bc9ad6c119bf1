"""Nothing left behind (infra/lifetime.py): a signal to the test runner or to the pipeline, or
the SIGKILL of either, leaves no NameNode, DataNode, Redis, service or simulator running."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("runs"), pytest.mark.heavy(9)]

REPO = Path(__file__).resolve().parent.parent


def leftovers(marker: Path) -> str:
    """Processes whose command line mentions `marker` (HDFS dirs, Redis dir, run folder)."""
    found = subprocess.run(["pgrep", "-af", str(marker)], capture_output=True, text=True).stdout
    return "\n".join(line for line in found.splitlines() if "pgrep" not in line)


def start_test_runner(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """`./run.sh test`'s process: pytest and an xdist worker (`./run.sh test` runs two,
    pyproject.toml) that runs the one test, which holds the stack."""
    flag = tmp_path / "stack-runtime"
    (tmp_path / "test_hold.py").write_text(
        f"import sys, time\nsys.path.insert(0, {str(REPO / 'tests')!r})\n"
        f"from conftest import stack_env  # noqa: F401 - the suite's own fixture\n"
        f"def test_hold(stack_env):\n"
        f"    open({str(flag)!r}, 'w').write(stack_env['BOTIFY_STACK_RUNTIME'])\n"
        f"    time.sleep(600)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTIFY_")}
    env["TMPDIR"] = str(tmp_path)  # the stack's runtime folder lands here
    process = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                "-n", "1", str(tmp_path / "test_hold.py")],
                               cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: flag.exists() and flag.read_text(), 300, "the test stack to start", interval=0.5)
    return process, tmp_path


def start_pipeline(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """`./run.sh`'s process: the seed plan, signalled once its simulator is playing day 0 and
    its Spark job server (jobs/server.py, under spark-submit) is running."""
    config = tmp_path / "pipeline.yml"
    shipped = yaml.safe_load((REPO / "conf" / "pipeline.yml").read_text())
    config.write_text(yaml.safe_dump({**shipped, "runs_dir": str(tmp_path / "runs")}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTIFY_")}
    env["TMPDIR"] = str(tmp_path)
    log = tmp_path / "pipeline.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "pipeline", "--scale", "smoke", "--seed",
                                    "5", "--config", str(config)], cwd=REPO, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    wait_for(lambda: "day0: simulate" in log.read_text(), 300, "the pipeline's day 0 to start",
             interval=0.5)
    wait_for(lambda: "jobs/server.py serve" in leftovers(tmp_path), 300, "the Spark job server",
             interval=0.5)
    return process, tmp_path


@pytest.mark.parametrize("launcher,sig", [
    (start_test_runner, signal.SIGTERM),
    (start_test_runner, signal.SIGKILL),
    (start_pipeline, signal.SIGINT),
    (start_pipeline, signal.SIGHUP),
    (start_pipeline, signal.SIGKILL),
], ids=["test-SIGTERM", "test-SIGKILL", "run-SIGINT", "run-SIGHUP", "run-SIGKILL"])
def test_a_signalled_launcher_leaves_nothing_running(tmp_path, launcher, sig):
    process, marker = launcher(tmp_path)
    assert leftovers(marker), "the stack should be running before the signal"
    process.send_signal(sig)
    process.wait(timeout=120)
    # SIGKILL runs no clean-up: the daemons stop because their launcher died (PDEATHSIG).
    wait_for(lambda: not leftovers(marker), 90, "no process left", interval=0.5,
             details=lambda: f"; still running:\n{leftovers(marker)}")
