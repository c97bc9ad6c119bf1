"""HDFS start-up and I/O of an ephemeral stack, with the configured JVM flags and without them.

    .venv/bin/python benchmarks/bench_hdfs.py [--rounds 2] [--files 30] [--megabytes 3]

A run of `./run.sh` or of the tests starts a NameNode and a DataNode and moves megabytes through
them, so what their JVMs spend starting counts. Per round, for each variant in turn (the order
alternates between rounds): conf/stack.yml's `hadoop` settings as they are, and the same without
`java_opts`' `-XX:` flags (the JVM's defaults). Each variant starts a stack (infra/stack.py,
free ports, a copied NameNode format), waits until HDFS takes writes, writes `--files` files of
`--megabytes` MB through WebHDFS and reads them back, then stops it. Prints the seconds until
ready, the daemons' CPU seconds at ready and after the I/O, and the I/O's seconds.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_service import cpu_seconds  # noqa: E402
from hdfs import InsecureClient  # noqa: E402

from infra.config import load_config  # noqa: E402
from infra.stack import new_stack  # noqa: E402

DAEMONS = ("namenode", "datanode")


def measure(config, files: int, megabytes: int) -> dict[str, float]:
    stack = new_stack(config, ephemeral=True)
    started = time.monotonic()
    try:
        stack.up(config)
        ready = time.monotonic() - started
        pids = [stack.pids[name] for name in DAEMONS]
        cpu_ready = sum(cpu_seconds(pid) for pid in pids)
        client = InsecureClient(stack.env()["BOTIFY_WEBHDFS_URL"], user=stack.env()["BOTIFY_HDFS_USER"])
        data = os.urandom(megabytes << 20)
        io_started = time.monotonic()
        for number in range(files):
            client.write(f"/tmp/bench{number}", data=data, overwrite=True)
        for number in range(files):
            with client.read(f"/tmp/bench{number}") as reader:
                reader.read()
        io = time.monotonic() - io_started
        cpu_end = sum(cpu_seconds(pid) for pid in pids)
    finally:
        stack.down()
    return {"ready": ready, "cpu_ready": cpu_ready, "cpu_end": cpu_end, "io": io}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--files", type=int, default=30)
    parser.add_argument("--megabytes", type=int, default=3)
    args = parser.parse_args()
    config = load_config()
    configured = list(config.hadoop.java_opts)
    variants = {"configured": {},
                "JVM defaults": {"java_opts": [opt for opt in configured if not opt.startswith("-XX:")]}}
    print(f"configured hadoop.java_opts: {' '.join(configured)}")
    print(f"{'round':5s} {'variant':13s} {'ready s':>8s} {'CPU s at ready':>15s} "
          f"{'CPU s after I/O':>16s} {'I/O s':>6s}")
    for round_number in range(1, args.rounds + 1):
        names = list(variants) if round_number % 2 else list(variants)[::-1]
        for name in names:
            hadoop = config.hadoop.model_copy(update=variants[name])
            result = measure(config.model_copy(update={"hadoop": hadoop}), args.files, args.megabytes)
            print(f"{round_number:5d} {name:13s} {result['ready']:8.1f} {result['cpu_ready']:15.1f} "
                  f"{result['cpu_end']:16.1f} {result['io']:6.1f}", flush=True)


if __name__ == "__main__":
    main()
