"""Shared fixtures. The servers are real: the first test that needs HDFS or Redis starts an
ephemeral stack (infra/stack.py: Apache Hadoop's NameNode and DataNode, redis-server, on free
ports), which the whole session then shares and which stops when pytest ends; its daemons are
bound to this process, so even a killed pytest leaves none behind. A stack already exported in
the environment (`./run.sh up`, then its `export` lines) is used instead. A server that cannot
start fails the test with the launcher's message; nothing is ever skipped.

Tests that need a JVM (HDFS, Spark) or a server are marked `slow` here, so
`./run.sh test -m "not slow"` is the quick part that starts nothing.

`./run.sh test` runs two pytest-xdist workers (pyproject.toml), each with its own stack; `-n 0`
runs the suite in one process.
"""
from __future__ import annotations

import os

import pytest

from sparkapp.config import spark_config

# Before any test starts a driver: conf/spark.yml's options for the suite's Spark drivers (once:
# xdist's workers inherit the controller's environment and read this file again).
_submit_opts = os.environ.get("SPARK_SUBMIT_OPTS", "").split()
os.environ["SPARK_SUBMIT_OPTS"] = " ".join(
    [*_submit_opts, *(o for o in spark_config().test_driver_java_options if o not in _submit_opts)])

STACK_FIXTURES = {"stack_env", "spark"}
# Modules whose tests start Spark or a stack of their own, without the fixtures above.
JVM_MODULES = {"test_analysis_job", "test_jobs", "test_jobs_cluster", "test_jobs_synth",
               "test_sim_service_days", "test_stack", "test_lifetime", "test_pipeline"}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: needs a JVM (HDFS, Spark) or a server; "
                                       "deselect with -m 'not slow'")


# The suite runs in two xdist workers (pyproject.toml), one group of tests at a time each. The
# pipeline runs (which start JVMs of their own) are one group and the tests of the suite's
# SparkSession another, so the two heavy halves start on different workers and only one worker
# starts a SparkSession; every other module is a group of its own. Groups start in the order
# below, longest first, so the workers finish together.
WORKER_GROUPS = {"test_pipeline": "runs", "test_lifetime": "runs",
                 **dict.fromkeys(("test_jobs", "test_analysis_job", "test_foundation",
                                  "test_sim_service_days", "test_taste"), "spark")}
LONGEST_FIRST = ("runs", "spark", "test_analysis_stats", "test_jobs_cluster", "test_service",
                 "test_stack", "test_dataclient", "test_sim_longterm", "test_sim_calibration")


def worker_group(item) -> str:
    return WORKER_GROUPS.get(item.module.__name__, item.module.__name__)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups off the items
def pytest_collection_modifyitems(items):
    for item in items:
        if STACK_FIXTURES & set(item.fixturenames) or item.module.__name__ in JVM_MODULES:
            item.add_marker(pytest.mark.slow)
        item.add_marker(pytest.mark.xdist_group(worker_group(item)))
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(worker_group(item), len(rank)))


@pytest.fixture(scope="session")
def stack_env() -> dict[str, str]:
    """The stack's addresses (BOTIFY_* variables), also put into os.environ for subprocesses."""
    if os.environ.get("BOTIFY_WEBHDFS_URL"):
        yield {k: v for k, v in os.environ.items() if k.startswith(("BOTIFY_", "SPARK_LOCAL_IP"))}
        return
    from infra import stack as stack_module

    config = stack_module.load_config()
    stack = stack_module.new_stack(config, ephemeral=True)
    try:
        stack.up(config)
    except stack_module.StackError as error:
        pytest.fail(f"could not start the test stack (HDFS + Redis): {error}", pytrace=False)
    saved = dict(os.environ)
    os.environ.update(stack.env())
    try:
        yield stack.env()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        stack.down()


@pytest.fixture(scope="session")
def webhdfs_url(stack_env) -> str:
    """WebHDFS base URL of the running NameNode, e.g. http://127.0.0.1:9870."""
    return stack_env["BOTIFY_WEBHDFS_URL"]


@pytest.fixture(scope="session")
def hdfs_fs(stack_env) -> str:
    """The HDFS file system URI for Spark, e.g. hdfs://127.0.0.1:9000."""
    return stack_env["BOTIFY_HDFS_FS"]


@pytest.fixture(scope="session")
def hdfs_user(stack_env) -> str:
    return stack_env["BOTIFY_HDFS_USER"]


@pytest.fixture(scope="session")
def hdfs_client(webhdfs_url, hdfs_user):
    from hdfs import InsecureClient

    client = InsecureClient(webhdfs_url, user=hdfs_user)
    client.makedirs(f"/user/{hdfs_user}")
    return client


@pytest.fixture(scope="session")
def redis_url(stack_env) -> str:
    return stack_env["BOTIFY_REDIS_URL"]


@pytest.fixture(scope="session")
def spark(stack_env):
    """One local SparkSession for the whole suite: Spark's start-up is paid once. The jobs' own
    session (conf/spark.yml, the driver's Java and class archive), with fewer shuffle
    partitions for the tests' small frames."""
    from sparkapp.session import spark_session

    session = spark_session("tests", "local[2]")
    session.conf.set("spark.sql.shuffle.partitions", "4")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
