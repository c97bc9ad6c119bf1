"""The jobs' configuration: conf/jobs.yml (defaults of every job's flags) and conf/spark.yml
(the SparkSession), as `settings` models. Defaults here match the shipped files."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from settings import CONF, Strict, load

JOBS_CONF = CONF / "jobs.yml"
SPARK_CONF = CONF / "spark.yml"


class Sessions(Strict):
    max_corrupt_share: float = 0.01
    output_files: int = 4


class TopPop(Strict):
    size: int = 100


class NN(Strict):
    dim: int = 200
    iterations: int = 3
    reg: float = 0.1
    solver: Literal["numpy", "spark"] = "numpy"
    blocks: int = 2
    driver_max_ratings: int = 3_000_000
    partitions: int = 8
    top_k: int = 100
    batch: int = 512


class SVD(Strict):
    rank: int = 64
    driver_max_cells: int = 3_000_000
    partitions: int = 8
    top_k: int = 100
    batch: int = 512


class Taste(Strict):
    max_tail: float = Field(0.1, gt=0, le=1)
    hops: int = Field(1, ge=1)
    top_k: int = Field(100, ge=1)


class Item2Vec(Strict):
    dim: int = Field(64, ge=1)
    window: int = Field(5, ge=1)
    min_count: int = Field(2, ge=1)
    iterations: int = Field(5, ge=1)
    step_size: float = Field(0.025, gt=0)
    partitions: int = Field(8, ge=1)
    top_k: int = Field(100, ge=1)


class ImplicitALS(Strict):
    rank: int = Field(64, ge=1)
    iterations: int = Field(10, ge=1)
    reg: float = Field(0.1, ge=0)
    alpha: float = Field(10.0, gt=0)
    blocks: int = Field(2, ge=1)
    partitions: int = Field(8, ge=1)
    top_k: int = Field(100, ge=1)


class Scenes(Strict):
    max_tail: float = Field(0.1, gt=0, le=1)
    dim: int = Field(64, ge=2)
    top_k: int = Field(200, ge=1)
    min_similarity: float = Field(0.0, ge=-1, le=1)


class Offline(Strict):
    good_time: float = 0.8
    k: int = 100


class Tables(Strict):
    toppop: str = "top_tracks.json"
    nn: str = "tracks_nn.json"
    nn_unordered: str = "tracks_with_recs.json"
    svd: str = "recommendations_svd.json"
    taste: str = "tracks_taste.json"
    item2vec: str = "tracks_item2vec.json"
    implicit_als: str = "tracks_implicit_als.json"
    scenes: str = "tracks_scenes.json"


class JobsConfig(Strict):
    seed: int = 42
    holdout_share: float = 0.1
    sessions: Sessions = Sessions()
    toppop: TopPop = TopPop()
    nn: NN = NN()
    svd: SVD = SVD()
    taste: Taste = Taste()
    item2vec: Item2Vec = Item2Vec()
    implicit_als: ImplicitALS = ImplicitALS()
    scenes: Scenes = Scenes()
    offline: Offline = Offline()
    tables: Tables = Tables()


class SparkConfig(Strict):
    master: str = "local[*]"
    conf: dict[str, str] = {}
    class_archive_dir: str = "~/.cache/botify"
    driver_java_homes: list[str] = []
    test_driver_java_options: list[str] = []


def jobs_config(path: str | Path = JOBS_CONF) -> JobsConfig:
    return load(path, JobsConfig)


def spark_config(path: str | Path = SPARK_CONF) -> SparkConfig:
    return load(path, SparkConfig)
