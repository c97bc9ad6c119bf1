"""docker-compose.yml cannot run here (no Docker engine): it is validated against the Compose
Specification's JSON schema and checked to agree with conf/ (names, ports, volumes)."""
import json
import re
import tomllib
from importlib import metadata
from pathlib import Path

import jsonschema
import pytest
import yaml

from service.config import load_config

REPO = Path(__file__).resolve().parent.parent
# The Compose Specification schema (compose-spec/compose-spec, Apache-2.0; see LICENSE beside it).
SCHEMA = json.loads((REPO / "tests" / "schemas" / "compose-spec.json").read_text())


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def stack_ports():
    return yaml.safe_load((REPO / "conf" / "stack.yml").read_text())["ports"]


def schema_errors(document) -> list[str]:
    validator = jsonschema.Draft201909Validator(SCHEMA)
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(document)]


def published(service: dict) -> set[int]:
    return {int(str(p).split(":")[0]) for p in service.get("ports", [])}


def test_compose_file_follows_the_compose_specification(compose):
    assert schema_errors(compose) == []


def test_the_schema_check_catches_mistakes(compose):
    broken = json.loads(json.dumps(compose))
    broken["services"]["redis"]["ports"] = "6379"          # must be a list
    broken["services"]["nginx"]["restart_policy"] = "no"   # not a service key
    assert len(schema_errors(broken)) == 2


def test_the_stack_has_every_component(compose):
    assert {"namenode", "datanode", "spark-master", "spark-worker", "redis", "recommender",
            "nginx"} <= set(compose["services"])
    assert compose["services"]["recommender"]["deploy"]["replicas"] >= 2


def test_hdfs_ports_agree_with_conf(compose, stack_ports):
    namenode = compose["services"]["namenode"]
    env = namenode["environment"]
    assert env["CORE-SITE.XML_fs.defaultFS"].endswith(f":{stack_ports['namenode_rpc']}")
    assert env["HDFS-SITE.XML_dfs.namenode.http-address"].endswith(f":{stack_ports['namenode_http']}")
    assert {stack_ports["namenode_rpc"], stack_ports["namenode_http"]} <= published(namenode)
    dataclient = compose["services"]["dataclient"]["entrypoint"]
    assert f"http://namenode:{stack_ports['namenode_http']}" in dataclient


def test_redis_and_service_ports_agree_with_conf(compose, stack_ports):
    assert stack_ports["redis"] in published(compose["services"]["redis"])
    assert stack_ports["service"] in published(compose["services"]["nginx"])
    nginx = (REPO / "conf" / "nginx" / "nginx.conf").read_text()
    assert f"listen {stack_ports['service']};" in nginx
    assert re.search(rf"server recommender:{stack_ports['service']};", nginx)
    mount = compose["services"]["nginx"]["volumes"][0].split(":")
    assert (REPO / mount[0]).resolve() == REPO / "conf" / "nginx" / "nginx.conf"


def test_replicas_use_the_shared_redis_and_the_log_volume(compose, stack_ports):
    recommender = compose["services"]["recommender"]
    command = recommender["command"][-1]
    config_path = re.search(r"--config (\S+)", command).group(1)
    config = load_config(REPO / config_path)  # the file the replicas read is a valid service config
    assert config.store_backend == "redis"
    assert config.redis_url == f"redis://redis:{stack_ports['redis']}/0"
    assert config.port == stack_ports["service"]
    assert "--replica" in command  # one log folder per replica
    volumes = dict(v.split(":")[:2] for v in recommender["volumes"])
    assert volumes["service-logs"] == str(config.log_root)
    dataclient_logs = dict(v.split(":")[:2] for v in compose["services"]["dataclient"]["volumes"])
    assert dataclient_logs["service-logs"] == str(config.log_root)
    assert volumes["./data/world"] == str(config.catalog.parent)
    assert "service-logs" in compose["volumes"]


def test_spark_image_matches_the_pyspark_the_jobs_use(compose):
    image = compose["services"]["spark-master"]["image"]
    assert compose["services"]["spark-worker"]["image"] == image
    assert image.split(":")[1].startswith(metadata.version("pyspark"))


def test_the_image_copies_every_package_the_project_installs():
    """The Dockerfile's `pip install .` finds only the packages copied before it: a package
    left out (settings/, read by every config) would break `python -m service` in the image."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = {pattern.rstrip("*") for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set(re.findall(r"^COPY (\S+) \1$", (REPO / "Dockerfile").read_text(), re.MULTILINE))
    assert packages - copied == set()
