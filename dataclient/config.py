"""conf/dataclient.yml, and how flags and environment variables override it."""
from __future__ import annotations

import glob
import os
from pathlib import Path

from pydantic import Field, PositiveFloat

from dataclient.errors import DataclientError
from settings import CONF, REPO_ROOT as PROJECT_ROOT, ConfigError, Strict, load

CONF_PATH = CONF / "dataclient.yml"


class Settings(Strict):
    """conf/dataclient.yml, every key required: the file is the one place of the defaults."""
    webhdfs_url: str
    url_env: str
    user_env: str
    log_dirs: tuple[str, ...]
    skip_names: tuple[str, ...]
    name_separator: str = Field(min_length=1)
    temp_prefix: str
    temp_suffix: str
    threads: int = Field(ge=1)
    read_chunk_bytes: int = Field(ge=1024)
    timeout_seconds: tuple[PositiveFloat, PositiveFloat]


def load_settings(path: Path = CONF_PATH) -> Settings:
    try:
        return load(path, Settings)
    except ConfigError as error:
        raise DataclientError(f"{error} (keys: dataclient/README.md)") from None


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
