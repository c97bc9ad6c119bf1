"""The service configuration (conf/service.yml) and the experiments it serves.

The file is described by pydantic models (the `settings` package): they hold types and bounds,
the shipped conf/service.yml every value, and a config that differs from it in a few keys is
that file with them overlaid (`shipped_with`). Each arm is checked against the recommender
registry (its name, table slots and parameters). A mistake raises ConfigError naming the file,
the dotted key and what is expected. Relative paths are relative to the repo root. Schema:
service/README.md.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from infra import unix_socket
from service.recommenders.registry import Params, Spec, check_arm
from settings import CONF, ConfigError, Strict, overlay, read_yaml, resolve, validate

__all__ = ["Arm", "ConfigError", "Experiment", "ServiceConfig", "load_config", "resolve",
           "shipped_with"]

SHIPPED = CONF / "service.yml"


@dataclass(frozen=True)
class Arm:
    name: str
    weight: float
    recommender: str | None     # None for an interleaved arm
    tables: dict[str, Path]
    params: Params = field(default_factory=Params)
    spec: Spec | None = None   # None for an interleaved arm and arms made by hand (tests of the split)
    interleave: tuple[str, str] | None = None   # the arms (teams a, b) an interleaved arm drafts


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
    uds: Path | None          # a Unix socket to serve on instead of host:port
    store_backend: str
    redis_url: str | None
    redis_prefix: str
    session_idle_s: float
    log_root: Path
    replica: str
    log_max_bytes: int
    log_flush_interval_s: float
    admin_token: str | None
    experiments: tuple[Experiment, ...]
    sources: tuple[Path, ...] = field(default=())  # files read, for messages

    @property
    def log_dir(self) -> Path:
        return self.log_root / self.replica


# ---------------------------------------------------------------- the file's models


class ServerSection(Strict):
    host: str
    port: int = Field(ge=0, le=65535)
    uds: str | None   # a Unix socket path: serve there instead of host:port


class StoreSection(Strict):
    backend: Literal["memory", "redis"]
    redis_url: str | None
    redis_prefix: str
    session_idle_s: float = Field(ge=0.001, le=7 * 86400)

    @model_validator(mode="after")
    def _redis_needs_url(self) -> "StoreSection":
        if self.backend == "redis" and not self.redis_url:
            raise ValueError("store.redis_url is required when store.backend is redis")
        return self


class LogSection(Strict):
    dir: str
    replica: str
    max_bytes: int = Field(ge=1024)
    flush_interval_s: float = Field(ge=0.001, le=10)


class AdminSection(Strict):
    token: str | None


def _named_once(names: list[str], what: str) -> None:
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"{what} name(s) {twice} used twice")


class Interleave(Strict):
    a: str
    b: str


class ArmFile(Strict):
    name: str
    weight: float = Field(1, ge=0, le=1e9, strict=True)
    recommender: str | None = None
    tables: dict[str, str] = {}
    params: dict[str, Any] = {}
    interleave: Interleave | None = None   # two other arms drafted into each session

    @model_validator(mode="after")
    def _recommender_or_interleave(self) -> "ArmFile":
        return recommender_or_interleave(self)


def recommender_or_interleave(arm):
    """An arm (of a service config or a plan) names a recommender or interleaves two arms."""
    if (arm.recommender is None) == (arm.interleave is None):
        raise ValueError("an arm names a recommender or interleaves two arms "
                         "(interleave: {a: <arm>, b: <arm>}), not both or neither")
    if arm.interleave is not None and (arm.tables or arm.params):
        raise ValueError("an interleaved arm has no tables or params: its two arms have them")
    return arm


def check_interleaved(arms: list) -> None:
    """Each interleaved arm drafts two different arms of the same experiment that are not
    interleaved themselves (they may have weight 0: then they serve only inside the pairs)."""
    plain = {arm.name for arm in arms if arm.interleave is None}
    for arm in arms:
        if arm.interleave is None:
            continue
        pair = (arm.interleave.a, arm.interleave.b)
        for team in pair:
            if team not in plain:
                raise ValueError(f"arm {arm.name!r} interleaves {team!r}, which is not an arm of "
                                 f"the same day with a recommender (use one of {sorted(plain)})")
        if pair[0] == pair[1]:
            raise ValueError(f"arm {arm.name!r} interleaves {pair[0]!r} with itself")


class ExperimentFile(Strict):
    name: str
    arms: list[ArmFile] = Field(min_length=1)

    @field_validator("arms")
    @classmethod
    def _arms_named_once_some_weight(cls, arms: list[ArmFile]) -> list[ArmFile]:
        _named_once([arm.name for arm in arms], "arm")
        if sum(arm.weight for arm in arms) <= 0:
            raise ValueError("must have at least one arm with a positive weight")
        check_interleaved(arms)
        return arms


class ExperimentsFile(Strict):
    experiments: list[ExperimentFile] = Field(min_length=1)

    @field_validator("experiments")
    @classmethod
    def _experiments_named_once(cls, experiments: list[ExperimentFile]) -> list[ExperimentFile]:
        _named_once([e.name for e in experiments], "experiment")
        return experiments


class ServiceFile(Strict):
    seed: int = Field(strict=True)
    catalog: str
    server: ServerSection
    store: StoreSection
    log: LogSection
    admin: AdminSection
    experiments: str | list[Any]   # a file with `experiments:`, or the list itself (ExperimentsFile)


# ---------------------------------------------------------------- loading


def shipped_with(changes: dict) -> dict:
    """conf/service.yml with `changes` overlaid (`settings.overlay`: a section's keys are
    updated one by one): the config of a pipeline day, a test or a benchmark."""
    return overlay(read_yaml(SHIPPED), changes)


def load_config(path: str | Path, experiments: str | Path | None = None,
                host: str | None = None, port: int | None = None, uds: str | Path | None = None,
                log_root: str | Path | None = None, replica: str | None = None) -> ServiceConfig:
    """Read the service config; keyword arguments (the CLI flags) override its values."""
    path = resolve(path)
    top = validate(read_yaml(path), ServiceFile, path)
    replica = replica or top.log.replica
    if not replica or "/" in replica:
        raise ConfigError(f"{path}: log.replica: must be a plain folder name, got {replica!r}")
    port = port if port is not None else top.server.port
    if not 0 <= port <= 65535:
        raise ConfigError(f"{path}: server.port: must be a TCP port, got {port}")

    sources, exp_path, exp_list = (path,), path, top.experiments
    if experiments is not None or isinstance(top.experiments, str):
        exp_path = resolve(experiments if experiments is not None else top.experiments)
        exp_list = validate(read_yaml(exp_path), ExperimentsFile, exp_path).experiments
        sources += (exp_path,)
    else:
        exp_list = validate({"experiments": exp_list}, ExperimentsFile, exp_path).experiments
    parsed = tuple(Experiment(e.name, tuple(_arm(arm, f"experiments[{i}].arms[{j}]", exp_path)
                                           for j, arm in enumerate(e.arms)))
                   for i, e in enumerate(exp_list))
    uds = uds or top.server.uds
    uds = resolve(uds) if uds else None
    if uds is not None and not unix_socket.fits(uds):
        raise ConfigError(f"{path}: server.uds: a Unix socket path must be at most "
                          f"{unix_socket.MAX_PATH_BYTES} bytes (the kernel's limit), got "
                          f"{len(os.fsencode(uds))}: {uds}")
    return ServiceConfig(top.seed, resolve(top.catalog), host or top.server.host, port,
                         uds, top.store.backend, top.store.redis_url,
                         top.store.redis_prefix, top.store.session_idle_s,
                         resolve(log_root or top.log.dir), replica,
                         top.log.max_bytes, top.log.flush_interval_s, top.admin.token, parsed, sources)


def _arm(arm: ArmFile, where: str, source: Path) -> Arm:
    """An arm checked against its recommender's registration: slots and parameters."""
    if arm.interleave is not None:
        return Arm(arm.name, float(arm.weight), None, {}, interleave=(arm.interleave.a, arm.interleave.b))
    spec, params = check_arm(arm.recommender, arm.params, arm.tables, source, where,
                             "<path of the table file>")
    tables = {slot: resolve(table) for slot, table in arm.tables.items()}
    return Arm(arm.name, float(arm.weight), arm.recommender, tables, params, spec)
