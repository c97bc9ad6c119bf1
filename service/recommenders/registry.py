"""The recommender registry: what a config may say about each recommender, and how it is built.

A recommender is one class, registered by its module:

    @register("contextual")
    class Contextual:
        tables = {"tracks": Slot("tracks")}            # slot -> table kind, required?
        class Params(Params):                          # types, defaults and bounds (pydantic)
            ...
        @classmethod
        def build(cls, ctx: BuildContext) -> "Contextual": ...
        @classmethod                                   # optional: tables the params require
        def check_tables(cls, params, slots: set[str]) -> str | None: ...
        def recommend(self, listen: Listen) -> int | None: ...

Built-in recommenders are every module of this package (found by `pkgutil`, so adding one
touches its module only). An arm may also name `package.module:Class`: any class of that
shape importable from the Python path, so a recommender can be tried without forking.
Config validation (service/config.py) and serving (service/serving.py) loop over this registry.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from contract.catalog import Catalog
from service.stores import KeyedTable, ListTable
from settings import ConfigError, Strict, validate

TableKind = Literal["tracks", "users", "toppop"]
# What each table kind holds (the formats are in docs/DESIGN.md, "Tables").
TABLE_KINDS: dict[str, str] = {
    "tracks": "JSON lines {track, recommendations}: track-keyed lists",
    "users": "JSON lines {user, tracks}: user-keyed lists",
    "toppop": "a JSON list of track ids, most popular first",
}


@dataclass(frozen=True)
class Slot:
    """A table an arm gives a recommender: its kind and whether it must be given."""
    kind: TableKind
    required: bool = True


class Params(Strict):
    """Base of every recommender's parameters; a recommender without parameters keeps it."""


class BuildContext:
    """What `build` sees: the validated params, this arm's tables, the catalog, the seed, and a
    way to build other registered recommenders over (some of) the same tables."""

    def __init__(self, spec: "Spec", params: Params, tables: dict[str, Path], catalog: Catalog,
                 seed: int, load_table: Callable[[str, Path], KeyedTable | ListTable]):
        self.spec, self.params, self.catalog, self.seed = spec, params, catalog, seed
        self._tables, self._load = tables, load_table

    def table(self, slot: str) -> KeyedTable | ListTable | None:
        """The loaded table of `slot`; None for an optional slot the arm left out."""
        path = self._tables.get(slot)
        return None if path is None else self._load(self.spec.tables[slot].kind, path)

    def recommender(self, name: str, params: dict[str, Any] | None = None,
                    tables: dict[str, str] | None = None):
        """Another registered recommender; `tables` maps its slots to this arm's slots."""
        spec = lookup(name)
        mine = {theirs: self._tables[ours] for theirs, ours in (tables or {}).items()
                if ours in self._tables}
        return spec.build(spec.params.model_validate(params or {}), mine, self.catalog, self.seed,
                          self._load)


@dataclass(frozen=True)
class Spec:
    """A registered recommender as the config sees it."""
    name: str
    cls: type
    tables: dict[str, Slot]
    params: type[Params]

    def build(self, params: Params, tables: dict[str, Path], catalog: Catalog, seed: int,
              load_table: Callable[[str, Path], KeyedTable | ListTable]):
        return self.cls.build(BuildContext(self, params, tables, catalog, seed, load_table))


_BUILT_IN: dict[str, Spec] = {}
_discovered = False


class RegistryError(ValueError):
    """An unknown recommender name, or a named class that is not a recommender."""


def _spec(name: str, cls: type) -> Spec:
    params = getattr(cls, "Params", Params)
    tables = getattr(cls, "tables", {})
    if not (isinstance(params, type) and issubclass(params, Params)):
        raise RegistryError(f"{name}: Params must subclass service.recommenders.registry.Params")
    if not callable(getattr(cls, "build", None)) or not callable(getattr(cls, "recommend", None)):
        raise RegistryError(f"{name}: a recommender class needs a classmethod build(ctx) and "
                            f"a method recommend(listen)")
    if not all(isinstance(slot, Slot) for slot in tables.values()):
        raise RegistryError(f"{name}: tables must map slot names to Slot(kind, required)")
    return Spec(name, cls, dict(tables), params)


def register(name: str) -> Callable[[type], type]:
    """Class decorator: make `cls` the built-in recommender `name`."""
    def decorate(cls: type) -> type:
        if name in _BUILT_IN and _BUILT_IN[name].cls is not cls:
            raise RegistryError(f"recommender {name!r} is registered twice "
                                f"({_BUILT_IN[name].cls.__module__} and {cls.__module__})")
        _BUILT_IN[name] = _spec(name, cls)
        return cls
    return decorate


def built_in() -> dict[str, Spec]:
    """Every built-in recommender (importing each module of this package once)."""
    global _discovered
    if not _discovered:
        package = importlib.import_module(__package__)
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{__package__}.{module.name}")
        _discovered = True
    return dict(sorted(_BUILT_IN.items()))


def lookup(name: str) -> Spec:
    """The recommender a config names: a built-in name, or `package.module:Class`."""
    if ":" not in name:
        specs = built_in()
        if name not in specs:
            raise RegistryError(f"unknown recommender {name!r}: use one of {', '.join(specs)}, "
                                f"or package.module:Class for your own")
        return specs[name]
    module_name, _, attribute = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise RegistryError(f"recommender {name!r}: cannot import {module_name!r} ({error}); "
                            f"is it on the Python path?") from None
    cls = getattr(module, attribute, None)
    if not isinstance(cls, type):
        raise RegistryError(f"recommender {name!r}: {module_name} has no class {attribute!r}")
    return _spec(name, cls)


def check_arm(recommender: str, params: dict[str, Any], tables: dict[str, Any], source: Path,
              where: str, table_form: str) -> tuple[Spec, Params]:
    """An arm of a config or plan against its recommender's registration: the name, the table
    slots (`table_form` says how to write one) and the parameters; ConfigError naming the key."""
    try:
        spec = lookup(recommender)
    except RegistryError as error:
        raise ConfigError(f"{source}: {where}.recommender: {error}") from None
    unknown = sorted(set(tables) - set(spec.tables))
    if unknown:
        raise ConfigError(f"{source}: {where}.tables: unknown slot(s) {unknown}; "
                          f"{recommender} takes {sorted(spec.tables) or 'no tables'}")
    for slot, table in spec.tables.items():
        if table.required and slot not in tables:
            raise ConfigError(f"{source}: {where}.tables.{slot} is required: write `{slot}: "
                              f"{table_form}` naming a {table.kind} table "
                              f"({TABLE_KINDS[table.kind]}) for {recommender}")
    validated = validate(params, spec.params, source, f"{where}.params")
    # A recommender whose parameters decide which optional tables it needs says so here.
    check_tables = getattr(spec.cls, "check_tables", None)
    problem = check_tables(validated, set(tables)) if check_tables else None
    if problem:
        raise ConfigError(f"{source}: {where}.tables: {problem}")
    return spec, validated


__all__ = ["BuildContext", "Params", "RegistryError", "Slot", "Spec", "TABLE_KINDS", "built_in",
           "check_arm", "lookup", "register"]
