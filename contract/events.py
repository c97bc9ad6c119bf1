"""The event-log contract: one JSON object per answered request (see docs/DESIGN.md).

This is the single definition of the schema. The service's log writer builds events with
`make_event`; the Spark jobs and the analysis read logs with `spark_schema()` and validate
with `REQUIRED_FIELDS`.
"""
from __future__ import annotations

from typing import Any

# field -> (python type(s) accepted, nullable). Order is the order written to the log.
FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "message": ((str,), False),         # "next" or "last"
    "timestamp": ((int,), False),       # ms since the epoch, when the request was answered
    "user": ((int,), False),
    "track": ((int,), False),           # the track the user just listened to
    "time": ((float, int), False),      # fraction of that track listened, 0..1
    "latency": ((float, int), False),   # seconds the service spent answering
    "recommendation": ((int,), True),   # null for "last"
    "experiments": ((dict,), False),    # experiment name -> arm name
}
REQUIRED_FIELDS = tuple(FIELDS)
# Extra fields (docs/DESIGN.md allows them): checked when present, null when absent.
# `position`: index of the track in the user's open session (0 = the session's first request),
# on "next" events. Timestamps are milliseconds and a user's requests can come faster than that;
# the position keeps such events in the order they happened.
# `team`: on a "next" event of an interleaved session, which of the two interleaved
# recommenders ("a" or "b") answered (service/interleaving.py).
# `client_latency`: seconds the client waited, by its own clock, for the same user's previous
# request (sent in the X-Client-Latency header of the next one; sim/remote.py measures it). The
# request time a user sees, for the latency guardrail (analysis/latency.py).
OPTIONAL_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "position": ((int,), True),
    "team": ((str,), True),
    "client_latency": ((float, int), True),
}
TEAMS = ("a", "b")
MESSAGES = ("next", "last")


def make_event(message: str, timestamp: int, user: int, track: int, time: float,
               latency: float, recommendation: int | None,
               experiments: dict[str, str], position: int | None = None,
               team: str | None = None,
               client_latency: float | None = None) -> dict[str, Any]:
    """One log record, fields in contract order, then the extra fields that are set."""
    event = {"message": message, "timestamp": timestamp, "user": user, "track": track,
             "time": time, "latency": latency, "recommendation": recommendation,
             "experiments": experiments}
    if position is not None:
        event["position"] = position
    if team is not None:
        event["team"] = team
    if client_latency is not None:
        event["client_latency"] = client_latency
    return event


def validation_error(record: Any) -> str | None:
    """Why `record` (a parsed JSON value) breaks the contract, or None when it is valid."""
    if not isinstance(record, dict):
        return "not a JSON object"
    for name, (types, nullable) in (FIELDS | OPTIONAL_FIELDS).items():
        if name not in record:
            if name in OPTIONAL_FIELDS:
                continue
            return f"missing field {name!r}"
        value = record[name]
        if value is None:
            if nullable:
                continue
            return f"field {name!r} is null"
        # bool is an int subclass in Python; a boolean id or time is a type error.
        if isinstance(value, bool) or not isinstance(value, types):
            return f"field {name!r} has type {type(value).__name__}"
    if record["message"] not in MESSAGES:
        return f"message {record['message']!r} is not one of {MESSAGES}"
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in record["experiments"].items()):
        return "experiments must map strings to strings"
    if record.get("team") is not None and record["team"] not in TEAMS:
        return f"team {record['team']!r} is not one of {TEAMS}"
    return None


def spark_schema():
    """The contract as a Spark StructType (pyspark imported lazily: the service never needs it)."""
    from pyspark.sql import types as T

    return T.StructType([
        T.StructField("message", T.StringType(), False),
        T.StructField("timestamp", T.LongType(), False),
        T.StructField("user", T.LongType(), False),
        T.StructField("track", T.LongType(), False),
        T.StructField("time", T.DoubleType(), False),
        T.StructField("latency", T.DoubleType(), False),
        T.StructField("recommendation", T.LongType(), True),
        T.StructField("experiments", T.MapType(T.StringType(), T.StringType()), False),
        T.StructField("position", T.LongType(), True),
        T.StructField("team", T.StringType(), True),
        T.StructField("client_latency", T.DoubleType(), True),
    ])
