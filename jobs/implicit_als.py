"""implicit_als: track neighbours from Spark ML's ALS with implicit preferences -> a track-keyed table.

The preference of a user for a track is the time they listened to it over the training sessions
(Hu, Koren and Volinsky 2008, "Collaborative Filtering for Implicit Feedback Datasets"): every
(user, track) pair listened at all counts as a positive with confidence 1 + alpha * time, and
every pair never listened as a weak negative. Tracks the same users listen to long get close
factors. ALS trains on the executors; only the item factors (one row per track) reach the
driver. Neighbours and the offline check: jobs/neighbours.py.
"""
from __future__ import annotations

import argparse

import numpy as np
from pyspark.ml.recommendation import ALS
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import common, neighbours
from jobs.config import JobsConfig
from jobs.toppop import listens

NAME = "implicit_als"
MAX_ID = 2**31 - 1  # Spark ML's ALS takes integer user and item ids


def preferences(sessions: DataFrame) -> DataFrame:
    """user, track, rating: the user's total listen time of the track, the session's first
    (user-chosen) track left out as it says nothing about what was recommended around it."""
    return (listens(sessions).where(F.col("pos") >= 1).groupBy("user", "track")
            .agg(F.sum("time").alias("rating")).where(F.col("rating") > 0))


def add_arguments(parser: argparse.ArgumentParser, cfg: JobsConfig) -> None:
    c = cfg.implicit_als
    neighbours.add_arguments(parser, c.top_k, c.partitions, cfg.tables.implicit_als)
    parser.add_argument("--rank", type=int, default=c.rank, help="factors per user and track")
    parser.add_argument("--iterations", type=int, default=c.iterations, help="ALS sweeps")
    parser.add_argument("--reg", type=float, default=c.reg, help="L2 regularisation")
    parser.add_argument("--alpha", type=float, default=c.alpha,
                        help="confidence per unit of listen time: 1 + alpha * time")
    parser.add_argument("--blocks", type=int, default=c.blocks, help="user and item blocks")
    common.add_split_arguments(parser, cfg)


def run(spark: SparkSession, args: argparse.Namespace) -> dict:
    def fit(train: DataFrame) -> tuple[np.ndarray, np.ndarray]:
        ratings = preferences(train).persist()
        try:
            bounds = ratings.agg(F.count(F.lit(1)).alias("n"), F.max("user"), F.max("track")).first()
            if bounds["n"] == 0:
                raise common.JobError(f"no listened tracks after the first in {args.sessions}")
            if max(bounds[1], bounds[2]) > MAX_ID:
                raise common.JobError(f"user or track ids above {MAX_ID} cannot be ALS ids")
            model = ALS(rank=args.rank, maxIter=args.iterations, regParam=args.reg, alpha=args.alpha,
                        implicitPrefs=True, numUserBlocks=args.blocks, numItemBlocks=args.blocks,
                        seed=args.seed, userCol="user", itemCol="track", ratingCol="rating",
                        coldStartStrategy="drop").fit(ratings)
        finally:
            ratings.unpersist()
        factors = model.itemFactors.orderBy("id").toPandas()
        return factors["id"].astype(np.int64).to_numpy(), np.stack(factors["features"]).astype(np.float32)

    return neighbours.run(spark, args, NAME, fit)


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> int:
    """Command line; with `spark` given, runs in that session and leaves it running."""
    return common.job_main(NAME, __doc__.splitlines()[0], add_arguments, run, argv, spark)


if __name__ == "__main__":
    raise SystemExit(main())
