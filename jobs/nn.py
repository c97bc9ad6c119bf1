"""nn: the contextual "NN" table -> track-keyed JSONL {"track", "recommendations"}.

Training pairs: a session's first track (the context) and each later track of that session with
its listen time; a track already played earlier in the session is left out (its time is 0 by
the repeat rule, not by taste). Duplicate (context, track) pairs are averaged into one rating.
Model: time ~ mean + context_embedding . track_embedding, squared loss, L2 regularisation,
fitted by alternating least squares: by default numpy's dual-form solver on the driver
(jobs/als.py; the ratings are collected, one row per distinct pair), with `--solver spark`
Spark ML's explicit-feedback ALS on the same objective. Held-out sessions give the MSE against the mean
baseline and the offline hit rate / NDCG next to top-pop. Output: per context track the top-k
tracks by score without the context itself, strictly ordered; `--unordered` keeps
argpartition's order (with --dim 100, the course-style table for the Contextual control).
"""
from __future__ import annotations

import argparse

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import als, common, offline, ranking
from jobs.config import JobsConfig
from jobs.toppop import listens, top_tracks

NAME = "nn"
MAX_ID = 2**31 - 1   # Spark's ALS takes int ids


def training_pairs(sessions: DataFrame) -> DataFrame:
    """Sessions -> user, session, context, track, time for every later, non-repeated track."""
    return (listens(sessions, "tracks")
            .where((F.col("pos") >= 1) & ~F.expr("array_contains(slice(tracks, 1, pos), track)"))
            .select("user", "session", F.col("tracks")[0].alias("context"), "track", "time"))


def aggregate_pairs(pairs: DataFrame) -> DataFrame:
    """One rating per (context, track): the mean time, with the count of listens behind it."""
    return (pairs.groupBy("context", "track")
            .agg(F.avg("time").alias("rating"), F.count(F.lit(1)).alias("n")))


@dataclass
class Embeddings:
    """time ~ mean + contexts[i] . tracks[j], rows in the order of the sorted id arrays."""
    mean: float
    context_ids: np.ndarray
    contexts: np.ndarray
    track_ids: np.ndarray
    tracks: np.ndarray

    def predict(self, context: np.ndarray, track: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted times (the mean where an id is unknown) and whether both ids are known."""
        ci, ti = index_of(self.context_ids, context), index_of(self.track_ids, track)
        known = (ci >= 0) & (ti >= 0)
        dots = np.einsum("ij,ij->i", self.contexts[ci[known]], self.tracks[ti[known]])
        prediction = np.full(len(context), self.mean)
        prediction[known] += dots
        return prediction, known


def index_of(ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Row of each value in the sorted `ids`, -1 where absent."""
    pos = np.searchsorted(ids, values).clip(max=len(ids) - 1)
    return np.where(ids[pos] == values, pos, -1)


def fit_numpy(ratings: pd.DataFrame, dim: int, iterations: int, reg: float, seed: int) -> Embeddings:
    """ALS on the driver in the dual form (jobs/als.py), on ratings centred at their mean
    (regularisation then pulls unknown parts to the mean time, not to 0)."""
    # Spark hands rows over in no promised order; sorting makes the float sums, and so the
    # table, the same in every run.
    ratings = ratings.sort_values(["context", "track"], kind="stable", ignore_index=True)
    mean = float(ratings["rating"].mean())
    context_ids, rows = np.unique(ratings["context"].to_numpy(), return_inverse=True)
    track_ids, cols = np.unique(ratings["track"].to_numpy(), return_inverse=True)
    p, q = als.fit(rows, cols, ratings["rating"].to_numpy() - mean, (len(context_ids), len(track_ids)),
                   dim, reg, iterations, seed)
    return Embeddings(mean, context_ids, p.astype(np.float32), track_ids, q.astype(np.float32))


def fit_spark(ratings: DataFrame, dim: int, iterations: int, reg: float, blocks: int,
              seed: int) -> Embeddings:
    """The same model with Spark ML's ALS (distributed; rank^3 per row: slow at rank 200)."""
    from pyspark.ml.recommendation import ALS

    mean = ratings.agg(F.avg("rating")).first()[0]
    centred = ratings.select(F.col("context").cast("int"), F.col("track").cast("int"),
                             (F.col("rating") - mean).alias("rating"))
    model = ALS(rank=dim, maxIter=iterations, regParam=reg, userCol="context", itemCol="track",
                ratingCol="rating", numUserBlocks=blocks, numItemBlocks=blocks, seed=seed).fit(centred)
    context_ids, contexts = factors(model.userFactors)
    track_ids, tracks = factors(model.itemFactors)
    return Embeddings(mean, context_ids, contexts, track_ids, tracks)


def factors(frame: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """ALS factors (id, features) -> ids and a float32 matrix, rows sorted by id."""
    pdf = frame.orderBy("id").toPandas()
    return pdf["id"].to_numpy(np.int64), np.asarray(pdf["features"].tolist(), dtype=np.float32).reshape(len(pdf), -1)


def mse_sums(model: Embeddings, pairs: pd.DataFrame) -> dict[str, float]:
    """Squared errors of the model and of the mean alone on (context, track, time) listens, summed;
    also over the listens whose context and track both have embeddings (where the model can act)."""
    prediction, known = model.predict(pairs["context"].to_numpy(), pairs["track"].to_numpy())
    time = pairs["time"].to_numpy()
    model_err, base_err = (prediction - time) ** 2, (model.mean - time) ** 2
    return {"pairs": float(len(pairs)), "known": float(known.sum()), "model": float(model_err.sum()),
            "baseline": float(base_err.sum()), "model_known": float(model_err[known].sum()),
            "baseline_known": float(base_err[known].sum())}


def mse(sums: dict[str, float]) -> dict[str, float]:
    """mse_sums -> the MSEs and the share covered."""
    n, known = sums["pairs"], sums["known"]

    def per(total: float, count: float) -> float:
        return total / count if count else float("nan")

    return {"model": per(sums["model"], n), "baseline": per(sums["baseline"], n),
            "model_known": per(sums["model_known"], known),
            "baseline_known": per(sums["baseline_known"], known),
            "covered": per(known, n), "pairs": int(n)}


def heldout_mse(model: Embeddings, pairs: DataFrame) -> dict[str, float]:
    """MSE of the model and of the mean alone on held-out (context, track, time) listens."""
    return mse(mse_sums(model, pairs.toPandas()))


def recommend(model: Embeddings, k: int, ordered: bool, batch: int) -> dict[int, list[int]]:
    """context -> its top-k tracks by score, the context itself excluded."""
    column = index_of(model.track_ids, model.context_ids)   # the context among the tracks, or -1

    def exclude_self(start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        rows = np.flatnonzero(column[start:end] >= 0)
        return rows, column[start:end][rows]

    best = ranking.top_k(model.contexts, model.tracks, k, ordered=ordered, exclude=exclude_self,
                         batch=batch, desc="nn top-k")
    return {int(c): model.track_ids[b].tolist() for c, b in zip(model.context_ids, best)}


def add_arguments(parser: argparse.ArgumentParser, cfg: JobsConfig) -> None:
    c = cfg.nn
    common.add_table_job_arguments(parser, "table")
    parser.add_argument("--dim", type=int, default=c.dim, help="embedding dimension (ALS rank)")
    parser.add_argument("--unordered", action="store_true",
                        help="keep argpartition's order of the top-k (the course-style table)")
    parser.add_argument("--iterations", type=int, default=c.iterations, help="ALS iterations")
    parser.add_argument("--reg", type=float, default=c.reg, help="ALS L2 regularisation")
    parser.add_argument("--solver", choices=["numpy", "spark"], default=c.solver,
                        help="ALS on the driver in the dual form (fast at high rank) or Spark ML's ALS")
    parser.add_argument("--blocks", type=int, default=c.blocks, help="Spark ALS user and item blocks")
    parser.add_argument("--top-k", type=int, default=c.top_k, help="recommendations per context")
    parser.add_argument("--batch", type=int, default=c.batch, help="context rows per ranking block")
    parser.add_argument("--table", default=None,
                        help=f"file name in --out (default {cfg.tables.nn}, with --unordered "
                             f"{cfg.tables.nn_unordered})")
    common.add_split_arguments(parser, cfg)


def run(spark: SparkSession, args: argparse.Namespace) -> dict:
    table = args.table or (args.cfg.tables.nn_unordered if args.unordered else args.cfg.tables.nn)
    sessions = common.read_sessions(spark, args.sessions)
    split = sessions.withColumn("heldout", common.holdout_flag(args.seed, args.holdout_share)).persist()
    train_sessions, heldout_sessions = split.where(~F.col("heldout")), split.where(F.col("heldout"))
    try:
        with common.stage(NAME, "build training pairs"):
            ratings = aggregate_pairs(training_pairs(train_sessions)).persist()
            bounds = ratings.agg(F.count(F.lit(1)).alias("n"), F.max("context"), F.max("track")).first()
        if bounds["n"] == 0:
            raise common.JobError(f"no training pairs in {args.sessions}: sessions need 2+ tracks")
        if max(bounds[1], bounds[2]) > MAX_ID:
            raise common.JobError(f"track ids above {MAX_ID} cannot be ALS ids: renumber the catalog")
        common.log(NAME, f"{bounds['n']} distinct (context, track) ratings")
        with common.stage(NAME, f"ALS ({args.solver}) dim {args.dim}, {args.iterations} iterations"):
            if args.solver == "spark":
                model = fit_spark(ratings, args.dim, args.iterations, args.reg, args.blocks, args.seed)
            else:
                model = fit_numpy(ratings.select("context", "track", "rating").toPandas(),
                                  args.dim, args.iterations, args.reg, args.seed)
        with common.stage(NAME, "held-out MSE"):
            mse = heldout_mse(model, training_pairs(heldout_sessions).select("context", "track", "time"))
        print(f"[{NAME}] held-out MSE {mse['model']:.5f} vs mean baseline {mse['baseline']:.5f} "
              f"on {mse['pairs']} listens; on the {mse['covered']:.1%} with both embeddings known "
              f"{mse['model_known']:.5f} vs {mse['baseline_known']:.5f}")
        uri = common.join(args.out, table)
        top_pop = top_tracks(train_sessions, args.eval_k)
        order = "unordered" if args.unordered else "ordered"
        with common.stage(NAME, f"top-{args.top_k} per context ({order})"):
            recs = recommend(model, args.top_k, not args.unordered, args.batch)
        common.write_jsonl(spark, ({"track": c, "recommendations": r} for c, r in sorted(recs.items())), uri)
        common.log(NAME, f"{len(recs)} contexts -> {uri}")
        with common.stage(NAME, "offline check"):
            results = offline.compare(NAME, table, recs.get, heldout_sessions, "context",
                                      top_pop, args.good_time, args.eval_k)
        ratings.unpersist()
    finally:
        split.unpersist()
    return {"mse": mse, "offline": results, "contexts": len(recs), "ratings": bounds["n"]}


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> int:
    """Command line; with `spark` given, runs in that session and leaves it running."""
    return common.job_main(NAME, __doc__.splitlines()[0], add_arguments, run, argv, spark)


if __name__ == "__main__":
    raise SystemExit(main())
