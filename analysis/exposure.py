"""Days since exposure: the primary metric's effect on each day since a user's first exposure.

A user's exposure starts with their first event in the experiment; day d since exposure is
the 24 hours from d to d + 1 days after it. Per day d, each analysed user with a closed session
on that day has the day's value of the session metric (analysis/user_metrics.py's definitions
over that day's events), and each treatment's relative effect on it comes with a Poisson-
bootstrap interval over those users (analysis/compare.py's numpy engine, the report's own
estimator). A novelty effect fades over the days, a learning effect grows.

Why per day since exposure, not per calendar day: users start on different days, so a calendar
day mixes users on their first day with users on their fifth. What it is not: day d's users are
those who came back on day d, and a treatment that changes who comes back changes that
population, so the curve mixes the effect per session with who returns (the retention metrics
measure the latter). Spark sums the events per (user, day); the driver, which receives one row
per (user, active day), bootstraps each day.
"""
from __future__ import annotations

import dataclasses

import pandas as pd

from analysis.compare import Settings, compare_numpy
from analysis.user_metrics import DAY_MS, METRICS, session_metrics, user_sums


def user_days(analysed, metric: str) -> pd.DataFrame:
    """Spark: per analysed user and day since their first event in the experiment, `metric`
    over that day's events (analysis.user_metrics.analysed_events); users without a closed
    session that day are left out. A pandas frame `user`, `arm`, `day`, `value`."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    exposed = analysed.withColumn("first", F.min("timestamp").over(Window.partitionBy("user")))
    day = F.floor((F.col("timestamp") - F.col("first")) / DAY_MS).alias("day")
    sums = exposed.groupBy("user", "arm", day).agg(*user_sums(F.col("closes")))
    metrics = dict(zip(METRICS, session_metrics(F.col("sessions"), F.col("lines"),
                                                F.col("time_nano"), F.col("latency_nano"))))
    return (sums.where(F.col("sessions") > 0)
            .select("user", "arm", F.col("day").cast("int"), metrics[metric].alias("value"))
            .toPandas())


def effects_by_day(frame: pd.DataFrame, arm_names: list[str], metric: str,
                   settings: Settings) -> list[dict]:
    """Per day since exposure (in order), every treatment's relative effect on `metric` with
    its bootstrap interval; a day where an arm has fewer than 2 users is left out."""
    plain = dataclasses.replace(settings, metrics={metric: settings.metrics[metric]},
                                quantiles={}, covariates={}, ratios={}, estimands={})
    days = []
    # users in a fixed order: the bootstrap's weights follow the rows, and Spark's do not
    frame = frame.sort_values(["day", "user"], kind="stable")
    for day, users in frame.groupby("day", sort=True):
        counts = users["arm"].value_counts()
        if any(counts.get(arm, 0) < 2 for arm in range(len(arm_names))):
            continue
        table = users.rename(columns={"value": metric})
        comparison = compare_numpy(table, arm_names, plain)
        days.append({"day": int(day), "users": {name: int(counts.get(arm, 0))
                                                for arm, name in enumerate(arm_names)},
                     "treatments": {row.treatment: {
                         "control": row.control_value, "treatment": row.treatment_value,
                         "effect": row.effect, "lower": row.lower, "upper": row.upper,
                         "p": row.p} for row in comparison.rows}})
    return days


def exposure_curve(analysed, arm_names: list[str], metric: str, settings: Settings,
                   period_days: int) -> dict | None:
    """The `exposure` section of results.json: None on one-day logs, `skipped` for a metric
    that has no per-day value."""
    if period_days < 2:
        return None
    if metric not in METRICS or metric not in settings.metrics:
        return {"metric": metric, "skipped": f"{metric} has no value per day (session metrics: "
                                             f"{', '.join(METRICS)})"}
    frame = user_days(analysed, metric)
    return {"metric": metric, "alpha": settings.alpha, "replicates": settings.replicates,
            "days": effects_by_day(frame, arm_names, metric, settings)}
