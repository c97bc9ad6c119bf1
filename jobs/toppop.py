"""toppop: tracks ranked by total listen time -> top_tracks.json (a JSON list, most popular first).

Reads the Parquet sessions written by jobs/sessions.py; every listened track counts, the
session's first (user-chosen) track included.
"""
from __future__ import annotations

import argparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import common
from jobs.config import JobsConfig

NAME = "toppop"


def listens(sessions: DataFrame, *keep: str) -> DataFrame:
    """Sessions -> one row per listened track: user, session, the `keep` columns, pos (0 = the
    first track), track, time."""
    return (sessions.select("user", "session", *keep, F.posexplode(F.arrays_zip("tracks", "times")))
            .select("user", "session", *keep, "pos", F.col("col.tracks").alias("track"),
                    F.col("col.times").alias("time")))


def top_tracks(sessions: DataFrame, size: int) -> list[int]:
    """The `size` tracks with the largest total listen time; ties broken by the smaller id."""
    # Times have two decimals, so true totals are multiples of 0.01; rounding the float sum
    # (whose last bits depend on Spark's summation order) makes equal totals tie every run.
    rows = (listens(sessions).groupBy("track").agg(F.round(F.sum("time"), 6).alias("total"))
            .orderBy(F.desc("total"), "track").limit(size).collect())
    return [int(r["track"]) for r in rows]


def add_arguments(parser: argparse.ArgumentParser, cfg: JobsConfig) -> None:
    common.add_table_job_arguments(parser, "list")
    parser.add_argument("--size", type=int, default=cfg.toppop.size, help="tracks in the list")
    parser.add_argument("--table", default=cfg.tables.toppop, help="file name in --out")


def run(spark: SparkSession, args: argparse.Namespace) -> list[int]:
    with common.stage(NAME, "rank tracks by total listen time"):
        top = top_tracks(common.read_sessions(spark, args.sessions), args.size)
    if not top:
        raise common.JobError(f"no listened tracks in {args.sessions}: the sessions table is empty")
    uri = common.join(args.out, args.table)
    common.write_json(spark, top, uri)
    common.log(NAME, f"{len(top)} tracks -> {uri}")
    return top


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> int:
    """Command line; with `spark` given, runs in that session and leaves it running."""
    return common.job_main(NAME, __doc__.splitlines()[0], add_arguments, run, argv, spark)


if __name__ == "__main__":
    raise SystemExit(main())
