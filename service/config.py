"""The service configuration (conf/service.yml) and the experiments it serves.

Every key is checked here; a mistake raises ConfigError naming the file, the key and what is
expected. Relative paths are relative to the repo root. Schema and example: service/README.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from service.recommenders import SPECS
from service.stores import DEFAULT_SESSION_IDLE_S

REPO_ROOT = Path(__file__).resolve().parents[1]
_MISSING = object()


class ConfigError(ValueError):
    """A configuration mistake; the message names the file and the key."""


@dataclass(frozen=True)
class Arm:
    name: str
    weight: float
    recommender: str
    tables: dict[str, Path]
    params: dict[str, Any]


@dataclass(frozen=True)
class Experiment:
    name: str
    arms: tuple[Arm, ...]


@dataclass(frozen=True)
class ServiceConfig:
    seed: int
    catalog: Path
    host: str
    port: int
    store_backend: str
    redis_url: str | None
    redis_prefix: str
    session_idle_s: float
    log_root: Path
    replica: str
    log_max_bytes: int
    log_flush_interval_s: float
    admin_token: str | None
    recommender_params: dict[str, dict[str, Any]]
    experiments: tuple[Experiment, ...]
    sources: tuple[Path, ...] = field(default=())  # files read, for messages

    @property
    def log_dir(self) -> Path:
        return self.log_root / self.replica


def resolve(path: str | Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else REPO_ROOT / path


class _Section:
    """A mapping being read: typed getters with dotted key names, and a check for leftovers."""

    def __init__(self, data: Any, where: str, source: Path):
        self.where, self.source = where, source
        if not isinstance(data, dict):
            self.fail(f"must be a mapping, got {type(data).__name__}")
        self.data, self.seen = data, set()

    def fail(self, message: str, key: str | None = None):
        name = f"{self.where}.{key}" if self.where and key else (key or self.where or "top level")
        raise ConfigError(f"{self.source}: {name} {message}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
        self.seen.add(key)
        if key not in self.data:
            if default is _MISSING:
                self.fail("is required", key)
            return default
        value = self.data[key]
        if default is None and value is None:
            return None
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            self.fail(f"must be {_names(kind)}, got a boolean", key)
        if not isinstance(value, kind):
            self.fail(f"must be {_names(kind)}, got {value!r}", key)
        return value

    def number(self, key: str, low: float, high: float, default: Any = _MISSING) -> float:
        value = self.get(key, (int, float), default)
        if value is None:
            return None
        if not (low <= value <= high) or math.isnan(value):
            self.fail(f"must be between {low} and {high}, got {value!r}", key)
        return value

    def section(self, key: str, default: Any = _MISSING) -> "_Section":
        value = self.get(key, dict, default)
        return _Section(value, f"{self.where}.{key}" if self.where else key, self.source)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            self.fail(f"has unknown key(s) {unknown}; see service/README.md for the schema")


def _names(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "an integer", float: "a number", str: "a string", dict: "a mapping",
             list: "a list", bool: "true or false"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None


def load_config(path: str | Path, experiments: str | Path | None = None,
                host: str | None = None, port: int | None = None,
                log_root: str | Path | None = None, replica: str | None = None) -> ServiceConfig:
    """Read the service config; keyword arguments (the CLI flags) override its values."""
    path = resolve(path)
    top = _Section(_read_yaml(path), "", path)
    seed = top.get("seed", int)
    catalog = resolve(top.get("catalog", str))

    server = top.section("server", {})
    # Every key is read (and checked) even when a CLI flag overrides it.
    config_host = server.get("host", str, "127.0.0.1")
    host = host or config_host
    config_port = server.get("port", int, 5001)
    port = port if port is not None else config_port
    server.done()
    if not 0 <= port <= 65535:
        server.fail(f"must be a TCP port, got {port}", "port")

    store = top.section("store", {})
    backend = store.get("backend", str, "memory")
    if backend not in ("memory", "redis"):
        store.fail(f"must be 'memory' or 'redis', got {backend!r}", "backend")
    redis_url = store.get("redis_url", str, None)
    if backend == "redis" and not redis_url:
        store.fail("is required when store.backend is redis", "redis_url")
    redis_prefix = store.get("redis_prefix", str, "botify")
    session_idle_s = store.number("session_idle_s", 0.001, 7 * 86400, DEFAULT_SESSION_IDLE_S)
    store.done()

    log = top.section("log")
    config_root, config_replica = log.get("dir", str), log.get("replica", str, "r0")
    log_root = resolve(log_root or config_root)
    replica = replica or config_replica
    if not replica or "/" in replica:
        log.fail(f"must be a plain folder name, got {replica!r}", "replica")
    max_bytes = log.get("max_bytes", int, 16 * 2**20)
    if max_bytes < 1024:
        log.fail(f"must be at least 1024, got {max_bytes}", "max_bytes")
    flush = log.number("flush_interval_s", 0.001, 10.0, 0.05)
    log.done()

    admin = top.section("admin", {})
    token = admin.get("token", str, None)
    admin.done()

    params = _recommender_params(top.section("recommenders"))

    experiments_value = top.get("experiments", (str, list))
    top.done()
    sources = (path,)
    if experiments is not None or isinstance(experiments_value, str):
        exp_path = resolve(experiments if experiments is not None else experiments_value)
        exp_top = _Section(_read_yaml(exp_path), "", exp_path)
        experiments_value = exp_top.get("experiments", list)
        exp_top.done()
        sources += (exp_path,)
    else:
        exp_path = path
    parsed = _experiments(experiments_value, exp_path, params)
    return ServiceConfig(seed, catalog, host, port, backend, redis_url, redis_prefix, session_idle_s,
                         log_root, replica, max_bytes, flush, token, params, parsed, sources)


def _recommender_params(section: _Section) -> dict[str, dict[str, Any]]:
    """Default parameters per recommender (arms may override them)."""
    params = {}
    for name, spec in SPECS.items():
        if not spec.params:
            section.get(name, dict, {})
            continue
        params[name] = _params(section.section(name), spec.params, required=True)
    section.done()
    return params


def _params(section: _Section, names: tuple[str, ...], required: bool) -> dict[str, Any]:
    default = _MISSING if required else None
    checks = {
        "top_k": lambda: section.get("top_k", int, default),
        "anchor": lambda: section.get("anchor", str, default),
        "min_time": lambda: section.number("min_time", 0, 1, default),
        "low_mean_time": lambda: section.number("low_mean_time", 0, 1, default),
        "window": lambda: section.get("window", int, default),
    }
    values = {name: checks[name]() for name in names}
    section.done()
    values = {k: v for k, v in values.items() if v is not None}
    if values.get("top_k", 1) < 1:
        section.fail("must be at least 1", "top_k")
    if values.get("window", 1) < 1:
        section.fail("must be at least 1", "window")
    if values.get("anchor", "first") not in ("first", "previous"):
        section.fail(f"must be 'first' or 'previous', got {values['anchor']!r}", "anchor")
    return values


def _experiments(value: list, source: Path, defaults: dict[str, dict[str, Any]]) -> tuple[Experiment, ...]:
    if not value:
        raise ConfigError(f"{source}: experiments must list at least one experiment")
    experiments, names = [], set()
    for i, item in enumerate(value):
        exp = _Section(item, f"experiments[{i}]", source)
        name = exp.get("name", str)
        if name in names:
            exp.fail(f"{name!r} is used twice", "name")
        names.add(name)
        arms_value = exp.get("arms", list)
        exp.done()
        if not arms_value:
            exp.fail("must list at least one arm", "arms")
        arms, arm_names = [], set()
        for j, arm_item in enumerate(arms_value):
            arm = _Section(arm_item, f"experiments[{i}].arms[{j}]", source)
            arm_name = arm.get("name", str)
            if arm_name in arm_names:
                arm.fail(f"{arm_name!r} is used twice in experiment {name!r}", "name")
            arm_names.add(arm_name)
            weight = arm.number("weight", 0, 1e9, 1)
            recommender = arm.get("recommender", str)
            if recommender not in SPECS:
                arm.fail(f"must be one of {sorted(SPECS)}, got {recommender!r}", "recommender")
            spec = SPECS[recommender]
            tables_section = arm.section("tables", {})
            tables = {}
            for slot, (_, required) in spec.tables.items():
                table = tables_section.get(slot, str, _MISSING if required else None)
                if table is not None:
                    tables[slot] = resolve(table)
            tables_section.done()
            overrides = _params(arm.section("params", {}), spec.params, required=False)
            arm.done()
            arms.append(Arm(arm_name, float(weight), recommender, tables,
                            {**defaults.get(recommender, {}), **overrides}))
        if sum(a.weight for a in arms) <= 0:
            exp.fail("must have at least one arm with a positive weight", "arms")
        experiments.append(Experiment(name, tuple(arms)))
    return tuple(experiments)
