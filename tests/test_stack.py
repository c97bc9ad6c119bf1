"""Set-up errors of the local stack say what is wrong and exit non-zero (infra/stack.py CLI)."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def stack_cli(tmp_path, *args, env=None, **overrides):
    config = yaml.safe_load((REPO / "conf" / "stack.yml").read_text())
    config["runtime_dir"] = str(tmp_path / "runtime")
    config.update(overrides)
    path = tmp_path / "stack.yml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-m", "infra.stack", "--config", str(path), *args],
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
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports[name] = probe.getsockname()[1]
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
    from infra import stack as stack_module

    config = stack_module.load_config()
    stack = stack_module.new_stack(config, ephemeral=True)
    try:
        stack.up(config)
        assert not stack.log("namenode-format").exists()
        template = stack_module.hadoop_jar_dir(config)
        template = template.with_name(template.name + "-formatted-namenode")
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
    from infra.stack import keep_copy

    for number in (1, 2):
        (tmp_path / f"made{number}").mkdir()
        (tmp_path / f"made{number}" / "VERSION").write_text(str(number))
        keep_copy(tmp_path / f"made{number}", tmp_path / "kept")
    assert (tmp_path / "kept" / "VERSION").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept", "made1", "made2"]
