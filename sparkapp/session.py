"""The SparkSession of a job or of the analysis, configured from conf/spark.yml.

Started by spark-submit, the JVM already holds spark-submit's --master and --conf: conf/spark.yml
only fills in what they left unset. Started from plain Python, the session is built from
conf/spark.yml alone (`master` overrides its master).
"""
from __future__ import annotations

import os
import sys

from sparkapp.config import spark_config


def spark_session(name: str, master: str | None = None):
    """A SparkSession named botify-`name`, logging at WARN."""
    from pyspark import SparkConf, SparkContext
    from pyspark.sql import SparkSession

    # Python workers must run this interpreter (it has numpy/pyarrow); the default is `python3`.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    config = spark_config()
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ
    given = set()
    if submitted:
        SparkContext._ensure_initialized()
        given = {key for key, _ in SparkConf().getAll()}
    builder = SparkSession.builder.appName(f"botify-{name}")
    if master or not submitted:
        builder = builder.master(master or config.master)
    for key, value in config.conf.items():
        if key not in given:
            builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
