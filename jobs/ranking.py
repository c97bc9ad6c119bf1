"""Top-k items per query row by dot product, on collected factor matrices (numpy, blocked).

Numpy rather than Spark's recommendForAll: the factor matrices are catalog-sized and fit the
driver, and one float32 matmul per block of rows is BLAS's fastest case. Each block is one
float32 matmul; ordered, the k best of a row are found among the few items that clear a bound on
its k-th best score, then sorted; unordered, one argpartition over the whole row.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from infra.progress import tracked

# (first row, end row) of a block -> (rows within the block, item columns) never to recommend.
Exclude = Callable[[int, int], tuple[np.ndarray, np.ndarray]]
# Ordered ranking splits a row's items into this many groups per k to bound its k-th best score.
GROUPS_PER_K = 2


def kth_best_bound(scores: np.ndarray, k: int) -> np.ndarray:
    """Per row, a score at most its k-th best: the k-th largest of the maxima of >= k column
    groups (k groups hold an item scoring at least that). Needs GROUPS_PER_K * k <= columns."""
    rows, n = scores.shape
    width = n // (GROUPS_PER_K * k)
    whole = width * GROUPS_PER_K * k
    maxima = scores[:, :whole].reshape(rows, -1, width).max(axis=2)
    if whole < n:  # the last few columns are one more group
        maxima = np.concatenate([maxima, scores[:, whole:].max(axis=1, keepdims=True)], axis=1)
    return np.partition(maxima, maxima.shape[1] - k, axis=1)[:, maxima.shape[1] - k]


def best_ordered(scores: np.ndarray, k: int) -> np.ndarray:
    """Per row, the indices of the k largest scores, strictly by score, ties by smaller index."""
    # Flat indices, then divmod: cheaper than a 2-D np.nonzero over the block.
    rows, cols = np.divmod(np.flatnonzero(scores >= kth_best_bound(scores, k)[:, None]), scores.shape[1])
    order = np.lexsort((cols, -scores[rows, cols], rows))
    # Every row has at least k candidates, and they are the only items that can be in its k best.
    starts = np.searchsorted(rows[order], np.arange(len(scores)))
    return cols[order][starts[:, None] + np.arange(k)]


def top_k(queries: np.ndarray, items: np.ndarray, k: int, ordered: bool = True,
          exclude: Exclude | None = None, batch: int = 512, threads: int = 2,
          desc: str = "rank") -> list[np.ndarray]:
    """For each query row, item indices of the k largest scores `queries @ items.T`.

    ordered=True: strictly by score, ties by the smaller item index.
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
        if ordered and GROUPS_PER_K * k <= n_items:
            best = best_ordered(scores, k)
        elif ordered:  # few items: sort them all
            best = np.lexsort((np.broadcast_to(np.arange(n_items), scores.shape), -scores), axis=1)[:, :k]
        elif k < n_items:  # negated in place, no second block (below only finiteness is read)
            best = np.argpartition(np.negative(scores, out=scores), k, axis=1)[:, :k]
        else:
            best = np.broadcast_to(np.arange(n_items), scores.shape).copy()
        best_scores = np.take_along_axis(scores, best, axis=1)
        return [row[np.isfinite(s)] for row, s in zip(best, best_scores)]

    starts = range(0, len(queries), batch)
    # numpy releases the GIL in matmul, partition and sort: threads keep both cores busy. Each
    # block's matmul keeps BLAS's own threads: on some CPUs OpenBLAS's float32 product differs
    # in its last bits with its thread count, and so would the tables.
    with ThreadPoolExecutor(threads) as pool:
        blocks = list(tracked(pool.map(block, starts), desc, "block", total=len(starts)))
    return [row for rows in blocks for row in rows]
