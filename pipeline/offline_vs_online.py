"""Offline against online: each table's offline check beside the A/B effect of the arm serving it,
and which offline metric orders the arms as the A/B does.

Offline: the `offline_tables` job's results (jobs/offline_tables.py: every table on the same
held-out sessions), which the pipeline keeps in the manifest. Online: the A/B day's decision
(the primary metric by the method that decides), each treatment's relative effect against the
control, whose own effect is 0. An arm's offline figures are those of its first table in the
plan (the one it answers from first: Indexed's user lists before its top-pop fallback); arms
without a table stay out of the ranking. The agreement of an offline metric with the A/B is
Spearman's rank correlation and Kendall's tau over the arms (+1: the same order, -1: reversed);
with a handful of arms they are coarse, so the two orders are printed as well.

Written at the end of an A/B day into the report folder (offline_vs_online.md, .json) and the
manifest, from which pipeline/tracking.py logs the agreement to MLflow.
"""
from __future__ import annotations

import json
from pathlib import Path

from scipy.stats import kendalltau, spearmanr

from pipeline.plan import DayPlan, Plan

JOB = "offline_tables"
METRICS = ("coverage", "hit_rate", "ndcg")   # jobs/offline.py's rates, higher is better


def offline_results(manifest: dict) -> dict[str, dict] | None:
    """The offline_tables job's results from the manifest (the last day that ran it), or None."""
    found = [checks["offline"] for step, checks in manifest.get("offline", {}).items()
             if step.endswith(f".{JOB}") and "offline" in checks]
    return found[-1] if found else None


def online_effects(day: DayPlan, results: dict) -> dict[str, dict]:
    """arm -> effect, lower, upper of the A/B decision; the control at 0."""
    effects = {day.control: {"effect": 0.0, "lower": 0.0, "upper": 0.0}}
    for arm, decision in results.get("decision", {}).get("treatments", {}).items():
        effects[arm] = {field: decision.get(field) for field in ("effect", "lower", "upper")}
    return effects


def served_arms(day: DayPlan) -> list:
    return [arm for arm in day.arms if arm.interleave is None and arm.weight > 0]


def rows(day: DayPlan, offline: dict[str, dict], effects: dict[str, dict]) -> list[dict]:
    """One row per checked table and arm serving it (a table no arm serves: one row, arm None)."""
    out = []
    for table, figures in offline.items():
        arms = [arm.name for arm in served_arms(day) if table in arm.tables.values()] or [None]
        for arm in arms:
            online = effects.get(arm, {}) if arm else {}
            out.append({"table": table, "arm": arm, "control": arm == day.control,
                        **{m: figures.get(m) for m in (*METRICS, "queries", "k")},
                        **{f: online.get(f) for f in ("effect", "lower", "upper")}})
    return out


def arm_points(day: DayPlan, offline: dict[str, dict], effects: dict[str, dict]) -> dict[str, dict]:
    """arm -> its first checked table, that table's offline figures and the arm's effect."""
    points = {}
    for arm in served_arms(day):
        table = next((t for t in arm.tables.values() if t in offline), None)
        effect = effects.get(arm.name, {}).get("effect")
        if table is not None and effect is not None:
            points[arm.name] = {"table": table, "effect": effect,
                                **{m: offline[table].get(m) for m in METRICS}}
    return points


def order(points: dict[str, dict], field: str) -> list[str]:
    """Arms best first by `field` (ties by name, so the order is stable)."""
    return sorted(points, key=lambda arm: (-points[arm][field], arm))


def agreement(points: dict[str, dict]) -> dict[str, dict]:
    """Per offline metric: its order of the arms, Spearman's rho and Kendall's tau against the
    A/B effects (None with fewer than 3 arms or a constant column)."""
    arms = sorted(points)
    effects = [points[a]["effect"] for a in arms]
    out = {}
    for metric in METRICS:
        values = [points[a][metric] for a in arms]
        defined = len(arms) >= 3 and len(set(values)) > 1 and len(set(effects)) > 1
        rho = float(spearmanr(values, effects).statistic) if defined else None
        tau = float(kendalltau(values, effects).statistic) if defined else None
        out[metric] = {"order": order(points, metric), "spearman": rho, "kendall": tau}
    return out


def summary(plan: Plan, day: DayPlan, manifest: dict) -> dict | None:
    """The comparison of an A/B day, or None when the run has no offline_tables results."""
    offline, results = offline_results(manifest), manifest.get("results")
    if offline is None or not results:
        return None
    effects = online_effects(day, results)
    points = arm_points(day, offline, effects)
    decision = results.get("decision", {})
    return {"experiment": plan.experiment, "day": day.name, "control": day.control,
            "metric": decision.get("metric"), "method": decision.get("method"),
            "ab_order": order(points, "effect"), "rows": rows(day, offline, effects),
            "arms": points, "agreement": agreement(points)}


def _number(value, form: str) -> str:
    return "–" if value is None else format(value, form)


def ranked(points: dict[str, dict], field: str) -> str:
    """The arms best first by `field`, "=" between equal values (ties are not an order)."""
    arms = order(points, field)
    return "".join(("" if i == 0 else " = " if points[arm][field] == points[arms[i - 1]][field] else " > ") + arm
                   for i, arm in enumerate(arms)) or "–"


def markdown(s: dict) -> str:
    k = next((r["k"] for r in s["rows"] if r["k"] is not None), "k")
    queries = next((r["queries"] for r in s["rows"] if r["queries"] is not None), "?")
    lines = [f"# Offline against online: {s['experiment']}, day {s['day']}", "",
             f"Offline: every table on the same {queries} held-out queries (jobs/offline_tables.py). "
             f"Online: the A/B effect on {s['metric']} ({s['method']}, relative to the control "
             f"{s['control']}, 95% interval).", "",
             f"| table | arm | coverage | hit@{k} | ndcg@{k} | A/B effect [95% interval] |",
             "| --- | --- | ---: | ---: | ---: | --- |"]
    for r in s["rows"]:
        arm = "–" if r["arm"] is None else r["arm"] + (" (control)" if r["control"] else "")
        online = ("–" if r["effect"] is None else
                  f"{r['effect']:+.1%} [{_number(r['lower'], '+.1%')}, {_number(r['upper'], '+.1%')}]")
        lines.append(f"| {r['table']} | {arm} | {_number(r['coverage'], '.3f')} | "
                     f"{_number(r['hit_rate'], '.4f')} | {_number(r['ndcg'], '.4f')} | {online} |")
    lines += ["", "## Which offline metric orders the arms as the A/B does", "",
              f"Each arm by its first table; A/B order: {ranked(s['arms'], 'effect')}.", "",
              "| offline metric | its order | Spearman | Kendall |", "| --- | --- | ---: | ---: |"]
    names = {"coverage": "coverage", "hit_rate": f"hit@{k}", "ndcg": f"ndcg@{k}"}
    for metric, a in s["agreement"].items():
        lines.append(f"| {names[metric]} | {ranked(s['arms'], metric)} | "
                     f"{_number(a['spearman'], '+.2f')} | {_number(a['kendall'], '+.2f')} |")
    return "\n".join(lines) + "\n"


def write(plan: Plan, day: DayPlan, manifest: dict, report: Path) -> dict | None:
    """offline_vs_online.md and .json in the report folder; the summary (None: nothing to compare)."""
    s = summary(plan, day, manifest)
    if s is not None:
        (report / "offline_vs_online.json").write_text(json.dumps(s, indent=2) + "\n")
        (report / "offline_vs_online.md").write_text(markdown(s))
    return s


def metrics(manifest: dict) -> dict[str, float]:
    """`offline_vs_online.<metric>.spearman|kendall` for MLflow."""
    agreement_ = (manifest.get("offline_vs_online") or {}).get("agreement", {})
    return {f"offline_vs_online.{metric}.{name}": value for metric, a in agreement_.items()
            for name, value in a.items() if isinstance(value, float)}
