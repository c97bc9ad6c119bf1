"""Shared fixtures. The servers are real: `./run.sh test` starts HDFS and Redis (infra/stack.py)
and passes their addresses in BOTIFY_* variables. A fixture whose server is missing fails the
test with a message; it never skips."""
from __future__ import annotations

import os
import sys

import pytest


def stack_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the tests with `./run.sh test` (it starts HDFS and "
                    f"Redis), or `./run.sh up` and export what it prints.", pytrace=False)
    return value


@pytest.fixture(scope="session")
def webhdfs_url() -> str:
    """WebHDFS base URL of the running NameNode, e.g. http://127.0.0.1:9870."""
    return stack_env("BOTIFY_WEBHDFS_URL")


@pytest.fixture(scope="session")
def hdfs_fs() -> str:
    """The HDFS file system URI for Spark, e.g. hdfs://127.0.0.1:9000."""
    return stack_env("BOTIFY_HDFS_FS")


@pytest.fixture(scope="session")
def hdfs_user() -> str:
    return stack_env("BOTIFY_HDFS_USER")


@pytest.fixture(scope="session")
def hdfs_client(webhdfs_url, hdfs_user):
    from hdfs import InsecureClient

    client = InsecureClient(webhdfs_url, user=hdfs_user)
    client.makedirs(f"/user/{hdfs_user}")
    return client


@pytest.fixture(scope="session")
def redis_url() -> str:
    return stack_env("BOTIFY_REDIS_URL")


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession for the whole suite: Spark's start-up is paid once."""
    from pyspark.sql import SparkSession

    # Spark's Python workers must be this venv's python (numpy, pandas, pyarrow), not python3.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (SparkSession.builder.master("local[2]").appName("botify-tests")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "4")
               .config("spark.sql.session.timeZone", "UTC")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
