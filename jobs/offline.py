"""Offline check of a recommendation table on held-out sessions: hit rate@k and NDCG@k.

Query: a held-out session's key (its first track for track-keyed tables, its user for user-keyed
ones). Target: the session's next well-listened track, i.e. the first track after the first one
with time >= good_time (other than the first track). One target per session; sessions without
one are left out. A hit is the target within the key's first k recommendations; NDCG@k with one
relevant item is 1 / log2(rank + 2) for a hit at 0-based rank, else 0. A key missing from the
table is a miss (coverage says how often). Top-pop answers every query with the same list.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.toppop import listens


def heldout_queries(sessions: DataFrame, good_time: float) -> DataFrame:
    """Held-out sessions -> user, session, context (first track), target (next well-listened)."""
    return (listens(sessions, "first_track").withColumnRenamed("first_track", "context")
            .where((F.col("pos") >= 1) & (F.col("time") >= good_time) & (F.col("track") != F.col("context")))
            .groupBy("user", "session", "context")
            .agg(F.min_by("track", "pos").alias("target")))


def hit_counts(lookup: Callable[[int], Sequence[int] | None], keys: Sequence[int],
               targets: Sequence[int], k: int) -> np.ndarray:
    """[queries, covered, hits, gains]; `lookup(key)` is the table's list for a key, None when the
    table has no such key. Counts of several parts add up (compare_on_executors)."""
    hits, gains, covered = 0, 0.0, 0
    for key, target in zip(keys, targets):
        recs = lookup(key)
        if recs is None:
            continue
        covered += 1
        found = np.flatnonzero(np.asarray(recs[:k]) == target)
        if found.size:
            hits += 1
            gains += 1.0 / np.log2(found[0] + 2)
    return np.array([len(keys), covered, hits, gains], dtype=np.float64)


def rates(counts: Sequence[float]) -> dict[str, float]:
    """hit_counts' [queries, covered, hits, gains] -> coverage, hit rate and NDCG per query."""
    queries, covered, hits, gains = counts
    n = max(queries, 1)
    return {"queries": int(queries), "coverage": covered / n, "hit_rate": hits / n, "ndcg": gains / n}


def hit_rate_ndcg(lookup: Callable[[int], Sequence[int] | None], keys: Sequence[int],
                  targets: Sequence[int], k: int) -> dict[str, float]:
    """`lookup(key)` is the table's list for a key, None when the table has no such key."""
    return rates(hit_counts(lookup, keys, targets, k))


def report(job: str, k: int, results: dict[str, dict[str, float]]) -> None:
    """Print the comparison as a small aligned table (stdout: it is the job's result)."""
    print(f"[{job}] offline check on held-out sessions (next track with time >= good_time):")
    width = max(24, *(len(name) + 2 for name in results))
    print(f"  {'table':<{width}}{'queries':>9}{'coverage':>10}{f'hit@{k}':>10}{f'ndcg@{k}':>10}")
    for name, r in results.items():
        print(f"  {name:<{width}}{r['queries']:>9}{r['coverage']:>10.3f}{r['hit_rate']:>10.4f}{r['ndcg']:>10.4f}")


def compare(job: str, table_name: str, lookup: Callable[[int], Sequence[int] | None],
            heldout_sessions: DataFrame, key: str, top_pop: Sequence[int], good_time: float,
            k: int) -> dict[str, dict[str, float]]:
    """Evaluate a table and top-pop on the same held-out queries, print and return both.
    `key` is the queries' column the table is keyed by: "context" or "user"."""
    queries = heldout_queries(heldout_sessions, good_time).select(key, "target").toPandas()
    keys, targets = queries[key].tolist(), queries["target"].tolist()
    results = {table_name: hit_rate_ndcg(lookup, keys, targets, k),
               "top-pop": hit_rate_ndcg(lambda _: top_pop, keys, targets, k)}
    report(job, k, results)
    return results


@dataclass(frozen=True)
class Checked:
    """A table checked on the executors: its rows (`rows`: columns `key` and `recs`), met by the
    queries in a join, or a function of the key (`lookup`: top-pop's one list, an artist table's
    expansion), shipped to the executors. `key`: the queries' column, "context" or "user"."""
    key: str
    rows: DataFrame | None = None
    lookup: Callable[[int], Sequence[int] | None] | None = None


def rates_on_executors(queries: DataFrame, tables: dict[str, Checked], k: int) -> dict[str, dict[str, float]]:
    """rates() of every table on the same queries (columns context, user, target) in one pass:
    each partition counts its hits; only the counts reach the driver."""
    names = list(tables)
    columns = [f"t{i}_{count}" for i in range(len(names)) for count in ("queries", "covered", "hits", "gains")]
    joined = queries
    for i, name in enumerate(names):
        table = tables[name]
        if table.rows is not None:
            joined = joined.join(table.rows.select(table.key, F.col("recs").alias(f"recs{i}")), table.key, "left")
    lookups = {i: (tables[name].key, tables[name].lookup) for i, name in enumerate(names)
               if tables[name].rows is None}

    def count(batches):
        for batch in batches:
            targets, counts = batch["target"].tolist(), []
            for i in range(len(names)):
                if i in lookups:
                    key, lookup = lookups[i]
                    counts.append(hit_counts(lookup, batch[key].tolist(), targets, k))
                else:
                    recs = batch[f"recs{i}"].tolist()
                    counts.append(hit_counts(recs.__getitem__, range(len(batch)), targets, k))
            yield pd.DataFrame([np.concatenate(counts)], columns=columns)

    totals = (joined.mapInPandas(count, ", ".join(f"{c} double" for c in columns))
              .agg(*[F.sum(c).alias(c) for c in columns]).first())
    totals = [0.0 if totals[c] is None else totals[c] for c in columns]
    return {name: rates(totals[4 * i:4 * i + 4]) for i, name in enumerate(names)}


def compare_on_executors(job: str, table_name: str, table: DataFrame, heldout_sessions: DataFrame,
                         key: str, top_pop: Sequence[int], good_time: float,
                         k: int) -> dict[str, dict[str, float]]:
    """`compare` for a table left on the executors (`table`: columns `key` and `recs`)."""
    queries = heldout_queries(heldout_sessions, good_time)
    results = rates_on_executors(queries, {table_name: Checked(key, rows=table),
                                           "top-pop": Checked(key, lookup=lambda _: top_pop)}, k)
    report(job, k, results)
    return results
