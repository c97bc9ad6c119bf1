"""Apache Hadoop's HDFS daemons for the local stack: the java that runs them, their jars
(fetched from Maven Central with infra/hadoop/pom.xml, once per Hadoop build, into a cache
outside git), their command lines, the NameNode's folder, and when HDFS takes writes.

A NameNode's `-format` costs a JVM start; it runs once per Hadoop build, and every new stack
starts from a copy of the folder it wrote.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from infra.config import HadoopSettings
from infra.errors import StackError
from infra.http_json import get_json
from infra.logtail import tail
from settings import REPO_ROOT as REPO

NAMENODE_CLASS = "org.apache.hadoop.hdfs.server.namenode.NameNode"
DATANODE_CLASS = "org.apache.hadoop.hdfs.server.datanode.DataNode"
DAEMONS = {"namenode": NAMENODE_CLASS, "datanode": DATANODE_CLASS}
PORT_NAMES = ("namenode_rpc", "namenode_http", "datanode", "datanode_http", "datanode_ipc")
MIN_JAVA = 17


def require_java() -> str:
    """$JAVA_HOME/bin/java when JAVA_HOME is set, else the first java on PATH; it must be Java
    17 or later."""
    home = os.environ.get("JAVA_HOME")
    java = shutil.which("java", path=str(Path(home) / "bin")) if home else shutil.which("java")
    if java is None:
        raise StackError(f"Java {MIN_JAVA}+ not found: install it (apt-get install -y "
                         f"openjdk-17-jre-headless) or set JAVA_HOME to a JDK {MIN_JAVA}+.")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)', out)
    if not match or int(match.group(1)) < MIN_JAVA:
        raise StackError(f"{java} is not Java {MIN_JAVA}+ ({out.splitlines()[0] if out else 'no version'}): "
                         f"install openjdk-17 or set JAVA_HOME to a JDK {MIN_JAVA}+.")
    return java


def jar_dir(settings: HadoopSettings) -> Path:
    """The jar cache folder for this pom (keyed by its content, so a version bump refetches)."""
    digest = hashlib.sha256((REPO / settings.pom).read_bytes()).hexdigest()[:12]
    return Path(settings.cache_dir).expanduser() / f"hadoop-jars-{digest}"


def fetch_jars(settings: HadoopSettings) -> Path:
    """Copy the HDFS server jars and their dependencies from Maven Central into the cache."""
    jars = jar_dir(settings)
    if (jars / ".complete").exists():
        return jars
    mvn = shutil.which("mvn")
    if not mvn:
        raise StackError("Maven (mvn) not found: it fetches Apache Hadoop's jars from Maven "
                         "Central. Install it (apt-get install -y maven) and re-run.")
    print(f"fetching Hadoop jars with Maven into {jars} ...", flush=True)
    partial = jars.with_name(jars.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    result = subprocess.run(
        [mvn, "-q", "-B", "-f", str(REPO / settings.pom),
         "dependency:copy-dependencies", f"-DoutputDirectory={partial}", "-DincludeScope=runtime"],
        capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError("Maven could not fetch the Hadoop jars (is Maven Central reachable?):\n"
                         + (result.stdout + result.stderr)[-2000:])
    (partial / ".complete").touch()
    shutil.rmtree(jars, ignore_errors=True)
    partial.rename(jars)  # a half-finished fetch is never mistaken for a complete one
    return jars


def formatted_namenode_dir(settings: HadoopSettings) -> Path:
    """The NameNode folder formatted once per Hadoop build, which new stacks copy."""
    jars = jar_dir(settings)
    return jars.with_name(jars.name + "-formatted-namenode")


def keep_copy(folder: Path, target: Path) -> None:
    """Copy `folder` to `target` unless another process got there first; never half-written."""
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(folder, partial)
    try:
        partial.rename(target)
    except OSError:  # `target` exists: another stack's copy of the same format
        shutil.rmtree(partial, ignore_errors=True)


def wants_more_datanodes(safe_mode: str) -> bool:
    """Whether the NameNode's safe-mode tip asks for more live DataNodes. Not the tip of a
    NameNode with blocks on disk that waits for its DataNode's first block report ("needs
    additional N blocks ... live datanodes is not calculated"): that one passes in seconds."""
    return re.search(r"needs an additional \d+ live datanodes", safe_mode) is not None


def webhdfs_answers(webhdfs_url: str) -> bool:
    """Whether the NameNode's WebHDFS at `webhdfs_url` answers."""
    return get_json(webhdfs_url, "/webhdfs/v1/?op=LISTSTATUS") is not None


def takes_writes(webhdfs_url: str, datanode_log: Path) -> bool:
    """Whether the HDFS of the NameNode at `webhdfs_url` takes writes: out of safe mode with a
    live DataNode that reported its storage. A StackError when it asks for more DataNodes than
    the one a stack runs."""
    info = get_json(webhdfs_url, "/jmx?qry=Hadoop:service=NameNode,name=NameNodeInfo")
    beans = (info or {}).get("beans") or [{}]
    safe_mode, live = beans[0].get("Safemode"), json.loads(beans[0].get("LiveNodes") or "{}")
    if live and wants_more_datanodes(safe_mode or ""):
        raise StackError(f"HDFS did not leave safe mode: {safe_mode.strip()} This stack "
                         f"runs one DataNode; see {datanode_log} and "
                         f"hadoop.settings in conf/stack.yml")
    # A DataNode is live once registered, but blocks go to it only once it reported
    # its storage (capacity): a write before that fails ("Failed to find datanode").
    return safe_mode == "" and any(node.get("capacity", 0) > 0 for node in live.values())


@dataclass(frozen=True)
class Hdfs:
    """One stack's HDFS: the java and jars its daemons run from, where they listen, where they
    keep their data (<runtime>/hdfs)."""
    settings: HadoopSettings
    java: str
    jars: Path
    host: str
    ports: dict[str, int]
    runtime: Path

    @property
    def name_dir(self) -> Path:
        return self.runtime / "hdfs" / "name"

    def argv(self, main: str, *args: str) -> list[str]:
        """The command of one Hadoop JVM: the loopback addresses and folders of this stack
        override conf/hadoop's *-site.xml."""
        p, host = self.ports, self.host
        overrides = {
            **self.settings.settings,
            "fs.defaultFS": f"hdfs://{host}:{p['namenode_rpc']}",
            "dfs.namenode.rpc-address": f"{host}:{p['namenode_rpc']}",
            "dfs.namenode.http-address": f"{host}:{p['namenode_http']}",
            "dfs.datanode.address": f"{host}:{p['datanode']}",
            "dfs.datanode.http.address": f"{host}:{p['datanode_http']}",
            "dfs.datanode.ipc.address": f"{host}:{p['datanode_ipc']}",
            "dfs.namenode.name.dir": str(self.name_dir),
            "dfs.datanode.data.dir": str(self.runtime / "hdfs" / "data"),
        }
        classpath = f"{self.jars}/*:{REPO / self.settings.conf_dir}"
        return ([self.java, f"-Xmx{self.settings.heap}", *self.settings.java_opts, "-cp", classpath, main]
                + [f"-D{k}={v}" for k, v in overrides.items()] + list(args))

    def prepare_name_dir(self, format_log: Path) -> None:
        """Give the NameNode a formatted folder unless it has one: a copy of the format of this
        Hadoop build, made first when there is none."""
        if (self.name_dir / "current").exists():
            return
        # A fresh NameNode gets a new cluster id; an old DataNode folder would not match it.
        shutil.rmtree(self.runtime / "hdfs", ignore_errors=True)
        template = formatted_namenode_dir(self.settings)
        if (template / "current").exists():
            shutil.copytree(template, self.name_dir)
            return
        format_log.parent.mkdir(parents=True, exist_ok=True)
        with open(format_log, "wb") as log:
            result = subprocess.run(self.argv(NAMENODE_CLASS, "-format", "-nonInteractive", "-force"),
                                    stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        if result.returncode != 0:
            raise StackError(f"formatting the NameNode failed; see {format_log}:\n" + tail(format_log))
        keep_copy(self.name_dir, template)
