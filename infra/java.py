"""The java that runs the stack's HDFS daemons ($JAVA_HOME/bin/java when JAVA_HOME is set, else
the first java on PATH) and the one a local Spark driver runs on (the first of conf/spark.yml's
`driver_java_homes` that has one, else the stack's). Light: no JVM starts."""
from __future__ import annotations

import glob
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path


def java_binary(homes: Iterable[str] = ()) -> Path | None:
    """The java of the first of `homes` (JDK folders; a glob stands for its matches, the last in
    name order first) that has one, else the stack's; links resolved; None when there is none."""
    for pattern in homes:
        for home in sorted(glob.glob(os.path.expanduser(pattern)), reverse=True):
            java = Path(home) / "bin" / "java"
            if os.access(java, os.X_OK):
                return java.resolve()
    home = os.environ.get("JAVA_HOME")
    found = shutil.which("java", path=str(Path(home) / "bin")) if home else shutil.which("java")
    return Path(found).resolve() if found else None


def feature_release(java: Path) -> int | None:
    """The Java release (17, 25, ...) of a resolved java binary, read from its JDK's `release`
    file; None when that file is missing or says no version."""
    try:
        text = (java.parent.parent / "release").read_text()
    except OSError:
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)', text, re.MULTILINE)
    return int(match.group(1)) if match else None
