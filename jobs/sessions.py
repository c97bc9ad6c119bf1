"""sessions: event logs -> Parquet `sessions/` and `users/`, corrupt lines -> `quarantine/`.

A user's events ordered by timestamp form sessions cut after each "last" event (docs/DESIGN.md).
Every line is checked against the event contract (contract/events.py); lines that break it are
counted, kept in `quarantine/` with the reason `validation_error` gives, and the job fails when
their share passes --max-corrupt-share (the quarantine is written first, nothing is lost).
"""
from __future__ import annotations

import argparse

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs import common
from jobs.config import JobsConfig
from contract.events import FIELDS, MESSAGES, OPTIONAL_FIELDS, spark_schema, validation_error

NAME = "sessions"

# --- the contract check ------------------------------------------------------------------------
# Spark's JSON reader checks almost every line natively; a line it does not accept goes to
# `validation_error` (Python), which gives the reason, or finds the line valid after all. The
# native check accepts only lines `validation_error` accepts: they are printable-ASCII JSON
# objects (no escapes, no nesting beyond one object of scalars, numbers short enough that no
# parser overflows) that Spark's parser reads with the contract's types, every required field
# present, a known message and experiments mapping strings to strings.
_STRING = r'"[\x20\x21\x23-\x5b\x5d-\x7e]*+"'
_NUMBER = r"-?(?:0|[1-9][0-9]{0,18})(?:\.[0-9]++)?(?:[eE][+-]?[0-9]{1,2})?"
_SCALAR = rf"(?:{_STRING}|{_NUMBER}|true|false|null)"
_WS = r"[ \t]*+"


def _object_of(value: str, ws: str = _WS) -> str:
    pair = rf"{_STRING}{ws}:{ws}{value}{ws}"
    return rf"\{{{ws}(?:{pair}(?:,{ws}{pair})*+)?\}}"


PLAIN_LINE = rf"^{_WS}{_object_of(rf'(?:{_SCALAR}|{_object_of(_SCALAR)})')}{_WS}$"
STRING_MAP = rf"^{_object_of(_STRING, ws='')}$"   # Spark re-serialises an object compactly
CORRUPT = "_corrupt_record"
# A contract field's Python types -> the Spark type that reads exactly those JSON values
# (experiments is read as its JSON text, checked by STRING_MAP, then parsed as a map).
_SPARK_TYPES = {(str,): T.StringType(), (int,): T.LongType(), (float, int): T.DoubleType(),
                (dict,): T.StringType()}
_READ_OPTIONS = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT,
                 "allowNonNumericNumbers": "false"}


def check_schema() -> T.StructType:
    """The contract's fields (contract/events.py FIELDS and OPTIONAL_FIELDS) as Spark reads them."""
    fields = [T.StructField(name, _SPARK_TYPES[types], True)
              for name, (types, _) in (FIELDS | OPTIONAL_FIELDS).items()]
    return T.StructType([*fields, T.StructField(CORRUPT, T.StringType(), True)])


def natively_valid(value: Column, e: Column) -> Column:
    """True where Spark alone shows the line meets the contract (see above); never null."""
    required = [e[name].isNotNull() for name, (_, nullable) in FIELDS.items() if not nullable]
    # A required field that may be null must still be there: null and absent read alike. Its
    # keys are listed (a second parse) only where it reads null: `|` evaluates its right side
    # only when the left is false.
    present = [e[name].isNotNull() | F.array_contains(F.json_object_keys(value), name)
               for name, (_, nullable) in FIELDS.items() if nullable]
    checks = [value.rlike(PLAIN_LINE), e.isNotNull(), e[CORRUPT].isNull(), *required, *present,
              e["message"].isin(*MESSAGES), e["experiments"].rlike(STRING_MAP)]
    ok = checks[0]
    for check in checks[1:]:
        ok = ok & check
    return F.coalesce(ok, F.lit(False))


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
    """Lines (column `value`, plus `file`) -> the same with `error` (null for valid events),
    `validation_error` on every line."""
    check = F.pandas_udf(contract_errors, "string")
    return lines.withColumn("error", check("value"))


def parse_valid(checked: DataFrame) -> DataFrame:
    """Valid lines -> typed events. The schema is the contract's (contract/events.py)."""
    return (checked.where(F.col("error").isNull())
            .select(F.from_json("value", spark_schema()).alias("e")).select("e.*"))


def checked_lines(lines: DataFrame) -> DataFrame:
    """Lines (`value`, `file`) -> `event`: the parsed line if accepted natively, else null;
    `suspect`: the other lines' (file, value), else null. Each line is parsed once here: the
    caller persists this frame and reads both the events and the suspects from it (read_checked)
    instead of reading and parsing the input twice."""
    value = F.col("value")
    parsed = lines.select("file", "value", F.from_json(value, check_schema(), _READ_OPTIONS).alias("e"))
    # Three projections: Spark does not merge a projection into the next when that would repeat
    # an expensive expression (from_json, the verdict) in each place that reads it.
    judged = parsed.select("file", "value", "e", natively_valid(value, F.col("e")).alias("ok"))
    return judged.select(F.when(F.col("ok"), F.col("e")).alias("event"),
                         F.when(~F.col("ok"), F.struct("file", "value")).alias("suspect"))


def read_checked(checked: DataFrame) -> tuple[DataFrame, DataFrame]:
    """checked_lines' frame -> (natively valid lines as typed events, the other lines with
    `error` from `validation_error`: null for a line that is valid after all)."""
    experiments = spark_schema()["experiments"].dataType
    events = checked.where(F.col("event").isNotNull()).select(*[
        F.from_json(F.col("event.experiments"), experiments).alias(f.name) if f.name == "experiments"
        else F.col(f"event.{f.name}").alias(f.name) for f in spark_schema().fields])
    return events, check_lines(checked.where(F.col("suspect").isNotNull()).select("suspect.*"))


def sessionize(events: DataFrame) -> DataFrame:
    """Events -> one row per session: user's events by timestamp, cut after each "last".

    Columns: user, session (0, 1, ... per user), start_ts, end_ts, first_track, tracks, times
    (listen time of each track, same order), teams (in an interleaved session, the team that
    recommended each track, null for the first track and outside interleaving), total_time,
    total_latency, events, closed (ended by "last"; false for a session still open at the end
    of the log), experiments (first event's).
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
    ordered = F.sort_array(F.collect_list(F.struct(*order, "time", "team")))
    # Event k's team recommended track k + 1: the first track is the user's own.
    teams = F.concat(F.array(F.lit(None).cast("string")), F.slice("evs.team", 1, F.size("evs") - 1))
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
                    teams.alias("teams"), "total_time", "total_latency", "events", "closed", "experiments"))


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


def add_arguments(parser: argparse.ArgumentParser, cfg: JobsConfig) -> None:
    c = cfg.sessions
    parser.add_argument("--events", nargs="+", required=True,
                        help="folder(s) of JSON-lines event files (hdfs://, file:// or local)")
    parser.add_argument("--out", required=True,
                        help="output folder: sessions/, users/ and quarantine/ are written in it")
    parser.add_argument("--max-corrupt-share", type=float, default=c.max_corrupt_share,
                        help="fail when more than this share of lines breaks the event contract")
    parser.add_argument("--output-files", type=int, default=c.output_files,
                        help="Parquet files per output table")


def run(spark: SparkSession, args: argparse.Namespace) -> dict:
    for uri in map(common.qualify, args.events):
        common.require_exists(spark, uri, "events folder")
    lines = (spark.read.option("recursiveFileLookup", "true")
             .text([common.qualify(p) for p in args.events])
             .withColumn("file", F.input_file_name()))
    checked = checked_lines(lines).persist()
    events, suspects = read_checked(checked)
    try:
        with common.stage(NAME, "check lines against the event contract"):
            counts = checked.agg(F.count(F.lit(1)).alias("lines"), F.count("suspect").alias("suspects")).first()
            if not counts["suspects"]:  # Python gives their reasons: with none, no Python worker starts
                suspects = spark.createDataFrame([], suspects.schema)
            suspects = suspects.persist()
            total, corrupt = counts["lines"], suspects.where(F.col("error").isNotNull()).count()
        if total == 0:
            raise common.JobError(f"no event lines in {args.events}: point --events at the log folder")
        quarantine = common.join(args.out, "quarantine")
        (suspects.where(F.col("error").isNotNull()).select("file", "error", F.col("value").alias("line"))
         .coalesce(1).write.mode("overwrite").json(quarantine))
        share = corrupt / total
        common.log(NAME, f"{total} lines, {corrupt} corrupt ({share:.2%}) -> {quarantine}")
        if share > args.max_corrupt_share:
            raise common.JobError(
                f"{corrupt} of {total} lines ({share:.2%}) break the event contract, more than "
                f"--max-corrupt-share {args.max_corrupt_share:.2%}; the lines and reasons are in "
                f"{quarantine}: fix the producer or raise the threshold")
        with common.stage(NAME, "sessionise and write Parquet"):
            sessions = sessionize(events.unionByName(parse_valid(suspects))).persist()
            (sessions.repartition(args.output_files, "user").sortWithinPartitions("user", "session")
             .write.mode("overwrite").parquet(common.join(args.out, "sessions")))
            (user_aggregates(sessions).coalesce(args.output_files)
             .write.mode("overwrite").parquet(common.join(args.out, "users")))
            n_sessions = sessions.count()
            sessions.unpersist()
    finally:
        checked.unpersist()
        suspects.unpersist()
    common.log(NAME, f"{n_sessions} sessions -> {common.join(args.out, 'sessions')}")
    return {"lines": total, "corrupt": corrupt, "sessions": n_sessions}


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> int:
    """Command line; with `spark` given, runs in that session and leaves it running."""
    return common.job_main(NAME, __doc__.splitlines()[0], add_arguments, run, argv, spark)


if __name__ == "__main__":
    raise SystemExit(main())
