"""Start, stop and inspect botify's local stack: a real single-node HDFS, a real Redis and the
botify service (`up` only; tests start their own service).

    python -m infra.stack fetch                      # Hadoop jars from Maven Central, then the
                                                     # daemons' class archives (both cached)
    python -m infra.stack up                         # start; state in <runtime>/stack.json
    python -m infra.stack status
    python -m infra.stack down
    python -m infra.stack run --ephemeral -- CMD...  # HDFS + Redis, run CMD with their env, stop

`up` uses the ports of conf/stack.yml and leaves the stack running; `run` (and the pipeline)
start an ephemeral stack: free ports and a temporary runtime folder, so several test runs can
share one machine, and daemons bound to their launcher (infra/lifetime.py): they stop when it
ends, by any signal, SIGKILL included. Every process is started in its own session and recorded
with its pid, so `down` leaves nothing behind. The stack's addresses reach programs through
environment variables (see `Stack.env`).
"""
from __future__ import annotations

import argparse
import getpass
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from typing import Any, Literal

from pydantic import Field

from infra import class_archive
from infra.java import java_binary
from infra.lifetime import die_with_parent, exit_on_signals
from infra.logtail import tail
from infra.ports import free_port, is_free
from infra.unix_socket import new_socket_path
from settings import Strict, load, read_yaml

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "conf" / "stack.yml"
NAMENODE_CLASS = "org.apache.hadoop.hdfs.server.namenode.NameNode"
DATANODE_CLASS = "org.apache.hadoop.hdfs.server.datanode.DataNode"
DAEMONS = {"namenode": NAMENODE_CLASS, "datanode": DATANODE_CLASS}
MIN_JAVA = 17
PORT_NAMES = ("namenode_rpc", "namenode_http", "datanode", "datanode_http", "datanode_ipc",
              "redis", "service")


def wants_more_datanodes(safe_mode: str) -> bool:
    """Whether the NameNode's safe-mode tip asks for more live DataNodes. Not the tip of a
    NameNode with blocks on disk that waits for its DataNode's first block report ("needs
    additional N blocks ... live datanodes is not calculated"): that one passes in seconds."""
    return re.search(r"needs an additional \d+ live datanodes", safe_mode) is not None


class StackError(Exception):
    """A set-up problem, worded as what is wrong and what to do."""


class HadoopSettings(Strict):
    pom: str
    conf_dir: str
    cache_dir: str
    heap: str = "512m"
    java_opts: list[str] = []
    class_archive_dir: str = ""            # the daemons' class archives ("": none)
    settings: dict[str, Any] = {}          # extra Hadoop properties, -Dkey=value to both daemons
    start_timeout_s: float = Field(120, gt=0)


class ServiceSettings(Strict):
    config: str = "conf/service.yml"
    log_dir: str = "runtime/logs"
    start_timeout_s: float = Field(30, gt=0)


class RedisSettings(Strict):
    binary: str = "redis-server"
    start_timeout_s: float = Field(20, gt=0)


class StackConfig(Strict):
    runtime_dir: str = "runtime"
    host: str = "127.0.0.1"
    ports: dict[Literal[PORT_NAMES], int]
    hadoop: HadoopSettings
    service: ServiceSettings = ServiceSettings()
    redis: RedisSettings = RedisSettings()


def load_config(path: Path = CONFIG) -> StackConfig:
    """conf/stack.yml, with BOTIFY_PORT_<NAME> environment overrides of its ports."""
    config = load(path, StackConfig)
    overrides = {name: int(os.environ[f"BOTIFY_PORT_{name.upper()}"]) for name in config.ports
                 if os.environ.get(f"BOTIFY_PORT_{name.upper()}")}
    return config.model_copy(update={"ports": {**config.ports, **overrides}})


# ---------------------------------------------------------------- prerequisites


def require_java() -> str:
    java = java_binary()
    if java is None:
        raise StackError(f"Java {MIN_JAVA}+ not found: install it (apt-get install -y "
                         f"openjdk-17-jre-headless) or set JAVA_HOME to a JDK {MIN_JAVA}+.")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)', out)
    if not match or int(match.group(1)) < MIN_JAVA:
        raise StackError(f"{java} is not Java {MIN_JAVA}+ ({out.splitlines()[0] if out else 'no version'}): "
                         f"install openjdk-17 or set JAVA_HOME to a JDK {MIN_JAVA}+.")
    return str(java)


def hadoop_jar_dir(config: StackConfig) -> Path:
    """The jar cache folder for this pom (keyed by its content, so a version bump refetches)."""
    pom = REPO / config.hadoop.pom
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:12]
    return Path(os.path.expanduser(config.hadoop.cache_dir)) / f"hadoop-jars-{digest}"


def fetch_jars(config: StackConfig) -> Path:
    """Copy the HDFS server jars and their dependencies from Maven Central into the cache."""
    jars = hadoop_jar_dir(config)
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
        [mvn, "-q", "-B", "-f", str(REPO / config.hadoop.pom),
         "dependency:copy-dependencies", f"-DoutputDirectory={partial}", "-DincludeScope=runtime"],
        capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError("Maven could not fetch the Hadoop jars (is Maven Central reachable?):\n"
                         + (result.stdout + result.stderr)[-2000:])
    (partial / ".complete").touch()
    shutil.rmtree(jars, ignore_errors=True)
    partial.rename(jars)  # a half-finished fetch is never mistaken for a complete one
    return jars


def daemon_archive(config: StackConfig, java: str, jars: Path, daemon: str) -> Path | None:
    """Where the class archive of `daemon` ("namenode", "datanode") started by `java` from
    `jars` lives; None when conf/stack.yml's hadoop.class_archive_dir is empty."""
    folder = config.hadoop.class_archive_dir
    if not folder:
        return None
    made_from = class_archive.key([Path(java), *sorted(jars.glob("*.jar"))])
    return Path(folder).expanduser() / f"hdfs-{daemon}-{made_from}.jsa"


def build_daemon_archives(config: StackConfig) -> None:
    """Write the HDFS daemons' class archives unless they exist (infra/class_archive.py): a
    throwaway stack's daemons start, take a write and a read, and write theirs as they exit.
    Archives of another Java or Hadoop build in the folder are removed then (an upgrade)."""
    java, jars = require_java(), fetch_jars(config)
    targets = {daemon: daemon_archive(config, java, jars, daemon) for daemon in DAEMONS}
    if any(path is None for path in targets.values()) or all(path.exists() for path in targets.values()):
        return
    print("building the HDFS daemons' class archives (once for this Java and Hadoop) ...",
          file=sys.stderr, flush=True)
    started = time.monotonic()
    stack = new_stack(config, ephemeral=True)
    # Beside their targets (the same file system), named for this process: a concurrent build
    # writes its own, and a reader sees a whole archive or none.
    partials = {daemon: path.with_name(f"{path.name}.{os.getpid()}.partial")
                for daemon, path in targets.items()}
    next(iter(targets.values())).parent.mkdir(parents=True, exist_ok=True)
    try:
        stack.start_hdfs(config, write_archives=partials)
        stack.wait_hdfs(config)
        # Writing and reading a file loads the classes of the data path too.
        from hdfs import InsecureClient

        client = InsecureClient(stack.env()["BOTIFY_WEBHDFS_URL"], user=stack.env()["BOTIFY_HDFS_USER"])
        client.write("/tmp/class-archive-probe", data=os.urandom(1 << 20))
        with client.read("/tmp/class-archive-probe") as reader:
            reader.read()
    except BaseException:
        stack.down()
        for partial in partials.values():
            partial.unlink(missing_ok=True)
        raise
    stack.down()   # SIGTERM: each daemon writes its archive, then exits
    for daemon, partial in partials.items():
        if partial.exists():
            os.replace(partial, targets[daemon])
    missing = [daemon for daemon, path in targets.items() if not path.exists()]
    if missing:   # e.g. a JDK without its own base archive, which a dynamic one extends
        print(f"warning: the JVM wrote no class archive for {', '.join(missing)}; HDFS starts "
              f"without", file=sys.stderr)
        return
    for daemon, path in targets.items():
        for stale in set(path.parent.glob(f"hdfs-{daemon}-*.jsa")) - {path}:
            stale.unlink(missing_ok=True)
    print(f"HDFS class archives built in {time.monotonic() - started:.0f} s", file=sys.stderr)


def keep_copy(folder: Path, target: Path) -> None:
    """Copy `folder` to `target` unless another process got there first; never half-written."""
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(folder, partial)
    try:
        partial.rename(target)
    except OSError:  # `target` exists: another stack's copy of the same format
        shutil.rmtree(partial, ignore_errors=True)


def require_redis(config: StackConfig) -> str:
    binary = shutil.which(config.redis.binary)
    if not binary:
        raise StackError("redis-server not found: install it (apt-get install -y redis-server); "
                         "./run.sh does this for you when run as root.")
    return binary


# ---------------------------------------------------------------- ports and processes


def require_port_free(host: str, port: int, what: str) -> None:
    if not is_free(host, port, reuse_address=True):
        raise StackError(
            f"port {port} ({what}) is in use on {host}: stop what listens there "
            f"(see `ss -ltnp 'sport = :{port}'`; `./run.sh down` if it is an earlier stack) "
            f"or choose another port with BOTIFY_PORT_<NAME> (names in conf/stack.yml).")


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); it is dead for our purpose.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def stop_processes(pids: dict[str, int], timeout: float = 20) -> None:
    """SIGTERM each process's whole session (each was started in its own), all at once so that
    they shut down side by side, then SIGKILL those still running after `timeout`."""
    running = dict(pids)
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        for name, pid in list(running.items()):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                del running[name]
        deadline = time.monotonic() + wait
        while running and time.monotonic() < deadline:
            for name, pid in list(running.items()):
                try:
                    os.waitpid(pid, os.WNOHANG)  # reap it when it is our child
                except ChildProcessError:
                    pass
                if not process_alive(pid):
                    del running[name]
            time.sleep(0.02)
        if not running:
            return
    for name, pid in running.items():
        print(f"warning: {name} (pid {pid}) did not stop", file=sys.stderr)


def stop_process(pid: int, name: str, timeout: float = 20) -> None:
    stop_processes({name: pid}, timeout)


def http_json(url: str, timeout: float = 2) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client's connection over a Unix socket (the service's, when it serves on one)."""

    def __init__(self, path: Path, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self.unix_path))


def unix_http_json(path: Path, route: str, timeout: float = 2) -> dict | None:
    """http_json's GET of `route` over the Unix socket at `path`."""
    connection = UnixHTTPConnection(path, timeout)
    try:
        connection.request("GET", route)
        response = connection.getresponse()
        return json.load(response) if response.status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        connection.close()


def service_name(replica: int) -> str:
    """The name of a service replica's process (and log)."""
    return "service" if replica == 1 else f"service-{replica}"


def service_status(url: str) -> dict | None:
    """A service's answer to GET / at http://host:port or unix:///path, None when it does not
    answer."""
    if url.startswith("unix://"):
        return unix_http_json(Path(url.removeprefix("unix://")), "/")
    return http_json(f"{url}/")


# ---------------------------------------------------------------- the stack


@dataclass
class Stack:
    runtime: Path
    host: str
    ports: dict[str, int]
    pids: dict[str, int] = field(default_factory=dict)
    ephemeral: bool = False
    hdfs_ready: bool = False      # wait_hdfs saw it take writes (a stack read by `load` runs already)
    hdfs_started: float = 0.0     # time.monotonic() when its daemons were started
    service_sockets: list[Path] = field(default_factory=list)  # the replicas' Unix sockets, while they serve

    @property
    def state_file(self) -> Path:
        return self.runtime / "stack.json"

    def log(self, name: str) -> Path:
        return self.runtime / "daemons" / f"{name}.log"  # runtime/logs/ holds event logs

    def env(self) -> dict[str, str]:
        """What programs need to find the stack (tests, dataclient, jobs, the service)."""
        return {
            "BOTIFY_WEBHDFS_URL": f"http://{self.host}:{self.ports['namenode_http']}",
            "BOTIFY_HDFS_FS": f"hdfs://{self.host}:{self.ports['namenode_rpc']}",
            "BOTIFY_HDFS_USER": getpass.getuser(),
            "BOTIFY_REDIS_URL": f"redis://{self.host}:{self.ports['redis']}/0",
            "BOTIFY_SERVICE_URL": self.service_url,
            "BOTIFY_STACK_RUNTIME": str(self.runtime),
            "SPARK_LOCAL_IP": self.host,  # Spark would otherwise bind to the machine's public address
        }

    def save(self) -> None:
        self.state_file.write_text(json.dumps(
            {"host": self.host, "ports": self.ports, "pids": self.pids,
             "ephemeral": self.ephemeral, "env": self.env()}, indent=2))

    @classmethod
    def load(cls, runtime: Path) -> "Stack | None":
        try:
            state = json.loads((runtime / "stack.json").read_text())
        except FileNotFoundError:
            return None
        return cls(runtime, state["host"], state["ports"], state["pids"], state["ephemeral"],
                   hdfs_ready=True)

    def spawn(self, name: str, argv: list[str]) -> None:
        self.log(name).parent.mkdir(parents=True, exist_ok=True)
        with open(self.log(name), "ab") as log:
            # An ephemeral stack's daemons die with their launcher, even when it is SIGKILLed.
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO,
                                       preexec_fn=die_with_parent if self.ephemeral else None)
        self.pids[name] = process.pid
        self.save()  # recorded at once, so `down` finds it even if start-up fails later

    def wait_until(self, name: str, ready, timeout: float, what: str, interval: float = 0.25) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not process_alive(self.pids[name]):
                raise StackError(f"{name} exited during start-up; see {self.log(name)}:\n"
                                 + tail(self.log(name)))
            if ready():
                return
            time.sleep(interval)
        raise StackError(f"{what} within {timeout:.0f} s; see {self.log(name)}:\n" + tail(self.log(name)))

    # ---- HDFS

    def hadoop_argv(self, config: StackConfig, java: str, jars: Path, main: str, *args: str,
                    archive: Iterable[str] = ()) -> list[str]:
        """The command of one Hadoop JVM; `archive`: its class archive's options."""
        h = config.hadoop
        p, host = self.ports, self.host
        overrides = {
            **h.settings,
            "fs.defaultFS": f"hdfs://{host}:{p['namenode_rpc']}",
            "dfs.namenode.rpc-address": f"{host}:{p['namenode_rpc']}",
            "dfs.namenode.http-address": f"{host}:{p['namenode_http']}",
            "dfs.datanode.address": f"{host}:{p['datanode']}",
            "dfs.datanode.http.address": f"{host}:{p['datanode_http']}",
            "dfs.datanode.ipc.address": f"{host}:{p['datanode_ipc']}",
            "dfs.namenode.name.dir": str(self.runtime / "hdfs" / "name"),
            "dfs.datanode.data.dir": str(self.runtime / "hdfs" / "data"),
        }
        # The configuration after the jars (none of them has a *-site.xml or log4j.properties):
        # the JVM writes no class archive while a non-empty folder comes first.
        classpath = f"{jars}/*:{REPO / h.conf_dir}"
        return ([java, f"-Xmx{h.heap}", *h.java_opts, *archive, "-cp", classpath, main]
                + [f"-D{k}={v}" for k, v in overrides.items()] + list(args))

    def start_hdfs(self, config: StackConfig, write_archives: dict[str, Path] | None = None) -> None:
        """Give a new stack a formatted NameNode folder, then start the NameNode and the DataNode
        (wait_hdfs waits for them), each from its class archive when there is one, or, given
        `write_archives` (daemon -> path), writing one there as it exits."""
        java = require_java()
        jars = fetch_jars(config)
        for name in ("namenode_rpc", "namenode_http", "datanode", "datanode_http", "datanode_ipc"):
            require_port_free(self.host, self.ports[name], f"HDFS {name}")
        name_dir = self.runtime / "hdfs" / "name"
        if not (name_dir / "current").exists():
            # A fresh NameNode gets a new cluster id; an old DataNode folder would not match it.
            shutil.rmtree(self.runtime / "hdfs", ignore_errors=True)
            # The NameNode's own -format costs a JVM start per stack: it runs once per Hadoop
            # build, and every new stack starts from a copy of what it wrote.
            template = jars.with_name(jars.name + "-formatted-namenode")
            if (template / "current").exists():
                shutil.copytree(template, name_dir)
            else:
                self.format_namenode(config, java, jars)
                keep_copy(name_dir, template)
        self.hdfs_started = time.monotonic()
        for daemon, main in DAEMONS.items():
            if write_archives is not None:
                archive = class_archive.writing_options(write_archives[daemon])
            else:
                path = daemon_archive(config, java, jars, daemon)
                archive = class_archive.reading_options(path) if path is not None and path.exists() else []
            self.spawn(daemon, self.hadoop_argv(config, java, jars, main, archive=archive))

    def format_namenode(self, config: StackConfig, java: str, jars: Path) -> None:
        self.log("namenode-format").parent.mkdir(parents=True, exist_ok=True)
        with open(self.log("namenode-format"), "wb") as log:
            result = subprocess.run(self.hadoop_argv(config, java, jars, NAMENODE_CLASS,
                                                     "-format", "-nonInteractive", "-force"),
                                    stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        if result.returncode != 0:
            raise StackError(f"formatting the NameNode failed; see {self.log('namenode-format')}:\n"
                             + tail(self.log("namenode-format")))

    def wait_hdfs(self, config: StackConfig) -> None:
        """Until HDFS takes writes: the NameNode's WebHDFS answers and it left safe mode with a
        live DataNode. At once when that was seen before."""
        if self.hdfs_ready:
            return
        webhdfs = self.env()["BOTIFY_WEBHDFS_URL"]
        self.wait_until("namenode", lambda: http_json(f"{webhdfs}/webhdfs/v1/?op=LISTSTATUS") is not None,
                        config.hadoop.start_timeout_s, "the NameNode's WebHDFS did not answer")

        def writable() -> bool:
            info = http_json(f"{webhdfs}/jmx?qry=Hadoop:service=NameNode,name=NameNodeInfo")
            beans = (info or {}).get("beans") or [{}]
            safe_mode, live = beans[0].get("Safemode"), json.loads(beans[0].get("LiveNodes") or "{}")
            if live and wants_more_datanodes(safe_mode or ""):
                # Our one DataNode is live and the NameNode still wants more: waiting is futile.
                raise StackError(f"HDFS did not leave safe mode: {safe_mode.strip()} This stack "
                                 f"runs one DataNode; see {self.log('datanode')} and "
                                 f"hadoop.settings in conf/stack.yml")
            # A DataNode is live once registered, but blocks go to it only once it reported
            # its storage (capacity): a write before that fails ("Failed to find datanode").
            return safe_mode == "" and any(node.get("capacity", 0) > 0 for node in live.values())

        self.wait_until("datanode", writable, config.hadoop.start_timeout_s,
                        "HDFS did not leave safe mode with a live DataNode")
        self.hdfs_ready = True
        print(f"HDFS ready {time.monotonic() - self.hdfs_started:.1f} s after its start: WebHDFS "
              f"{webhdfs}, {self.env()['BOTIFY_HDFS_FS']}", flush=True)

    # ---- Redis

    def start_redis(self, config: StackConfig) -> None:
        binary = require_redis(config)
        require_port_free(self.host, self.ports["redis"], "Redis")
        data = self.runtime / "redis"
        data.mkdir(parents=True, exist_ok=True)
        self.spawn("redis", [binary, "--bind", self.host, "--port", str(self.ports["redis"]),
                             "--dir", str(data), "--save", "", "--appendonly", "no",
                             "--daemonize", "no"])

        def pong() -> bool:
            try:
                with socket.create_connection((self.host, self.ports["redis"]), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    return s.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        self.wait_until("redis", pong, config.redis.start_timeout_s, "Redis did not answer PING")
        print(f"Redis ready: {self.env()['BOTIFY_REDIS_URL']}", flush=True)

    # ---- the botify service

    @property
    def service_urls(self) -> list[str]:
        """Each replica's unix:///path while they serve on Unix sockets, else http://host:port."""
        if self.service_sockets:
            return [f"unix://{path}" for path in self.service_sockets]
        return [f"http://{self.host}:{self.ports['service']}"]

    @property
    def service_url(self) -> str:
        """The first replica's url (the only one, on the stack's service port)."""
        return self.service_urls[0]

    def start_service(self, config: StackConfig, service_config: Path, log_root: Path,
                      unix_socket: bool = False, replicas: int = 1) -> None:
        """Start `python -m service` on the stack's service port, or with `unix_socket` on a Unix
        socket of its own (clients on this machine then cost the kernel less per request), as
        `replicas` processes (Unix sockets only: the stack has one service port), replica k
        logging under log_root/replica-k."""
        if replicas > 1 and not unix_socket:
            raise StackError(f"{replicas} service replicas need Unix sockets: the stack has one service port")
        if not unix_socket:
            require_port_free(self.host, self.ports["service"], "botify service")
        for replica in range(1, replicas + 1):
            if unix_socket:
                self.service_sockets.append(new_socket_path(f"service-{replica}.sock"))   # not in the runtime: too deep
                where = ["--uds", str(self.service_sockets[-1])]
            else:
                where = ["--host", self.host, "--port", str(self.ports["service"])]
            self.spawn(service_name(replica), [sys.executable, "-m", "service", "--config", str(service_config),
                                               *where, "--log-dir", str(log_root), "--replica", f"replica-{replica}"])
        # They start side by side. Polled often: a run waits for them three times, and asking
        # costs a replica a millisecond.
        for replica, url in enumerate(self.service_urls, start=1):
            self.wait_until(service_name(replica), lambda: service_status(url) is not None,
                            config.service.start_timeout_s, "the botify service did not answer", interval=0.05)
        print(f"botify service ready: {' '.join(self.service_urls)} (config {service_config})", flush=True)

    def stop_service(self) -> None:
        """SIGTERM every replica of the service (each flushes and closes its event log) and
        forget them."""
        replicas = {name: self.pids.pop(name) for name in list(self.pids) if name.startswith("service")}
        if replicas:
            stop_processes(replicas)
            self.save()
        for path in self.service_sockets:
            shutil.rmtree(path.parent, ignore_errors=True)
        self.service_sockets = []

    # ---- lifecycle

    def up(self, config: StackConfig, wait_for_hdfs: bool = True) -> None:
        """Start HDFS and Redis. With wait_for_hdfs=False, return once Redis answers and the
        HDFS daemons are started, so the caller works while they boot; it calls wait_hdfs
        before its first use of HDFS."""
        self.runtime.mkdir(parents=True, exist_ok=True)
        try:
            self.start_hdfs(config)
            self.start_redis(config)
            if wait_for_hdfs:
                self.wait_hdfs(config)
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        self.stop_service()   # first: it flushes its event log
        stop_processes(self.pids)   # HDFS and Redis side by side: 0.35 s against 0.9-1.0 s in turn
        self.pids = {}
        if self.ephemeral:
            shutil.rmtree(self.runtime, ignore_errors=True)
        elif self.state_file.exists():
            self.state_file.unlink()

    def status(self) -> dict[str, bool]:
        return {name: process_alive(pid) for name, pid in self.pids.items()}


def serve_default(stack: Stack, config: StackConfig) -> None:
    """Start the service of `./run.sh up` on conf/service.yml, generating the world it needs
    (the simulator's default world) when its catalog is missing."""
    service_config = REPO / config.service.config
    catalog = REPO / read_yaml(service_config)["catalog"]
    if not catalog.exists():
        print(f"generating the simulated world for the catalog {catalog} ...", flush=True)
        if subprocess.run([sys.executable, "-m", "sim.world", "--out", str(catalog.parent)],
                          cwd=REPO).returncode != 0:
            raise StackError(f"generating the world for {catalog} failed (see above)")
    stack.start_service(config, service_config, REPO / config.service.log_dir)


def new_stack(config: StackConfig, ephemeral: bool) -> Stack:
    host = config.host
    if ephemeral:
        runtime = Path(tempfile.mkdtemp(prefix="botify-stack-"))
        ports = {name: free_port(host) for name in config.ports}
    else:
        runtime = REPO / config.runtime_dir
        ports = dict(config.ports)
    return Stack(runtime, host, ports, ephemeral=ephemeral)


# ---------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.stack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=CONFIG, help="stack config (default conf/stack.yml)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="fetch the Hadoop jars from Maven Central into the cache, then "
                                 "build the HDFS daemons' class archives unless they exist")
    sub.add_parser("up", help="start HDFS, Redis and the botify service; they keep running")
    sub.add_parser("down", help="stop what `up` started")
    sub.add_parser("status", help="show what runs, with pids, ports and logs")
    run = sub.add_parser("run", help="start the stack, run a command with its env, stop it")
    run.add_argument("--ephemeral", action="store_true",
                     help="(always so: free ports, a temporary folder, stopped afterwards)")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    runtime = REPO / config.runtime_dir
    exit_on_signals()  # SIGTERM/SIGHUP run the `finally:` blocks that stop what was started

    try:
        if args.command == "fetch":
            print(fetch_jars(config))
            build_daemon_archives(config)
        elif args.command == "up":
            existing = Stack.load(runtime)
            if existing and any(existing.status().values()):
                raise StackError(f"a stack already runs from {runtime} (`./run.sh status`); "
                                 "`./run.sh down` first.")
            if existing:  # what a killed `up` recorded and left: nothing of it may linger
                existing.down()
            stack = new_stack(config, ephemeral=False)
            stack.up(config)
            try:
                serve_default(stack, config)
            except BaseException:
                stack.down()
                raise
            for key, value in stack.env().items():
                print(f"export {key}={value}")
        elif args.command == "down":
            stack = Stack.load(runtime)
            if stack is None:
                print(f"nothing to stop (no {runtime / 'stack.json'})")
            else:
                stack.down()
                print("stack stopped")
        elif args.command == "status":
            stack = Stack.load(runtime)
            if stack is None:
                print("not running")
                return 1
            for name, alive in stack.status().items():
                print(f"{name:10} pid {stack.pids[name]:>7}  {'running' if alive else 'STOPPED'}"
                      f"  log {stack.log(name)}")
            for key, value in stack.env().items():
                print(f"{key}={value}")
            return 0 if all(stack.status().values()) else 1
        elif args.command == "run":
            cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            if not cmd:
                parser.error("run needs a command after --")
            stack = new_stack(config, ephemeral=True)
            command = None
            try:
                stack.up(config)
                # Its own process group, so that stopping it stops everything it started too.
                command = subprocess.Popen(cmd, env={**os.environ, **stack.env()}, cwd=REPO,
                                           start_new_session=True, preexec_fn=die_with_parent)
                return command.wait()
            finally:
                if command is not None:
                    stop_process(command.pid, "the command", timeout=30)
                stack.down()
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
