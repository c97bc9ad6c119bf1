"""conf/pipeline.yml: where runs, worlds and HDFS data go, and the default plan. Every key is
required: the file is the one place of the defaults."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from settings import CONF, Strict, load


class ServiceSettings(Strict):
    store: Literal["memory", "redis"]
    unix_socket: bool
    replicas: int = Field(ge=1)

    @model_validator(mode="after")
    def _replicas_on_sockets(self) -> "ServiceSettings":
        if self.replicas > 1 and not self.unix_socket:
            raise ValueError(f"replicas: {self.replicas} needs unix_socket: true (the stack has one "
                             f"service port); or set replicas: 1")
        return self


class SparkSettings(Strict):
    master: str
    startup_timeout: float


class PipelineConfig(Strict):
    plan: str
    world: str
    runs_dir: str
    hdfs_root: str
    service: ServiceSettings
    spark: SparkSettings


def load_pipeline_config(path=CONF / "pipeline.yml") -> PipelineConfig:
    return load(path, PipelineConfig)
