"""offline_tables: every table of a plan checked on one held-out split (hit rate@k, NDCG@k).

Each job checks its own table on its own held-out sessions; the tables of one A/B day are only
comparable on the same queries. This job reads the tables back from where the jobs wrote them
and checks them all, with top-pop of the training part beside them, on the held-out sessions of
the given days (the split every job uses with the same --seed, so no table was trained on them;
the query and the target are jobs/offline.py's). A table is named `NAME=KIND:PATH`, NAME as the
plan's arms name it (`day1/tracks_item2vec.json`), KIND how its recommender reads it:

    tracks   track-keyed lists {track, recommendations}, asked with the session's first track
    users    user-keyed lists {user, tracks}, asked with the session's user
    toppop   one JSON list for every query
    artists  Taste's and Scenes' artist rows, asked as jobs/taste.py's check asks them: the first
             track's artist's other tracks, then each neighbour artist's tracks in rank order

pipeline/offline_vs_online.py puts the results beside the A/B effects of the arms.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from contract.catalog import load_catalog
from contract.tables import TableError
from jobs import common, offline
from jobs.config import JobsConfig
from jobs.taste import ArtistIndex, expanded
from jobs.toppop import top_tracks

NAME = "offline_tables"
KINDS = ("tracks", "users", "toppop", "artists")
BASELINE = "top-pop"   # top-pop of the training part, the reference row


def table_spec(text: str) -> tuple[str, str, str]:
    """`NAME=KIND:PATH` -> (name, kind, path); argparse reports a malformed one."""
    name, _, rest = text.partition("=")
    kind, _, path = rest.partition(":")
    if not name or kind not in KINDS or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: write NAME=KIND:PATH with KIND one of {', '.join(KINDS)}")
    return name, kind, path


def add_arguments(parser: argparse.ArgumentParser, cfg: JobsConfig) -> None:
    parser.add_argument("--sessions", nargs="+", required=True,
                        help="Parquet sessions table(s) whose held-out part are the queries")
    parser.add_argument("--table", type=table_spec, action="append", required=True, dest="tables",
                        metavar="NAME=KIND:PATH", help=f"a table to check (repeat); KIND: {', '.join(KINDS)}")
    parser.add_argument("--catalog", default=None,
                        help="the public catalog tracks.jsonl, a local file (artists tables need it)")
    common.add_split_arguments(parser, cfg)


def read_lists(spark: SparkSession, uri: str, key: str, values: str, as_key: str) -> DataFrame:
    """A keyed JSONL table as rows (`as_key`, recs), left on the executors."""
    common.require_exists(spark, uri, "table")
    return (spark.read.schema(f"{key} long, {values} array<long>").json(uri)
            .select(F.col(key).alias(as_key), F.col(values).alias("recs")))


def read_toppop(spark: SparkSession, uri: str) -> list[int]:
    common.require_exists(spark, uri, "table")
    return [int(t) for t in json.loads("".join(spark.sparkContext.textFile(uri).collect()))]


def artist_lookup(spark: SparkSession, uri: str, catalog, index: ArtistIndex, k: int):
    """An artist table's rows (artist-sized, read on the driver) as jobs/taste.py's expansion."""
    common.require_exists(spark, uri, "table")
    lists = [np.zeros(0, dtype=np.int64) for _ in range(len(index))]
    for row in spark.read.schema("track long, recommendations array<long>").json(uri).collect():
        artist = int(index.artists(np.array([row["track"]]))[0])
        if artist < 0:
            raise common.JobError(f"{uri}: row key {row['track']} is not a catalog track")
        neighbours = index.artists(np.array(row["recommendations"], dtype=np.int64))
        lists[artist] = neighbours[neighbours >= 0]
    return expanded(catalog, index, lists, k)


def checked(spark: SparkSession, args: argparse.Namespace, kind: str, path: str) -> offline.Checked:
    uri = common.qualify(path)
    if kind == "tracks":
        return offline.Checked("context", rows=read_lists(spark, uri, "track", "recommendations", "context"))
    if kind == "users":
        return offline.Checked("user", rows=read_lists(spark, uri, "user", "tracks", "user"))
    if kind == "toppop":
        top = read_toppop(spark, uri)
        return offline.Checked("context", lookup=lambda _: top)
    if args.catalog is None:
        raise common.JobError(f"{path}: an artists table needs --catalog (the public tracks.jsonl)")
    try:
        catalog = load_catalog(Path(args.catalog))
    except TableError as e:
        raise common.JobError(str(e)) from None
    return offline.Checked("context", lookup=artist_lookup(spark, uri, catalog, ArtistIndex(catalog), args.eval_k))


def run(spark: SparkSession, args: argparse.Namespace) -> dict:
    names = [name for name, _, _ in args.tables]
    if len(set(names)) != len(names) or BASELINE in names:
        raise common.JobError(f"table names must differ and not be {BASELINE!r}: got {names}")
    sessions = common.read_sessions(spark, args.sessions)
    split = sessions.withColumn("heldout", common.holdout_flag(args.seed, args.holdout_share)).persist()
    train, heldout = split.where(~F.col("heldout")), split.where(F.col("heldout"))
    try:
        tables = {name: checked(spark, args, kind, path) for name, kind, path in args.tables}
        top = top_tracks(train, args.eval_k)
        tables[BASELINE] = offline.Checked("context", lookup=lambda _: top)
        with common.stage(NAME, f"{len(tables)} tables on the same held-out queries (executors)"):
            results = offline.rates_on_executors(offline.heldout_queries(heldout, args.good_time), tables,
                                                 args.eval_k)
    finally:
        split.unpersist()
    offline.report(NAME, args.eval_k, results)
    return {"offline": {name: {**r, "k": args.eval_k} for name, r in results.items()}}


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> int:
    """Command line; with `spark` given, runs in that session and leaves it running."""
    return common.job_main(NAME, __doc__.splitlines()[0], add_arguments, run, argv, spark)


if __name__ == "__main__":
    raise SystemExit(main())
