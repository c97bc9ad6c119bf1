"""Top-k items per query row by dot product, on collected factor matrices (numpy, blocked).

Measured faster than Spark's recommendForAll at rank 200 (see jobs/README.md). Each block is one
float32 matmul, an argpartition for the k best, and (ordered) a sort of those k only.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
from tqdm import tqdm

# (first row, end row) of a block -> (rows within the block, item columns) never to recommend.
Exclude = Callable[[int, int], tuple[np.ndarray, np.ndarray]]


def top_k(queries: np.ndarray, items: np.ndarray, k: int, ordered: bool = True,
          exclude: Exclude | None = None, batch: int = 512, threads: int = 2,
          desc: str = "rank") -> list[np.ndarray]:
    """For each query row, item indices of the k largest scores `queries @ items.T`.

    ordered=True: strictly by score, ties by the smaller item index (argsort of the k best).
    ordered=False: the k best in argpartition's arbitrary order (the course's table).
    Excluded items are never returned, so a row may hold fewer than k when few items remain.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    items_t = np.ascontiguousarray(items.T, dtype=np.float32)
    n_items = items_t.shape[1]
    k = min(k, n_items)

    def block(start: int) -> list[np.ndarray]:
        end = min(start + batch, len(queries))
        scores = queries[start:end] @ items_t
        if exclude is not None:
            rows, cols = exclude(start, end)
            scores[rows, cols] = -np.inf
        if k < n_items:
            best = np.argpartition(-scores, k - 1 if ordered else k, axis=1)[:, :k]
        else:
            best = np.broadcast_to(np.arange(n_items), scores.shape).copy()
        best_scores = np.take_along_axis(scores, best, axis=1)
        if ordered and k < n_items:
            # argpartition cuts ties at the k-th score arbitrarily: where an item left out ties
            # with it, redo that row over all tied items so the smaller index wins.
            kth = best_scores.min(axis=1, keepdims=True)
            cut_ties = (scores == kth).sum(axis=1) > (best_scores == kth).sum(axis=1)
            for r in np.flatnonzero(cut_ties):
                candidates = np.flatnonzero(scores[r] >= kth[r])
                keep = np.lexsort((candidates, -scores[r, candidates]))[:k]
                best[r], best_scores[r] = candidates[keep], scores[r, candidates[keep]]
        if ordered:
            order = np.lexsort((best, -best_scores), axis=1)
            best = np.take_along_axis(best, order, axis=1)
            best_scores = np.take_along_axis(best_scores, order, axis=1)
        return [row[np.isfinite(s)] for row, s in zip(best, best_scores)]

    starts = range(0, len(queries), batch)
    # numpy releases the GIL in matmul and argpartition: threads keep both cores busy.
    with ThreadPoolExecutor(threads) as pool:
        blocks = list(tqdm(pool.map(block, starts), total=len(starts), desc=desc, unit="block",
                           mininterval=2))
    return [row for rows in blocks for row in rows]
