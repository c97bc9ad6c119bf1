"""svd: per-user recommendations -> user-keyed JSONL {"user", "tracks"} (recommendations_svd.json).

The user x track matrix of mean listen time (unplayed cells 0) is aggregated on the executors,
one cell per played (user, track) pair; only its cells in compact form (row, column, time) reach
the driver, which factorises it by a truncated SVD (scipy ARPACK, seeded start vector: the same
table in every run). Each user gets the top-k tracks by reconstructed score among the tracks they
have not played, strictly ordered, ranked on the executors: the factors are broadcast and each
block of users is ranked next to its own played cells. Held-out sessions give the offline hit
rate / NDCG next to top-pop, counted on the executors.
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from scipy.sparse import csr_matrix
from scipy.sparse.linalg import svds

from jobs import common, offline, ranking
from jobs.config import JobsConfig
from jobs.toppop import listens, top_tracks

NAME = "svd"


def user_track_times(sessions: DataFrame) -> DataFrame:
    """Sessions -> user, track, mean listen time over all the user's listens of the track."""
    return listens(sessions).groupBy("user", "track").agg(F.avg("time").alias("time"))


def sorted_ids(frame: DataFrame, column: str) -> np.ndarray:
    """The distinct values of an id column, ascending (users or tracks: population-sized)."""
    return frame.select(column).distinct().orderBy(column).toPandas()[column].to_numpy(np.int64)


def indexed_cells(spark: SparkSession, cells: DataFrame, users: np.ndarray, tracks: np.ndarray) -> DataFrame:
    """cells -> row, col, time: the matrix's row (index in `users`) and column (in `tracks`)."""
    shared = spark.sparkContext.broadcast((users, tracks))

    def index(batches):
        user_ids, track_ids = shared.value
        for batch in batches:
            yield pd.DataFrame({"row": np.searchsorted(user_ids, batch["user"].to_numpy()).astype(np.int32),
                                "col": np.searchsorted(track_ids, batch["track"].to_numpy()).astype(np.int32),
                                "time": batch["time"].to_numpy()})

    return cells.mapInPandas(index, "row int, col int, time double")


def factorise(matrix: csr_matrix, rank: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Truncated SVD M ~ U S Vt -> (user vectors U S, track vectors V)."""
    rank = min(rank, min(matrix.shape) - 1)
    if rank < 1:
        raise common.JobError(f"a {matrix.shape} matrix is too small for an SVD: need 2+ users and tracks")
    v0 = np.random.default_rng(seed).uniform(-1, 1, min(matrix.shape))
    u, s, vt = svds(matrix.astype(np.float64), k=rank, v0=v0)
    return u * s, vt.T


def recommend(spark: SparkSession, cells: DataFrame, users: np.ndarray, tracks: np.ndarray,
              user_vectors: np.ndarray, track_vectors: np.ndarray, k: int, batch: int) -> DataFrame:
    """user, recs: each user's top-k unplayed tracks, ranked on the executors per block of `batch`
    users (the blocks jobs/ranking.py would cut on the driver), with the block's played cells
    (persisted: the caller unpersists)."""
    shared = spark.sparkContext.broadcast((users, tracks, user_vectors.astype(np.float32),
                                           track_vectors.astype(np.float32)))

    def rank(block: pd.DataFrame) -> pd.DataFrame:
        user_ids, track_ids, queries, items = shared.value
        start = int(block["block"].iloc[0]) * batch
        end = min(start + batch, len(user_ids))
        # explicit zeros (time 0 listens) are played too
        rows, cols = block["row"].to_numpy() - start, block["col"].to_numpy()
        best = ranking.top_k(queries[start:end], items, k, ordered=True, exclude=lambda *_: (rows, cols),
                             batch=batch, threads=1, desc="svd top-k")
        return pd.DataFrame({"user": user_ids[start:end], "recs": [track_ids[b] for b in best]})

    blocks = cells.select((F.col("row") / F.lit(batch)).cast("int").alias("block"), "row", "col")
    recs = blocks.groupBy("block").applyInPandas(rank, "user long, recs array<long>").persist()
    recs.count()
    shared.unpersist()
    return recs


def add_arguments(parser: argparse.ArgumentParser, cfg: JobsConfig) -> None:
    c = cfg.svd
    common.add_table_job_arguments(parser, "table")
    parser.add_argument("--rank", type=int, default=c.rank, help="truncated-SVD rank")
    parser.add_argument("--top-k", type=int, default=c.top_k, help="tracks per user")
    parser.add_argument("--batch", type=int, default=c.batch, help="user rows per ranking block")
    parser.add_argument("--table", default=cfg.tables.svd, help="file name in --out")
    common.add_split_arguments(parser, cfg)


def run(spark: SparkSession, args: argparse.Namespace) -> dict:
    sessions = common.read_sessions(spark, args.sessions)
    split = sessions.withColumn("heldout", common.holdout_flag(args.seed, args.holdout_share)).persist()
    train_sessions, heldout_sessions = split.where(~F.col("heldout")), split.where(F.col("heldout"))
    try:
        cells = user_track_times(train_sessions).persist()
        n_cells = cells.count()
        if n_cells == 0:
            raise common.JobError(f"no listens in {args.sessions}: the sessions table is empty")
        common.log(NAME, f"{n_cells} (user, track) cells")
        users, tracks = sorted_ids(cells, "user"), sorted_ids(cells, "track")
        matrix_cells = indexed_cells(spark, cells, users, tracks).persist()
        with common.stage(NAME, "collect the user x track matrix"):
            collected = matrix_cells.toPandas()
            matrix = csr_matrix((collected["time"].to_numpy(), (collected["row"].to_numpy(), collected["col"].to_numpy())),
                                shape=(len(users), len(tracks)))
            del collected
            cells.unpersist()
        with common.stage(NAME, f"SVD rank {args.rank}"):
            user_vectors, track_vectors = factorise(matrix, args.rank, args.seed)
            del matrix
        uri = common.join(args.out, args.table)
        with common.stage(NAME, f"top-{args.top_k} unplayed per user (executors)"):
            recs = recommend(spark, matrix_cells, users, tracks, user_vectors, track_vectors,
                             args.top_k, args.batch)
            rows = common.write_ranked(spark, recs, "user", "tracks", uri)
        common.log(NAME, f"{rows} users -> {uri}")
        with common.stage(NAME, "offline check (executors)"):
            results = offline.compare_on_executors(NAME, args.table, recs, heldout_sessions, "user",
                                                   top_tracks(train_sessions, args.eval_k),
                                                   args.good_time, args.eval_k)
        recs.unpersist()
        matrix_cells.unpersist()
    finally:
        split.unpersist()
    return {"offline": results, "users": rows, "cells": n_cells}


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> int:
    """Command line; with `spark` given, runs in that session and leaves it running."""
    return common.job_main(NAME, __doc__.splitlines()[0], add_arguments, run, argv, spark)


if __name__ == "__main__":
    raise SystemExit(main())
