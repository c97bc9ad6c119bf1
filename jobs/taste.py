"""taste: artist neighbourhoods learned from co-listening -> track-keyed tracks_taste.json.

Every track of a session is listened by one user with one taste in mind, so two artists whose
tracks are listened *longer than that user usually listens* in the same session are likely
alike. Evidence, at artist level (the catalog's public track -> artist):
- a recommended track is *liked* when few of its user's recommended listens (over all their
  training sessions) were as long: its tail share `tail` < --max-tail (users listen to most
  tracks alike, some to almost nothing and some to almost everything, so a time means
  something only against the user's own times). A liked track is linked to the session's
  first track (the user chose it) and to the session's earlier liked tracks, with weight
  log(max_tail / tail).
The graph is normalised by degree (D^-1/2 W D^-1/2, so prolific artists do not dominate) and
walked --hops steps (sum of its powers): artists two steps apart share neighbours. Each artist's
row lists its --top-k strongest neighbours (one track each: the neighbour's first catalog track),
keyed by the artist's first catalog track (service/recommenders/taste.py `row_key`).
Held-out sessions give the offline check next to the NN table's (jobs/offline.py).

Listens, tails and the link weights are computed and summed on the executors (jobs/scenes.py
builds its graph the same way); the driver receives the artist graph (artist-pair-sized), and
the offline check's hits are counted on the executors.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs import common, offline
from jobs.config import JobsConfig
from jobs.toppop import listens, top_tracks
from contract.catalog import Catalog, load_catalog
from contract.tables import TableError

NAME = "taste"
NANO = 1_000_000_000


def recommended_listens(sessions: DataFrame) -> DataFrame:
    """Sessions -> user, session, pos, track, time, first (the session's first track) for each
    later track not already played in the session (a repeat's 0 is the repeat rule, not taste)."""
    return (listens(sessions, "tracks")
            .where((F.col("pos") >= 1) & ~F.expr("array_contains(slice(tracks, 1, pos), track)"))
            .select("user", "session", "pos", "track", "time", F.col("tracks")[0].alias("first")))


def with_tail(recommended: DataFrame) -> DataFrame:
    """Add `tail`: the share of the user's recommended listens (all their sessions) with a time
    at least this one's. Users listen to most tracks alike (some to almost nothing, some to
    almost everything); the rare ones they listen to longer than usual say what they like."""
    by_user = Window.partitionBy("user")
    at_least = by_user.orderBy(F.desc("time")).rangeBetween(Window.unboundedPreceding, Window.currentRow)
    return recommended.withColumn("tail", F.count(F.lit(1)).over(at_least) / F.count(F.lit(1)).over(by_user))


class ArtistIndex:
    """Dense artist numbers for the catalog's artist names, in order of their first track."""

    def __init__(self, catalog: Catalog):
        self.names = sorted(catalog.tracks_by_artist, key=lambda a: catalog.tracks_by_artist[a][0])
        number = {name: i for i, name in enumerate(self.names)}
        self.of_track = np.full(int(catalog.id_array[-1]) + 1, -1, dtype=np.int64)
        for track, artist in catalog.artist_of.items():
            self.of_track[track] = number[artist]
        self.first_track = np.array([catalog.tracks_by_artist[a][0] for a in self.names], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.names)

    def artists(self, tracks: np.ndarray) -> np.ndarray:
        """Artist number of each track id; -1 for ids the catalog lacks."""
        tracks = np.asarray(tracks, dtype=np.int64)
        inside = (tracks >= 0) & (tracks < len(self.of_track))
        return np.where(inside, self.of_track[np.where(inside, tracks, 0)], -1)


def artist_frame(spark: SparkSession, index: ArtistIndex) -> DataFrame:
    """track, artist (its number in `index`) for every catalog track (catalog-sized)."""
    known = np.flatnonzero(index.of_track >= 0)
    return spark.createDataFrame(pd.DataFrame({"track": known, "artist": index.of_track[known]}))


def liked_listens(sessions: DataFrame, artists: DataFrame, max_tail: float) -> DataFrame:
    """user, session, pos, track, artist, first_artist, weight: the liked recommended listens of
    catalog tracks in sessions that start with one, weight log(max_tail / tail)."""
    listened = with_tail(recommended_listens(sessions)).where(F.col("tail") < max_tail)
    first = artists.select(F.col("track").alias("first"), F.col("artist").alias("first_artist"))
    return (listened.join(F.broadcast(artists), "track").join(F.broadcast(first), "first")
            .select("user", "session", "pos", "track", "artist", "first_artist",
                    F.log(F.lit(max_tail) / F.col("tail")).alias("weight")))


def artist_links(liked: DataFrame) -> DataFrame:
    """a, b, weight: summed evidence that artists a and b share a taste, both directions, a != b:
    each liked track with the session's first track, and with each earlier liked track of its
    session (the lesser weight of the two). Summed on the executors."""
    with_first = liked.select(F.col("first_artist").alias("a"), F.col("artist").alias("b"), "weight")
    left = liked.select("user", "session", F.col("pos").alias("p1"), F.col("artist").alias("a"),
                        F.col("weight").alias("w1"))
    right = liked.select("user", "session", F.col("pos").alias("p2"), F.col("artist").alias("b"),
                         F.col("weight").alias("w2"))
    pairs = (left.join(right, ["user", "session"]).where(F.col("p1") < F.col("p2"))
             .select("a", "b", F.least("w1", "w2").alias("weight")))
    links = with_first.unionByName(pairs).where(F.col("a") != F.col("b"))
    both = links.unionByName(links.select(F.col("b").alias("a"), F.col("a").alias("b"), "weight"))
    # Summed in fixed point (integer nano-units): a float sum's last bits depend on the order
    # Spark adds the rows in, and the tables would with them.
    nano = F.round(F.col("weight") * NANO).cast("long")
    return both.groupBy("a", "b").agg((F.sum(nano) / NANO).alias("weight"))


def artist_graph(links: pd.DataFrame, artists: int) -> sp.csr_matrix:
    """artist_links' rows (collected: artist-pair-sized) as a symmetric artists x artists matrix."""
    return sp.csr_matrix((links["weight"].to_numpy(), (links["a"].to_numpy(), links["b"].to_numpy())),
                         shape=(artists, artists))


def neighbours(graph: sp.csr_matrix, hops: int, top_k: int) -> list[np.ndarray]:
    """Each artist's top_k neighbours by the degree-normalised walk of `hops` steps (strongest
    first; ties to the smaller artist number); itself excluded."""
    degree = np.asarray(graph.sum(axis=1)).ravel()
    scale = sp.diags(1.0 / np.sqrt(degree + 1.0))   # +1: artists with little evidence stay weak
    step = (scale @ graph @ scale).tocsr()
    walk, power = step.copy(), step
    for _ in range(hops - 1):
        power = (power @ step).tocsr()
        walk = walk + power
    walk = walk.tocsr()
    walk.setdiag(0)
    walk.eliminate_zeros()
    out = []
    for a in range(graph.shape[0]):
        lo, hi = walk.indptr[a], walk.indptr[a + 1]
        cols, vals = walk.indices[lo:hi], walk.data[lo:hi]
        order = np.lexsort((cols, -vals))[:top_k]
        out.append(cols[order])
    return out


def table_rows(index: ArtistIndex, lists: list[np.ndarray]) -> list[dict]:
    """JSONL rows: the artist's first track -> its neighbours' first tracks (artists with none
    are left out: the recommender falls back)."""
    return [{"track": int(index.first_track[a]), "recommendations": index.first_track[l].tolist()}
            for a, l in enumerate(lists) if len(l)]


def expanded(catalog: Catalog, index: ArtistIndex, lists: list[np.ndarray], k: int):
    """Offline-check lookup: for a first track, its artist's other tracks, then the tracks of
    each neighbour artist in rank order, the first k (the pool the recommender draws from)."""
    def lookup(track: int) -> list[int] | None:
        artist = int(index.artists(np.array([track]))[0])
        if artist < 0:
            return None
        out = [t for t in catalog.tracks_by_artist[index.names[artist]] if t != track]
        for neighbour in lists[artist]:
            if len(out) >= k:
                break
            out.extend(catalog.tracks_by_artist[index.names[neighbour]])
        return out[:k]
    return lookup


def read_track_table(spark: SparkSession, path: str) -> dict[int, list[int]]:
    """A track-keyed JSONL table (the NN table) as a dict, for the offline comparison."""
    uri = common.qualify(path)
    common.require_exists(spark, uri, "NN table")
    return {int(r["track"]): list(r["recommendations"]) for r in spark.read.json(uri).collect()}


def offline_check(spark: SparkSession, name: str, args: argparse.Namespace, heldout: DataFrame,
                  train: DataFrame, lookup) -> dict[str, dict[str, float]]:
    """jobs/offline.py's hit rate / NDCG of job `name`'s table, the NN table (--nn-table) and top-pop on
    the same held-out queries (keyed by the session's first track), counted on the executors: the
    lookups (catalog-sized) go with the task."""
    lookups = {args.table: lookup}
    if args.nn_table:
        lookups["nn"] = read_track_table(spark, args.nn_table).get
    top = top_tracks(train, args.eval_k)
    lookups["top-pop"] = lambda _: top
    queries = offline.heldout_queries(heldout, args.good_time)
    results = offline.rates_on_executors(
        queries, {name: offline.Checked("context", lookup=f) for name, f in lookups.items()}, args.eval_k)
    offline.report(name, args.eval_k, results)
    return results


def add_arguments(parser: argparse.ArgumentParser, cfg: JobsConfig) -> None:
    c = cfg.taste
    common.add_table_job_arguments(parser, "table")
    parser.add_argument("--catalog", required=True,
                        help="the public catalog tracks.jsonl (track -> artist), a local file")
    parser.add_argument("--max-tail", type=float, default=c.max_tail,
                        help="a track counts as liked when less than this share of its user's "
                             "recommended listens were as long")
    parser.add_argument("--hops", type=int, default=c.hops, help="steps of the walk on the artist graph")
    parser.add_argument("--top-k", type=int, default=c.top_k, help="neighbour artists per row")
    parser.add_argument("--nn-table", default=None,
                        help="the NN table (tracks_nn.json) to print next to this one in the offline check")
    parser.add_argument("--table", default=cfg.tables.taste, help="file name in --out")
    common.add_split_arguments(parser, cfg)


def run_artist_job(spark: SparkSession, args: argparse.Namespace, name: str, model: str, build) -> dict:
    """What Taste and Scenes share: the artist graph of the training sessions' liked listens, the
    model's artist lists and rows (`build(graph, index, likes)` -> (lists, rows), `likes` the liked
    listens per track), the table written and checked offline on the held-out sessions."""
    try:
        catalog = load_catalog(Path(args.catalog))
    except TableError as e:
        raise common.JobError(str(e)) from None
    index = ArtistIndex(catalog)
    sessions = common.read_sessions(spark, args.sessions)
    split = sessions.withColumn("heldout", common.holdout_flag(args.seed, args.holdout_share)).persist()
    train, heldout = split.where(~F.col("heldout")), split.where(F.col("heldout"))
    try:
        with common.stage(name, "liked listens and artist links (executors)"):
            liked = liked_listens(train, artist_frame(spark, index), args.max_tail).persist()
            links = artist_links(liked).toPandas()   # reads `liked` three times: persisted
            likes = liked.groupBy("track").agg(F.count(F.lit(1)).alias("likes")).toPandas()
            liked.unpersist()
        if links.empty:
            raise common.JobError(f"no two artists liked together in {args.sessions}: give more "
                                  f"sessions (2+ tracks each) or raise --max-tail")
        with common.stage(name, model):
            graph = artist_graph(links, len(index))
            lists, rows = build(graph, index, likes)
        if not rows:
            raise common.JobError("no artist has a neighbour: the logs hold no co-listening under "
                                  "--max-tail; lower it or give more sessions")
        uri = common.join(args.out, args.table)
        common.write_jsonl(spark, rows, uri)
        common.log(name, f"{graph.nnz // 2} artist links, {len(rows)} of {len(index)} artists with a row -> {uri}")
        with common.stage(name, "offline check"):
            results = offline_check(spark, name, args, heldout, train,
                                    expanded(catalog, index, lists, args.eval_k))
    finally:
        split.unpersist()
    return {"offline": results, "rows": len(rows), "links": graph.nnz // 2}


def run(spark: SparkSession, args: argparse.Namespace) -> dict:
    def build(graph: sp.csr_matrix, index: ArtistIndex, likes: pd.DataFrame):
        lists = neighbours(graph, args.hops, args.top_k)
        return lists, table_rows(index, lists)
    return run_artist_job(spark, args, NAME, "artist graph and neighbours", build)


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> int:
    """Command line; with `spark` given, runs in that session and leaves it running."""
    return common.job_main(NAME, __doc__.splitlines()[0], add_arguments, run, argv, spark)


if __name__ == "__main__":
    raise SystemExit(main())
