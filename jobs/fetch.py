"""fetch: copy the tables the service loads from a jobs' --out folder to a local data folder.

    python -m jobs.fetch hdfs://127.0.0.1:9000/user/root/botify/tables data/
    python -m jobs.fetch /tmp/tables data/ --tables top_tracks.json tracks_nn.json

Copies every table named in conf/jobs.yml `tables:` (or the --tables given) that exists in SRC;
fails when a --tables name is missing or, without --tables, when none is there. Each file is
copied to DEST/.NAME.tmp and renamed, so the service never reads a half-copied table.
hdfs:// sources go through Hadoop's FileSystem: the JVM of the Spark session it runs in (a job of a
jobs/driver.py or jobs/server.py batch), or else a JVM of its own (pyspark's gateway, no SparkContext).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from jobs import common
from jobs.config import jobs_config
from settings import ConfigError


@contextmanager
def open_source(src: str, spark=None):
    """Yield (is_file(name), copy(name, local_path)) for the folder `src`; hdfs:// through
    `spark`'s JVM when given."""
    if "://" not in src or urlparse(src).scheme == "file":
        folder = Path(urlparse(src).path if "://" in src else src)
        if not folder.is_dir():
            raise common.JobError(f"{src} is not a folder: check the path and that the jobs ran")
        yield (lambda name: (folder / name).is_file(),
               lambda name, local: shutil.copyfile(folder / name, local))
        return
    if spark is not None:
        yield _hadoop_source(src, spark.sparkContext._jvm, spark.sparkContext._jsc.hadoopConfiguration())
        return
    from pyspark.java_gateway import launch_gateway

    gateway = launch_gateway()
    try:
        yield _hadoop_source(src, gateway.jvm, gateway.jvm.org.apache.hadoop.conf.Configuration())
    finally:
        gateway.shutdown()
        gateway.proc.stdin.close()   # the gateway JVM exits when its stdin closes
        gateway.proc.wait()


def _hadoop_source(src: str, jvm, configuration):
    """(is_file, copy) of an hdfs:// folder through a JVM's Hadoop FileSystem."""
    hpath = jvm.org.apache.hadoop.fs.Path
    base = hpath(src)
    fs = base.getFileSystem(configuration)
    if not fs.exists(base):
        raise common.JobError(f"{src} does not exist: check the path and that the jobs ran")
    # useRawLocalFileSystem=True: no .crc file next to the copy.
    return (lambda name: fs.isFile(hpath(base, name)),
            lambda name, local: fs.copyToLocalFile(False, hpath(base, name),
                                                   hpath(local.resolve().as_uri()), True))


def fetch(src: str, dest: Path, names: list[str], required: bool, spark=None) -> list[str]:
    """Copy the tables `names` found in `src` into `dest`; return the names copied."""
    with open_source(src, spark) as (is_file, copy):
        present = [name for name in names if is_file(name)]
        missing = [name for name in names if name not in present]
        if (required and missing) or not present:
            raise common.JobError(f"no {', '.join(missing)} in {src}: run the jobs that write "
                                  f"them (see jobs/README.md) or name other --tables")
        dest.mkdir(parents=True, exist_ok=True)
        for name in present:
            staged = dest / f".{name}.tmp"
            copy(name, staged)
            os.replace(staged, dest / name)
            print(f"{src.rstrip('/')}/{name} -> {dest / name}")
    return present


def main(argv: list[str] | None = None, spark=None) -> int:
    """Command line; with `spark` given (a jobs/driver.py or jobs/server.py batch), hdfs://
    goes through that session's JVM."""
    parser = argparse.ArgumentParser(prog="python -m jobs.fetch", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("src", help="tables folder written by the jobs (hdfs://, file:// or local)")
    parser.add_argument("dest", type=Path, help="local data folder of the service")
    parser.add_argument("--tables", nargs="+", default=None,
                        help="file names to copy (default: all in conf/jobs.yml tables:, those present)")
    parser.add_argument("--conf", default=str(common.JOBS_CONF), help="jobs config (YAML)")
    args = parser.parse_args(argv)
    try:
        names = args.tables or list(jobs_config(args.conf).tables.model_dump().values())
        fetch(args.src, args.dest, names, required=args.tables is not None, spark=spark)
    except (common.JobError, ConfigError) as e:
        print(f"error: fetch: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
