"""Everything a request needs that a reload may replace: the catalog, the tables and the
recommenders of every arm. Built completely before it is swapped in, so a request always sees
one consistent snapshot and a bad file never half-replaces what is in service."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from contract.catalog import Catalog, load_catalog
from service.config import ServiceConfig
from service.experiments import Split
from service.interleaving import Interleaved
from service.stores import KeyedTable, ListTable, Store
from service.tables import TableError, read_keyed, read_list


@dataclass(frozen=True)
class Serving:
    catalog: Catalog
    # The catalog's ids, for the check of every /next and /last. Why not `catalog.records`: a
    # lookup compares the stored key object, and these ints are made together, packed in
    # memory, where the records' keys lie scattered among the parsed records (a cache miss).
    track_ids: frozenset[int]
    split: Split
    recommenders: dict  # (experiment, arm) -> the arm's recommender (in-process replays)
    tables: tuple[Path, ...]
    keyed_tables: tuple[KeyedTable, ...]
    load_seconds: float
    load_cpu_seconds: float  # this process's CPU time: what the load costs on a busy machine


class _Tables:
    """Loads each (kind, file) once per build, even when several arms name it."""

    def __init__(self, store: Store, catalog: Catalog):
        self._store, self._catalog, self._loaded = store, catalog, {}

    def load(self, kind: str, path: Path) -> KeyedTable | ListTable:
        if (kind, path) not in self._loaded:
            if kind == "toppop":
                table = self._store.track_list(read_list(path, self._catalog.id_array))
            else:
                table = self._store.keyed_table(read_keyed(path, kind, self._catalog.id_array))
            self._loaded[(kind, path)] = table
        return self._loaded[(kind, path)]

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
            if arm.interleave is not None:
                continue  # built below, from its two arms
            try:
                recommenders[(exp.name, arm.name)] = arm.spec.build(arm.params, arm.tables, catalog,
                                                                    config.seed, tables.load)
            except TableError as e:
                raise TableError(f"experiment {exp.name!r}, arm {arm.name!r}: {e}") from None
        for arm in exp.arms:
            if arm.interleave is not None:
                a, b = (recommenders[(exp.name, team)] for team in arm.interleave)
                recommenders[(exp.name, arm.name)] = Interleaved(a, b, catalog, config.seed)
    return Serving(catalog, frozenset(catalog.id_array.tolist()), Split(config.experiments, recommenders),
                   recommenders, tables.paths, tables.keyed_tables,
                   time.perf_counter() - started, time.process_time() - started_cpu)
