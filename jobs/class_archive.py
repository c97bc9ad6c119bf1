"""The JVM of a local Spark driver: the Java it runs on (conf/spark.yml's `driver_java_homes`,
else the stack's) and an archive of the classes it loads, so that each new driver JVM maps them
already parsed and verified instead of reading them out of Spark's jars. On a JDK 25 or later
the archive is an AOT cache (JEP 483 and 515: the classes also linked, and the methods' profiles
of the training run, so the JIT compiles the hot ones sooner); on an older one, a
class-data-sharing (CDS) archive.

    python -m jobs.class_archive          # build it unless it exists (./run.sh's set-up does)
    python -m jobs.class_archive --build PATH

Building runs one driver JVM with -XX:AOTCacheOutput (or -XX:ArchiveClassesAtExit) through
every jobs/ job and the A/B analysis on a small synthetic day (local files), and keeps what it
wrote when it exits. The archive is keyed by the Java binary and the pyspark jars, so another
Java or another Spark gets an archive of its own (about 200 MB each; each set-up removes those
of a Java or pyspark that has changed or is gone, `prune`); a JVM that finds an archive
unusable all the same ignores it and loads its classes as usual. `driver_java_options()` gives
the options that use it (none when it is absent or conf/spark.yml's `class_archive_dir` is
empty) and `driver_java_home()` the JAVA_HOME to start the driver with; jobs/common.py, the
tests and the pipeline's job server start their driver JVMs with both.
Measured in benchmarks/bench_class_archive.py.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from infra import class_archive as cds
from infra.java import feature_release, java_binary
from jobs.config import spark_config

QUIET_AOT = [*cds.QUIET, "-Xlog:aot=off"]   # a tag Java 17 does not know
AOT_CACHE_SINCE = 25   # the first JDK that writes an AOT cache in one run (-XX:AOTCacheOutput)
EVENT_LOG_BYTES = 2_000_000   # about 13,000 events: every job does real work, in seconds


def driver_java() -> Path | None:
    """The java a local Spark driver runs on; None without Java."""
    return java_binary(spark_config().driver_java_homes)


def driver_java_home() -> Path | None:
    """The JAVA_HOME that makes spark-submit start `driver_java()`; None without Java."""
    java = driver_java()
    return None if java is None else java.parent.parent


@contextmanager
def driver_java_environment():
    """Inside: JAVA_HOME names the driver's JDK, for pyspark to start its JVM with; restored on
    the way out (the stack's daemons, started by the same process, keep theirs)."""
    home, before = driver_java_home(), os.environ.get("JAVA_HOME")
    if home is not None:
        os.environ["JAVA_HOME"] = str(home)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("JAVA_HOME", None)
        else:
            os.environ["JAVA_HOME"] = before


def has_aot_cache(java: Path) -> bool:
    """Whether `java`'s archive is an AOT cache (else a CDS archive)."""
    return (feature_release(java) or 0) >= AOT_CACHE_SINCE


def reading_options(java: Path, path: Path) -> list[str]:
    """The options that start `java` from the archive at `path`."""
    if has_aot_cache(java):
        return [f"-XX:AOTCache={path}", *QUIET_AOT]
    return cds.reading_options(path)


def writing_options(java: Path, path: Path) -> list[str]:
    """The options that make `java` write its archive to `path` when it exits."""
    if has_aot_cache(java):
        return [f"-XX:AOTCacheOutput={path}", *QUIET_AOT]
    return cds.writing_options(path)


def made_for() -> tuple[Path, Path] | None:
    """(the driver's java binary, pyspark's jars folder) an archive made now is for; None
    without Java."""
    java = driver_java()
    if java is None:
        return None
    import pyspark

    return java, Path(pyspark.__file__).parent / "jars"


def archive_path() -> Path | None:
    """Where the archive for this Java and this pyspark lives (None: archives are turned off,
    or no Java)."""
    inputs = made_for()
    return None if inputs is None else archive_path_for(*inputs)


def archive_path_for(java: Path, jars: Path) -> Path | None:
    """Where the archive for `java` and the pyspark `jars` lives (None: archives are turned off)."""
    folder = spark_config().class_archive_dir
    if not folder:
        return None
    suffix = ".aot" if has_aot_cache(java) else ".jsa"
    return Path(folder).expanduser() / f"spark-classes-{cds.key([java, *sorted(jars.glob('*.jar'))])}{suffix}"


def driver_java_options() -> list[str]:
    """JVM options for a local Spark driver: the archive's, when it exists."""
    path = archive_path()
    return reading_options(driver_java(), path) if path and path.exists() else []


def training_day(folder: Path) -> list[tuple[str, list[str]]]:
    """A small synthetic A/B day in `folder` and the jobs/driver.py invocations that use every
    job on it (the pipeline's order)."""
    import numpy as np

    from dataclient.synthetic_logs import write_log_file

    events = folder / "events"
    events.mkdir(parents=True)
    write_log_file(events / "events.jsonl", EVENT_LOG_BYTES, np.random.default_rng(0))
    sessions, tables = str(folder / "aggregates" / "sessions"), str(folder / "tables")
    return [("sessions", ["--events", str(events), "--out", str(folder / "aggregates")]),
            ("toppop", ["--sessions", sessions, "--out", tables]),
            ("nn", ["--sessions", sessions, "--out", tables, "--dim", "16", "--unordered"]),
            ("svd", ["--sessions", sessions, "--out", tables, "--rank", "8"]),
            ("analysis.ab_test", ["--events", str(events), "--experiment", "CONTEXTUAL", "--control", "C",
                                  "--treatments", "T1", "--pre-events", str(events), "--bootstrap", "100",
                                  "--out", str(folder / "report")])]


def run_training_day(java_options: list[str] | None) -> int:
    """The training day in a new local driver JVM started with `java_options` (None: the
    archive's), until that JVM has exited; the jobs' exit status."""
    from jobs import common, driver

    with tempfile.TemporaryDirectory(prefix="botify-training-day-") as scratch:
        spark = common.spark_session("class-archive", "local[2]", java_options)
        try:
            return driver.run_jobs(spark, training_day(Path(scratch) / "day"), {"jobs": []})
        finally:
            jvm = spark.sparkContext._gateway.proc
            spark.stop()
            jvm.stdin.close()   # the gateway JVM exits when its input closes (writing an archive)
            try:
                jvm.wait(timeout=600)
            except subprocess.TimeoutExpired:
                jvm.kill()
                raise SystemExit("error: Spark's JVM did not exit after the training day") from None


def build(path: Path) -> None:
    """Run the training day in a driver JVM that writes its loaded classes to `path` on exit."""
    java = driver_java()
    if java is None:
        raise SystemExit("error: no Java to build the class archive for")
    with tempfile.TemporaryDirectory(prefix="botify-class-archive-") as scratch:
        partial = Path(scratch) / path.name
        code = run_training_day(writing_options(java, partial))
        if code != 0 or not partial.exists():
            raise SystemExit(f"error: the class archive was not written (jobs exit {code}); "
                             f"Spark runs without one")
        path.parent.mkdir(parents=True, exist_ok=True)
        beside = path.with_name(f"{path.name}.{os.getpid()}.partial")   # the same file system
        shutil.move(partial, beside)
        os.replace(beside, path)   # a concurrent reader sees all of it or nothing


def record(path: Path, java: Path, jars: Path) -> None:
    """Note beside the archive what it was made for (prune reads it)."""
    path.with_suffix(".json").write_text(json.dumps({"java": str(java), "jars": str(jars)}) + "\n")


def prune(path: Path, java: Path, jars: Path) -> list[Path]:
    """Remove the archives beside `path` that no JVM will use again: those made for this same
    Java and pyspark folder before their files changed (an upgrade in place: another key), and
    those whose Java or pyspark is gone. An archive of another Java still installed stays, and
    so does one without a record (not known to be stale). The archives removed."""
    removed = []
    for other in sorted([*path.parent.glob("spark-classes-*.jsa"), *path.parent.glob("spark-classes-*.aot")]):
        note = other.with_suffix(".json")
        if other == path or not note.exists():
            continue
        try:
            inputs = json.loads(note.read_text())
            old_java, old_jars = Path(inputs["java"]), Path(inputs["jars"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if (old_java, old_jars) == (java, jars) or not old_java.exists() or not old_jars.is_dir():
            for file in (other, note, other.with_suffix(".log")):
                file.unlink(missing_ok=True)
            removed.append(other)
    return removed


def build_logged(path: Path) -> bool:
    """Build the archive at `path` in a child process, its output to a log beside it; False
    (with a warning) when that failed."""
    from infra.lifetime import die_with_parent
    from infra.logtail import tail

    log = path.with_suffix(".log")
    print(f"building Spark's class archive (once for this Java and pyspark; log {log}) ...", flush=True)
    started = time.monotonic()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        code = subprocess.run([sys.executable, "-m", "jobs.class_archive", "--build", str(path)],
                              stdout=out, stderr=subprocess.STDOUT,
                              preexec_fn=die_with_parent).returncode
    if code != 0:
        # Only start-up time is lost: say so and go on (tests/test_class_archive.py fails instead).
        print(f"warning: no class archive, Spark starts without one:\n{tail(log, 10)}", file=sys.stderr)
        return False
    print(f"class archive built in {time.monotonic() - started:.0f} s", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.class_archive", description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=Path, metavar="PATH",
                        help="build an archive at PATH, printing the jobs' output (default: build "
                             "this Java's and pyspark's archive unless it exists, output to a log, "
                             "and remove the archives no JVM will use again)")
    args = parser.parse_args(argv)
    if args.build:
        build(args.build)
        return 0
    inputs = made_for()
    path = None if inputs is None else archive_path_for(*inputs)
    if path is None:
        print("no class archive: conf/spark.yml's class_archive_dir is empty, or no Java")
        return 0
    java, jars = inputs
    if not path.exists() and not build_logged(path):
        return 0
    if not path.with_suffix(".json").exists():   # new, or made before archives were recorded
        record(path, java, jars)
    for stale in prune(path, java, jars):
        print(f"removed {stale.name}: made for a Java or pyspark that has changed or is gone")
    return 0


if __name__ == "__main__":
    sys.exit(main())
