"""svd: per-user recommendations -> user-keyed JSONL {"user", "tracks"} (recommendations_svd.json).

The user x track matrix of mean listen time (unplayed cells 0) is aggregated in Spark, collected
as a sparse matrix (10,000 users x 50,000 tracks holds ~1M cells: small) and factorised by a
truncated SVD (scipy ARPACK, seeded start vector). Each user gets the top-k tracks by
reconstructed score among the tracks they have not played, strictly ordered. Held-out sessions
give the offline hit rate / NDCG next to top-pop.
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
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


def recommend_on_executors(spark: SparkSession, cells: DataFrame, rank: int, k: int, batch: int,
                           partitions: int) -> DataFrame:
    """`recommend` without the matrix on the driver: the truncated SVD of a distributed row matrix
    (MLlib's computeSVD: ARPACK on the driver, each product with the matrix a pass on the
    executors), then the ranking per partition of users with the track vectors broadcast.
    The driver holds only catalog-sized arrays (track ids, V). Columns: user, recs (persisted:
    the caller unpersists)."""
    from pyspark.mllib.linalg import Vectors, VectorUDT
    from pyspark.mllib.linalg.distributed import IndexedRowMatrix

    tracks = np.sort(cells.select("track").distinct().toPandas()["track"].to_numpy(np.int64))
    shared_tracks = spark.sparkContext.broadcast(tracks)
    rows = (cells.groupBy("user").agg(F.sort_array(F.collect_list(F.struct("track", "time"))).alias("cells"))
            .repartition(partitions, "user").persist())

    def indexed(row) -> tuple[int, object]:
        played = np.searchsorted(shared_tracks.value, [c["track"] for c in row["cells"]])
        return row["user"], Vectors.sparse(len(tracks), played, [c["time"] for c in row["cells"]])

    # Cached on the JVM side: ARPACK's every product with the matrix is a pass over these rows.
    schema = T.StructType([T.StructField("index", T.LongType()), T.StructField("vector", VectorUDT())])
    vectors = spark.createDataFrame(rows.rdd.map(indexed), schema).persist()
    rank = min(rank, vectors.count() - 1, len(tracks) - 1)   # as factorise's
    if rank < 1:
        raise common.JobError(f"{len(tracks)} tracks are too few for an SVD: need 2+ users and tracks")
    svd = IndexedRowMatrix(vectors).computeSVD(rank, computeU=True)
    shared = spark.sparkContext.broadcast((svd.s.toArray(), svd.V.toArray()))
    users = spark.createDataFrame(svd.U.rows.map(lambda r: (r.index, r.vector.toArray().tolist())),
                                  "user long, u array<double>")

    def rank_users(batches):
        singular, track_vectors = shared.value
        for part in batches:
            played = [np.searchsorted(shared_tracks.value, [c["track"] for c in cs]) for cs in part["cells"]]
            row_of = np.repeat(np.arange(len(played)), [len(p) for p in played])
            col_of = np.concatenate(played)

            def exclude_played(start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
                inside = (row_of >= start) & (row_of < end)
                return row_of[inside] - start, col_of[inside]

            user_vectors = np.stack(part["u"].to_numpy()) * singular
            best = ranking.top_k(user_vectors, track_vectors, k, ordered=True, exclude=exclude_played,
                                 batch=batch, desc="svd top-k")
            yield pd.DataFrame({"user": part["user"], "recs": [tracks[b].tolist() for b in best]})

    recs = users.join(rows, "user").mapInPandas(rank_users, "user long, recs array<long>").persist()
    recs.count()
    for cached in (vectors, rows, shared, shared_tracks):
        cached.unpersist()
    return recs


def add_arguments(parser: argparse.ArgumentParser, cfg: JobsConfig) -> None:
    c = cfg.svd
    common.add_table_job_arguments(parser, "table")
    parser.add_argument("--rank", type=int, default=c.rank, help="truncated-SVD rank")
    parser.add_argument("--top-k", type=int, default=c.top_k, help="tracks per user")
    parser.add_argument("--batch", type=int, default=c.batch, help="user rows per ranking block")
    parser.add_argument("--driver-max-cells", type=int, default=c.driver_max_cells,
                        help="above this many (user, track) cells the SVD, the ranking and the "
                             "offline check run on the executors")
    parser.add_argument("--partitions", type=int, default=c.partitions,
                        help="partitions of the users on the executors")
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
        if n_cells > args.driver_max_cells:
            with common.stage(NAME, f"SVD rank {args.rank} and top-{args.top_k} unplayed per user (executors)"):
                recs = recommend_on_executors(spark, cells, args.rank, args.top_k, args.batch,
                                              args.partitions)
                users = common.write_ranked(spark, recs, "user", "tracks", uri)
            common.log(NAME, f"{users} users -> {uri}")
            with common.stage(NAME, "offline check (executors)"):
                results = offline.compare_on_executors(NAME, args.table, recs, heldout_sessions, "user",
                                                       top_pop, args.good_time, args.eval_k)
            recs.unpersist()
        else:
            with common.stage(NAME, "collect the user x track matrix"):
                collected = cells.toPandas()
            with common.stage(NAME, f"SVD rank {args.rank} and top-{args.top_k} unplayed per user"):
                recs = recommend(collected, args.rank, args.top_k, args.seed, args.batch)
            common.write_jsonl(spark, ({"user": u, "tracks": t} for u, t in sorted(recs.items())), uri)
            users = len(recs)
            common.log(NAME, f"{users} users -> {uri}")
            with common.stage(NAME, "offline check"):
                results = offline.compare(NAME, args.table, recs.get, heldout_sessions, "user",
                                          top_pop, args.good_time, args.eval_k)
        cells.unpersist()
    finally:
        split.unpersist()
    return {"offline": results, "users": users, "cells": n_cells,
            "on_executors": n_cells > args.driver_max_cells}


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> int:
    """Command line; with `spark` given, runs in that session and leaves it running."""
    return common.job_main(NAME, __doc__.splitlines()[0], add_arguments, run, argv, spark)


if __name__ == "__main__":
    raise SystemExit(main())
