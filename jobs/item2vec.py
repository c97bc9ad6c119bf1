"""item2vec: track neighbours from Spark ML's Word2Vec over sessions -> a track-keyed table.

Each training session's well-listened tracks (time >= min_time, in order) are a sentence and
each track a word (Barkan and Koenigstein 2016, "Item2Vec"): tracks listened long near each
other in many sessions get close vectors, which is the co-listening signal an item-to-item
recommender needs, learned without the catalog's hidden structure. Word2Vec trains on the
executors; only the vocabulary's vectors (one per track) reach the driver. Neighbours and the
offline check: jobs/neighbours.py.
"""
from __future__ import annotations

import argparse

import numpy as np
from pyspark.ml.feature import Word2Vec
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import common, neighbours
from jobs.config import JobsConfig

NAME = "item2vec"


def sentences(sessions: DataFrame, min_time: float) -> DataFrame:
    """One row per session with 2+ well-listened tracks: `words`, its tracks as strings, in order."""
    listened = F.filter(F.arrays_zip("tracks", "times"), lambda x: x["times"] >= min_time)
    words = F.transform(listened, lambda x: x["tracks"].cast("string"))
    return sessions.select(words.alias("words")).where(F.size("words") >= 2)


def add_arguments(parser: argparse.ArgumentParser, cfg: JobsConfig) -> None:
    c = cfg.item2vec
    neighbours.add_arguments(parser, c.top_k, c.partitions, cfg.tables.item2vec)
    parser.add_argument("--dim", type=int, default=c.dim, help="vector size")
    parser.add_argument("--min-time", type=float, default=c.min_time,
                        help="a track is in its session's sentence when listened at least this much "
                             "(lower than the offline check's good time: a sentence needs 2+ tracks)")
    parser.add_argument("--window", type=int, default=c.window, help="context window, in tracks")
    parser.add_argument("--min-count", type=int, default=c.min_count,
                        help="tracks well listened fewer times than this get no vector")
    parser.add_argument("--iterations", type=int, default=c.iterations, help="passes over the sessions")
    parser.add_argument("--step-size", type=float, default=c.step_size, help="initial learning rate")
    common.add_split_arguments(parser, cfg)


def run(spark: SparkSession, args: argparse.Namespace) -> dict:
    def fit(train: DataFrame) -> tuple[np.ndarray, np.ndarray]:
        corpus = sentences(train, args.min_time)
        if corpus.isEmpty():
            raise common.JobError(f"no session in {args.sessions} has 2 tracks with time >= "
                                  f"{args.min_time}: nothing to learn from")
        # One partition: Spark's Word2Vec averages the partitions' models, which loses accuracy
        # and would make the vectors depend on the partitioning.
        model = Word2Vec(vectorSize=args.dim, windowSize=args.window, minCount=args.min_count,
                         maxIter=args.iterations, stepSize=args.step_size, seed=args.seed,
                         numPartitions=1, inputCol="words").fit(corpus)
        vectors = model.getVectors().orderBy(F.col("word").cast("long")).toPandas()
        return (vectors["word"].astype(np.int64).to_numpy(),
                np.stack(vectors["vector"].map(lambda v: v.toArray())).astype(np.float32))

    return neighbours.run(spark, args, NAME, fit)


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> int:
    """Command line; with `spark` given, runs in that session and leaves it running."""
    return common.job_main(NAME, __doc__.splitlines()[0], add_arguments, run, argv, spark)


if __name__ == "__main__":
    raise SystemExit(main())
