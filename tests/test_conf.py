"""Every shipped configuration file (conf/*.yml, conf/docker/*.yml) loads through the loader its
program uses, so a key renamed in a model but not in its file fails here, not in the middle of a
run. (The plans, conf/plans/*.yml: tests/test_plans.py.)"""
from __future__ import annotations

import pytest
import yaml

from analysis.config import load_config as load_analysis
from dataclient.config import load_settings as load_dataclient
from infra.config import load_config as load_stack
from jobs.config import jobs_config
from sparkapp.config import spark_config
from pipeline.config import load_pipeline_config
from service.config import load_config as load_service, shipped_with
from settings import CONF, ConfigError, overlay
from sim.config import load_config as load_sim

LOADERS = {
    "analysis.yml": load_analysis,
    "dataclient.yml": load_dataclient,
    "experiments.yml": lambda path: load_service(CONF / "service.yml", experiments=path),
    "jobs.yml": jobs_config,
    "pipeline.yml": load_pipeline_config,
    "service.yml": load_service,
    "sim.yml": load_sim,
    "spark.yml": spark_config,
    "stack.yml": load_stack,
    "docker/service.yml": load_service,
}


def shipped(*patterns: str) -> list[str]:
    return sorted(str(path.relative_to(CONF)) for pattern in patterns for path in CONF.glob(pattern))


def test_every_conf_file_has_a_loader_here():
    assert shipped("*.yml", "docker/*.yml") == sorted(LOADERS)


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_the_conf_file_loads(name):
    assert LOADERS[name](CONF / name) is not None



def test_a_service_config_missing_a_key_is_refused_by_name(tmp_path):
    """The shipped file is where each value lives: the model has no default to fall back on."""
    config = shipped_with({})
    del config["store"]["session_idle_s"]
    path = tmp_path / "service.yml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"store\.session_idle_s: Field required"):
        load_service(path)


def test_overlay_updates_sections_key_by_key_and_replaces_the_rest():
    base = {"seed": 1, "log": {"dir": "a", "replica": "r0"}, "experiments": [1]}
    merged = overlay(base, {"log": {"dir": "b"}, "experiments": [2], "seed": {"x": 1}})
    assert merged == {"seed": {"x": 1}, "log": {"dir": "b", "replica": "r0"}, "experiments": [2]}
    assert base == {"seed": 1, "log": {"dir": "a", "replica": "r0"}, "experiments": [1]}
