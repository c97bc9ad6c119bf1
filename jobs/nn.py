"""nn: the contextual "NN" table -> track-keyed JSONL {"track", "recommendations"}.

Training pairs: a session's first track (the context) and each later track of that session with
its listen time; a track already played earlier in the session is left out (its time is 0 by
the repeat rule, not by taste). Duplicate (context, track) pairs are averaged into one rating.
Model: time ~ mean + context_embedding . track_embedding, squared loss, L2 regularisation,
fitted by alternating least squares: by default numpy's dual-form solver (jobs/als.py), with
`--solver spark` Spark ML's explicit-feedback ALS on the same objective. Held-out sessions give
the MSE against the mean baseline and the offline hit rate / NDCG next to top-pop. Up to
`--driver-max-ratings` distinct ratings the numpy path runs on the driver (the ratings
collected); above, on the executors, where only catalog-sized factor matrices pass the driver.
Both write the same table: each row's vectors and ranking are computed the same way. Output: per context track the top-k
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
from scipy.sparse import csr_matrix

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


def centred(ratings: DataFrame) -> tuple[float, DataFrame]:
    """The ratings' mean and the ratings minus it (context, track, rating): regularisation then
    pulls unknown parts to the mean time, not to 0."""
    mean = ratings.agg(F.avg("rating")).first()[0]
    return mean, ratings.select("context", "track", (F.col("rating") - mean).alias("rating"))


def alternate(solve, context_ids: np.ndarray, track_ids: np.ndarray, dim: int, iterations: int,
              seed: int) -> tuple[np.ndarray, np.ndarray]:
    """ALS sweeps: `solve(row, other, other_ids, other_vectors)` gives the vectors of every `row`
    id (sorted) given the other side's; the contexts' and the tracks' vectors."""
    q, p = als.initial_vectors(len(track_ids), dim, seed), None
    for _ in range(iterations):
        p = solve("context", "track", track_ids, q)
        q = solve("track", "context", context_ids, p)
    return p, q


def solve_rows(part: pd.DataFrame, row: str, other: str, other_ids: np.ndarray,
               other_vectors: np.ndarray, reg: float) -> tuple[np.ndarray, np.ndarray]:
    """als.solve_side for the rows of `part` (all the ratings of each of its `row` ids) given
    the other side's vectors: the row ids, sorted, and their vectors."""
    ids, rows = np.unique(part[row].to_numpy(), return_inverse=True)
    cols = np.searchsorted(other_ids, part[other].to_numpy())
    matrix = csr_matrix((part["rating"].to_numpy(), (rows, cols)), shape=(len(ids), len(other_ids)),
                        dtype=np.float32)
    return ids, als.solve_side(other_vectors, matrix, reg)


def fit_driver(ratings: DataFrame, dim: int, iterations: int, reg: float, seed: int) -> Embeddings:
    """ALS on the driver: the centred ratings collected, each half-step one solve_rows over all
    of them (per row the same arithmetic as fit_executors, so the same vectors)."""
    mean, frame = centred(ratings)
    frame = frame.toPandas()
    context_ids, track_ids = np.unique(frame["context"].to_numpy()), np.unique(frame["track"].to_numpy())

    def solve(row, other, other_ids, other_vectors):
        return solve_rows(frame, row, other, other_ids, other_vectors, reg)[1]

    p, q = alternate(solve, context_ids, track_ids, dim, iterations, seed)
    return Embeddings(mean, context_ids, p, track_ids, q)


def fit_executors(ratings: DataFrame, dim: int, iterations: int, reg: float, seed: int,
                  partitions: int) -> Embeddings:
    """ALS with each side's rows solved on the executors (solve_rows on each partition's rows):
    the ratings stay there; only the factor matrices (catalog x dim) pass the driver."""
    mean, frame = centred(ratings)
    by_context = frame.repartition(partitions, "context").persist()
    by_track = frame.repartition(partitions, "track").persist()
    by_row = {"context": by_context, "track": by_track}
    try:
        context_ids, track_ids = distinct_ids(by_context, "context"), distinct_ids(by_track, "track")

        def solve(row, other, other_ids, other_vectors):
            return solve_on_executors(by_row[row], row, other, other_ids, other_vectors, reg)

        p, q = alternate(solve, context_ids, track_ids, dim, iterations, seed)
    finally:
        by_context.unpersist()
        by_track.unpersist()
    return Embeddings(mean, context_ids, p, track_ids, q)


def distinct_ids(ratings: DataFrame, column: str) -> np.ndarray:
    return np.sort(ratings.select(column).distinct().toPandas()[column].to_numpy(np.int64))


def solve_on_executors(ratings: DataFrame, row: str, other: str, other_ids: np.ndarray,
                       other_vectors: np.ndarray, reg: float) -> np.ndarray:
    """solve_rows for the rows of `ratings` (partitioned by `row`: each partition holds all of
    its rows' ratings), per partition with the other side's vectors broadcast; rows sorted by
    id, like distinct_ids."""
    shared = ratings.sparkSession.sparkContext.broadcast((other_ids, other_vectors))

    def solve(batches):
        batches = list(batches)
        if not batches:   # a partition that no row id hashed to
            return
        ids, solved = solve_rows(pd.concat(batches, ignore_index=True), row, other, *shared.value, reg)
        yield pd.DataFrame({"id": ids, "vector": [v.tobytes() for v in solved]})

    solved = ratings.mapInPandas(solve, "id long, vector binary").toPandas().sort_values("id")
    shared.unpersist()
    return np.frombuffer(b"".join(solved["vector"]), dtype=np.float32).reshape(len(solved), -1)


def fit_spark(ratings: DataFrame, dim: int, iterations: int, reg: float, blocks: int,
              seed: int) -> Embeddings:
    """The same model with Spark ML's ALS (distributed; rank^3 per row: slow at rank 200)."""
    from pyspark.ml.recommendation import ALS

    mean, frame = centred(ratings)
    frame = frame.select(F.col("context").cast("int"), F.col("track").cast("int"), "rating")
    model = ALS(rank=dim, maxIter=iterations, regParam=reg, userCol="context", itemCol="track",
                ratingCol="rating", numUserBlocks=blocks, numItemBlocks=blocks, seed=seed).fit(frame)
    context_ids, contexts = factors(model.userFactors)
    track_ids, tracks = factors(model.itemFactors)
    return Embeddings(mean, context_ids, contexts, track_ids, tracks)


def factors(frame: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """ALS factors (id, features) -> ids and a float32 matrix, rows sorted by id."""
    pdf = frame.orderBy("id").toPandas()
    return pdf["id"].to_numpy(np.int64), np.asarray(pdf["features"].tolist(), dtype=np.float32).reshape(len(pdf), -1)


MSE_SUMS = ("pairs", "known", "model", "baseline", "model_known", "baseline_known")


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
    """mse_sums (of one frame or added over partitions) -> the MSEs and the share covered."""
    n, known = sums["pairs"], sums["known"]

    def per(total: float, count: float) -> float:
        return total / count if count else float("nan")

    return {"model": per(sums["model"], n), "baseline": per(sums["baseline"], n),
            "model_known": per(sums["model_known"], known),
            "baseline_known": per(sums["baseline_known"], known),
            "covered": per(known, n), "pairs": int(n)}


def heldout_mse(model: Embeddings, pairs: DataFrame, on_executors: bool) -> dict[str, float]:
    """MSE of the model and of the mean alone on held-out (context, track, time) listens, on the
    driver or (on_executors) summed per partition with the model broadcast."""
    if not on_executors:
        return mse(mse_sums(model, pairs.toPandas()))
    shared = pairs.sparkSession.sparkContext.broadcast(model)

    def sums(batches):
        for batch in batches:
            yield pd.DataFrame([mse_sums(shared.value, batch)])

    totals = (pairs.mapInPandas(sums, ", ".join(f"{c} double" for c in MSE_SUMS))
              .agg(*[F.sum(c).alias(c) for c in MSE_SUMS]).first())
    shared.unpersist()
    return mse({c: totals[c] or 0.0 for c in MSE_SUMS})


def recommend(model: Embeddings, k: int, ordered: bool, batch: int) -> dict[int, list[int]]:
    """context -> its top-k tracks by score, the context itself excluded."""
    column = index_of(model.track_ids, model.context_ids)   # the context among the tracks, or -1

    def exclude_self(start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        rows = np.flatnonzero(column[start:end] >= 0)
        return rows, column[start:end][rows]

    best = ranking.top_k(model.contexts, model.tracks, k, ordered=ordered, exclude=exclude_self,
                         batch=batch, desc="nn top-k")
    return {int(c): model.track_ids[b].tolist() for c, b in zip(model.context_ids, best)}


def recommend_on_executors(spark: SparkSession, model: Embeddings, k: int, ordered: bool, batch: int,
                           partitions: int) -> DataFrame:
    """`recommend` split over executors by context rows (the model broadcast): track, recs
    (persisted: the caller unpersists)."""
    shared = spark.sparkContext.broadcast(model)

    def rank(batches):
        m = shared.value
        for rows in batches:
            rows = rows["id"].to_numpy()
            part = Embeddings(m.mean, m.context_ids[rows], m.contexts[rows], m.track_ids, m.tracks)
            recs = recommend(part, k, ordered, batch)
            yield pd.DataFrame({"track": list(recs), "recs": list(recs.values())})

    recs = (spark.range(len(model.context_ids), numPartitions=partitions)
            .mapInPandas(rank, "track long, recs array<long>").persist())
    recs.count()
    shared.unpersist()
    return recs


def add_arguments(parser: argparse.ArgumentParser, cfg: JobsConfig) -> None:
    c = cfg.nn
    common.add_table_job_arguments(parser, "table")
    parser.add_argument("--dim", type=int, default=c.dim, help="embedding dimension (ALS rank)")
    parser.add_argument("--unordered", action="store_true",
                        help="keep argpartition's order of the top-k (the course-style table)")
    parser.add_argument("--iterations", type=int, default=c.iterations, help="ALS iterations")
    parser.add_argument("--reg", type=float, default=c.reg, help="ALS L2 regularisation")
    parser.add_argument("--solver", choices=["numpy", "spark"], default=c.solver,
                        help="numpy's dual-form ALS (fast at high rank) or Spark ML's ALS")
    parser.add_argument("--blocks", type=int, default=c.blocks, help="Spark ALS user and item blocks")
    parser.add_argument("--driver-max-ratings", type=int, default=c.driver_max_ratings,
                        help="up to this many distinct ratings the numpy ALS, the held-out MSE, the "
                             "ranking and the offline check run on the driver; above, on the executors")
    parser.add_argument("--partitions", type=int, default=c.partitions,
                        help="partitions of the ratings and of the contexts on the executors")
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
        on_executors = bounds["n"] > args.driver_max_ratings
        solver = args.solver if args.solver == "spark" else f"numpy on the {'executors' if on_executors else 'driver'}"
        with common.stage(NAME, f"ALS ({solver}) dim {args.dim}, {args.iterations} iterations"):
            if args.solver == "spark":
                model = fit_spark(ratings, args.dim, args.iterations, args.reg, args.blocks, args.seed)
            elif on_executors:
                model = fit_executors(ratings, args.dim, args.iterations, args.reg, args.seed, args.partitions)
            else:
                model = fit_driver(ratings, args.dim, args.iterations, args.reg, args.seed)
        with common.stage(NAME, "held-out MSE"):
            mse = heldout_mse(model, training_pairs(heldout_sessions).select("context", "track", "time"),
                              on_executors)
        print(f"[{NAME}] held-out MSE {mse['model']:.5f} vs mean baseline {mse['baseline']:.5f} "
              f"on {mse['pairs']} listens; on the {mse['covered']:.1%} with both embeddings known "
              f"{mse['model_known']:.5f} vs {mse['baseline_known']:.5f}")
        uri = common.join(args.out, table)
        top_pop = top_tracks(train_sessions, args.eval_k)
        order = "unordered" if args.unordered else "ordered"
        if on_executors:
            with common.stage(NAME, f"top-{args.top_k} per context ({order}, executors)"):
                recs = recommend_on_executors(spark, model, args.top_k, not args.unordered, args.batch,
                                              args.partitions)
                contexts = common.write_ranked(spark, recs, "track", "recommendations", uri)
            common.log(NAME, f"{contexts} contexts -> {uri}")
            with common.stage(NAME, "offline check (executors)"):
                results = offline.compare_on_executors(NAME, table, recs.withColumnRenamed("track", "context"),
                                                       heldout_sessions, "context", top_pop,
                                                       args.good_time, args.eval_k)
            recs.unpersist()
        else:
            with common.stage(NAME, f"top-{args.top_k} per context ({order}, driver)"):
                recs = recommend(model, args.top_k, not args.unordered, args.batch)
                common.write_jsonl(spark, ({"track": c, "recommendations": r} for c, r in sorted(recs.items())), uri)
            contexts = len(recs)
            common.log(NAME, f"{contexts} contexts -> {uri}")
            with common.stage(NAME, "offline check"):
                results = offline.compare(NAME, table, recs.get, heldout_sessions, "context", top_pop,
                                          args.good_time, args.eval_k)
        ratings.unpersist()
    finally:
        split.unpersist()
    return {"mse": mse, "offline": results, "contexts": contexts, "ratings": bounds["n"],
            "on_executors": on_executors}


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> int:
    """Command line; with `spark` given, runs in that session and leaves it running."""
    return common.job_main(NAME, __doc__.splitlines()[0], add_arguments, run, argv, spark)


if __name__ == "__main__":
    raise SystemExit(main())
