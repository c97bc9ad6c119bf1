"""Start, stop and inspect botify's local stack (infra/stack.py) from the command line.

    python -m infra fetch             # Hadoop jars from Maven Central into the cache (once)
    python -m infra up                # HDFS, Redis and the service; state in <runtime>/stack.json
    python -m infra status
    python -m infra down
    python -m infra run -- CMD...     # an ephemeral HDFS + Redis, CMD run with their env, stopped

`up` uses the ports of conf/stack.yml and leaves the stack running; `run` starts an ephemeral
one (free ports, a temporary folder) and stops it when CMD ends, however it ends.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from infra import hadoop
from infra.config import CONFIG, StackConfig, load_config
from infra.errors import StackError
from infra.lifetime import die_with_parent, exit_on_signals
from infra.processes import stop_process
from infra.stack import Stack, new_stack
from settings import REPO_ROOT as REPO
from settings import read_yaml


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


def up(config: StackConfig, runtime: Path) -> int:
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
    return 0


def down(runtime: Path) -> int:
    stack = Stack.load(runtime)
    if stack is None:
        print(f"nothing to stop (no {runtime / 'stack.json'})")
    else:
        stack.down()
        print("stack stopped")
    return 0


def status(runtime: Path) -> int:
    stack = Stack.load(runtime)
    if stack is None:
        print("not running")
        return 1
    alive = stack.status()
    for name, running in alive.items():
        print(f"{name:10} pid {stack.pids[name]:>7}  {'running' if running else 'STOPPED'}"
              f"  log {stack.log(name)}")
    for key, value in stack.env().items():
        print(f"{key}={value}")
    return 0 if all(alive.values()) else 1


def run(config: StackConfig, cmd: list[str]) -> int:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=CONFIG, help="stack config (default conf/stack.yml)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="fetch the Hadoop jars from Maven Central into the cache")
    sub.add_parser("up", help="start HDFS, Redis and the botify service; they keep running")
    sub.add_parser("down", help="stop what `up` started")
    sub.add_parser("status", help="show what runs, with pids, ports and logs")
    run_parser = sub.add_parser("run", help="start an ephemeral stack, run a command with its env, stop it")
    run_parser.add_argument("cmd", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    runtime = REPO / config.runtime_dir
    exit_on_signals()  # SIGTERM/SIGHUP run the `finally:` blocks that stop what was started

    try:
        if args.command == "fetch":
            print(hadoop.fetch_jars(config.hadoop))
            return 0
        if args.command == "up":
            return up(config, runtime)
        if args.command == "down":
            return down(runtime)
        if args.command == "status":
            return status(runtime)
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        if not cmd:
            parser.error("run needs a command after --")
        return run(config, cmd)
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
