"""Track-keyed neighbour tables from learned track vectors: what item2vec and implicit ALS share.

A neighbour job learns one vector per track from the training sessions (`fit`), then lists for
every track its `top_k` nearest tracks by cosine similarity, itself excluded, strictly by
similarity (the i2i recommender takes the first unplayed one). The ranking runs on the
executors: the vectors (one row per track, catalog-sized) are broadcast and each partition ranks
a range of tracks with jobs/ranking.py. The table is checked offline on the held-out sessions
like the NN table (jobs/offline.py), so every table's hit@k / NDCG@k sit side by side.
"""
from __future__ import annotations

import argparse
from typing import Callable

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import common, offline, ranking
from jobs.toppop import top_tracks

# Training sessions -> (track ids, one unit-norm or raw vector per track), catalog-sized.
Fit = Callable[[DataFrame], tuple[np.ndarray, np.ndarray]]


def add_arguments(parser: argparse.ArgumentParser, top_k: int, partitions: int, table: str) -> None:
    """The flags every neighbour job has besides its model's."""
    common.add_table_job_arguments(parser, "table")
    parser.add_argument("--top-k", type=int, default=top_k, help="neighbours per track")
    parser.add_argument("--partitions", type=int, default=partitions,
                        help="partitions of the tracks ranked on the executors")
    parser.add_argument("--table", default=table, help="file name in --out")


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (a zero row stays zero), so dot products are cosines."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0).astype(np.float32)


def nearest(spark: SparkSession, ids: np.ndarray, vectors: np.ndarray, k: int,
            partitions: int) -> DataFrame:
    """track, recs: each track's k nearest tracks by cosine, itself excluded (persisted: the
    caller unpersists)."""
    shared = spark.sparkContext.broadcast((ids, unit_rows(vectors)))

    def rank(batches):
        all_ids, unit = shared.value
        for batch in batches:
            rows = batch["id"].to_numpy()
            if not len(rows):
                continue
            best = ranking.top_k(unit[rows], unit, k, exclude=lambda start, end: (
                np.arange(end - start), rows[start:end]), threads=1, desc="neighbours")
            yield pd.DataFrame({"track": all_ids[rows], "recs": [all_ids[b] for b in best]})

    recs = (spark.range(len(ids), numPartitions=partitions)
            .mapInPandas(rank, "track long, recs array<long>").persist())
    recs.count()
    shared.unpersist()
    return recs


def run(spark: SparkSession, args: argparse.Namespace, name: str, fit: Fit) -> dict:
    """Split the sessions, fit on the training part, write the neighbour table, check it offline."""
    sessions = common.read_sessions(spark, args.sessions)
    split = sessions.withColumn("heldout", common.holdout_flag(args.seed, args.holdout_share)).persist()
    train, heldout = split.where(~F.col("heldout")), split.where(F.col("heldout"))
    try:
        with common.stage(name, "fit"):
            ids, vectors = fit(train)
        if len(ids) < 2:
            raise common.JobError(f"{len(ids)} track(s) learned from {args.sessions}: a neighbour "
                                  f"table needs sessions with 2+ well-listened tracks")
        common.log(name, f"{len(ids)} tracks, {vectors.shape[1]} dimensions")
        uri = common.join(args.out, args.table)
        with common.stage(name, f"top-{args.top_k} neighbours per track (executors)"):
            recs = nearest(spark, ids, vectors, args.top_k, args.partitions)
            rows = common.write_ranked(spark, recs, "track", "recommendations", uri)
        common.log(name, f"{rows} tracks -> {uri}")
        with common.stage(name, "offline check (executors)"):
            results = offline.compare_on_executors(
                name, args.table, recs.withColumnRenamed("track", "context"), heldout, "context",
                top_tracks(train, args.eval_k), args.good_time, args.eval_k)
        recs.unpersist()
    finally:
        split.unpersist()
    return {"offline": results, "tracks": rows}
