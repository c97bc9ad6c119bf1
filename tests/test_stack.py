"""Set-up errors of the local stack say what is wrong and exit non-zero (`python -m infra`);
the stack's service starts on its port or on a Unix socket and stops."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from infra import hadoop
from infra import ports as ports_module
from infra.config import load_config
from infra.errors import StackError
from infra.stack import new_stack, service_status

pytestmark = [pytest.mark.slow, pytest.mark.heavy(4)]

REPO = Path(__file__).resolve().parent.parent


def stack_cli(tmp_path, *args, env=None, **overrides):
    config = yaml.safe_load((REPO / "conf" / "stack.yml").read_text())
    config["runtime_dir"] = str(tmp_path / "runtime")
    config.update(overrides)
    path = tmp_path / "stack.yml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-m", "infra", "--config", str(path), *args],
                          capture_output=True, text=True, cwd=REPO, env=env or os.environ, timeout=120)


def test_port_in_use_is_named(tmp_path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        ports = {name: 0 for name in ("namenode_rpc", "datanode", "datanode_http", "datanode_ipc",
                                      "redis", "service")}
        ports["namenode_http"] = port
        result = stack_cli(tmp_path, "up", ports=ports)
    assert result.returncode == 2
    assert f"port {port} (HDFS namenode_http) is in use" in result.stderr


def test_free_ports_lie_outside_the_ephemeral_range():
    """A port the kernel may hand to any connect() or bind(port 0) would race with the daemon."""
    low, high = ports_module.ephemeral_range()
    chosen = {ports_module.free_port() for _ in range(50)}
    assert all(ports_module.LOWEST <= port < 65_536 and not low <= port <= high for port in chosen)
    assert len(chosen) > 1   # random, so that stacks started at once do not collide
    with socket.socket() as held:
        held.bind(("127.0.0.1", chosen.pop()))
        held.listen()
        assert not ports_module.is_free("127.0.0.1", held.getsockname()[1])


def test_missing_java_is_explained(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = str(Path(sys.executable).parent)  # python only: no java on this PATH
    result = stack_cli(tmp_path, "up", env=env)
    assert result.returncode == 2
    assert "Java 17+ not found" in result.stderr and "JAVA_HOME" in result.stderr
    # Nothing was left running or recorded.
    assert not (tmp_path / "runtime" / "stack.json").exists()


def test_missing_maven_is_explained(tmp_path):
    env = dict(os.environ, PATH=str(Path(sys.executable).parent))
    hadoop = yaml.safe_load((REPO / "conf" / "stack.yml").read_text())["hadoop"]
    hadoop["cache_dir"] = str(tmp_path / "empty-cache")  # forces a fetch
    result = stack_cli(tmp_path, "fetch", env=env, hadoop=hadoop)
    assert result.returncode == 2
    assert "Maven (mvn) not found" in result.stderr


def test_safe_mode_timeout_is_explained(tmp_path):
    """A NameNode that waits for two DataNodes never leaves safe mode with our one: the launcher
    says so, names the log, and stops what it started."""
    hadoop = yaml.safe_load((REPO / "conf" / "stack.yml").read_text())["hadoop"]
    hadoop["settings"] = {"dfs.namenode.safemode.min.datanodes": 2}
    ports = {}
    for name in ("namenode_rpc", "namenode_http", "datanode", "datanode_http", "datanode_ipc",
                 "redis", "service"):
        ports[name] = ports_module.free_port()
    result = stack_cli(tmp_path, "up", hadoop=hadoop, ports=ports)
    assert result.returncode == 2
    assert "HDFS did not leave safe mode" in result.stderr and "daemons/datanode.log" in result.stderr
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert leftovers.stdout == ""


def storage_ids(version_file: Path) -> dict[str, str]:
    """A NameNode's VERSION file (Java properties) without its comment lines."""
    lines = version_file.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_a_new_stack_starts_from_the_formatted_namenode_of_an_earlier_one(stack_env):
    """The NameNode's -format runs once per Hadoop build (the suite's stack made or found the
    copy); a new stack copies it and runs no format of its own, and its HDFS takes writes."""
    config = load_config()
    stack = new_stack(config, ephemeral=True)
    try:
        stack.up(config)
        assert not stack.log("namenode-format").exists()
        template = hadoop.formatted_namenode_dir(config.hadoop)
        # The same format: the same ids. Not the same bytes: a NameNode whose image is older
        # than its checkpoint period saves it again at start, rewriting VERSION's date line.
        version = storage_ids(stack.runtime / "hdfs" / "name" / "current" / "VERSION")
        assert version == storage_ids(template / "current" / "VERSION")
        assert {"clusterID", "namespaceID", "blockpoolID"} <= version.keys()
        from hdfs import InsecureClient

        client = InsecureClient(stack.env()["BOTIFY_WEBHDFS_URL"], user=stack.env()["BOTIFY_HDFS_USER"])
        client.write("/tmp/probe.txt", data=b"written")
        assert client.status("/tmp/probe.txt")["length"] == len(b"written")
    finally:
        stack.down()
    assert not stack.runtime.exists()


def test_keep_copy_keeps_the_first_copy(tmp_path):
    for number in (1, 2):
        (tmp_path / f"made{number}").mkdir()
        (tmp_path / f"made{number}" / "VERSION").write_text(str(number))
        hadoop.keep_copy(tmp_path / f"made{number}", tmp_path / "kept")
    assert (tmp_path / "kept" / "VERSION").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept", "made1", "made2"]


@pytest.mark.parametrize("unix_socket, replicas", [(False, 1), (True, 1), (True, 2)])
def test_the_service_starts_on_its_port_or_unix_sockets_and_stops(tmp_path, unix_socket, replicas):
    catalog = tmp_path / "tracks.jsonl"
    catalog.write_text("".join(f'{{"track": {t}, "artist": "a", "title": "t"}}\n' for t in range(10)))
    service = yaml.safe_load((REPO / "conf" / "service.yml").read_text())
    service.update(catalog=str(catalog), experiments=[{"name": "E", "arms": [{"name": "R", "recommender": "random"}]}])
    service_config = tmp_path / "service.yml"
    service_config.write_text(yaml.safe_dump(service))
    config = load_config()
    stack = new_stack(config, ephemeral=True)   # free ports, a temporary runtime
    try:
        stack.start_service(config, service_config, tmp_path / "logs", unix_socket=unix_socket,
                            replicas=replicas)
        urls = stack.service_urls
        assert len(urls) == replicas and stack.service_url == urls[0]
        assert all(url.startswith("unix:///" if unix_socket else "http://127.0.0.1:") for url in urls)
        assert stack.env()["BOTIFY_SERVICE_URL"] == stack.service_url
        answers = [service_status(url) for url in urls]
        assert [a["status"] for a in answers] == ["ok"] * replicas
        assert sorted(a["replica"] for a in answers) == [f"replica-{k}" for k in range(1, replicas + 1)]
        folders = [path.parent for path in stack.service_sockets]
    finally:
        stack.down()
    assert not any(name.startswith("service") for name in stack.pids) and stack.service_sockets == []
    assert all(service_status(url) is None for url in urls)
    assert not any(folder.exists() for folder in folders)   # each socket's folder goes with it


def test_service_replicas_need_unix_sockets(tmp_path):
    config = load_config()
    stack = new_stack(config, ephemeral=True)
    try:
        with pytest.raises(StackError, match="need Unix sockets"):
            stack.start_service(config, tmp_path / "service.yml", tmp_path / "logs", replicas=2)
        assert stack.pids == {}
    finally:
        stack.down()


def test_a_socket_path_fits_the_kernel_even_under_a_deep_tmpdir(monkeypatch):
    from infra.unix_socket import MAX_PATH_BYTES, new_socket_path

    short = Path(tempfile.mkdtemp(dir="/tmp"))   # not pytest's tmp_path: its depth varies
    deep = short / ("d" * 100)
    deep.mkdir()
    try:
        for tmpdir, parent in ((short, short), (deep, Path("/tmp"))):
            monkeypatch.setattr("tempfile.tempdir", str(tmpdir))
            path = new_socket_path("service.sock")
            try:
                assert path.parent.parent == parent and path.parent.is_dir()
                assert len(str(path)) <= MAX_PATH_BYTES
                with socket.socket(socket.AF_UNIX) as server:
                    server.bind(str(path))   # the kernel takes it
            finally:
                path.unlink(missing_ok=True)
                path.parent.rmdir()
    finally:
        shutil.rmtree(short)


def test_only_a_tip_asking_for_more_datanodes_stops_the_wait():
    """Hadoop's two safe-mode tips (FSNamesystem.SafeModeInfo): more DataNodes than we run is
    futile; a restarted NameNode waiting for its DataNode's first block report is not."""
    assert hadoop.wants_more_datanodes(
        "Safe mode is ON. The reported blocks 0 has reached the threshold 0.9990 of total blocks 0. "
        "The number of live datanodes 1 needs an additional 1 live datanodes to reach the minimum "
        "number 2. Safe mode will be turned off automatically once the thresholds have been reached.")
    assert not hadoop.wants_more_datanodes(
        "Safe mode is ON. The reported blocks 0 needs additional 27 blocks to reach the threshold "
        "0.9990 of total blocks 28.\nThe number of live datanodes is not calculated since reported "
        "blocks hasn't reached the threshold. Safe mode will be turned off automatically once the "
        "thresholds have been reached.")
