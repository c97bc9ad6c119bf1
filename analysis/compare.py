"""Compare arms from a per-user table: the statistical core, with a numpy and a Spark engine.

Input: one row per user with `user`, `arm` (0 = control, 1.. = treatments) and the per-user
metrics. `compare_numpy` takes a pandas DataFrame and is what the calibration tests drive many
times; `compare_spark` takes a Spark DataFrame and is what the job runs. Both share every step
but where the replicate sums and the sample quantiles are computed, and with one Spark
partition they draw identical weights (tests/test_analysis_job.py checks it).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.bootstrap import (Layout, arm_replicates, numpy_replicate_sums,
                                spark_replicate_sums, window_probabilities)
from analysis.effects import EffectRow, effect_rows


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


@dataclass(frozen=True)
class Comparison:
    rows: list[EffectRow]
    users: dict[str, int]  # users per arm
    quantile_escapes: int  # replicate quantiles outside their window (0 unless bins too narrow)


def _probabilities(settings: Settings, users: int) -> np.ndarray:
    """The sample quantiles then each quantile's window edges, as one list of probabilities."""
    levels = list(settings.quantiles.values())
    windows = [window_probabilities(q, users, settings.bins, settings.window_sd) for q in levels]
    return np.concatenate([np.array(levels, dtype=float), *windows])


def _finish(sums: np.ndarray, layout: Layout, points: np.ndarray, arm_names: list[str],
            settings: Settings) -> Comparison:
    replicates = arm_replicates(sums, layout, list(settings.quantiles.values()))
    rows = effect_rows(replicates, arm_names, list(settings.metrics), settings.metrics,
                       list(settings.quantiles), points, settings.quantile_direction,
                       settings.alpha)
    users = {name: int(n) for name, n in zip(arm_names, replicates.users)}
    return Comparison(rows=rows, users=users, quantile_escapes=replicates.escapes)


def _layout(quantile_values: np.ndarray, settings: Settings) -> tuple[Layout, np.ndarray]:
    """Split each arm's requested quantile values into point estimates and window edges."""
    q = len(settings.quantiles)
    points = quantile_values[:, :q]
    edges = quantile_values[:, q:].reshape(len(quantile_values), q, settings.bins + 1)
    return Layout(arms=len(quantile_values), metrics=len(settings.metrics), edges=edges), points


def compare_numpy(users: pd.DataFrame, arm_names: list[str], settings: Settings) -> Comparison:
    values = []
    for arm in range(len(arm_names)):
        x = users.loc[users["arm"] == arm, settings.quantile_variable].to_numpy(dtype=float)
        values.append(np.quantile(x, _probabilities(settings, len(x))))
    layout, points = _layout(np.array(values), settings)
    sums = numpy_replicate_sums(users, list(settings.metrics), settings.quantile_variable,
                                layout, settings.replicates, settings.seed, settings.chunk_rows)
    return _finish(sums, layout, points, arm_names, settings)


def compare_spark(users, arm_names: list[str], settings: Settings) -> Comparison:
    from pyspark.sql import functions as F

    counts = dict(users.groupBy("arm").count().collect())
    values = []
    for arm in range(len(arm_names)):
        probabilities = [float(p) for p in _probabilities(settings, counts.get(arm, 0))]
        # Spark's exact percentile interpolates like numpy's default ("linear").
        row = (users.filter(F.col("arm") == arm)
               .agg(F.percentile(settings.quantile_variable, probabilities)).first())
        values.append(np.array(row[0], dtype=float))
    layout, points = _layout(np.array(values), settings)
    sums = spark_replicate_sums(users, list(settings.metrics), settings.quantile_variable,
                                layout, settings.replicates, settings.seed, settings.partitions,
                                settings.chunk_rows)
    return _finish(sums, layout, points, arm_names, settings)
