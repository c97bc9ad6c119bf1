"""Event logs -> one row per user of an experiment, with the design's per-user metrics.

- sessions: count of "last" events
- mean_session_time: sum of `time` over the user's events / sessions. This is the log view:
  the first request of a session carries the user's own first track with time 1.0, so it is
  1 + the simulator's session_time.
- mean_session_length: events / sessions
- mean_request_time: sum of `latency` / events

A user's arm is `experiments[NAME]` of their events. Lines that break the event-log contract
(not JSON, a missing or mistyped field, an unknown message) are counted and dropped. Sums of
`time` and `latency` are taken in fixed point (integer nano-units), so they do not depend on the
order Spark adds them in and the same logs always give the same table.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from service.events import MESSAGES, REQUIRED_FIELDS, spark_schema

from analysis.errors import AnalysisError

METRICS = ("sessions", "mean_session_time", "mean_session_length", "mean_request_time")
CORRUPT = "_corrupt_record"
NANO = 1_000_000_000

# Groups of the per-user summary besides the arms themselves.
INVALID, OUTSIDE, CONFLICT = "<invalid lines>", "<not in experiment>", "<several arms>"


def read_events(spark, path: str):
    """Events under `path` (folder, file or glob; hdfs://, file:// or local) with the contract
    schema plus a column holding each unparsable line."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import types as T

    schema = spark_schema().add(T.StructField(CORRUPT, T.StringType(), True))
    reader = (spark.read.schema(schema).option("mode", "PERMISSIVE")
              .option("columnNameOfCorruptRecord", CORRUPT))
    if "://" not in path:  # a plain path is local, whatever Hadoop's default file system is
        path = f"file://{Path(path).absolute()}"
    if not any(ch in path for ch in "*?["):
        reader = reader.option("recursiveFileLookup", "true")  # log folders nest by date
    try:
        return reader.json(path)
    except AnalysisException as error:
        raise AnalysisError(f"cannot read events at {path!r}: {error.getMessage()}. Pass --events "
                            f"a folder or glob of JSON-lines logs (hdfs://, file:// or a local "
                            f"path).") from None


@dataclass(frozen=True)
class UserTable:
    """One row per (user, arm) with counts and fixed-point sums: arm null for a user's events
    outside the experiment, user (and arm) null for the row holding the invalid lines, and
    `several_arms` true for users whose events name more than one arm. `frame` reads a cached
    aggregate: call `unpersist()` when done."""

    frame: object
    cached: object

    def unpersist(self) -> None:
        self.cached.unpersist()


def per_user(events, experiment: str) -> UserTable:
    """Aggregate the events per (user, arm). The arm is a grouping key rather than an
    aggregate on purpose: Spark's hash aggregation cannot keep strings in its buffers and
    would sort every event instead."""
    from pyspark.sql import functions as F

    valid = F.col(CORRUPT).isNull() & F.col("message").isin(*MESSAGES)
    for field in REQUIRED_FIELDS:
        if field != "recommendation":
            valid = valid & F.col(field).isNotNull()
    is_last = valid & (F.col("message") == "last")
    by_arm = (events.groupBy(F.when(valid, F.col("user")).alias("user"),
                             F.when(valid, F.col("experiments").getItem(experiment)).alias("arm"))
              .agg(F.count(F.lit(1)).alias("lines"),
                   F.count(F.when(is_last, 1)).alias("sessions"),
                   F.sum(F.floor(F.col("time") * NANO + 0.5)).alias("time_nano"),
                   F.sum(F.floor(F.col("latency") * NANO + 0.5)).alias("latency_nano"),
                   F.min("timestamp").alias("first_ts"), F.max("timestamp").alias("last_ts"),
                   F.max(F.when(is_last, F.col("timestamp"))).alias("last_close_ts"))
              .cache())
    several = (by_arm.where(F.col("user").isNotNull() & F.col("arm").isNotNull())
               .groupBy("user").count().where(F.col("count") > 1)
               .select("user", F.lit(True).alias("several_arms")))
    if several.isEmpty():  # the usual case: no join needed
        frame = by_arm.withColumn("several_arms", F.lit(False))
    else:
        frame = by_arm.join(several, "user", "left").fillna(False, ["several_arms"])
    return UserTable(frame=frame, cached=by_arm)


@dataclass(frozen=True)
class GroupSummary:
    users: int           # users (for INVALID: invalid lines; for OUTSIDE: users with events
                         # that do not name the experiment)
    closed_users: int    # users with at least one "last"
    events: int
    sessions: int
    open_users: int      # users whose events go on after their last "last"
    first_ts: int | None
    last_ts: int | None


def summarize(users: UserTable) -> dict[str, GroupSummary]:
    """Per arm (and per INVALID / OUTSIDE / CONFLICT group) counts, in one small Spark job."""
    from pyspark.sql import functions as F

    group = (F.when(F.col("user").isNull(), INVALID)
             .when(F.col("arm").isNull(), OUTSIDE)
             .when(F.col("several_arms"), CONFLICT)
             .otherwise(F.col("arm")))
    rows = (users.frame.groupBy(group.alias("group"))
            .agg(F.count(F.lit(1)).alias("users"),  # rows: one per user, but see CONFLICT
                 F.count(F.when(F.col("sessions") > 0, 1)).alias("closed_users"),
                 F.sum("lines").alias("events"), F.sum("sessions").alias("sessions"),
                 F.count(F.when(F.col("last_ts") > F.col("last_close_ts"), 1)).alias("open_users"),
                 F.min("first_ts").alias("first_ts"), F.max("last_ts").alias("last_ts"))
            .collect())
    summary = {row["group"]: GroupSummary(*[row[k] for k in GroupSummary.__dataclass_fields__])
               for row in rows}
    if CONFLICT in summary:  # a row per (user, arm): count the users
        users_in_several = (users.frame.where(F.col("several_arms")).select("user")
                            .distinct().count())
        summary[CONFLICT] = dataclasses.replace(summary[CONFLICT], users=users_in_several,
                                                closed_users=0, open_users=0)
    if INVALID in summary:  # its one "user" row holds every invalid line
        s = summary[INVALID]
        summary[INVALID] = GroupSummary(s.events, 0, s.events, 0, 0, None, None)
    return summary


def arm_names(summary: dict[str, GroupSummary]) -> list[str]:
    return sorted(g for g in summary if g not in (INVALID, OUTSIDE, CONFLICT))


def seen_experiments(events, limit: int = 50) -> list[str]:
    """Experiment names present in the logs (for the error message of an unknown name)."""
    from pyspark.sql import functions as F

    names = (events.select(F.explode(F.map_keys("experiments")).alias("name"))
             .where(F.col("name").isNotNull()).distinct().limit(limit).collect())
    return sorted(row["name"] for row in names)


def metric_table(users: UserTable, arms: list[str]):
    """Users of `arms` who closed a session: `user`, `arm` (index into `arms`), the metrics."""
    from pyspark.sql import functions as F

    arm_index = F.create_map(*[F.lit(x) for index, name in enumerate(arms)
                               for x in (name, index)])[F.col("arm")]
    return (users.frame.where(F.col("user").isNotNull() & ~F.col("several_arms")
                              & arm_index.isNotNull() & (F.col("sessions") > 0))
            .select("user", arm_index.cast("int").alias("arm"),
                    F.col("sessions").cast("double").alias("sessions"),
                    (F.col("time_nano") / NANO / F.col("sessions")).alias("mean_session_time"),
                    (F.col("lines") / F.col("sessions")).alias("mean_session_length"),
                    (F.col("latency_nano") / NANO / F.col("lines")).alias("mean_request_time")))


def check_arms(summary: dict[str, GroupSummary], experiment: str, control: str,
               treatments: list[str] | None, events) -> list[str]:
    """The arms to compare, control first, or an AnalysisError saying what is wrong."""
    valid_events = sum(s.events for g, s in summary.items() if g != INVALID)
    invalid = summary[INVALID].users if INVALID in summary else 0
    if valid_events == 0:
        raise AnalysisError(f"no valid events found ({invalid} invalid lines): check that "
                            f"--events points at JSON-lines logs of the event-log contract")
    if sum(s.sessions for g, s in summary.items() if g != INVALID) == 0:
        raise AnalysisError(f"no \"last\" events among {valid_events} valid events: sessions "
                            f"cannot be counted. Analyse logs that include closed sessions.")
    arms = arm_names(summary)
    if not arms:
        raise AnalysisError(f"unknown experiment {experiment!r}: no event carries it. "
                            f"Experiments in the logs: {seen_experiments(events) or 'none'}")
    if control not in arms:
        raise AnalysisError(f"control arm {control!r} not found in experiment {experiment!r}; "
                            f"arms in the logs: {arms}")
    chosen = treatments or [a for a in arms if a != control]
    missing = [t for t in chosen if t not in arms]
    if missing:
        raise AnalysisError(f"treatment arm(s) {missing} not found in experiment "
                            f"{experiment!r}; arms in the logs: {arms}")
    if not chosen:
        raise AnalysisError(f"experiment {experiment!r} has only the control arm {control!r} "
                            f"in the logs: nothing to compare")
    if control in chosen or len(set(chosen)) != len(chosen):
        raise AnalysisError(f"treatments {chosen} repeat an arm or include the control")
    for arm in [control, *chosen]:
        closed = summary[arm].closed_users
        if closed < 2:
            raise AnalysisError(f"arm {arm!r} has {closed} user(s) with a closed session "
                                f"(of {summary[arm].users} in the logs); at least 2 are needed "
                                f"to compare it")
    return [control, *chosen]
