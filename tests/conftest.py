"""Shared fixtures. The servers are real: the first test that needs HDFS or Redis starts an
ephemeral stack (infra/: Apache Hadoop's NameNode and DataNode, redis-server, on free
ports), which the whole session then shares and which stops when pytest ends; its daemons are
bound to this process, so even a killed pytest leaves none behind. A stack already exported in
the environment (`./run.sh up`, then its `export` lines) is used instead. A server that cannot
start fails the test with the launcher's message; nothing is ever skipped.

Marks live in the test modules (pyproject.toml registers them): `slow` on every test that needs
a JVM (HDFS, Spark) or a server, so `./run.sh test -m "not slow"` is the quick part that starts
nothing; `xdist_group(name)` where modules must share a worker (the pipeline runs; the users of
the suite's one SparkSession); `heavy(n)` on the modules that take longest, started first. This
file checks the first: a test that needs a stack or Spark fixture without `slow` stops the
collection, and a test without `slow` that starts a JVM anyway finds a `java` that fails it.

`./run.sh test` runs two pytest-xdist workers (pyproject.toml), each with its own stack; `-n 0`
runs the suite in one process.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from sparkapp.config import spark_config
from support.golden import golden_value

# Before any test starts a driver: conf/spark.yml's options for the suite's Spark drivers (once:
# xdist's workers inherit the controller's environment and read this file again).
_submit_opts = os.environ.get("SPARK_SUBMIT_OPTS", "").split()
os.environ["SPARK_SUBMIT_OPTS"] = " ".join(
    [*_submit_opts, *(o for o in spark_config().driver_java_options if o not in _submit_opts)])

def pytest_addoption(parser):
    parser.addoption("--regenerate-golden", action="store_true",
                     help="write the tests' golden files (tests/golden/) from this run's outputs")


STACK_FIXTURES = {"stack_env", "spark"}   # every HDFS, Redis and Spark fixture below needs one


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    """A module with a test that needs a stack or Spark fixture (HDFS, Redis, Spark) but is not
    marked slow fails to collect, which stops the run: `-m "not slow"` could not deselect it."""
    report = yield
    if isinstance(collector, pytest.Module) and report.passed:
        unmarked = [item.name for item in report.result if isinstance(item, pytest.Function)
                    and STACK_FIXTURES & set(item.fixturenames)
                    and not item.get_closest_marker("slow")]
        if unmarked:
            report.outcome = "failed"
            report.longrepr = (f"{collector.nodeid}: these tests need HDFS, Redis or Spark but are "
                               f"not marked slow (add `pytestmark = pytest.mark.slow` to the "
                               f"module, or mark the tests): {', '.join(unmarked)}")
    return report


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups off the items
def pytest_collection_modifyitems(items):
    """Every module without an `xdist_group` mark is a group of its own (its module fixtures run
    once, on one worker); the `heavy` modules start first, heaviest first, so the two workers
    end together."""
    for item in items:
        if not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
    items.sort(key=lambda item: -weight(item))


def weight(item) -> int:
    heavy = item.get_closest_marker("heavy")
    return heavy.args[0] if heavy else 0


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """A test not marked slow runs with a `java` that fails loudly: a quick test that starts a
    JVM (a stack, Spark, a pipeline run), however indirectly, fails instead of starting one."""
    if item.get_closest_marker("slow"):
        return (yield)
    saved = {name: os.environ.get(name) for name in ("JAVA_HOME", "PATH")}
    os.environ["JAVA_HOME"] = str(JAVA_TRAP)
    os.environ["PATH"] = f"{JAVA_TRAP / 'bin'}{os.pathsep}{saved['PATH'] or ''}"
    try:
        return (yield)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def make_java_trap() -> Path:
    home = Path(tempfile.mkdtemp(prefix="botify-java-trap-"))
    java = home / "bin" / "java"
    java.parent.mkdir()
    java.write_text("#!/bin/sh\necho 'botify tests: a test not marked slow started a JVM; mark "
                    "its module with pytestmark = pytest.mark.slow' >&2\nexit 97\n")
    java.chmod(0o755)
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home


JAVA_TRAP = make_java_trap()


@pytest.fixture
def golden(request):
    """golden(name, actual): the expected value in tests/golden/<name> (tests/support/golden.py)."""
    regenerate = request.config.getoption("--regenerate-golden")
    return lambda name, actual: golden_value(name, actual, regenerate)


@pytest.fixture(scope="session")
def stack_env() -> dict[str, str]:
    """The stack's addresses (BOTIFY_* variables), also put into os.environ for subprocesses."""
    if os.environ.get("BOTIFY_WEBHDFS_URL"):
        yield {k: v for k, v in os.environ.items() if k.startswith(("BOTIFY_", "SPARK_LOCAL_IP"))}
        return
    from infra.config import load_config
    from infra.errors import StackError
    from infra.stack import new_stack

    config = load_config()
    stack = new_stack(config, ephemeral=True)
    try:
        stack.up(config)
    except StackError as error:
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
    session (conf/spark.yml), with fewer shuffle partitions for the tests' small frames."""
    from sparkapp.session import spark_session

    session = spark_session("tests", "local[2]")
    session.conf.set("spark.sql.shuffle.partitions", "4")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
