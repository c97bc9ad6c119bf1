"""The experiment as it stood at each look: after each tenth of its sessions in time order, the
per-user value of a session metric over each analysed user's events up to then, summarized
per arm (users, mean, variance), for the always-valid intervals of analysis/sequential.py.

A look's cut-off is the time by which that share of the analysed users' sessions had closed
(exact percentiles of the "last" events' timestamps); the last look takes every event, so it
sees the same per-user values as the full analysis. Per-user values at a look are summed over
users as decimals, so the same logs always give the same moments.
"""
from __future__ import annotations

from decimal import Decimal

from analysis.sequential import LOOKS, ArmMoments, monitor
from analysis.user_metrics import METRICS, session_metrics, user_sums

EXACT_MOMENT = "decimal(38,18)"


def look_moments(analysed, arms: list[str], metric: str,
                 looks: int) -> tuple[list[int], list[list[ArmMoments]]]:
    """(sessions closed by each look, per look the moments of `metric` per arm) over the
    analysed users' events (analysis.user_metrics.analysed_events: `arm` indexes `arms`)."""
    from pyspark.sql import functions as F

    if metric not in METRICS:
        raise ValueError(f"looks cover the session metrics {METRICS}, not {metric!r}")
    is_last = F.col("closes")
    levels = [k / looks for k in range(1, looks)]
    cutoffs = analysed.where(is_last).agg(F.percentile("timestamp", levels)).first()[0]
    # the look an event first counts in: the number of cut-offs before it
    look = sum((F.col("timestamp") > F.lit(c)).cast("int") for c in cutoffs) + F.lit(0)
    per_look = (analysed.groupBy("user", "arm", look.alias("first_look"))
                .agg(*user_sums(is_last))
                .withColumn("look", F.explode(F.sequence("first_look", F.lit(looks - 1))))
                .groupBy("user", "arm", "look")
                .agg(*[F.sum(c).alias(c) for c in ("lines", "sessions", "time_nano",
                                                    "latency_nano")]))
    per_look = per_look.where(F.col("sessions") > 0)  # users with a closed session by then
    value = dict(zip(METRICS, session_metrics(F.col("sessions"), F.col("lines"),
                                              F.col("time_nano"), F.col("latency_nano"))))[metric]
    rows = (per_look.select("arm", "look", "sessions", value.alias("v"))
            .groupBy("look", "arm")
            .agg(F.count(F.lit(1)).alias("users"), F.sum("sessions").alias("sessions"),
                 F.sum(F.col("v").cast(EXACT_MOMENT)).alias("s1"),
                 F.sum((F.col("v") * F.col("v")).cast(EXACT_MOMENT)).alias("s2"))
            .collect())
    cells = {(row["look"], row["arm"]): row for row in rows}
    sessions = [sum(cells[k, a]["sessions"] or 0 for a in range(len(arms)) if (k, a) in cells)
                for k in range(looks)]
    return sessions, [[_moments(cells.get((k, a))) for a in range(len(arms))]
                      for k in range(looks)]


def _moments(row) -> ArmMoments:
    if row is None or not row["users"]:
        return ArmMoments(0, float("nan"), float("nan"))
    n, s1, s2 = row["users"], Decimal(row["s1"]), Decimal(row["s2"])
    variance = (s2 - s1 * s1 / n) / (n - 1) if n > 1 else Decimal("NaN")
    return ArmMoments(n, float(s1 / n), float(variance))


def monitor_primary(analysed, arms: list[str], metric: str, direction: str,
                    family_alpha: float) -> dict:
    """Always-valid monitoring of the primary metric for every treatment (results.json's
    `sequential`), or why it is left out."""
    if metric not in METRICS:
        return {"metric": metric, "skipped": f"sequential monitoring covers the session "
                                              f"metrics ({', '.join(METRICS)})"}
    sessions, moments = look_moments(analysed, arms, metric, LOOKS)
    alpha = family_alpha / (len(arms) - 1)
    return {"metric": metric, "looks": LOOKS, "alpha": alpha,
            "treatments": {arms[t]: monitor(arms[t], [(m[0], m[t]) for m in moments], sessions,
                                            alpha, direction).as_dict()
                           for t in range(1, len(arms))}}
