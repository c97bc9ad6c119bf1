"""conf/stack.yml: the local stack's ports, runtime folder and the settings of its HDFS, Redis
and service, read through `settings/` like every conf file. Every key is required: the file is
the one place of the defaults."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from settings import CONF, Strict, load

CONFIG = CONF / "stack.yml"
PORT_NAMES = ("namenode_rpc", "namenode_http", "datanode", "datanode_http", "datanode_ipc",
              "redis", "service")


class HadoopSettings(Strict):
    pom: str
    conf_dir: str
    cache_dir: str
    heap: str
    java_opts: list[str]
    settings: dict[str, Any]               # extra Hadoop properties, -Dkey=value to both daemons
    start_timeout_s: float = Field(gt=0)


class ServiceSettings(Strict):
    config: str
    log_dir: str
    start_timeout_s: float = Field(gt=0)


class RedisSettings(Strict):
    binary: str
    start_timeout_s: float = Field(gt=0)


class StackConfig(Strict):
    runtime_dir: str
    host: str
    ports: dict[Literal[PORT_NAMES], int]
    hadoop: HadoopSettings
    service: ServiceSettings
    redis: RedisSettings


def load_config(path: Path = CONFIG) -> StackConfig:
    """conf/stack.yml, with BOTIFY_PORT_<NAME> environment overrides of its ports."""
    config = load(path, StackConfig)
    overrides = {name: int(os.environ[f"BOTIFY_PORT_{name.upper()}"]) for name in config.ports
                 if os.environ.get(f"BOTIFY_PORT_{name.upper()}")}
    return config.model_copy(update={"ports": {**config.ports, **overrides}})
