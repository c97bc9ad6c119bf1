"""The experiment record of one run: runs/<timestamp>/ and its manifest.json.

The manifest holds what the original author wished every experiment had kept: the config and
seeds used, library versions, checksums of every table served, each step's timing, the results.
It is rewritten after every step, so a failed run still says how far it got.
"""
from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

PACKAGES = ("pyspark", "numpy", "scipy", "pandas", "hdfs", "redis", "uvicorn")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "missing"
    try:
        found["botify_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True,
                                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        found["botify_commit"] = "unknown"
    return found


class RunRecord:
    def __init__(self, folder: Path, settings: dict):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        manifest = folder / "manifest.json"
        if manifest.exists():  # a --step run adds to the record of the run it continues
            self.data = json.loads(manifest.read_text())
            self.data.setdefault("invocations", []).append(settings)
        else:
            self.data = {"run": folder.name,
                         "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                         "settings": settings, "versions": versions(),
                         "steps": {}, "tables": {}, "results": None}
        self.save()

    @property
    def path(self) -> Path:
        return self.folder / "manifest.json"

    def save(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=2, sort_keys=True, default=str) + "\n")

    @contextmanager
    def step(self, name: str):
        """Time a step and record how it ended (also when it fails)."""
        entry = {"status": "running", "seconds": None, "substeps": {}}
        self.data["steps"][name] = entry
        self.save()
        started = time.monotonic()
        try:
            yield entry["substeps"]
            entry["status"] = "ok"
        except BaseException as error:
            entry["status"] = f"failed: {error}"
            raise
        finally:
            entry["seconds"] = round(time.monotonic() - started, 2)
            self.save()

    def add_table(self, day: str, path: Path) -> None:
        self.data["tables"][f"{day}/{path.name}"] = {"sha256": sha256(path),
                                                    "bytes": path.stat().st_size}
        self.save()

    def set(self, key: str, value) -> None:
        self.data[key] = value
        self.save()
