"""The design's per-user metrics computed with pandas from an event frame: the reference the
analysis tests hold the Spark job and the statistics to."""
from __future__ import annotations

import pandas as pd

from dataclient.synthetic_logs import DAY_MS


def per_user_metrics(events: pd.DataFrame, arms: list[str],
                     experiment: str = "EXP") -> pd.DataFrame:
    """The design's per-user metrics computed with pandas (the reference for the Spark job),
    with `arm` the index of the user's arm in `arms` (the numpy engine's input), the totals of
    the ratio metrics, and the retention metrics when the events span 2 or more UTC days."""
    day = events["timestamp"] // DAY_MS
    frame = events.assign(arm_name=[e[experiment] for e in events["experiments"]],
                          last=events["message"] == "last", day=day)
    grouped = frame.groupby("user")
    table = pd.DataFrame({
        "arm_name": grouped["arm_name"].first(),
        "sessions": grouped["last"].sum(),
        "events": grouped.size(),
        "time": grouped["time"].sum(),
        "latency": grouped["latency"].sum(),
        "active_days": grouped["day"].nunique(),
        "last_day": grouped["day"].max(),
    })
    metrics = pd.DataFrame({
        "arm_name": table["arm_name"],
        "arm": table["arm_name"].map({name: i for i, name in enumerate(arms)}),
        "sessions": table["sessions"].astype(float),
        "mean_session_time": table["time"] / table["sessions"],
        "mean_session_length": table["events"] / table["sessions"],
        "mean_request_time": table["latency"] / table["events"],
        "time_total": table["time"],
        "events": table["events"].astype(float),
    })
    period = day.max() - day.min() + 1
    if period >= 2:
        metrics["active_days_share"] = table["active_days"] / period
        metrics["churned"] = (table["last_day"] < day.max()).astype(float)
    return metrics.reset_index()
