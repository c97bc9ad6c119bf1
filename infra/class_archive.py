"""Class-data-sharing (CDS) archives: the options that make a JVM write the classes it loaded
into an archive as it exits (a JDK dynamic archive, JDK 13 or later) or map them from one at
start, already parsed and verified, instead of reading them out of jars. Spark's driver
(jobs/class_archive.py) and the HDFS daemons (infra/stack.py) start from such archives.

A JVM that finds its archive unusable (another JDK, a changed jar) ignores it and loads its
classes as usual; the archives are keyed by what they were made from so that does not last.
The JDK refuses to write one while a non-empty folder is on the class path before a jar.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

# Warnings about classes CDS cannot keep (signed jars, generated classes, old class files) and
# about an archive made for another JVM say nothing a user can act on.
QUIET = ["-Xlog:cds=off", "-Xlog:cds+dynamic=off"]


def reading_options(path: Path) -> list[str]:
    """The options that start a JVM from the archive at `path`."""
    return [f"-XX:SharedArchiveFile={path}", *QUIET]


def writing_options(path: Path) -> list[str]:
    """The options that make a JVM write its archive to `path` when it exits."""
    return [f"-XX:ArchiveClassesAtExit={path}", *QUIET]


def key(files: Iterable[Path]) -> str:
    """A short digest of the files' paths, sizes and modification times: an archive's name
    part, so an archive of other files (an upgrade in place too) is never taken for this one."""
    digest = hashlib.sha256()
    for part in files:
        stat = part.stat()
        digest.update(f"{part}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:12]
