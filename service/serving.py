"""Everything a request needs that a reload may replace: the catalog, the tables and the
recommenders of every arm. Built completely before it is swapped in, so a request always sees
one consistent snapshot and a bad file never half-replaces what is in service."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from service.catalog import Catalog, load_catalog
from service.config import Arm, ServiceConfig
from service.experiments import Split
from service.recommenders import Recommender
from service.recommenders.contextual import Contextual
from service.recommenders.contextual_updated import ContextualUpdated
from service.recommenders.indexed import Indexed
from service.recommenders.random import Random
from service.recommenders.sticky_artist import StickyArtist
from service.recommenders.toppop import TopPop
from service.stores import KeyedTable, ListTable, Store
from service.tables import TableError, read_keyed, read_list


@dataclass(frozen=True)
class Serving:
    catalog: Catalog
    split: Split
    tables: tuple[Path, ...]
    keyed_tables: tuple[KeyedTable, ...]
    load_seconds: float
    load_cpu_seconds: float  # this process's CPU time: what the load costs on a busy machine


class _Tables:
    """Loads each (kind, file) once per build, even when several arms name it."""

    def __init__(self, store: Store, catalog: Catalog):
        self._store, self._catalog, self._loaded = store, catalog, {}

    def keyed(self, kind: str, path: Path) -> KeyedTable:
        if (kind, path) not in self._loaded:
            rows = read_keyed(path, kind, self._catalog.id_array)
            self._loaded[(kind, path)] = self._store.keyed_table(rows)
        return self._loaded[(kind, path)]

    def toppop(self, path: Path) -> ListTable:
        if ("toppop", path) not in self._loaded:
            self._loaded[("toppop", path)] = self._store.track_list(read_list(path, self._catalog.id_array))
        return self._loaded[("toppop", path)]

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(path for _, path in self._loaded)

    @property
    def keyed_tables(self) -> tuple[KeyedTable, ...]:
        return tuple(table for (kind, _), table in self._loaded.items() if kind != "toppop")


def build_serving(config: ServiceConfig, store: Store) -> Serving:
    """Load the catalog and every arm's tables; raise TableError naming the arm on failure."""
    started, started_cpu = time.perf_counter(), time.process_time()
    catalog = load_catalog(config.catalog)
    tables = _Tables(store, catalog)
    recommenders = {}
    for exp in config.experiments:
        for arm in exp.arms:
            try:
                recommenders[(exp.name, arm.name)] = _build(arm, tables, catalog, config)
            except TableError as e:
                raise TableError(f"experiment {exp.name!r}, arm {arm.name!r}: {e}") from None
    return Serving(catalog, Split(config.experiments, recommenders), tables.paths, tables.keyed_tables,
                   time.perf_counter() - started, time.process_time() - started_cpu)


def _build(arm: Arm, tables: _Tables, catalog: Catalog, config: ServiceConfig) -> Recommender:
    seed, p = config.seed, arm.params
    toppop_k = config.recommender_params["toppop"]["top_k"]
    random = Random(catalog, seed)

    def toppop(path: Path) -> TopPop:
        return TopPop(tables.toppop(path), p.get("top_k", toppop_k), seed)

    match arm.recommender:
        case "random":
            return random
        case "toppop":
            return toppop(arm.tables["toppop"])
        case "sticky_artist":
            return StickyArtist(catalog, p["anchor"], seed)
        case "indexed":
            fallback = toppop(arm.tables["toppop"]) if "toppop" in arm.tables else random
            return Indexed(tables.keyed("users", arm.tables["users"]), fallback, seed)
        case "contextual":
            return Contextual(tables.keyed("tracks", arm.tables["tracks"]), random, seed)
        case "contextual_updated":
            main = Contextual(tables.keyed("tracks", arm.tables["nn"]), None, seed)
            fallback = Indexed(tables.keyed("users", arm.tables["users"]),
                               toppop(arm.tables["toppop"]), seed)
            return ContextualUpdated(main, fallback, StickyArtist(catalog, "first", seed),
                                     p["min_time"], p["low_mean_time"], p["window"])
    raise AssertionError(f"recommender {arm.recommender!r} passed validation but has no builder")
