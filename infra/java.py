"""The java that runs the stack's HDFS daemons and that spark-submit starts for Spark's driver:
$JAVA_HOME/bin/java when JAVA_HOME is set, else the first java on PATH (light: no JVM starts)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path


def java_binary() -> Path | None:
    """That java with its links resolved, or None when there is none."""
    home = os.environ.get("JAVA_HOME")
    found = shutil.which("java", path=str(Path(home) / "bin")) if home else shutil.which("java")
    return Path(found).resolve() if found else None
