"""Compare arms from a per-user table: the statistical core, with a numpy and a Spark engine.

Input: one row per user with `user`, `arm` (0 = control, 1.. = treatments), the per-user
metrics, and where asked the CUPED covariates (`pre_<metric>`) and the numerators and
denominators of the ratio metrics. `compare_numpy` takes a pandas DataFrame and is what the
calibration tests drive many times; `compare_spark` takes a Spark DataFrame and is what the
job runs. Both share every step but where the replicate sums and the sample quantiles are
computed, and with one Spark partition they draw identical weights (tests/test_analysis_job.py
checks it). Every method (bootstrap, CUPED, delta) comes out of the same pass over the users.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.bootstrap import (Layout, arm_replicates, numpy_replicate_sums,
                                spark_replicate_sums, window_probabilities)
from analysis.effects import Columns, Estimate, estimates


@dataclass(frozen=True)
class Settings:
    """How to compare; conf/analysis.yml holds the defaults (see analysis/config.py)."""

    metrics: dict[str, str]      # per-user metric -> "higher" or "lower" is better
    quantiles: dict[str, float]  # reported name -> level, of `quantile_variable` per user
    quantile_variable: str
    quantile_direction: str
    replicates: int
    seed: int
    alpha: float
    bins: int
    window_sd: float
    partitions: int
    chunk_rows: int
    covariates: dict[str, str] = field(default_factory=dict)  # metric -> covariate column
    ratios: dict[str, tuple[str, str]] = field(default_factory=dict)  # metric -> (num, den)
    estimands: dict[str, str] = field(default_factory=dict)   # name -> what is estimated

    @property
    def columns(self) -> list[str]:
        """The table columns the bootstrap sums, each once."""
        names = [*self.metrics, *self.covariates.values(),
                 *[c for pair in self.ratios.values() for c in pair]]
        return list(dict.fromkeys(names))

    def column_index(self) -> Columns:
        index = {name: i for i, name in enumerate(self.columns)}
        estimands = {
            **{m: f"mean over users of the per-user {m}" for m in self.metrics},
            **{f"{m}:ratio": f"ratio of sums: sum {n} / sum {d} over the arm's users"
               for m, (n, d) in self.ratios.items()},
            **{q: f"{level:g}-quantile over users of the per-user {self.quantile_variable}"
               for q, level in self.quantiles.items()},
            **self.estimands}
        return Columns(metrics={m: index[m] for m in self.metrics},
                       covariates={m: index[c] for m, c in self.covariates.items()},
                       ratios={m: (index[n], index[d]) for m, (n, d) in self.ratios.items()},
                       quantiles=list(self.quantiles), estimands=estimands)


@dataclass(frozen=True)
class Comparison:
    rows: list[Estimate]
    users: dict[str, int]  # users per arm
    quantile_escapes: int  # replicate quantiles outside their window (0 unless bins too narrow)


def _probabilities(settings: Settings, users: int) -> np.ndarray:
    """The sample quantiles then each quantile's window edges, as one list of probabilities."""
    levels = list(settings.quantiles.values())
    windows = [window_probabilities(q, users, settings.bins, settings.window_sd) for q in levels]
    return np.concatenate([np.array(levels, dtype=float), *windows])


def _finish(partial, layout: Layout, points: np.ndarray, arm_names: list[str],
            settings: Settings) -> Comparison:
    replicates = arm_replicates(partial, layout, list(settings.quantiles.values()))
    rows = estimates(replicates, arm_names, settings.column_index(), points, settings.alpha)
    users = {name: int(n) for name, n in zip(arm_names, replicates.users)}
    return Comparison(rows=rows, users=users, quantile_escapes=replicates.escapes)


def _layout(quantile_values: np.ndarray, settings: Settings) -> tuple[Layout, np.ndarray]:
    """Split each arm's requested quantile values into point estimates and window edges."""
    q = len(settings.quantiles)
    points = quantile_values[:, :q]
    edges = quantile_values[:, q:].reshape(len(quantile_values), q, settings.bins + 1)
    return Layout(arms=len(quantile_values), columns=len(settings.columns), edges=edges), points


def _quantile_values(users: pd.DataFrame, arm_names: list[str], settings: Settings):
    values = []
    for arm in range(len(arm_names)):
        x = users.loc[users["arm"] == arm, settings.quantile_variable].to_numpy(dtype=float)
        values.append(np.quantile(x, _probabilities(settings, len(x))))
    return _layout(np.array(values), settings)


def compare_numpy(users: pd.DataFrame, arm_names: list[str], settings: Settings) -> Comparison:
    """All users as one partition (partition 0)."""
    layout, points = _quantile_values(users, arm_names, settings)
    partial = numpy_replicate_sums(users, settings.columns, settings.quantile_variable, layout,
                                   settings.replicates, settings.seed, settings.chunk_rows)
    return _finish(partial, layout, points, arm_names, settings)


def compare_spark(users, arm_names: list[str], settings: Settings) -> Comparison:
    """Users hashed into `settings.partitions` partitions, each with its own weight stream,
    summed in Spark's Python workers. `users` should be cached by the caller: it is read twice."""
    from pyspark.sql import functions as F

    # Every arm's sample quantiles and window edges in one Spark job. Spark's exact percentile
    # interpolates like numpy's default ("linear"); the windows need each arm's user count.
    counts = dict(users.groupBy("arm").count().collect())
    probabilities = {arm: [float(p) for p in _probabilities(settings, counts.get(arm, 0))]
                     for arm in range(len(arm_names))}
    if settings.quantiles:
        aggregates = [F.percentile(F.when(F.col("arm") == arm,
                                          F.col(settings.quantile_variable)),
                                   probabilities[arm]).alias(f"q{arm}")
                      for arm in range(len(arm_names))]
        row = users.agg(*aggregates).first()
        values = np.array([np.array(row[f"q{arm}"], dtype=float)
                           for arm in range(len(arm_names))])
    else:
        values = np.zeros((len(arm_names), 0))
    layout, points = _layout(values, settings)
    partial = spark_replicate_sums(users, settings.columns, settings.quantile_variable, layout,
                                   settings.replicates, settings.seed, settings.partitions,
                                   settings.chunk_rows)
    return _finish(partial, layout, points, arm_names, settings)
