"""conf/pipeline.yml: where runs, worlds and HDFS data go, and the default plan."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from settings import CONF, Strict, load


class ServiceSettings(Strict):
    store: Literal["memory", "redis"] = "memory"
    unix_socket: bool = True
    replicas: int = Field(default=2, ge=1)

    @model_validator(mode="after")
    def _replicas_on_sockets(self) -> "ServiceSettings":
        if self.replicas > 1 and not self.unix_socket:
            raise ValueError(f"replicas: {self.replicas} needs unix_socket: true (the stack has one "
                             f"service port); or set replicas: 1")
        return self


class SparkSettings(Strict):
    master: str = "local[2]"
    startup_timeout: float = 300.0


class PipelineConfig(Strict):
    plan: str = "seed"
    world: str = "data/world-seed{seed}"
    runs_dir: str = "runs"
    hdfs_root: str = "botify"
    service: ServiceSettings = ServiceSettings()
    spark: SparkSettings = SparkSettings()


def load_pipeline_config(path=CONF / "pipeline.yml") -> PipelineConfig:
    return load(path, PipelineConfig)
