"""dataclient log2hdfs against the real HDFS (fixtures from conftest.py): layout, re-runs, a
killed upload, a growing log file, --cleanup guards, and the error cases.

Every test works in its own folder /user/<user>/dataclient-test-<random> and removes it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
import pytest

from infra.ports import free_port
from dataclient.synthetic_logs import event_lines, write_replica_logs
from contract.events import validation_error

pytestmark = [pytest.mark.slow, pytest.mark.heavy(3)]

ROOT = Path(__file__).resolve().parent.parent
TEMP_SUFFIX = ".dataclient-partial"  # conf/dataclient.yml temp_suffix


def dataclient(*args: str, env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dataclient", *args], cwd=ROOT,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def expected_files(log_dirs: list[Path]) -> dict[str, bytes]:
    """What one clean run must leave: the service's files (events.jsonl*; the fixtures' other
    files are not logs), cut after their last newline."""
    expected = {}
    for folder in log_dirs:
        for path in folder.glob("events.jsonl*"):
            if path.is_file():
                data = path.read_bytes()
                if b"\n" in data:
                    expected[f"{folder.name}__{path.name}"] = data[:data.rindex(b"\n") + 1]
    return expected


def hdfs_files(client, path: str) -> dict[str, bytes]:
    files = {}
    for name, st in client.list(path, status=True):
        assert st["type"] == "FILE", f"unexpected folder {name} in {path}"
        with client.read(f"{path}/{name}") as reader:
            files[name] = reader.read()
    return files


def log_dir_flags(log_dirs: list[Path]) -> list[str]:
    return [arg for d in log_dirs for arg in ("--log-dir", str(d))]


@pytest.fixture
def hdfs_dir(hdfs_client, hdfs_user):
    """A fresh folder name relative to /user/<user> (not created), removed afterwards."""
    name = f"dataclient-test-{uuid.uuid4().hex[:10]}"
    yield name
    hdfs_client.delete(f"/user/{hdfs_user}/{name}", recursive=True)


@pytest.fixture
def log_dirs(tmp_path) -> list[Path]:
    """Two replicas with an active and a rotated file each, plus things that are not logs."""
    dirs = write_replica_logs(tmp_path / "logs", replicas=2, files_per_replica=2,
                              bytes_per_file=300_000, seed=11)
    with open(dirs[0] / "events.jsonl", "ab") as f:
        f.write(b'{"message":"next","timest')            # a line still being written
    (dirs[0] / ".events.jsonl.swp").write_bytes(b"editor\n")
    (dirs[1] / "upload.tmp").write_bytes(b"temp\n")
    (dirs[1] / "archive").mkdir()
    (dirs[1] / "archive" / "old.jsonl").write_bytes(b"{}\n")
    return dirs


def upload(webhdfs_url, hdfs_user, log_dirs, hdfs_dir, *extra):
    return dataclient("--url", webhdfs_url, "--user", hdfs_user, "log2hdfs", *extra,
                      *log_dir_flags(log_dirs), hdfs_dir)


def test_uploads_every_log_file_under_replica_names_up_to_the_last_newline(
        webhdfs_url, hdfs_client, hdfs_user, hdfs_dir, log_dirs):
    result = upload(webhdfs_url, hdfs_user, log_dirs, hdfs_dir)
    assert result.returncode == 0, result.stderr
    stored = hdfs_files(hdfs_client, f"/user/{hdfs_user}/{hdfs_dir}")
    assert sorted(stored) == ["replica-1__events.jsonl", "replica-1__events.jsonl.1",
                              "replica-2__events.jsonl", "replica-2__events.jsonl.1"]
    assert stored == expected_files(log_dirs)
    assert stored["replica-1__events.jsonl"].endswith(b"\n")
    assert "4 files" in result.stdout and "0 unchanged" in result.stdout
    assert "line still being written" in result.stderr


def test_rerun_leaves_identical_files_alone_and_replaces_changed_ones(
        webhdfs_url, hdfs_client, hdfs_user, hdfs_dir, log_dirs):
    path = f"/user/{hdfs_user}/{hdfs_dir}"
    assert upload(webhdfs_url, hdfs_user, log_dirs, hdfs_dir).returncode == 0
    ids = {name: st["fileId"] for name, st in hdfs_client.list(path, status=True)}

    again = upload(webhdfs_url, hdfs_user, log_dirs, hdfs_dir)
    assert again.returncode == 0, again.stderr
    assert "0 files" in again.stdout and "4 unchanged" in again.stdout
    assert {name: st["fileId"] for name, st in hdfs_client.list(path, status=True)} == ids

    # The service goes on: replica-1 finishes its partial line and writes more; replica-2
    # rotates (active -> events.jsonl.2, as service/eventlog.py does) and starts a new file.
    active1 = log_dirs[0] / "events.jsonl"
    with open(active1, "ab") as f:
        f.write(b'amp":1}\n' + event_lines(np.random.default_rng(3), 0, 50)[0])
    os.rename(log_dirs[1] / "events.jsonl", log_dirs[1] / "events.jsonl.2")
    (log_dirs[1] / "events.jsonl").write_bytes(b'{"message":"last"}\n')
    third = upload(webhdfs_url, hdfs_user, log_dirs, hdfs_dir)
    assert third.returncode == 0, third.stderr
    assert "3 files" in third.stdout and "2 unchanged" in third.stdout
    assert hdfs_files(hdfs_client, path) == expected_files(log_dirs)


def kill_mid_upload(webhdfs_url, hdfs_user, hdfs_client, dirs, killed, killed_path) -> dict:
    """Start an upload, SIGKILL it once one file is complete and another in flight; the listing."""
    process = subprocess.Popen(
        [sys.executable, "-m", "dataclient", "--url", webhdfs_url, "--user", hdfs_user,
         "log2hdfs", *log_dir_flags(dirs), killed], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            names = (hdfs_client.list(killed_path)
                     if hdfs_client.status(killed_path, strict=False) else [])
            if any(n.endswith(TEMP_SUFFIX) for n in names) and \
                    any(not n.endswith(TEMP_SUFFIX) for n in names):
                break
            time.sleep(0.01)
        assert process.poll() is None, "upload finished before it could be killed: use bigger files"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    return dict(hdfs_client.list(killed_path, status=True))


def test_killed_upload_then_rerun_equals_one_clean_run(
        webhdfs_url, hdfs_client, hdfs_user, hdfs_dir, tmp_path):
    dirs = write_replica_logs(tmp_path / "logs", replicas=2, files_per_replica=3,
                              bytes_per_file=25_000_000, seed=5)
    clean = f"{hdfs_dir}/clean"
    assert upload(webhdfs_url, hdfs_user, dirs, clean).returncode == 0
    # The kill can land just as the file seen in flight is renamed, before the next one starts:
    # then there is nothing half-written to test, and the attempt is made again elsewhere.
    for attempt in range(3):
        killed = f"{hdfs_dir}/killed-{attempt}"
        killed_path = f"/user/{hdfs_user}/{killed}"
        after_kill = kill_mid_upload(webhdfs_url, hdfs_user, hdfs_client, dirs, killed, killed_path)
        temps = [n for n in after_kill if n.endswith(TEMP_SUFFIX)]
        visible = {n: st["length"] for n, st in after_kill.items() if n not in temps}
        if temps and visible:
            break
    assert temps and visible, f"not a mid-upload state: {sorted(after_kill)}"
    assert all(n.startswith(".") for n in temps), "temp files must be hidden from Spark"
    clean_sizes = {n: st["length"] for n, st in hdfs_client.list(
        f"/user/{hdfs_user}/{clean}", status=True)}
    assert all(visible[n] == clean_sizes[n] for n in visible), "a visible file is partial"

    rerun = upload(webhdfs_url, hdfs_user, dirs, killed)
    assert rerun.returncode == 0, rerun.stderr
    final = dict(hdfs_client.list(killed_path, status=True))
    assert {n: st["length"] for n, st in final.items()} == clean_sizes
    for name in clean_sizes:  # same bytes: HDFS's MD5-of-CRC checksums agree
        assert hdfs_client.checksum(f"{killed_path}/{name}") == \
            hdfs_client.checksum(f"/user/{hdfs_user}/{clean}/{name}")
    assert f"{len(visible)} unchanged" in rerun.stdout


def test_log_file_growing_during_upload_is_cut_at_a_line_boundary(
        webhdfs_url, hdfs_client, hdfs_user, hdfs_dir, tmp_path):
    dirs = write_replica_logs(tmp_path / "logs", replicas=1, files_per_replica=1,
                              bytes_per_file=5_000_000, seed=8)
    active = dirs[0] / "events.jsonl"
    stop = threading.Event()

    def service_writer():
        # Each line in two writes with a pause between: a reader often sees half a line.
        lines = event_lines(np.random.default_rng(9), 0, 20_000)[0]
        with open(active, "ab", buffering=0) as f:
            for line in lines.splitlines(keepends=True):
                if stop.is_set():
                    return
                f.write(line[:40])
                time.sleep(0.0005)
                f.write(line[40:])

    writer = threading.Thread(target=service_writer)
    writer.start()
    try:
        time.sleep(0.2)
        result = upload(webhdfs_url, hdfs_user, dirs, hdfs_dir)
    finally:
        stop.set()
        writer.join()
    assert result.returncode == 0, result.stderr
    stored = hdfs_files(hdfs_client, f"/user/{hdfs_user}/{hdfs_dir}")["replica-1__events.jsonl"]
    local = active.read_bytes()
    assert len(stored) > 5_000_000 and local.startswith(stored) and len(local) > len(stored)
    assert stored.endswith(b"\n")
    assert all(validation_error(orjson.loads(line)) is None for line in stored.splitlines())


def test_cleanup_empties_only_the_target_folder(
        webhdfs_url, hdfs_client, hdfs_user, hdfs_dir, log_dirs):
    base = f"/user/{hdfs_user}/{hdfs_dir}"
    hdfs_client.write(f"{base}/target/stale.jsonl", data=b"old\n")
    hdfs_client.write(f"{base}/target/sub/x", data=b"x\n")
    hdfs_client.write(f"{base}/sibling/keep.jsonl", data=b"keep\n")
    result = upload(webhdfs_url, hdfs_user, log_dirs, f"{hdfs_dir}/target", "--cleanup")
    assert result.returncode == 0, result.stderr
    assert hdfs_files(hdfs_client, f"{base}/target") == expected_files(log_dirs)
    assert hdfs_files(hdfs_client, f"{base}/sibling") == {"keep.jsonl": b"keep\n"}
    assert "2 removed" in result.stdout


@pytest.mark.parametrize("bad_dir", ["", "/", "..", "logs/../..", ".", "/tmp/logs",
                                     "/user/someone-else/logs", "/user"])
def test_cleanup_refuses_folders_outside_the_user_home(
        webhdfs_url, hdfs_client, hdfs_user, log_dirs, bad_dir):
    # --dry-run as a seatbelt: even if the guard failed, the shared HDFS would lose nothing.
    result = upload(webhdfs_url, hdfs_user, log_dirs, bad_dir, "--cleanup", "--dry-run")
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = error_lines(result)
    assert line.startswith("dataclient: error:") and f"/user/{hdfs_user}" in line


def test_cleanup_guard_holds_without_dry_run(webhdfs_url, hdfs_client, hdfs_user, log_dirs):
    other = f"/user/dataclient-other-{uuid.uuid4().hex[:8]}"
    result = upload(webhdfs_url, hdfs_user, log_dirs, f"{other}/logs", "--cleanup")
    assert result.returncode == 1
    assert "not inside" in result.stderr
    assert hdfs_client.status(other, strict=False) is None


def local_snapshot(log_dirs: list[Path]) -> dict[str, tuple[bytes, int]]:
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns)
            for d in log_dirs for p in sorted(d.rglob("*")) if p.is_file()}


def test_unreachable_hdfs_is_one_error_line_and_changes_nothing_locally(hdfs_user, log_dirs):
    before = local_snapshot(log_dirs)
    url = f"http://127.0.0.1:{free_port()}"
    result = dataclient("--url", url, "--user", hdfs_user, "log2hdfs",
                        *log_dir_flags(log_dirs), "logs")
    assert result.returncode == 1
    errors = [l for l in error_lines(result) if "error:" in l]
    assert len(errors) == 1 and f"cannot reach WebHDFS at {url}" in errors[0]
    assert local_snapshot(log_dirs) == before


def test_user_without_an_hdfs_home_is_refused_by_hdfs(webhdfs_url, hdfs_client, log_dirs):
    """Wrong user: a name HDFS knows no home for. /user belongs to the superuser, so HDFS
    (permissions on) refuses to create /user/<name>: the upload must stop with one line."""
    user = f"botify-nobody-{uuid.uuid4().hex[:8]}"
    result = upload(webhdfs_url, user, log_dirs, "logs")
    assert result.returncode == 1
    errors = [l for l in error_lines(result) if "error:" in l]
    assert len(errors) == 1
    assert f"HDFS user '{user}' may not write /user/{user}/logs" in errors[0]
    assert "Permission denied" in errors[0]
    assert hdfs_client.status(f"/user/{user}", strict=False) is None


def test_missing_log_folder_is_one_error_line_before_touching_hdfs(
        webhdfs_url, hdfs_client, hdfs_user, hdfs_dir, tmp_path):
    missing = tmp_path / "no-such-replica"
    result = dataclient("--url", webhdfs_url, "--user", hdfs_user, "log2hdfs",
                        "--log-dir", str(missing), hdfs_dir)
    assert result.returncode == 1
    [line] = error_lines(result)
    assert str(missing) in line and "does not exist" in line
    assert hdfs_client.status(f"/user/{hdfs_user}/{hdfs_dir}", strict=False) is None


def test_url_flag_beats_environment_which_beats_conf(
        webhdfs_url, hdfs_client, hdfs_user, hdfs_dir, log_dirs):
    dead = f"http://127.0.0.1:{free_port()}"
    args = ["--user", hdfs_user, "log2hdfs", *log_dir_flags(log_dirs), hdfs_dir]
    from_env = dataclient(*args, env={"BOTIFY_WEBHDFS_URL": dead})
    assert from_env.returncode == 1 and dead in from_env.stderr
    from_flag = dataclient("--url", webhdfs_url, *args, env={"BOTIFY_WEBHDFS_URL": dead})
    assert from_flag.returncode == 0, from_flag.stderr
    assert hdfs_files(hdfs_client, f"/user/{hdfs_user}/{hdfs_dir}") == expected_files(log_dirs)


def test_dry_run_lists_the_plan_and_changes_nothing(
        webhdfs_url, hdfs_client, hdfs_user, hdfs_dir, log_dirs):
    result = upload(webhdfs_url, hdfs_user, log_dirs, hdfs_dir, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"would create hdfs /user/{hdfs_user}/{hdfs_dir}" in result.stdout
    for name in expected_files(log_dirs):
        assert f"/{hdfs_dir}/{name} (" in result.stdout
    assert hdfs_client.status(f"/user/{hdfs_user}/{hdfs_dir}", strict=False) is None
