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


def artist_graph(listened: pd.DataFrame, index: ArtistIndex, max_tail: float) -> sp.csr_matrix:
    """Symmetric artist x artist evidence weights (module docstring); no self-links.

    `listened`: user, session, pos, track, first, tail."""
    n = len(index)
    liked = listened[listened["tail"] < max_tail].sort_values(["user", "session", "pos"], kind="stable")
    strength = np.log(max_tail / liked["tail"].to_numpy())
    rows, cols, weights = [], [], []
    # each liked track with the session's first track
    rows.append(index.artists(liked["first"].to_numpy()))
    cols.append(index.artists(liked["track"].to_numpy()))
    weights.append(strength)
    # each liked track with the session's earlier liked tracks (pairs within a session)
    keys = liked[["user", "session"]].to_numpy()
    artists, lifts = index.artists(liked["track"].to_numpy()), strength
    start = 0
    for end in range(1, len(liked) + 1):
        if end == len(liked) or (keys[end] != keys[start]).any():
            for i in range(start + 1, end):
                rows.append(np.full(i - start, artists[i]))
                cols.append(artists[start:i])
                weights.append(np.minimum(lifts[start:i], lifts[i]))
            start = end
    r, c, w = np.concatenate(rows), np.concatenate(cols), np.concatenate(weights).astype(np.float64)
    keep = (r >= 0) & (c >= 0) & (r != c) & (w > 0)
    r, c, w = r[keep], c[keep], w[keep]
    graph = sp.coo_matrix((np.concatenate([w, w]), (np.concatenate([r, c]), np.concatenate([c, r]))),
                          shape=(n, n)).tocsr()
    graph.sum_duplicates()
    return graph


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


def offline_check(spark: SparkSession, args: argparse.Namespace, heldout: DataFrame, train: DataFrame,
                  lookup) -> dict[str, dict[str, float]]:
    """jobs/offline.py's hit rate / NDCG of this table, the NN table (--nn-table) and top-pop on
    the same held-out queries (keyed by the session's first track)."""
    queries = offline.heldout_queries(heldout, args.good_time).select("context", "target").toPandas()
    keys, targets = queries["context"].tolist(), queries["target"].tolist()
    lookups = {args.table: lookup}
    if args.nn_table:
        lookups["nn"] = read_track_table(spark, args.nn_table).get
    top = top_tracks(train, args.eval_k)
    lookups["top-pop"] = lambda _: top
    results = {name: offline.hit_rate_ndcg(f, keys, targets, args.eval_k) for name, f in lookups.items()}
    offline.report(NAME, args.eval_k, results)
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


def run(spark: SparkSession, args: argparse.Namespace) -> dict:
    try:
        catalog = load_catalog(Path(args.catalog))
    except TableError as e:
        raise common.JobError(str(e)) from None
    index = ArtistIndex(catalog)
    sessions = common.read_sessions(spark, args.sessions)
    split = sessions.withColumn("heldout", common.holdout_flag(args.seed, args.holdout_share)).persist()
    train, heldout = split.where(~F.col("heldout")), split.where(F.col("heldout"))
    try:
        with common.stage(NAME, "listens and their tail shares"):
            listened = (with_tail(recommended_listens(train))
                        .select("user", "session", "pos", "track", "first", "tail").toPandas())
        if listened.empty:
            raise common.JobError(f"no recommended listens in {args.sessions}: sessions need 2+ tracks")
        with common.stage(NAME, "artist graph and neighbours"):
            graph = artist_graph(listened, index, args.max_tail)
            lists = neighbours(graph, args.hops, args.top_k)
        rows = table_rows(index, lists)
        if not rows:
            raise common.JobError("no artist has a neighbour: the logs hold no co-listening under "
                                  "--max-tail; lower it or give more sessions")
        uri = common.join(args.out, args.table)
        common.write_jsonl(spark, rows, uri)
        common.log(NAME, f"{graph.nnz // 2} artist links, {len(rows)} of {len(index)} artists with a row -> {uri}")
        with common.stage(NAME, "offline check"):
            results = offline_check(spark, args, heldout, train, expanded(catalog, index, lists, args.eval_k))
    finally:
        split.unpersist()
    return {"offline": results, "rows": len(rows), "links": graph.nnz // 2}


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> int:
    """Command line; with `spark` given, runs in that session and leaves it running."""
    return common.job_main(NAME, __doc__.splitlines()[0], add_arguments, run, argv, spark)


if __name__ == "__main__":
    raise SystemExit(main())
