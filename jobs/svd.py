"""svd: per-user recommendations -> user-keyed JSONL {"user", "tracks"} (recommendations_svd.json).

The user x track matrix of mean listen time (unplayed cells 0) is aggregated in Spark, collected
on the driver as a sparse matrix (one cell per played (user, track) pair) and factorised by a
truncated SVD (scipy ARPACK, seeded start vector: the same table in every run). Each user gets the top-k tracks by
reconstructed score among the tracks they have not played, strictly ordered. Held-out sessions
give the offline hit rate / NDCG next to top-pop.
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


def factorise(matrix: csr_matrix, rank: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Truncated SVD M ~ U S Vt -> (user vectors U S, track vectors V)."""
    rank = min(rank, min(matrix.shape) - 1)
    if rank < 1:
        raise common.JobError(f"a {matrix.shape} matrix is too small for an SVD: need 2+ users and tracks")
    v0 = np.random.default_rng(seed).uniform(-1, 1, min(matrix.shape))
    u, s, vt = svds(matrix.astype(np.float64), k=rank, v0=v0)
    return u * s, vt.T


def recommend(cells: pd.DataFrame, rank: int, k: int, seed: int, batch: int) -> dict[int, list[int]]:
    """user -> top-k unplayed tracks by the SVD's reconstructed score."""
    users, user_row = np.unique(cells["user"].to_numpy(), return_inverse=True)
    tracks, track_col = np.unique(cells["track"].to_numpy(), return_inverse=True)
    matrix = csr_matrix((cells["time"].to_numpy(), (user_row, track_col)), shape=(len(users), len(tracks)))
    user_vectors, track_vectors = factorise(matrix, rank, seed)
    played = matrix.copy()
    played.data[:] = 1  # explicit zeros (time 0 listens) are played too

    def exclude_played(start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        block = played[start:end].tocoo()
        return block.row, block.col

    best = ranking.top_k(user_vectors, track_vectors, k, ordered=True, exclude=exclude_played,
                         batch=batch, desc="svd top-k")
    return {int(u): tracks[b].tolist() for u, b in zip(users, best)}


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
        uri = common.join(args.out, args.table)
        top_pop = top_tracks(train_sessions, args.eval_k)
        with common.stage(NAME, "collect the user x track matrix"):
            collected = cells.toPandas()
        with common.stage(NAME, f"SVD rank {args.rank} and top-{args.top_k} unplayed per user"):
            recs = recommend(collected, args.rank, args.top_k, args.seed, args.batch)
        common.write_jsonl(spark, ({"user": u, "tracks": t} for u, t in sorted(recs.items())), uri)
        common.log(NAME, f"{len(recs)} users -> {uri}")
        with common.stage(NAME, "offline check"):
            results = offline.compare(NAME, args.table, recs.get, heldout_sessions, "user",
                                      top_pop, args.good_time, args.eval_k)
        cells.unpersist()
    finally:
        split.unpersist()
    return {"offline": results, "users": len(recs), "cells": n_cells}


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> int:
    """Command line; with `spark` given, runs in that session and leaves it running."""
    return common.job_main(NAME, __doc__.splitlines()[0], add_arguments, run, argv, spark)


if __name__ == "__main__":
    raise SystemExit(main())
