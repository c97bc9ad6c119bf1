"""Spark's class archive (jobs/class_archive.py): a driver JVM started with its options maps
Spark's classes from it, an archive a JVM cannot use (another Java's, a broken file) only
costs it the archive, never its start, and the set-up removes only archives no JVM will use."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from infra.java import java_binary
from jobs import class_archive

DRIVER = textwrap.dedent("""
    import sys
    from jobs import common
    spark = common.spark_session("archive-test", "local[1]", sys.argv[1:])
    assert spark.range(3).count() == 3
    spark.stop()
""")


def test_a_driver_maps_sparks_classes_from_the_archive(tmp_path):
    assert class_archive.main([]) == 0   # built by ./run.sh's set-up; else now
    options = class_archive.driver_java_options()
    assert options, f"no archive at {class_archive.archive_path()}: see its .log beside it"
    loaded = tmp_path / "classes.log"
    # -Xshare:on: a JVM that cannot use the archive does not start at all.
    done = subprocess.run([sys.executable, "-c", DRIVER, *options, "-Xshare:on",
                           f"-Xlog:class+load=info:file={loaded}"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    spark_classes = [line for line in loaded.read_text().splitlines()
                     if "org.apache.spark.SparkContext " in line]
    assert spark_classes and "shared objects file (top)" in spark_classes[0], spark_classes


def test_an_unusable_archive_is_ignored(tmp_path):
    broken = tmp_path / "spark-classes-broken.jsa"
    broken.write_bytes(b"not an archive" * 100)
    java = java_binary()
    done = subprocess.run([str(java), f"-XX:SharedArchiveFile={broken}", *class_archive.QUIET, "-version"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == ""
    assert "version" in done.stderr and "archive" not in done.stderr.lower(), done.stderr


def test_the_set_up_prunes_only_archives_no_jvm_will_use(tmp_path):
    java, jars, other_java = tmp_path / "java", tmp_path / "jars", tmp_path / "java25"
    java.touch()
    other_java.touch()
    jars.mkdir()
    folder = tmp_path / "cache"
    folder.mkdir()

    def archive(name: str, made_for: tuple | None) -> Path:
        path = folder / f"spark-classes-{name}.jsa"
        path.write_bytes(b"archive")
        path.with_suffix(".log").write_text("log")
        if made_for:
            class_archive.record(path, *made_for)
        return path

    current = archive("new", (java, jars))
    upgraded = archive("before-upgrade", (java, jars))         # same Java and folder, older jars
    other = archive("other-java", (other_java, jars))          # another Java, still installed
    gone = archive("gone-java", (tmp_path / "removed-java", jars))
    unknown = archive("unrecorded", None)
    assert class_archive.prune(current, java, jars) == [upgraded, gone]   # in name order
    assert sorted(folder.glob("*.jsa")) == sorted([current, other, unknown])
    assert not upgraded.with_suffix(".json").exists() and not upgraded.with_suffix(".log").exists()
