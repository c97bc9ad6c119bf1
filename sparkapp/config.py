"""conf/spark.yml as a `settings` model: the Spark master and the SparkConf entries of every
session a job or the analysis starts."""
from __future__ import annotations

from pathlib import Path

from settings import CONF, Strict, load

SPARK_CONF = CONF / "spark.yml"


class SparkConfig(Strict):
    master: str
    conf: dict[str, str]
    driver_java_options: list[str]


def spark_config(path: str | Path = SPARK_CONF) -> SparkConfig:
    return load(path, SparkConfig)
