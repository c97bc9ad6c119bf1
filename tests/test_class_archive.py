"""Spark's class archive (jobs/class_archive.py): a driver JVM started with its options maps
Spark's classes from it, an archive a JVM cannot use (another Java's, a broken file) only
costs it the archive, never its start, the set-up removes only archives no JVM will use, and
the driver runs on the first JDK of conf/spark.yml's list that is there."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
import pytest

from infra.java import feature_release, java_binary
from jobs import class_archive

pytestmark = pytest.mark.slow

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
    # With these a JVM that cannot use the archive does not start at all.
    required = "-XX:AOTMode=on" if class_archive.has_aot_cache(class_archive.driver_java()) else "-Xshare:on"
    done = subprocess.run([sys.executable, "-c", DRIVER, *options, required,
                           f"-Xlog:class+load=info:file={loaded}"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    spark_classes = [line for line in loaded.read_text().splitlines()
                     if "org.apache.spark.SparkContext " in line]
    assert spark_classes and "shared objects file" in spark_classes[0], spark_classes


def test_an_unusable_archive_is_ignored(tmp_path):
    broken = tmp_path / "spark-classes-broken"
    broken.write_bytes(b"not an archive" * 100)
    for java in {java_binary(), class_archive.driver_java()}:   # the stack's, the driver's
        done = subprocess.run([str(java), *class_archive.reading_options(java, broken), "-version"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and done.stdout == "", java
        assert "version" in done.stderr and "archive" not in done.stderr.lower(), (java, done.stderr)


def test_the_driver_runs_on_the_first_listed_jdk_that_is_there(tmp_path, monkeypatch):
    def jdk(name: str, release: str) -> Path:
        java = tmp_path / name / "bin" / "java"
        java.parent.mkdir(parents=True)
        java.write_text("#!/bin/sh\n")
        java.chmod(0o755)
        (tmp_path / name / "release").write_text(f'IMPLEMENTOR="test"\nJAVA_VERSION="{release}"\n')
        return java

    old, new, newer = jdk("jdk-17", "17.0.15"), jdk("jdk-25.0.1", "25.0.1"), jdk("jdk-25.0.3", "25.0.3")
    monkeypatch.setenv("JAVA_HOME", str(old.parent.parent))
    assert java_binary([str(tmp_path / "missing"), str(tmp_path / "jdk-25*")]) == newer   # last match first
    assert java_binary([str(tmp_path / "missing")]) == old   # none there: the stack's
    assert (feature_release(old), feature_release(new)) == (17, 25)
    assert class_archive.reading_options(newer, Path("a"))[0] == "-XX:AOTCache=a"
    assert class_archive.writing_options(old, Path("a"))[0] == "-XX:ArchiveClassesAtExit=a"
    (tmp_path / "jdk-17" / "release").unlink()
    assert feature_release(old) is None and not class_archive.has_aot_cache(old)   # unknown: CDS


def test_java_home_names_the_drivers_jdk_only_while_its_jvm_starts(monkeypatch):
    monkeypatch.setattr(class_archive, "driver_java_home", lambda: Path("/driver/jdk"))
    monkeypatch.setenv("JAVA_HOME", "/stack/jdk")
    with class_archive.driver_java_environment():
        assert os.environ["JAVA_HOME"] == "/driver/jdk"
    assert os.environ["JAVA_HOME"] == "/stack/jdk"   # the daemons started later keep theirs
    monkeypatch.delenv("JAVA_HOME")
    with class_archive.driver_java_environment():
        assert os.environ["JAVA_HOME"] == "/driver/jdk"
    assert "JAVA_HOME" not in os.environ


def test_the_set_up_prunes_only_archives_no_jvm_will_use(tmp_path):
    java, jars, other_java = tmp_path / "java", tmp_path / "jars", tmp_path / "java25"
    java.touch()
    other_java.touch()
    jars.mkdir()
    folder = tmp_path / "cache"
    folder.mkdir()

    def archive(name: str, made_for: tuple | None, suffix: str = ".jsa") -> Path:
        path = folder / f"spark-classes-{name}{suffix}"
        path.write_bytes(b"archive")
        path.with_suffix(".log").write_text("log")
        if made_for:
            class_archive.record(path, *made_for)
        return path

    current = archive("new", (java, jars))
    upgraded = archive("before-upgrade", (java, jars))         # same Java and folder, older jars
    other = archive("other-java", (other_java, jars), ".aot")  # another Java, still installed
    gone = archive("gone-java", (tmp_path / "removed-java", jars), ".aot")
    unknown = archive("unrecorded", None)
    assert class_archive.prune(current, java, jars) == [upgraded, gone]   # in name order
    assert sorted([*folder.glob("*.jsa"), *folder.glob("*.aot")]) == sorted([current, other, unknown])
    assert not upgraded.with_suffix(".json").exists() and not upgraded.with_suffix(".log").exists()
