"""What every job shares: configuration, the SparkSession, paths, table writers, the split.

Each job file defines `add_arguments(parser, cfg)`, `run(spark, args)` and
`main(argv=None, spark=None)` (which calls `job_main()` here); jobs/driver.py and the tests hand
`main()`/`run()` their SparkSession.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable

import orjson

from jobs.config import JOBS_CONF, JobsConfig, jobs_config
from settings import ConfigError
from sparkapp.session import spark_session


class JobError(Exception):
    """Bad input or a failed check: the message says what was wrong and what to do."""


# --- configuration and command line ---------------------------------------------------------

def parse_args(name: str, description: str,
               add_arguments: Callable[[argparse.ArgumentParser, JobsConfig], None],
               argv: list[str] | None = None) -> argparse.Namespace:
    """Parse a job's flags; their defaults come from conf/jobs.yml (or `--conf FILE`)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--conf", default=str(JOBS_CONF))
    known, _ = pre.parse_known_args(argv)
    cfg = jobs_config(known.conf)
    parser = argparse.ArgumentParser(
        prog=f"spark-submit jobs/{name}.py", description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--conf", default=str(JOBS_CONF), help="jobs config (YAML) giving the defaults")
    parser.add_argument("--master", default=None,
                        help="Spark master; default: spark-submit's --master, else conf/spark.yml")
    add_arguments(parser, cfg)
    args = parser.parse_args(argv)
    args.cfg = cfg
    return args


def add_table_job_arguments(parser: argparse.ArgumentParser, table: str) -> None:
    """Flags of every job that builds a table from sessions: its input and output folder."""
    parser.add_argument("--sessions", nargs="+", required=True,
                        help="Parquet sessions table(s) from jobs/sessions.py; several days are pooled")
    parser.add_argument("--out", required=True, help=f"tables folder; the {table} is written in it")


def add_split_arguments(parser: argparse.ArgumentParser, cfg: JobsConfig) -> None:
    """Flags of the held-out split and the offline check (nn and svd must agree on them)."""
    parser.add_argument("--seed", type=int, default=cfg.seed, help="seed of every random step")
    parser.add_argument("--holdout-share", type=float, default=cfg.holdout_share,
                        help="share of sessions held out for MSE and hit rate / NDCG")
    parser.add_argument("--good-time", type=float, default=cfg.offline.good_time,
                        help="a held-out track counts as well listened at time >= this")
    parser.add_argument("--eval-k", type=int, default=cfg.offline.k,
                        help="cut-off of hit rate@k and NDCG@k")


def job_main(name: str, description: str, add_arguments, run, argv: list[str] | None = None,
             spark=None, summary: dict | None = None) -> int:
    """Entry point shared by all jobs: parse, run, report errors plainly; exit status 0 or 2.
    With `spark` given (jobs/driver.py) the job runs in that session and leaves it running;
    without, it starts its own session and stops it. `summary` receives what `run` returns
    (row counts, offline checks) for the driver's timings file."""
    try:
        args = parse_args(name, description, add_arguments, argv)
    except ConfigError as e:
        print(f"error: {name}: {e}", file=sys.stderr)
        return 2
    own_session = spark is None
    if own_session:
        spark = spark_session(name, args.master)
    started = time.perf_counter()
    try:
        result = run(spark, args)
        if summary is not None and isinstance(result, dict):
            summary.update(result)
    except JobError as e:
        print(f"error: {name}: {e}", file=sys.stderr)
        return 2
    finally:
        if own_session:
            spark.stop()
    log(name, f"done in {time.perf_counter() - started:.1f} s")
    return 0


# --- paths ------------------------------------------------------------------------------------

def qualify(path: str) -> str:
    """A URI Hadoop understands: hdfs://... and file://... stay, a plain path becomes file:///abs."""
    if "://" in path:
        return path
    return Path(path).resolve().as_uri()


def join(base: str, *parts: str) -> str:
    return "/".join([qualify(base).rstrip("/"), *parts])


def hadoop_fs(spark, uri: str):
    """(FileSystem, Path) of a URI through Spark's JVM: one code path for hdfs:// and file://."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return fs, path


def require_exists(spark, uri: str, what: str) -> None:
    fs, path = hadoop_fs(spark, uri)
    if not fs.exists(path):
        raise JobError(f"{what} not found at {uri}: check the path (and that the previous job ran)")


def read_sessions(spark, paths: list[str]):
    """The Parquet session table(s) written by jobs/sessions.py; several days may be combined."""
    uris = [qualify(p) for p in paths]
    for uri in uris:
        require_exists(spark, uri, "sessions table")
    return spark.read.parquet(*uris)


# --- outputs -----------------------------------------------------------------------------------

def publish(spark, write: Callable[[Path], None], uri: str) -> None:
    """Write a file locally with `write(path)`, then copy it to `uri` (hdfs:// or file://) in one
    call, so readers see either the old file or the complete new one's rename, never a partial."""
    fs, dest = hadoop_fs(spark, uri)
    fs.setWriteChecksum(False)   # no .crc side files next to the tables the service loads
    fs.mkdirs(dest.getParent())
    with tempfile.TemporaryDirectory(prefix="botify-job-") as tmp:
        local = Path(tmp) / dest.getName()
        write(local)
        staged = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(
            dest.getParent(), f".{dest.getName()}.tmp")
        fs.copyFromLocalFile(False, True, spark.sparkContext._jvm.org.apache.hadoop.fs.Path(
            local.as_uri()), staged)
        if fs.exists(dest):
            fs.delete(dest, False)
        if not fs.rename(staged, dest):
            raise JobError(f"could not move {staged} to {uri}")


def write_jsonl(spark, rows: Iterable[dict], uri: str) -> None:
    """One JSON object per line (the track- and user-keyed tables)."""
    def write(path: Path) -> None:
        with open(path, "wb") as f:
            for row in rows:
                f.write(orjson.dumps(row))
                f.write(b"\n")
    publish(spark, write, uri)


def write_ranked(spark, recs, key: str, values: str, uri: str) -> int:
    """A Spark frame of (`key`, recs) rows -> JSONL {key: .., values: recs} ordered by key,
    streamed one partition at a time (catalog- or user-sized: never collected whole). The rows."""
    write_jsonl(spark, ({key: r[key], values: r["recs"]} for r in recs.orderBy(key).toLocalIterator()), uri)
    return recs.count()


def write_json(spark, value: Any, uri: str) -> None:
    """One JSON document (top_tracks.json)."""
    publish(spark, lambda path: path.write_bytes(orjson.dumps(value) + b"\n"), uri)


# --- held-out split, logging -------------------------------------------------------------------

def holdout_flag(seed: int, share: float):
    """Column: True for held-out sessions. A hash of (user, session, seed): the same sessions are
    held out by every job given the same seed, whatever the partitioning."""
    from pyspark.sql import functions as F

    return F.pmod(F.xxhash64("user", "session", F.lit(seed)), F.lit(1_000_000)) < int(share * 1_000_000)


def log(name: str, message: str) -> None:
    print(f"[{name}] {message}", file=sys.stderr, flush=True)


@contextmanager
def stage(name: str, what: str):
    """Log the start and duration of a step of a job (Spark shows no progress of its own here)."""
    log(name, f"{what} ...")
    started = time.perf_counter()
    yield
    log(name, f"{what}: {time.perf_counter() - started:.1f} s")
