"""scenes: genre-like artist groups learned from co-listening -> track-keyed tracks_scenes.json.

A session is one user listening with one taste in mind, so the artists of the tracks that user
listened to *longer than they usually do* in one session share that taste. The job turns this
into an artist graph and embeds it spectrally, which recovers groups of artists listened
together (the catalog's scenes or genres) even where two artists were never listened together:

- a recommended, not yet played track is *liked* when less than --max-tail of its user's
  recommended listens were as long (jobs/taste.py `with_tail`: times mean something only
  against the user's own); weight log(max_tail / tail);
- links, weighted: each liked track's artist with the session's first track's artist (the user
  chose it), and each pair of liked tracks' artists in one session (the lesser weight);
- the degree-normalised graph D^-1/2 W D^-1/2 (+1 on each degree: artists with little evidence
  stay weak) gives each artist its coordinates on the top --dim eigenvectors; artists of one
  group share coordinates, so cosine similarity ranks an artist's group first;
- each artist's row: its --top-k most similar artists (cosine > --min-similarity), one track
  each (the neighbour's track liked most often, else its first catalog track), keyed
  by the artist's first catalog track as Taste's table (service/recommenders/taste.py
  `row_key`), so either recommender reads it.

Listens, tails and the link weights are computed and summed on the executors (jobs/taste.py's
`liked_listens` and `artist_links`); the driver receives the artist graph and the per-track
like counts (artist- and catalog-sized).
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh
from pyspark.sql import SparkSession

from jobs import common
from jobs.config import JobsConfig
from jobs.taste import ArtistIndex, run_artist_job

NAME = "scenes"


def spectral_coordinates(graph: sp.csr_matrix, dim: int, seed: int) -> np.ndarray:
    """(artists, dim) unit rows: each artist on the top `dim` eigenvectors of the degree-normalised
    graph, scaled by their eigenvalues; artists without links get a zero row."""
    degree = np.asarray(graph.sum(axis=1)).ravel()
    scale = sp.diags(1.0 / np.sqrt(degree + 1.0))
    normalised = (scale @ graph @ scale).tocsr()
    dim = min(dim, graph.shape[0] - 2)
    start = np.random.default_rng(seed).standard_normal(graph.shape[0])
    values, vectors = eigsh(normalised, k=dim, which="LA", v0=start)
    coords = vectors * np.clip(values, 0, None)
    norms = np.linalg.norm(coords, axis=1, keepdims=True)
    coords = np.divide(coords, norms, out=np.zeros_like(coords), where=norms > 0)
    coords[degree == 0] = 0
    return coords


def similar_artists(coords: np.ndarray, top_k: int, min_similarity: float) -> list[np.ndarray]:
    """Each artist's top_k most similar artists by cosine (> min_similarity), itself excluded;
    ties to the smaller artist number. An artist without links (a zero row) has none."""
    out = []
    for start in range(0, len(coords), 512):
        sims = coords[start:start + 512] @ coords.T
        for row, s in enumerate(sims):
            s[start + row] = -np.inf
            best = np.argpartition(-s, min(top_k, len(s) - 1))[:top_k]
            best = best[np.lexsort((best, -s[best]))]
            out.append(best[s[best] > min_similarity])
    return out


def best_tracks(index: ArtistIndex, likes: pd.DataFrame) -> np.ndarray:
    """Each artist's representative track: its most often liked (ties to the smaller id), else
    its first catalog track. `likes`: track, likes."""
    best = index.first_track.copy()
    if len(likes):
        likes = likes.assign(artist=index.artists(likes["track"].to_numpy()))
        likes = likes[likes["artist"] >= 0].sort_values(["artist", "likes", "track"],
                                                        ascending=[True, False, True])
        top = likes.drop_duplicates("artist")
        best[top["artist"].to_numpy()] = top["track"].to_numpy()
    return best


def table_rows(index: ArtistIndex, lists: list[np.ndarray], best: np.ndarray) -> list[dict]:
    """JSONL rows: the artist's first track -> its similar artists' representative tracks."""
    return [{"track": int(index.first_track[a]), "recommendations": best[l].tolist()}
            for a, l in enumerate(lists) if len(l)]


def add_arguments(parser: argparse.ArgumentParser, cfg: JobsConfig) -> None:
    c = cfg.scenes
    common.add_table_job_arguments(parser, "table")
    parser.add_argument("--catalog", required=True,
                        help="the public catalog tracks.jsonl (track -> artist), a local file")
    parser.add_argument("--max-tail", type=float, default=c.max_tail,
                        help="a track counts as liked when less than this share of its user's "
                             "recommended listens were as long")
    parser.add_argument("--dim", type=int, default=c.dim, help="eigenvectors of the artist graph kept")
    parser.add_argument("--top-k", type=int, default=c.top_k, help="similar artists per row")
    parser.add_argument("--min-similarity", type=float, default=c.min_similarity,
                        help="an artist is listed as similar only above this cosine")
    parser.add_argument("--nn-table", default=None,
                        help="the NN table (tracks_nn.json) to print next to this one in the offline check")
    parser.add_argument("--table", default=cfg.tables.scenes, help="file name in --out")
    common.add_split_arguments(parser, cfg)


def run(spark: SparkSession, args: argparse.Namespace) -> dict:
    def build(graph: sp.csr_matrix, index: ArtistIndex, likes: pd.DataFrame):
        coords = spectral_coordinates(graph, args.dim, args.seed)
        lists = similar_artists(coords, args.top_k, args.min_similarity)
        return lists, table_rows(index, lists, best_tracks(index, likes))
    return run_artist_job(spark, args, NAME, "spectral coordinates and similar artists", build)


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> int:
    """Command line; with `spark` given, runs in that session and leaves it running."""
    return common.job_main(NAME, __doc__.splitlines()[0], add_arguments, run, argv, spark)


if __name__ == "__main__":
    raise SystemExit(main())
