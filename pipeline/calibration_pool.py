"""The pool of a calibration (pipeline/calibrate.py, pipeline/calibrate_interleaving.py): a
simulated day's potential outcomes, every arm serving every user, K simulator draws each
(pipeline/outcomes.py), and the per-user table of one replication drawn from it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.truth import per_user_metrics
from pipeline.outcomes import Outcomes


@dataclass(frozen=True)
class Pool:
    """The potential outcomes and what every replication shares."""

    outcomes: Outcomes
    weights: np.ndarray            # the split's arm probabilities
    covariates: dict[str, np.ndarray]  # pre_<metric> per user (pooled mean where missing)


def covariates_of(outcomes: Outcomes, previous: dict[str, np.ndarray] | None,
                  metrics: list[str]) -> dict[str, np.ndarray]:
    """CUPED's pre_<metric> per user: the previous day's value, else the mean over the users
    who have one (as analysis/user_metrics.py's with_covariates fills it)."""
    if previous is None:
        return {}
    where = np.searchsorted(previous["user"], outcomes.users)
    where = np.minimum(where, len(previous["user"]) - 1)
    found = previous["user"][where] == outcomes.users
    covariates = {}
    for metric in metrics:
        values = np.where(found, previous[metric][where], np.nan)
        fill = np.nanmean(values) if found.any() else 0.0
        covariates[f"pre_{metric}"] = np.where(found, values, fill)
    return covariates


def replication_table(pool: Pool, arm_of_user: np.ndarray, source_arm: np.ndarray,
                      draw: np.ndarray, users: np.ndarray | None = None) -> pd.DataFrame:
    """The per-user table of one replication: each user in arm `arm_of_user`, with the
    outcome of draw `draw` of arm `source_arm` (the same as the arm in an A/B replication,
    the control in an A/A one). `users`: the rows' pool users (default: each user once)."""
    o = pool.outcomes
    users = np.arange(len(o.users)) if users is None else users
    time_total = o.time_total[source_arm, draw, users]
    events = o.events[source_arm, draw, users]
    table = pd.DataFrame({"user": o.users[users], "arm": arm_of_user,
                          **per_user_metrics(o.sessions[users], time_total, events),
                          "time_total": time_total, "events": events.astype(float)})
    for name, values in pool.covariates.items():
        table[name] = values[users]
    return table


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A calibration's table as Markdown lines (the report file's)."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows)]


def print_rich_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """A calibration's table on the terminal (rich; imported here, as only the CLI prints)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for name in header:
        table.add_column(name)
    for row in rows:
        table.add_row(*row)
    Console(width=200).print(table)
