"""Event logs -> one row per user of an experiment, with the design's per-user metrics.

- sessions: count of "last" events
- mean_session_time: sum of `time` over the user's events / sessions. This is the log view:
  the first request of a session carries the user's own first track with time 1.0, so it is
  1 + the simulator's session_time.
- mean_session_length: events / sessions
- mean_request_time: sum of `latency` / events
- when the logs span 2 or more UTC calendar days (the period: first to last day, inclusive,
  of any length):
  active_days_share = days with an event of the user / days of the period, and
  churned = 1 if the user's last event falls on a day before the period's last day.

Ratio-of-sums versions (delta method) need the per-user totals `time_total` and `events`.
The CUPED covariates are the same per-user metrics over a pre-period's logs (`pre_period`).

A user's arm is `experiments[NAME]` of their events. Lines that break the event-log contract
(not JSON, a missing or mistyped field, an unknown message) are counted and dropped. Sums of
`time` and `latency` are taken in fixed point (integer nano-units) and the covariates' pooled
means in decimals, so they do not depend on the order Spark adds them in and the same logs
always give the same table.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from contract.events import MESSAGES, REQUIRED_FIELDS, spark_schema

from analysis.errors import AnalysisError

METRICS = ("sessions", "mean_session_time", "mean_session_length", "mean_request_time")
RETENTION_METRICS = ("active_days_share", "churned")  # multi-day logs only
# Ratio-of-sums version of a per-user metric: (numerator, denominator) per-user totals.
RATIOS = {"mean_session_time": ("time_total", "sessions"),
          "mean_session_length": ("events", "sessions")}
CORRUPT = "_corrupt_record"
NANO = 1_000_000_000
DAY_MS = 86_400_000
EXACT_SUM = "decimal(38,12)"  # per-user values summed over users exactly (26 integer digits)

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


def event_validity():
    """(the event is valid, the event closes a session) as Spark column expressions."""
    from pyspark.sql import functions as F

    valid = F.col(CORRUPT).isNull() & F.col("message").isin(*MESSAGES)
    for field in REQUIRED_FIELDS:
        if field != "recommendation":
            valid = valid & F.col(field).isNotNull()
    return valid, valid & (F.col("message") == "last")


def user_sums(is_last):
    """The per-user aggregates every metric is built from."""
    from pyspark.sql import functions as F

    return [F.count(F.lit(1)).alias("lines"),
            F.count(F.when(is_last, 1)).alias("sessions"),
            F.sum(F.floor(F.col("time") * NANO + 0.5)).alias("time_nano"),
            F.sum(F.floor(F.col("latency") * NANO + 0.5)).alias("latency_nano")]


def per_user(events, experiment: str) -> UserTable:
    """Aggregate the events per (user, arm, UTC day), then per (user, arm): the second step's
    row count is the user's active days, exact over a period of any length. The arm is a
    grouping key rather than an aggregate on purpose: Spark's hash aggregation cannot keep
    strings in its buffers and would sort every event instead."""
    from pyspark.sql import functions as F

    valid, is_last = event_validity()
    by_day = (events.groupBy(F.when(valid, F.col("user")).alias("user"),
                             F.when(valid, F.col("experiments").getItem(experiment)).alias("arm"),
                             F.when(valid, F.floor(F.col("timestamp") / DAY_MS)).alias("day"))
              .agg(*user_sums(is_last),
                   F.min("timestamp").alias("first_ts"), F.max("timestamp").alias("last_ts"),
                   F.max(F.when(is_last, F.col("timestamp"))).alias("last_close_ts")))
    by_arm = (by_day.groupBy("user", "arm")
              .agg(*[F.sum(c).alias(c) for c in ("lines", "sessions", "time_nano",
                                                  "latency_nano")],
                   F.min("first_ts").alias("first_ts"), F.max("last_ts").alias("last_ts"),
                   F.max("last_close_ts").alias("last_close_ts"),
                   F.count("day").alias("active_days"))
              .cache())
    several = (by_arm.where(F.col("user").isNotNull() & F.col("arm").isNotNull())
               .groupBy("user").count().where(F.col("count") > 1)
               .select("user", F.lit(True).alias("several_arms")))
    if several.isEmpty():  # the usual case: no join needed
        frame = by_arm.withColumn("several_arms", F.lit(False))
    else:
        frame = by_arm.join(several, "user", "left").fillna(False, ["several_arms"])
    return UserTable(frame=frame, cached=by_arm)


def session_metrics(sessions, lines, time_nano, latency_nano):
    """The per-user metrics from the per-user sums (Spark columns)."""
    return [sessions.cast("double").alias("sessions"),
            (time_nano / NANO / sessions).alias("mean_session_time"),
            (lines / sessions).alias("mean_session_length"),
            (latency_nano / NANO / lines).alias("mean_request_time")]


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


@dataclass(frozen=True)
class Period:
    """The UTC calendar days the experiment's events span, first to last inclusive."""

    first_day: int  # days since the epoch
    last_day: int

    @classmethod
    def of(cls, first_ts: int, last_ts: int) -> Period:
        return cls(first_ts // DAY_MS, last_ts // DAY_MS)

    @property
    def days(self) -> int:
        return self.last_day - self.first_day + 1


def metric_table(users: UserTable, arms: list[str], period: Period | None = None):
    """Users of `arms` who closed a session: `user`, `arm` (index into `arms`), the metrics,
    the totals of the ratio metrics, and when `period` spans 2 or more days the retention
    metrics."""
    from pyspark.sql import functions as F

    arm_index = F.create_map(*[F.lit(x) for index, name in enumerate(arms)
                               for x in (name, index)])[F.col("arm")]
    columns = ["user", arm_index.cast("int").alias("arm"),
               *session_metrics(F.col("sessions"), F.col("lines"), F.col("time_nano"),
                         F.col("latency_nano")),
               (F.col("time_nano") / NANO).alias("time_total"),
               F.col("lines").cast("double").alias("events")]
    if period is not None and period.days >= 2:
        columns += [(F.col("active_days") / period.days).alias("active_days_share"),
                    (F.floor(F.col("last_ts") / DAY_MS) < period.last_day).cast("double")
                    .alias("churned")]
    return (users.frame.where(F.col("user").isNotNull() & ~F.col("several_arms")
                              & arm_index.isNotNull() & (F.col("sessions") > 0))
            .select(*columns))


def analysed_events(events, experiment: str, table):
    """The valid events in `experiment` of the analysed users (`table`: a row per user, `user`
    and `arm`, the arm's index): `user`, `arm`, `timestamp`, `closes` (the event closes a
    session), `time`, `latency`, `client_latency`. The looks, the days since exposure and the
    latency guardrail all read these: the caller caches them once for the three. `table` is
    broadcast (a row per user, small beside the events), so the events are not shuffled to
    meet it."""
    from pyspark.sql import functions as F

    valid, is_last = event_validity()
    return (events.where(valid & F.col("experiments").getItem(experiment).isNotNull())
            .join(F.broadcast(table.select("user", "arm")), "user")
            .select("user", "arm", "timestamp", is_last.alias("closes"), "time", "latency",
                    "client_latency"))


def every_user(events, prefix: str = ""):
    """Per user, the metrics over all their valid events whatever their experiments (a
    pre-period's logs, or the logs a design is based on): `user` and `<prefix><metric>`; the
    session metrics are null for a user with no closed session."""
    from pyspark.sql import functions as F

    valid, is_last = event_validity()
    sums = events.where(valid).groupBy("user").agg(*user_sums(is_last))
    sessions = F.when(F.col("sessions") > 0, F.col("sessions"))
    metrics = session_metrics(sessions, F.col("lines"), F.col("time_nano"),
                              F.col("latency_nano"))
    return sums.select("user", *[m.alias(f"{prefix}{name}") for m, name in zip(metrics, METRICS)])


def pre_period(events):
    """The CUPED covariates: `user` and `pre_<metric>` over a pre-period's logs."""
    return every_user(events, prefix="pre_")


def with_covariates(table, pre, metrics: list[str]) -> tuple[object, dict]:
    """`table` with a `pre_<metric>` column per metric: the user's pre-period value, or, for a
    user without one, the mean of the analysed users' pre-period values (all arms pooled).
    Also returns, per covariate, that mean and how many analysed users had a value."""
    from pyspark.sql import functions as F

    names = [f"pre_{m}" for m in metrics]
    joined = table.join(pre.select("user", *names), "user", "left")
    # Summed as decimals, exactly: a sum of doubles depends on the order Spark adds them in,
    # and the fill must not change between runs on the same logs.
    row = joined.agg(*[F.sum(F.col(n).cast(EXACT_SUM)).alias(n) for n in names],
                     *[F.count(n).alias(f"{n}_users") for n in names]).first()
    fill = {n: float(row[n] / row[f"{n}_users"]) if row[f"{n}_users"] else 0.0 for n in names}
    info = {n: {"pooled_mean": fill[n] if row[f"{n}_users"] else None,
                "users_with_value": row[f"{n}_users"]} for n in names}
    return joined.fillna(fill), info


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
