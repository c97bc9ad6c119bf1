"""The one way botify reads `conf/`: a YAML file validated by a pydantic model.

    from settings import Strict, load
    class JobsConfig(Strict): seed: int ...
    config = load("conf/jobs.yml", JobsConfig)

Each default lives in one place: for a file botify ships one of (conf/*.yml), that file, whose
model states only types and bounds; for files users write many of (plans, an experiment's arms),
the model. Unknown keys are refused as typos; every mistake raises ConfigError naming the file,
the dotted key, what is wrong and what is allowed. Relative paths are relative to the
repository root (`resolve`). A config that differs from a shipped one in a few keys is that
file with them overlaid (`overlay`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF = REPO_ROOT / "conf"

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration mistake; the message names the file and the key."""


class Strict(BaseModel):
    """Base of every config model: unknown keys are typos, values are immutable."""
    model_config = ConfigDict(extra="forbid", frozen=True)


def resolve(path: str | Path) -> Path:
    """A config path: absolute as given, else relative to the repository root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def read_yaml(path: str | Path) -> Any:
    """The parsed YAML document at `path` (relative to the repo root), or ConfigError."""
    path = resolve(path)
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read it ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None


def overlay(base: dict, changes: dict) -> dict:
    """`base` with `changes` applied: a section (a dict in both) is updated key by key, any
    other key replaced. Neither argument is modified."""
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = ({**merged[key], **value}
                       if isinstance(value, dict) and isinstance(merged.get(key), dict) else value)
    return merged


def describe(error: ValidationError, source: str | Path, prefix: str = "") -> str:
    """One line: `<file>: <key>: <what is wrong>`, for the first problem, naming the keys of
    any others (fix one, run again)."""
    problems = []
    for item in error.errors():
        key = prefix
        for part in item["loc"]:
            key += f"[{part}]" if isinstance(part, int) else f"{'.' if key else ''}{part}"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (a typo?)"
        problems.append((key or "(top level)", message))
    (key, message), others = problems[0], [k for k, _ in problems[1:]]
    more = f" (also: {', '.join(others)})" if others else ""
    return f"{source}: {key}: {message}{more}"


def validate(data: Any, model: type[M], source: str | Path, prefix: str = "") -> M:
    """`data` checked against `model`, or ConfigError naming `source` and the keys."""
    try:
        return model.model_validate({} if data is None else data)
    except ValidationError as error:
        raise ConfigError(describe(error, source, prefix)) from None


def load(path: str | Path, model: type[M]) -> M:
    """Read the YAML at `path` and validate it against `model`."""
    data = read_yaml(path)
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{resolve(path)}: must be a mapping of keys, got {type(data).__name__}")
    return validate(data, model, resolve(path))
