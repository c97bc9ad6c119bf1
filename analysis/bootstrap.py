"""Poisson bootstrap over users: the replicate sums every A/B statistic is built from.

Each user gets an independent Poisson(1) weight per replicate. A replicate's arm mean of a
metric is sum(w * x) / sum(w) over that arm's users, and a replicate's quantile comes from the
weighted histogram of the quantile variable. All of it is linear in the weights, so the work is
a matrix product per chunk of users:

    sums (rows x (B + 1)) += design (rows x users) @ weights (users x (B + 1))

(dense for the per-arm counts and column sums, sparse for the quantile histograms). The columns
are the metrics, the CUPED covariates and the numerators and denominators of the ratio
metrics. Alongside, each arm's Gram matrix of [1, columns] over its users (sample only) gives
the variances and covariances the CUPED slope and the delta method need.
Column 0 of the weights is all ones, so column 0 of the sums is the plain sample (the point
estimate) and columns 1..B are the replicates. Partial sums add up across chunks and across
Spark partitions, which is why the same kernel serves the numpy path (`numpy_replicate_sums`,
one partition) and the Spark path (`spark_replicate_sums`, one partial sum per partition via
`mapInPandas`). With one partition and users in the same order both draw the same weights.

Quantiles are not sums, so each arm's quantile variable is binned into a narrow window around
the sample quantile: a bootstrap quantile's rank moves by about sqrt(n q (1 - q)) users, and
the window spans `window_sd` of those either side, cut into `bins` equal-count bins. Bin
counts of integer weights are exact; the replicate quantile interpolates inside its bin.
"""
from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np
import pandas as pd
from scipy import sparse
from threadpoolctl import threadpool_limits

# Poisson(1) by inverse CDF over 32-bit uniforms: every probability is exact to 2**-32
# (P(k > 12) < 1e-10 lands on 12). The high 16 bits decide k through a lookup table except in
# the 8 of 65,536 buckets that hold a threshold; only those draw their low 16 bits. Faster than
# Generator.poisson (benchmarks/bench_analysis.py prints both; docs/SPEED.md).
_POISSON_CDF = np.cumsum([math.exp(-1.0) / math.factorial(k) for k in range(12)])
_POISSON_THRESHOLDS = np.minimum(np.round(_POISSON_CDF * 2.0**32), 2.0**32 - 1).astype(np.uint32)
_BUCKET_START = np.arange(2**16, dtype=np.uint64) << 16
_UNDECIDED = 255
_POISSON_TABLE = np.where(
    np.searchsorted(_POISSON_THRESHOLDS, _BUCKET_START, side="right")
    == np.searchsorted(_POISSON_THRESHOLDS, _BUCKET_START + 0xFFFF, side="right"),
    np.searchsorted(_POISSON_THRESHOLDS, _BUCKET_START, side="right"), _UNDECIDED).astype(np.uint8)


def poisson1_weights(rng: np.random.Generator, rows: int, replicates: int) -> np.ndarray:
    """A (rows, replicates) uint8 matrix of independent Poisson(1) draws."""
    high = rng.integers(0, 2**16, size=(rows, replicates), dtype=np.uint16)
    weights = _POISSON_TABLE[high]
    undecided = np.flatnonzero(weights == _UNDECIDED)
    low = rng.integers(0, 2**16, size=len(undecided), dtype=np.uint16)
    uniform = (high.ravel()[undecided].astype(np.uint32) << 16) | low
    weights.ravel()[undecided] = np.searchsorted(_POISSON_THRESHOLDS, uniform, side="right")
    return weights


@dataclass(frozen=True)
class Layout:
    """Where each arm's sums live in the rows of the sums matrix.

    Per arm, in order: user count, sum of each column, then for each quantile a histogram of
    `bins + 2` cells (below the window, the bins, above the window).
    """

    arms: int
    columns: int
    edges: np.ndarray  # (arms, quantiles, bins + 1) bin edges of the quantile variable

    @property
    def quantiles(self) -> int:
        return self.edges.shape[1]

    @property
    def cells(self) -> int:
        return self.edges.shape[2] + 1

    @property
    def per_arm(self) -> int:
        return 1 + self.columns + self.quantiles * self.cells

    @property
    def rows(self) -> int:
        return self.arms * self.per_arm


@dataclass
class PartialSums:
    """What a set of users adds up to: replicate sums and the per-arm Gram matrices."""

    sums: np.ndarray  # (layout.rows, B + 1)
    gram: np.ndarray  # (arms, 1 + columns, 1 + columns): sum over the arm's users of v v^T,
                      # v = [1, columns]

    @classmethod
    def zeros(cls, layout: Layout, replicates: int) -> PartialSums:
        return cls(np.zeros((layout.rows, replicates + 1)),
                   np.zeros((layout.arms, 1 + layout.columns, 1 + layout.columns)))

    def add(self, other: PartialSums) -> None:
        self.sums += other.sums
        self.gram += other.gram


def window_probabilities(q: float, users: int, bins: int, window_sd: float) -> np.ndarray:
    """Probabilities of the bin edges around quantile q for an arm of `users` users."""
    half = window_sd * np.sqrt(q * (1 - q) / max(users, 1))
    return np.linspace(max(0.0, q - half), min(1.0, q + half), bins + 1)


def histogram_cells(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Cell of each value: 0 below edges[0], i for edges[i-1] <= v < edges[i], the last bin
    closed at edges[-1] (so a window collapsed onto one value still holds it), then above."""
    cells = np.searchsorted(edges, values, side="right")
    return np.where(values == edges[-1], len(edges) - 1, cells)


def moment_matrix(arm: np.ndarray, values: np.ndarray, arms: int) -> np.ndarray:
    """Dense (users, arms * (1 + columns)): per arm, its users' indicator then their values."""
    per_arm = np.concatenate([np.ones((len(arm), 1)), values], axis=1)
    matrix = np.zeros((len(arm), arms, per_arm.shape[1]))
    matrix[np.arange(len(arm)), arm] = per_arm
    return matrix.reshape(len(arm), -1)


def cell_matrix(arm: np.ndarray, qvalue: np.ndarray, layout: Layout) -> sparse.csr_matrix:
    """Sparse (layout.rows, users) one-hot of each user's histogram cell, per quantile."""
    rows = []
    for q in range(layout.quantiles):
        cells = np.empty(len(arm), dtype=np.int64)
        for a in range(layout.arms):
            in_arm = arm == a
            cells[in_arm] = histogram_cells(qvalue[in_arm], layout.edges[a, q])
        rows.append(arm * layout.per_arm + 1 + layout.columns + q * layout.cells + cells)
    rows = np.concatenate(rows)
    columns = np.tile(np.arange(len(arm)), layout.quantiles)
    return sparse.csr_matrix((np.ones(len(rows)), (rows, columns)), shape=(layout.rows, len(arm)))


def accumulate(partial: PartialSums, rng: np.random.Generator, arm: np.ndarray,
               values: np.ndarray, qvalue: np.ndarray, layout: Layout, chunk_rows: int) -> None:
    """Add the contribution of these users (in this order) to `partial`.
    The products are small: one BLAS thread, so Spark's parallel workers do not fight."""
    with threadpool_limits(limits=1, user_api="blas"):
        _accumulate(partial, rng, arm, values, qvalue, layout, chunk_rows)


def _accumulate(partial, rng, arm, values, qvalue, layout, chunk_rows) -> None:
    replicates = partial.sums.shape[1] - 1
    moment_rows = (np.arange(layout.arms)[:, None] * layout.per_arm
                   + np.arange(1 + layout.columns)).ravel()
    for start in range(0, len(arm), chunk_rows):
        chunk = slice(start, min(start + chunk_rows, len(arm)))
        users = chunk.stop - chunk.start
        weights = np.empty((users, replicates + 1))
        weights[:, 0] = 1.0
        weights[:, 1:] = poisson1_weights(rng, users, replicates)
        moments = moment_matrix(arm[chunk], values[chunk], layout.arms)
        partial.sums[moment_rows] += moments.T @ weights
        if layout.quantiles:
            partial.sums += cell_matrix(arm[chunk], qvalue[chunk], layout) @ weights
        # Gram matrices of [1, columns] per arm (the sample only): a user's row of `moments`
        # is zero outside its arm, so one product holds every arm's block on its diagonal.
        per_arm = moments.reshape(users, layout.arms, 1 + layout.columns)
        partial.gram += np.einsum("uai,uaj->aij", per_arm, per_arm)


def partition_rng(seed: int, partition: int) -> np.random.Generator:
    """The weight stream of one partition: fixed by the seed and the partition number."""
    return np.random.default_rng([seed, partition])


def numpy_replicate_sums(users: pd.DataFrame, columns: list[str], quantile_variable: str,
                         layout: Layout, replicates: int, seed: int,
                         chunk_rows: int) -> PartialSums:
    """All users as one partition, ordered by user id like a Spark partition is."""
    users = users.sort_values("user", kind="stable")
    partial = PartialSums.zeros(layout, replicates)
    accumulate(partial, partition_rng(seed, 0), users["arm"].to_numpy(),
               users[columns].to_numpy(dtype=np.float64),
               users[quantile_variable].to_numpy(dtype=np.float64), layout, chunk_rows)
    return partial


def spark_replicate_sums(users, columns: list[str], quantile_variable: str, layout: Layout,
                         replicates: int, seed: int, partitions: int,
                         chunk_rows: int) -> PartialSums:
    """The same sums computed in Spark: users hashed into `partitions` partitions, each
    ordered by user id, each drawing its weights from `partition_rng(seed, partition)` inside
    `mapInPandas` and emitting one partial-sum row; the driver adds the rows in partition
    order, so the result does not depend on task scheduling."""
    from pyspark import TaskContext

    selected = list(dict.fromkeys(["user", "arm", *columns, quantile_variable]))

    def partial_sums(batches):
        partition = TaskContext.get().partitionId()
        rng = partition_rng(seed, partition)
        partial = PartialSums.zeros(layout, replicates)
        for batch in batches:
            accumulate(partial, rng, batch["arm"].to_numpy(),
                       batch[columns].to_numpy(dtype=np.float64),
                       batch[quantile_variable].to_numpy(dtype=np.float64), layout, chunk_rows)
        yield pd.DataFrame({"partition": [partition], "sums": [partial.sums.ravel()],
                            "gram": [partial.gram.ravel()]})

    parts = (users.select(*selected)
             .repartition(partitions, "user")
             .sortWithinPartitions("user")
             .mapInPandas(partial_sums, "partition int, sums array<double>, gram array<double>")
             .toPandas()
             .sort_values("partition"))
    total = PartialSums.zeros(layout, replicates)
    for sums, gram in zip(parts["sums"], parts["gram"]):
        total.add(PartialSums(np.asarray(sums).reshape(total.sums.shape),
                              np.asarray(gram).reshape(total.gram.shape)))
    return total


@dataclass(frozen=True)
class ArmReplicates:
    """Per-arm statistics read off the sums; index [..., 0] is the sample, [..., 1:] replicates."""

    users: np.ndarray      # (arms,) users per arm in the sample
    means: np.ndarray      # (arms, columns, B + 1)
    gram: np.ndarray       # (arms, 1 + columns, 1 + columns), see PartialSums
    quantiles: np.ndarray  # (arms, quantiles, B) replicate quantiles
    escapes: int           # replicate quantiles that fell outside their window (should be 0)

    def covariance(self, arm: int, i: int, j: int) -> float:
        """Sample covariance (ddof 1) of columns i and j among the arm's users."""
        g = self.gram[arm]
        n = g[0, 0]
        return float((g[1 + i, 1 + j] - g[0, 1 + i] * g[0, 1 + j] / n) / (n - 1))


def arm_replicates(partial: PartialSums, layout: Layout, levels: list[float]) -> ArmReplicates:
    per_arm = partial.sums.reshape(layout.arms, layout.per_arm, -1)
    weight = per_arm[:, 0, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        means = per_arm[:, 1:1 + layout.columns, :] / weight[:, None, :]
    quantiles = np.empty((layout.arms, layout.quantiles, partial.sums.shape[1] - 1))
    escapes = 0
    for a in range(layout.arms):
        for q, level in enumerate(levels):
            start = 1 + layout.columns + q * layout.cells
            histogram = per_arm[a, start:start + layout.cells, 1:]
            quantiles[a, q], outside = histogram_quantile(histogram, layout.edges[a, q], level)
            escapes += outside
    return ArmReplicates(users=weight[:, 0].round().astype(np.int64), means=means,
                         gram=partial.gram, quantiles=quantiles, escapes=escapes)


def histogram_quantile(histogram: np.ndarray, edges: np.ndarray,
                       level: float) -> tuple[np.ndarray, int]:
    """The level-quantile of each replicate (column) of a (cells, B) weighted histogram,
    interpolated linearly inside the bin where the cumulative weight crosses level * total.
    Returns the quantiles and how many fell outside the window (clamped to its ends)."""
    cumulative = np.cumsum(histogram, axis=0)
    target = level * cumulative[-1]
    cell = (cumulative < target).sum(axis=0)  # first cell whose cumulative weight reaches target
    outside = (cell == 0) | (cell == len(edges))
    inside_cell = np.clip(cell, 1, len(edges) - 1)
    columns = np.arange(histogram.shape[1])
    before = cumulative[inside_cell - 1, columns]
    in_bin = histogram[inside_cell, columns]
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(in_bin > 0, (target - before) / in_bin, 0.0)
    low, high = edges[inside_cell - 1], edges[inside_cell]
    value = low + np.clip(fraction, 0.0, 1.0) * (high - low)
    value = np.where(cell == 0, edges[0], np.where(cell == len(edges), edges[-1], value))
    return value, int(outside.sum())
