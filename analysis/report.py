"""Write what the A/B job found: results.json/.csv, ab_report.md, ab_report.png and a table.

results.json holds only what the data, the configuration and the seed determine (no clock),
so the same run gives the same file; the report date goes into the PNG and Markdown titles.
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from analysis.effects import EffectRow

COLUMNS = ["treatment", "metric", "control_mean", "treatment_mean", "effect", "lower", "upper",
           "p_value", "significant", "welch_lower", "welch_upper", "welch_p_value", "direction",
           "verdict", "control_users", "treatment_users"]
COLOURS = {"better": "#1a9850", "worse": "#d73027", "no difference": "#8c8c8c"}
SESSION_TIME_VIEW = ("log view: a session's first request carries the user's own first track "
                     "with time 1.0, so session time = 1 + the simulator's session_time")


def _clean(value):
    """JSON has no NaN: undefined statistics (e.g. a zero control mean) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def write_outputs(out: Path, results: dict, rows: list[EffectRow]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    document = _clean({**results, "results": [row.as_dict() for row in rows]})
    (out / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    pd.DataFrame([row.as_dict() for row in rows], columns=COLUMNS).to_csv(
        out / "results.csv", index=False)
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    (out / "ab_report.md").write_text(markdown(results, rows, today))
    forest_plot(out / "ab_report.png", results, rows, today)


def _percent(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.2%}"


def _interval(lower: float | None, upper: float | None) -> str:
    return f"[{_percent(lower)}, {_percent(upper)}]"


def _p(value: float, replicates: int) -> str:
    """A bootstrap p-value; 0 (every replicate on one side of 0) is below its resolution."""
    return f"<{1 / replicates:.2g}" if value == 0 else f"{value:.3g}"


def _title(results: dict, today: str) -> str:
    data = results["data"]
    return (f"A/B {results['experiment']}: {', '.join(results['treatments'])} vs "
            f"{results['control']} (data {data['first_event'][:10]}..{data['last_event'][:10]}, "
            f"report {today})")


def _srm_line(srm: dict) -> str:
    users = ", ".join(f"{arm} {n}" for arm, n in srm["users"].items())
    state = "passed" if srm["passed"] else "FAILED: the arms' user counts do not match the split"
    return f"SRM check {state} (chi2 = {srm['chi2']:.2f}, p = {srm['p_value']:.3g}; users {users})"


def markdown(results: dict, rows: list[EffectRow], today: str) -> str:
    alpha, replicates = results["parameters"]["alpha"], results["parameters"]["replicates"]
    lines = [f"# {_title(results, today)}", "",
             f"Effects are (treatment - control) / control of arm means over users, with "
             f"{1 - alpha:.0%} Poisson-bootstrap intervals ({replicates} "
             f"replicates, seed {results['parameters']['seed']}) and Welch intervals as a "
             f"cross-check. Session time: {SESSION_TIME_VIEW}.", "",
             "| treatment | metric | control | treatment | effect | bootstrap CI | p | "
             "Welch CI | Welch p | verdict |",
             "|---|---|---:|---:|---:|---|---:|---|---:|---|"]
    for r in rows:
        welch_p = "n/a" if r.welch_p_value is None else f"{r.welch_p_value:.3g}"
        lines.append(f"| {r.treatment} | {r.metric} | {r.control_mean:.6g} | "
                     f"{r.treatment_mean:.6g} | {_percent(r.effect)} | "
                     f"{_interval(r.lower, r.upper)} | {_p(r.p_value, replicates)} | "
                     f"{_interval(r.welch_lower, r.welch_upper)} | {welch_p} | {r.verdict} |")
    srm = results["srm"]
    marker = "" if srm["passed"] else "**"
    lines += ["", f"{marker}{_srm_line(srm)}{marker}", ""]
    return "\n".join(lines)


def forest_plot(path: Path, results: dict, rows: list[EffectRow], today: str) -> None:
    """One row per metric and treatment: effect and interval, coloured by verdict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height = 1.8 + 0.55 * len(rows)
    fig, ax = plt.subplots(figsize=(15, height))
    fig.subplots_adjust(left=0.23, right=0.56, top=1 - 0.55 / height, bottom=1.1 / height)
    positions = list(range(len(rows)))[::-1]
    for y, r in zip(positions, rows):
        colour = COLOURS[r.verdict]
        if math.isfinite(r.lower) and math.isfinite(r.upper):
            ax.hlines(y, 100 * r.lower, 100 * r.upper, color=colour, linewidth=3)
        ax.plot(100 * r.effect, y, "o", color=colour, markersize=8)
        ax.annotate(f"{_percent(r.effect)} {_interval(r.lower, r.upper)}   "
                    f"{r.control_mean:.4g} -> {r.treatment_mean:.4g}   "
                    f"users {r.control_users} / {r.treatment_users}   "
                    f"p: {_p(r.p_value, results['parameters']['replicates'])}",
                    xy=(1.01, y), xycoords=("axes fraction", "data"), va="center", fontsize=9)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(positions)
    ax.set_yticklabels([f"{r.metric} ({r.treatment}, {r.direction} is better)" for r in rows])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel(f"relative effect vs {results['control']}, % "
                  f"({1 - results['parameters']['alpha']:.0%} Poisson-bootstrap interval; "
                  f"green better, red worse, grey no significant difference)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(_title(results, today), fontsize=11)
    srm = results["srm"]
    fig.text(0.01, 0.15 / height, _srm_line(srm), color="black" if srm["passed"] else "#d73027",
             fontsize=9, weight="normal" if srm["passed"] else "bold")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_table(results: dict, rows: list[EffectRow], console) -> None:
    from rich.table import Table

    table = Table(title=f"A/B {results['experiment']} (control {results['control']})")
    for name in ["treatment", "metric", "control", "treatment mean", "effect", "bootstrap CI",
                 "p", "Welch CI", "verdict"]:
        table.add_column(name)
    styles = {"better": "green", "worse": "red", "no difference": ""}
    for r in rows:
        table.add_row(r.treatment, r.metric, f"{r.control_mean:.5g}", f"{r.treatment_mean:.5g}",
                      _percent(r.effect), _interval(r.lower, r.upper),
                      _p(r.p_value, results["parameters"]["replicates"]),
                      _interval(r.welch_lower, r.welch_upper), r.verdict,
                      style=styles[r.verdict])
    console.print(table)
    srm = results["srm"]
    console.print(_srm_line(srm), style="" if srm["passed"] else "bold red")
