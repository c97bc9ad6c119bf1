"""Alternating least squares for explicit ratings, solved row by row in the dual (numpy).

The objective is Spark ML ALS's: sum over ratings (r - p_u . q_i)^2 + reg * (n_u |p_u|^2 +
n_i |q_i|^2) (regularisation weighted by each row's rating count). With the other side fixed,
row u is a ridge regression on its n_u ratings: p_u = (G^T G + reg n_u I)^-1 G^T y, G the n_u x
rank matrix of the other side's vectors. Spark solves the rank x rank system (rank^3 per row);
when n_u < rank the identical solution is p_u = G^T (G G^T + reg n_u I)^-1 y, an n_u x n_u
system. Logged sessions give a context a few dozen ratings, so at rank 200 this dual form is
what makes the NN affordable. Rows with more ratings than the rank use the primal form.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.sparse import csr_matrix

CHUNK_BYTES = 64 << 20   # gathered vectors per batched solve


def _solve_dual(other: np.ndarray, ratings: csr_matrix, rows: np.ndarray, width: int,
                reg: float) -> np.ndarray:
    """Solutions of `rows`, each with at most `width` ratings, padded to `width` in one batch."""
    counts = np.diff(ratings.indptr)[rows]
    slot = np.arange(width)
    mask = slot < counts[:, None]
    index = np.where(mask, ratings.indptr[rows][:, None] + slot, 0)
    gathered = other[ratings.indices[index]] * mask[..., None]            # (B, width, rank)
    y = np.where(mask, ratings.data[index], 0).astype(other.dtype)[..., None]  # (B, width, 1)
    gram = gathered @ gathered.transpose(0, 2, 1)                          # (B, width, width)
    # Padded slots have zero vectors and y = 0: their diagonal reg*n keeps the system regular
    # and their dual weight is 0, so they do not change the solution.
    gram[:, slot, slot] += (reg * counts)[:, None].astype(gram.dtype)
    alpha = np.linalg.solve(gram, y)
    return (gathered.transpose(0, 2, 1) @ alpha)[..., 0]


def _solve_primal(other: np.ndarray, ratings: csr_matrix, row: int, reg: float) -> np.ndarray:
    start, end = ratings.indptr[row], ratings.indptr[row + 1]
    g = other[ratings.indices[start:end]]
    a = g.T @ g
    a[np.diag_indices_from(a)] += reg * (end - start)
    return np.linalg.solve(a, g.T @ ratings.data[start:end])


def solve_side(other: np.ndarray, ratings: csr_matrix, reg: float, threads: int = 2) -> np.ndarray:
    """Least-squares vectors of every row of `ratings` given the other side's vectors."""
    rank = other.shape[1]
    counts = np.diff(ratings.indptr)
    out = np.zeros((ratings.shape[0], rank), dtype=other.dtype)
    tasks = []
    # Rows grouped by count into power-of-two widths: padding wastes at most half of a batch.
    width = 1
    while width < rank:
        rows = np.flatnonzero((counts > width // 2) & (counts <= width))
        step = max(1, CHUNK_BYTES // (width * rank * other.itemsize))
        tasks += [(rows[i:i + step], width) for i in range(0, len(rows), step)]
        width *= 2
    dense_rows = np.flatnonzero(counts > width // 2)

    def run(task):
        rows, width = task
        out[rows] = _solve_dual(other, ratings, rows, width, reg)

    with ThreadPoolExecutor(threads) as pool:   # numpy's matmul and solve release the GIL
        list(pool.map(run, tasks))
    for row in dense_rows:
        out[row] = _solve_primal(other, ratings, row, reg)
    return out


def initial_vectors(n: int, rank: int, seed: int) -> np.ndarray:
    """The starting vectors of the second side: seeded, unit-norm-ish like Spark's."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, rank)) / np.sqrt(rank)).astype(np.float32)

