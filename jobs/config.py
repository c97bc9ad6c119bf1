"""The jobs' configuration: conf/jobs.yml (the defaults of every job's flags) as a `settings`
model. Every key is required: the file is the one place of the defaults, the model says their
types and bounds. The SparkSession's settings are sparkapp/config.py's."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from settings import CONF, Strict, load

JOBS_CONF = CONF / "jobs.yml"


class Sessions(Strict):
    max_corrupt_share: float
    output_files: int


class TopPop(Strict):
    size: int


class NN(Strict):
    dim: int
    iterations: int
    reg: float
    solver: Literal["numpy", "spark"]
    blocks: int
    driver_max_ratings: int = Field(ge=0)
    partitions: int
    top_k: int
    batch: int


class SVD(Strict):
    rank: int
    top_k: int
    batch: int


class Taste(Strict):
    max_tail: float = Field(gt=0, le=1)
    hops: int = Field(ge=1)
    top_k: int = Field(ge=1)


class Item2Vec(Strict):
    min_time: float = Field(ge=0, le=1)
    dim: int = Field(ge=1)
    window: int = Field(ge=1)
    min_count: int = Field(ge=1)
    iterations: int = Field(ge=1)
    step_size: float = Field(gt=0)
    partitions: int = Field(ge=1)
    top_k: int = Field(ge=1)


class ImplicitALS(Strict):
    rank: int = Field(ge=1)
    iterations: int = Field(ge=1)
    reg: float = Field(ge=0)
    alpha: float = Field(gt=0)
    blocks: int = Field(ge=1)
    partitions: int = Field(ge=1)
    top_k: int = Field(ge=1)


class Scenes(Strict):
    max_tail: float = Field(gt=0, le=1)
    dim: int = Field(ge=2)
    top_k: int = Field(ge=1)
    min_similarity: float = Field(ge=-1, le=1)


class Offline(Strict):
    good_time: float
    k: int


class Tables(Strict):
    toppop: str
    nn: str
    nn_unordered: str
    svd: str
    taste: str
    item2vec: str
    implicit_als: str
    scenes: str


class JobsConfig(Strict):
    seed: int
    holdout_share: float
    sessions: Sessions
    toppop: TopPop
    nn: NN
    svd: SVD
    taste: Taste
    item2vec: Item2Vec
    implicit_als: ImplicitALS
    scenes: Scenes
    offline: Offline
    tables: Tables


def jobs_config(path: str | Path = JOBS_CONF) -> JobsConfig:
    return load(path, JobsConfig)

