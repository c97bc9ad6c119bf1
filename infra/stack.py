"""The local stack a run needs: a real single-node HDFS (infra/hadoop.py), a real Redis and the
botify service, started and stopped as one (`Stack`).

A stack is ephemeral (`new_stack(config, ephemeral=True)`: the pipeline's and the tests'): free
ports and a temporary runtime folder, so several runs can share one machine, and daemons bound
to their launcher (infra/lifetime.py), so they stop when it ends, by any signal, SIGKILL
included. Or it uses the ports and runtime folder of conf/stack.yml (`./run.sh up`) and runs on
until `./run.sh down`. Every process is recorded with its pid in <runtime>/stack.json as it
starts, so `down` leaves nothing behind. The stack's addresses reach programs through
environment variables (`Stack.env`).
"""
from __future__ import annotations

import getpass
import json
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from infra import hadoop, processes
from infra.config import StackConfig
from infra.errors import StackError
from infra.http_json import get_json
from infra.ports import free_port, require_port_free
from infra.unix_socket import new_socket_path
from settings import REPO_ROOT as REPO


def require_redis(config: StackConfig) -> str:
    binary = shutil.which(config.redis.binary)
    if not binary:
        raise StackError("redis-server not found: install it (apt-get install -y redis-server); "
                         "./run.sh does this for you when run as root.")
    return binary


def service_name(replica: int) -> str:
    """The name of a service replica's process (and log)."""
    return "service" if replica == 1 else f"service-{replica}"


def service_status(url: str) -> dict | None:
    """A service's answer to GET / at http://host:port or unix:///path, None when it does not
    answer."""
    return get_json(url, "/")


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
        # An ephemeral stack's daemons die with their launcher, even when it is SIGKILLed.
        self.pids[name] = processes.spawn(argv, self.log(name), cwd=REPO, bound_to_launcher=self.ephemeral)
        self.save()  # recorded at once, so `down` finds it even if start-up fails later

    def wait_until(self, name: str, ready, timeout: float, what: str, interval: float = 0.25) -> None:
        processes.wait_until(self.pids[name], name, self.log(name), ready, timeout, what, interval)

    # ---- HDFS

    def start_hdfs(self, config: StackConfig) -> None:
        """Give a new stack a formatted NameNode folder, then start the NameNode and the DataNode
        (wait_hdfs waits for them)."""
        hdfs = hadoop.Hdfs(config.hadoop, hadoop.require_java(), hadoop.fetch_jars(config.hadoop),
                           self.host, self.ports, self.runtime)
        for name in hadoop.PORT_NAMES:
            require_port_free(self.host, self.ports[name], f"HDFS {name}")
        hdfs.prepare_name_dir(self.log("namenode-format"))
        self.hdfs_started = time.monotonic()
        for daemon, main in hadoop.DAEMONS.items():
            self.spawn(daemon, hdfs.argv(main))

    def wait_hdfs(self, config: StackConfig) -> None:
        """Until HDFS takes writes: the NameNode's WebHDFS answers and it left safe mode with a
        live DataNode. At once when that was seen before."""
        if self.hdfs_ready:
            return
        webhdfs, timeout = self.env()["BOTIFY_WEBHDFS_URL"], config.hadoop.start_timeout_s
        self.wait_until("namenode", lambda: hadoop.webhdfs_answers(webhdfs), timeout,
                        "the NameNode's WebHDFS did not answer")
        self.wait_until("datanode", lambda: hadoop.takes_writes(webhdfs, self.log("datanode")), timeout,
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
        # They start side by side. Polled often: a run waits for them once per day.
        for replica, url in enumerate(self.service_urls, start=1):
            self.wait_until(service_name(replica), lambda: service_status(url) is not None,
                            config.service.start_timeout_s, "the botify service did not answer", interval=0.05)
        print(f"botify service ready: {' '.join(self.service_urls)} (config {service_config})", flush=True)

    def stop_service(self) -> None:
        """SIGTERM every replica of the service (each flushes and closes its event log) and
        forget them."""
        replicas = {name: self.pids.pop(name) for name in list(self.pids) if name.startswith("service")}
        if replicas:
            processes.stop_processes(replicas)
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
        processes.stop_processes(self.pids)   # HDFS and Redis side by side
        self.pids = {}
        if self.ephemeral:
            shutil.rmtree(self.runtime, ignore_errors=True)
        elif self.state_file.exists():
            self.state_file.unlink()

    def status(self) -> dict[str, bool]:
        return {name: processes.process_alive(pid) for name, pid in self.pids.items()}


def new_stack(config: StackConfig, ephemeral: bool) -> Stack:
    host = config.host
    if ephemeral:
        runtime = Path(tempfile.mkdtemp(prefix="botify-stack-"))
        ports = {name: free_port(host) for name in config.ports}
    else:
        runtime = REPO / config.runtime_dir
        ports = dict(config.ports)
    return Stack(runtime, host, ports, ephemeral=ephemeral)
