"""dataclient without HDFS: log2local through the CLI, and the pieces that decide which bytes
move (last-newline cut, truncation detection, target names)."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dataclient.logfiles import BoundedReader, LocalFileChanged, complete_length, find_log_files
from dataclient.synthetic_logs import write_replica_logs

ROOT = Path(__file__).resolve().parent.parent


def dataclient(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dataclient", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def log2local(log_dirs: list[Path], out: Path, *extra: str) -> subprocess.CompletedProcess:
    flags = [arg for d in log_dirs for arg in ("--log-dir", str(d))]
    return dataclient("log2local", *extra, *flags, str(out))


@pytest.fixture
def log_dirs(tmp_path) -> list[Path]:
    dirs = write_replica_logs(tmp_path / "logs", replicas=2, files_per_replica=2,
                              bytes_per_file=100_000, seed=3)
    with open(dirs[1] / "events.jsonl", "ab") as f:
        f.write(b'{"message":"la')                          # a line still being written
    (dirs[0] / ".hidden").write_bytes(b"x\n")
    (dirs[0] / "events.jsonl.tmp").write_bytes(b"x\n")
    (dirs[0] / "link.jsonl").symlink_to(dirs[0] / "events.jsonl.1")
    (dirs[0] / "empty.jsonl").write_bytes(b"")
    return dirs


def test_log2local_copies_logs_with_replica_names_mtimes_and_whole_lines(log_dirs, tmp_path):
    out = tmp_path / "out"
    result = log2local(log_dirs, out)
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(out)) == ["replica-1__events.jsonl", "replica-1__events.jsonl.1",
                                       "replica-2__events.jsonl", "replica-2__events.jsonl.1"]
    for d in log_dirs:
        for name in ("events.jsonl", "events.jsonl.1"):
            local, copied = d / name, out / f"{d.name}__{name}"
            data = local.read_bytes()
            assert copied.read_bytes() == data[:data.rindex(b"\n") + 1]
            assert copied.stat().st_mtime_ns // 10**6 == local.stat().st_mtime_ns // 10**6
    assert "empty.jsonl: no complete line yet" in result.stderr


def test_log2local_rerun_is_a_no_op_and_refreshes_a_grown_file(log_dirs, tmp_path):
    out = tmp_path / "out"
    assert log2local(log_dirs, out).returncode == 0
    again = log2local(log_dirs, out)
    assert "0 files" in again.stdout and "4 unchanged" in again.stdout
    with open(log_dirs[1] / "events.jsonl", "ab") as f:
        f.write(b'st"}\n')
    third = log2local(log_dirs, out)
    assert "1 files" in third.stdout and "3 unchanged" in third.stdout
    assert (out / "replica-2__events.jsonl").read_bytes() == \
        (log_dirs[1] / "events.jsonl").read_bytes()


def test_log2local_progress_off_a_terminal_is_plain_lines(log_dirs, tmp_path):
    flags = [arg for d in log_dirs for arg in ("--log-dir", str(d))]
    # bytes: text mode would turn the carriage returns we look for into newlines
    result = subprocess.run([sys.executable, "-m", "dataclient", "log2local", *flags,
                             str(tmp_path / "out")], cwd=ROOT, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert b"\r" not in result.stderr
    lines = [line for line in result.stderr.decode().splitlines() if "%" in line]
    assert 1 <= len(lines) <= 10 and " 100% " in lines[-1]

def test_log2local_removes_a_killed_runs_temp_file(log_dirs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # Left by a run killed while copying a file the service has since deleted: no upload of
    # the same name will overwrite it, only the start-of-run sweep removes it.
    (out / ".replica-1__events.jsonl.7.dataclient-partial").write_bytes(b"half a li")
    assert log2local(log_dirs, out).returncode == 0
    assert not [n for n in os.listdir(out) if n.startswith(".")]


def test_log2local_refuses_to_write_into_a_log_folder(log_dirs):
    before = sorted(os.listdir(log_dirs[0]))
    result = log2local(log_dirs, log_dirs[0] / "copy")
    assert result.returncode == 1
    assert "inside the log folder" in result.stderr
    assert sorted(os.listdir(log_dirs[0])) == before


def test_replica_folders_with_the_same_name_are_refused(tmp_path):
    a = write_replica_logs(tmp_path / "a", 1, 1, 1000, seed=1)
    b = write_replica_logs(tmp_path / "b", 1, 1, 1000, seed=2)
    result = log2local(a + b, tmp_path / "out")
    assert result.returncode == 1
    assert "would both be stored as 'replica-1__events.jsonl'" in result.stderr
    assert not (tmp_path / "out").exists()


def test_missing_user_is_a_clear_error(log_dirs):
    env = {k: v for k, v in os.environ.items() if k != "BOTIFY_HDFS_USER"}
    result = subprocess.run([sys.executable, "-m", "dataclient", "log2hdfs",
                             "--log-dir", str(log_dirs[0]), "logs"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "no HDFS user: pass --user U" in result.stderr


@pytest.mark.parametrize("data, window, expected", [
    (b"", 4, 0),
    (b"no newline", 4, 0),
    (b"a\nb\n", 4, 4),
    (b"a\nbcdefghij", 3, 2),          # the newline lies several windows back
    (b"\n" + b"x" * 100, 7, 1),
])
def test_complete_length_stops_after_the_last_newline(data, window, expected):
    assert complete_length(io.BytesIO(data), len(data), window) == expected


def test_bounded_reader_stops_at_its_length_and_detects_truncation(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    seen = []
    with open(path, "rb") as f:
        reader = BoundedReader(f, 6, seen.append)
        assert len(reader) == 6
        assert reader.read(4) + reader.read(4) + reader.read(4) == b"012345"
    assert sum(seen) == 6
    with open(path, "rb") as f:
        reader = BoundedReader(f, 20, seen.append)   # planned 20 bytes, the file has 10
        reader.read(10)
        with pytest.raises(LocalFileChanged, match="truncated"):
            reader.read(10)


def test_find_log_files_skips_hidden_temp_symlinks_and_folders(log_dirs):
    files, warnings = find_log_files(log_dirs, (".*", "*.tmp"), "__", 1 << 16)
    assert [lf.target_name for lf in files] == [
        "replica-1__events.jsonl", "replica-1__events.jsonl.1",
        "replica-2__events.jsonl", "replica-2__events.jsonl.1"]
    assert files[3].incomplete_tail == 0
    assert files[2].incomplete_tail == len(b'{"message":"la')
    assert any("empty.jsonl" in w for w in warnings)
