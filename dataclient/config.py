"""conf/dataclient.yml, and how flags and environment variables override it."""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from dataclient.errors import DataclientError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONF_PATH = PROJECT_ROOT / "conf" / "dataclient.yml"


@dataclass(frozen=True)
class Settings:
    webhdfs_url: str
    url_env: str
    user_env: str
    log_dirs: tuple[str, ...]
    skip_names: tuple[str, ...]
    name_separator: str
    temp_prefix: str
    temp_suffix: str
    threads: int
    read_chunk_bytes: int
    timeout_seconds: tuple[float, float]


def load_settings(path: Path = CONF_PATH) -> Settings:
    with open(path, encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    try:
        return Settings(
            webhdfs_url=str(raw["webhdfs_url"]), url_env=str(raw["url_env"]),
            user_env=str(raw["user_env"]), log_dirs=tuple(raw["log_dirs"]),
            skip_names=tuple(raw["skip_names"]), name_separator=str(raw["name_separator"]),
            temp_prefix=str(raw["temp_prefix"]), temp_suffix=str(raw["temp_suffix"]),
            threads=int(raw["threads"]), read_chunk_bytes=int(raw["read_chunk_bytes"]),
            timeout_seconds=tuple(float(t) for t in raw["timeout_seconds"]))
    except (KeyError, TypeError, ValueError) as e:
        raise DataclientError(f"{path}: bad or missing key ({e}); compare with the keys "
                              f"documented in dataclient/README.md") from e


def resolve_url(settings: Settings, flag: str | None) -> str:
    """--url > $url_env > conf."""
    url = flag or os.environ.get(settings.url_env) or settings.webhdfs_url
    if not url.startswith(("http://", "https://")):
        raise DataclientError(f"WebHDFS URL {url!r} is not http(s)://host:port: give the "
                              f"NameNode's HTTP address (e.g. http://127.0.0.1:9870), not the "
                              f"hdfs:// file system URI")
    return url


def resolve_user(settings: Settings, flag: str | None) -> str:
    """--user > $user_env; there is deliberately no silent default (see conf comment)."""
    user = flag or os.environ.get(settings.user_env)
    if not user:
        raise DataclientError(f"no HDFS user: pass --user U (files go to /user/U/...) or set "
                              f"${settings.user_env}")
    return user


def resolve_log_dirs(settings: Settings, flags: list[str] | None) -> list[Path]:
    """--log-dir folders as given (they must exist); else the conf globs under the project root.

    A conf glob that matches nothing is an error too: uploading "nothing" successfully would
    hide a service that writes its logs somewhere else.
    """
    if flags:
        return [Path(d) for d in flags]
    dirs: list[Path] = []
    for pattern in settings.log_dirs:
        full = pattern if os.path.isabs(pattern) else str(PROJECT_ROOT / pattern)
        dirs.extend(Path(p) for p in sorted(glob.glob(full)) if os.path.isdir(p))
    if not dirs:
        raise DataclientError(f"no log folder matches {list(settings.log_dirs)} (conf "
                              f"{CONF_PATH.name}, relative to {PROJECT_ROOT}); has the service "
                              f"written logs yet? Pass --log-dir DIR for another location")
    return dirs
