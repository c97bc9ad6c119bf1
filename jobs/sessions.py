"""sessions: event logs -> Parquet `sessions/` and `users/`, corrupt lines -> `quarantine/`.

A user's events ordered by timestamp form sessions cut after each "last" event (docs/DESIGN.md).
Every line is checked against the event contract by `service.events.validation_error`; lines
that break it are counted, kept in `quarantine/` with the reason, and the job fails when their
share passes --max-corrupt-share (the quarantine is written first, nothing is lost).
"""
from __future__ import annotations

import argparse

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs import common
from service.events import spark_schema, validation_error

NAME = "sessions"


def contract_errors(lines):
    """pandas Series of raw lines -> Series of reasons (None where the line is a valid event)."""
    import orjson
    import pandas as pd

    def reason(line: str) -> str | None:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            return f"not JSON: {e}"
        return validation_error(record)

    return pd.Series([reason(line) for line in lines], dtype=object)


def check_lines(lines: DataFrame) -> DataFrame:
    """Lines (column `value`, plus `file`) -> the same with `error` (null for valid events)."""
    check = F.pandas_udf(contract_errors, "string")
    return lines.withColumn("error", check("value"))


def parse_valid(checked: DataFrame) -> DataFrame:
    """Valid lines -> typed events. The schema is the contract's (service/events.py)."""
    return (checked.where(F.col("error").isNull())
            .select(F.from_json("value", spark_schema()).alias("e")).select("e.*"))


def sessionize(events: DataFrame) -> DataFrame:
    """Events -> one row per session: user's events by timestamp, cut after each "last".

    Columns: user, session (0, 1, ... per user), start_ts, end_ts, first_track, tracks, times
    (listen time of each track, same order), total_time, total_latency, events, closed (ended by
    "last"; false for a session still open at the end of the log), experiments (first event's).
    """
    is_last = (F.col("message") == "last").cast("int")
    # Ties in timestamp (a user's requests can come faster than a millisecond): the "next" comes
    # before the "last" that closes the session, and "next"s follow their position in the session
    # (an extra field of the service's events; logs without it fall back to the track id).
    order = ("timestamp", "is_last", "position", "track")
    by_time = Window.partitionBy("user").orderBy(*order)
    before = by_time.rowsBetween(Window.unboundedPreceding, -1)
    numbered = (events.withColumn("is_last", is_last)
                .withColumn("session", F.coalesce(F.sum("is_last").over(before), F.lit(0))))
    ordered = F.sort_array(F.collect_list(F.struct(*order, "time")))
    return (numbered.groupBy("user", "session")
            .agg(ordered.alias("evs"),
                 F.min("timestamp").alias("start_ts"),
                 F.max("timestamp").alias("end_ts"),
                 F.sum("time").alias("total_time"),
                 F.sum("latency").alias("total_latency"),
                 F.count(F.lit(1)).alias("events"),
                 (F.max("is_last") == 1).alias("closed"),
                 F.min_by("experiments", "timestamp").alias("experiments"))
            .select("user", F.col("session").cast("int"), "start_ts", "end_ts",
                    F.col("evs")[0]["track"].alias("first_track"),
                    F.col("evs.track").alias("tracks"), F.col("evs.time").alias("times"),
                    "total_time", "total_latency", "events", "closed", "experiments"))


def user_aggregates(sessions: DataFrame) -> DataFrame:
    """Per-user metrics of docs/DESIGN.md. `sessions` counts "last" events (closed sessions); the means
    are over them (null for a user with no closed session)."""
    closed = F.sum(F.col("closed").cast("int"))
    return (sessions.groupBy("user")
            .agg(closed.alias("sessions"),
                 F.sum("events").alias("events"),
                 F.sum("total_time").alias("total_time"),
                 F.sum("total_latency").alias("total_latency"),
                 F.max_by("experiments", "end_ts").alias("experiments"))
            .withColumn("mean_session_time",
                        F.when(F.col("sessions") > 0, F.col("total_time") / F.col("sessions")))
            .withColumn("mean_session_length",
                        F.when(F.col("sessions") > 0, F.col("events") / F.col("sessions")))
            .withColumn("mean_request_time", F.col("total_latency") / F.col("events")))


def add_arguments(parser: argparse.ArgumentParser, cfg: dict) -> None:
    c = cfg["sessions"]
    parser.add_argument("--events", nargs="+", required=True,
                        help="folder(s) of JSON-lines event files (hdfs://, file:// or local)")
    parser.add_argument("--out", required=True,
                        help="output folder: sessions/, users/ and quarantine/ are written in it")
    parser.add_argument("--max-corrupt-share", type=float, default=c["max_corrupt_share"],
                        help="fail when more than this share of lines breaks the event contract")
    parser.add_argument("--output-files", type=int, default=c["output_files"],
                        help="Parquet files per output table")


def run(spark: SparkSession, args: argparse.Namespace) -> dict:
    for uri in map(common.qualify, args.events):
        common.require_exists(spark, uri, "events folder")
    lines = (spark.read.option("recursiveFileLookup", "true")
             .text([common.qualify(p) for p in args.events])
             .withColumn("file", F.input_file_name()))
    checked = check_lines(lines).persist()
    try:
        with common.stage(NAME, "check lines against the event contract"):
            counts = checked.agg(F.count(F.lit(1)).alias("lines"),
                                 F.count("error").alias("corrupt")).first()
        total, corrupt = counts["lines"], counts["corrupt"]
        if total == 0:
            raise common.JobError(f"no event lines in {args.events}: point --events at the log folder")
        quarantine = common.join(args.out, "quarantine")
        (checked.where(F.col("error").isNotNull()).select("file", "error", F.col("value").alias("line"))
         .coalesce(1).write.mode("overwrite").json(quarantine))
        share = corrupt / total
        common.log(NAME, f"{total} lines, {corrupt} corrupt ({share:.2%}) -> {quarantine}")
        if share > args.max_corrupt_share:
            raise common.JobError(
                f"{corrupt} of {total} lines ({share:.2%}) break the event contract, more than "
                f"--max-corrupt-share {args.max_corrupt_share:.2%}; the lines and reasons are in "
                f"{quarantine}: fix the producer or raise the threshold")
        with common.stage(NAME, "sessionise and write Parquet"):
            sessions = sessionize(parse_valid(checked)).persist()
            (sessions.repartition(args.output_files, "user").sortWithinPartitions("user", "session")
             .write.mode("overwrite").parquet(common.join(args.out, "sessions")))
            (user_aggregates(sessions).coalesce(args.output_files)
             .write.mode("overwrite").parquet(common.join(args.out, "users")))
            n_sessions = sessions.count()
            sessions.unpersist()
    finally:
        checked.unpersist()
    common.log(NAME, f"{n_sessions} sessions -> {common.join(args.out, 'sessions')}")
    return {"lines": total, "corrupt": corrupt, "sessions": n_sessions}


if __name__ == "__main__":
    raise SystemExit(common.main(NAME, __doc__.splitlines()[0], add_arguments, run))
