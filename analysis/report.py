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

from analysis.decisions import COLUMNS, ResultRow
from analysis.truth import covers, row_truth

COLOURS = {"better": "#1a9850", "ok": "#1a9850", "worse": "#d73027", "breached": "#d73027",
           "no difference": "#8c8c8c", "inconclusive": "#e08214"}
MARKERS = {"bootstrap": "o", "cuped": "D", "delta": "s"}
SESSION_TIME_VIEW = ("log view: a session's first request carries the user's own first track "
                     "with time 1.0, so session time = 1 + the simulator's session_time")


def json_safe(value):
    """JSON has no NaN: undefined statistics (e.g. a zero control mean, one draw's MC error)
    become null, in nested dicts and lists too."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


TRUTH_COLUMNS = ["truth", "truth_mc_se", "covers_truth"]


def truth_fields(results: dict, row: ResultRow) -> dict:
    """A simulated run's truth of the row: its true effect, that value's Monte-Carlo error and
    whether the interval holds it (all None when the simulator does not know it)."""
    found = row_truth(results["truth"], row.treatment, row.metric, row.method)
    if found is None:
        return dict.fromkeys(TRUTH_COLUMNS)
    value, mc_se = found
    return {"truth": value, "truth_mc_se": mc_se,
            "covers_truth": covers(row.lower, row.upper, value)}


def row_dicts(results: dict, rows: list[ResultRow]) -> tuple[list[dict], list[str]]:
    """The rows as dicts and their columns; a simulated run's rows add the truth's columns."""
    if "truth" not in results:
        return [row.as_dict() for row in rows], COLUMNS
    return ([{**row.as_dict(), **truth_fields(results, row)} for row in rows],
            COLUMNS + TRUTH_COLUMNS)


LATENCY_HISTOGRAMS = "client_latency.csv"   # per (user, cell) requests: the calibration's input


def write_outputs(out: Path, results: dict, rows: list[ResultRow]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    latency = results.get("latency_guardrail") or {}
    if "histograms" in latency:
        latency = dict(latency)
        latency.pop("histograms").to_csv(out / LATENCY_HISTOGRAMS, index=False)
        results = {**results, "latency_guardrail": latency}
    dicts, columns = row_dicts(results, rows)
    document = json_safe({**results, "results": dicts})
    (out / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    pd.DataFrame(dicts, columns=columns).to_csv(out / "results.csv", index=False)
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    (out / "ab_report.md").write_text(markdown(results, rows, today))
    forest_plot(out / "ab_report.png", results, rows, today)
    if results.get("exposure", {}).get("days"):
        exposure_plot(out / "ab_exposure.png", results, today)


def _percent(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.2%}"


def _interval(lower: float | None, upper: float | None) -> str:
    return f"[{_percent(lower)}, {_percent(upper)}]"


def _p(value: float, method: str, replicates: int) -> str:
    """A p-value; a bootstrap p of 0 (every replicate on one side of 0) is below 1/B."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if value == 0 and method != "delta":
        return f"<{1 / replicates:.2g}"
    return f"{value:.3g}"


def _title(results: dict, today: str) -> str:
    data = results["data"]
    return (f"A/B {results['experiment']}: {', '.join(results['treatments'])} vs "
            f"{results['control']} (data {data['first_event'][:10]}..{data['last_event'][:10]}, "
            f"report {today})")


def _srm_line(srm: dict) -> str:
    users = ", ".join(f"{arm} {n}" for arm, n in srm["users"].items())
    state = "passed" if srm["passed"] else "FAILED: the arms' user counts do not match the split"
    return f"SRM check {state} (chi2 = {srm['chi2']:.2f}, p = {srm['p_value']:.3g}; users {users})"


def _mde_lines(results: dict, rows: list[ResultRow]) -> list[str]:
    """What the experiment could have detected: the primary metric's MDE per treatment."""
    decision = results["decision"]
    power = results["parameters"]["power"]
    lines = []
    for r in rows:
        if r.role == "primary":
            lines.append(f"- {r.treatment}, {r.method}: MDE {r.mde:.2%} of {r.metric} "
                         f"({power:.0%} power, Holm family of {len(results['treatments'])}; "
                         f"{r.control_users} / {r.treatment_users} users)"
                         + (" (decides)" if r.method == decision["method"] else ""))
    return lines


def _reductions(rows: list[ResultRow]) -> list[str]:
    return [f"- {r.treatment}, {r.metric}: variance of the effect {r.variance_reduction:+.1%} "
            f"reduced by CUPED" for r in rows
            if r.variance_reduction is not None and math.isfinite(r.variance_reduction)]


def _truth(results: dict, row: ResultRow) -> str:
    """The row's true effect ± its MC error, or n/a."""
    fields = truth_fields(results, row)
    if fields["truth"] is None:
        return "n/a"
    se = fields["truth_mc_se"]
    return _percent(fields["truth"]) + (f" ± {se:.2%}" if se is not None and math.isfinite(se)
                                        else "")


def _miss(results: dict, row: ResultRow) -> str:
    """A mark after an interval that misses the truth."""
    if "truth" not in results:
        return ""
    return " ✗" if truth_fields(results, row)["covers_truth"] is False else ""


def _truth_note(results: dict) -> list[str]:
    if "truth" not in results:
        return []
    truth = results["truth"]
    return [f"**Truth** (simulated day {truth.get('day')}, {truth.get('draws')} simulator draws "
            f"of every arm serving all {truth.get('users')} users; ± its Monte-Carlo standard "
            f"error): the true relative effect of each row's estimand; ✗ marks an interval "
            f"that misses it.", ""]


def _exposure_lines(results: dict) -> list[str]:
    """The primary effect per day since each user's first exposure, with its interval."""
    exposure = results.get("exposure")
    if not exposure:
        return []
    if "skipped" in exposure:
        return ["", f"Effect by day since exposure of {exposure['metric']}: left out, "
                    f"{exposure['skipped']}."]
    arms = [results["control"], *results["treatments"]]
    lines = ["", f"Effect by day since exposure of {exposure['metric']} (day d: the 24 hours "
                 f"from d days after a user's first event in the experiment; users with a closed "
                 f"session that day; {1 - exposure['alpha']:.0%} bootstrap intervals):", "",
             "| day | treatment | users (" + " / ".join(arms) + ") | control | treatment | "
             "effect | CI |", "|---:|---|---|---:|---:|---:|---|"]
    for day in exposure["days"]:
        users = " / ".join(str(day["users"].get(arm, 0)) for arm in arms)
        lines += [f"| {day['day']} | {t} | {users} | {e['control']:.6g} | {e['treatment']:.6g} "
                  f"| {_percent(e['effect'])} | {_interval(e['lower'], e['upper'])} |"
                  for t, e in day["treatments"].items()]
    return lines


def exposure_plot(path: Path, results: dict, today: str) -> None:
    """Each treatment's effect against the day since exposure, with its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exposure = results["exposure"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    treatments = results["treatments"]
    for k, treatment in enumerate(treatments):
        shift = 0.08 * (k - (len(treatments) - 1) / 2)  # side by side, not on top
        days = [d for d in exposure["days"] if treatment in d["treatments"]]
        x = [d["day"] + shift for d in days]
        effect = [100 * d["treatments"][treatment]["effect"] for d in days]
        low = [100 * d["treatments"][treatment]["lower"] for d in days]
        high = [100 * d["treatments"][treatment]["upper"] for d in days]
        ax.errorbar(x, effect, yerr=[[e - lo for e, lo in zip(effect, low)],
                                     [hi - e for e, hi in zip(effect, high)]],
                    marker="o", capsize=3, label=treatment)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks([d["day"] for d in exposure["days"]])
    ax.set_xlabel("days since the user's first exposure")
    ax.set_ylabel(f"relative effect on {exposure['metric']}, %")
    ax.set_title(f"{_title(results, today)}\n{1 - exposure['alpha']:.0%} bootstrap intervals "
                 f"per day", fontsize=9, loc="left")
    ax.grid(alpha=0.3)
    ax.legend(title=f"vs {results['control']}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _latency_lines(results: dict) -> list[str]:
    """The client latency guardrail: per treatment, the arms' quantiles, the difference with
    its interval, and the verdict against the margin."""
    guard = results.get("latency_guardrail")
    if not guard:
        return []
    name = f"{guard['metric']} (guardrail, margin {guard['margin_ms']:g} ms)"
    if "skipped" in guard:
        return ["", f"Client latency guardrail {name}: left out, {guard['skipped']}."]
    lines = ["", f"Client latency guardrail {name}: the {guard['quantile']:g}-quantile of the "
                 f"request time the client saw over each arm's requests; the difference "
                 f"treatment - control with its {1 - guard['alpha']:.0%} bootstrap interval "
                 f"over users; ok when its upper end is within the margin, breached when its "
                 f"lower end is beyond it, else inconclusive.", "",
             "| treatment | control ms | treatment ms | difference ms | CI ms | requests "
             "(control / treatment) | verdict |", "|---|---:|---:|---:|---|---|---|"]
    lines += [f"| {t} | {g['control_ms']:.3f} | {g['treatment_ms']:.3f} | "
              f"{g['difference_ms']:+.3f} | {_ms_interval(g)} | {g['control_requests']} / "
              f"{g['treatment_requests']} | {g['verdict']} |"
              for t, g in guard["treatments"].items()]
    return lines


def _ms_interval(g: dict) -> str:
    return f"[{g['lower_ms']:+.3f}, {g['upper_ms']:+.3f}]"


def _latency_summary(results: dict) -> str | None:
    """One line for the PNG and the console."""
    guard = results.get("latency_guardrail")
    if not guard:
        return None
    head = f"client latency guardrail {guard['metric']}, margin {guard['margin_ms']:g} ms: "
    if "skipped" in guard:
        return head + f"left out, {guard['skipped']}"
    return head + "; ".join(f"{t} {g['difference_ms']:+.3f} ms {_ms_interval(g)} {g['verdict']}"
                            for t, g in guard["treatments"].items())


def _sequential_lines(results: dict) -> list[str]:
    """The always-valid intervals of the primary metric at each look, and where each treatment
    could have stopped."""
    seq = results.get("sequential")
    if not seq:
        return []
    if "skipped" in seq:
        return ["", f"Sequential monitoring of {seq['metric']}: left out, {seq['skipped']}."]
    lines = ["", f"Sequential monitoring of {seq['metric']} (always-valid intervals at each of "
                 f"{seq['looks']} looks, one per tenth of the sessions in time order; mixture "
                 f"boundary, alpha {seq['alpha']:.3g} per treatment):"]
    for treatment, m in seq["treatments"].items():
        total = m["looks"][-1]["sessions"]
        truth = row_truth(results["truth"], treatment, seq["metric"], "sequential") \
            if "truth" in results else None
        if truth is not None:
            held = all(look["lower"] <= truth[0] <= look["upper"] for look in m["looks"])
            lines += ["", f"- {treatment}: true effect {_percent(truth[0])}; "
                      + ("every look's interval holds it" if held
                         else "✗ a look's interval misses it")]
        if m["stop_look"] is not None:
            lines += ["", f"- {treatment}: could have stopped at look {m['stop_look']} "
                          f"({m['verdict']}, after {m['stop_sessions']} of {total} sessions), "
                          f"saving {m['sessions_saved']} sessions "
                          f"({m['sessions_saved'] / total:.0%})"]
        else:
            lines += ["", f"- {treatment}: no look's interval excludes 0 (no early stop)"]
        lines += ["", "| look | sessions | users (control / treatment) | effect | "
                      "always-valid interval |", "|---:|---:|---|---:|---|"]
        lines += [f"| {look['look']} | {look['sessions']} | {look['control_users']} / "
                  f"{look['treatment_users']} | {_percent(look['effect'])} | "
                  f"{_interval(look['lower'], look['upper'])} |" for look in m["looks"]]
    return lines


def markdown(results: dict, rows: list[ResultRow], today: str) -> str:
    params = results["parameters"]
    alpha, replicates = params["alpha"], params["replicates"]
    decision = results["decision"]
    lines = [f"# {_title(results, today)}", "",
             f"Effects are (treatment - control) / control. Intervals are {1 - alpha:.0%}: "
             f"`bootstrap` and `cuped` are Poisson-bootstrap percentile intervals ({replicates} "
             f"replicates, seed {params['seed']}), `delta` is the delta method. `p_adj` is "
             f"Holm-adjusted within each role's family (primary: the primary metric across "
             f"treatments; secondary: secondary metrics x treatments) and decides the verdict "
             f"at family alpha {params['family_alpha']}; guardrails are non-inferiority checks "
             f"against their margin. Session time: {SESSION_TIME_VIEW}.", "",
             f"**Decision** ({decision['metric']}, {decision['method']}): " + "; ".join(
                 f"{t}: {d['verdict']} ({_percent(d['effect'])}, p_adj "
                 f"{_p(d['p_adjusted'], decision['method'], replicates)})"
                 for t, d in decision["treatments"].items()), "",
             *_truth_note(results),
             "| treatment | metric | role | method | control | treatment | effect | CI | "
             + ("truth | " if "truth" in results else "") + "p | p_adj | verdict | estimand |",
             "|---|---|---|---|---:|---:|---:|---|" + ("---:|" if "truth" in results else "")
             + "---:|---:|---|---|"]
    for r in rows:
        verdict = r.verdict + (f" (margin {r.margin:.0%})" if r.margin is not None else "")
        truth = f"{_truth(results, r)} | " if "truth" in results else ""
        lines.append(f"| {r.treatment} | {r.metric} | {r.role} | {r.method} | {r.control:.6g} | "
                     f"{r.treatment_value:.6g} | {_percent(r.effect)} | "
                     f"{_interval(r.lower, r.upper)}{_miss(results, r)} | {truth}"
                     f"{_p(r.p, r.method, replicates)} | "
                     f"{_p(r.p_adjusted, r.method, replicates)} | {verdict} | {r.estimand} |")
    lines += _latency_lines(results)
    lines += _exposure_lines(results)
    lines += ["", "Minimum detectable effect (relative) of the primary metric:", *_mde_lines(
        results, rows)]
    lines += _sequential_lines(results)
    reductions = _reductions(rows)
    if reductions:
        lines += ["", f"CUPED (pre-period logs {params['pre_events']}):", *reductions]
    srm = results["srm"]
    marker = "" if srm["passed"] else "**"
    lines += ["", f"{marker}{_srm_line(srm)}{marker}", ""]
    return "\n".join(lines)


def forest_plot(path: Path, results: dict, rows: list[ResultRow], today: str) -> None:
    """One panel per metric (each with its own effect scale), one line per treatment and
    method: effect and interval, coloured by verdict, annotated on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(dict.fromkeys(r.metric for r in rows))
    panels = [[r for r in rows if r.metric == m] for m in metrics]
    # Laid out in inches: each line 0.3", each panel's title and tick labels 0.8".
    line, gap, top, bottom = 0.3, 0.8, 0.8, 1.3
    heights = [line * (len(p) + 0.6) for p in panels]
    height = top + sum(heights) + gap * (len(panels) - 1) + bottom
    fig = plt.figure(figsize=(16, height))
    axes, cursor = [], height - top
    for panel_height in heights:
        cursor -= panel_height
        axes.append(fig.add_axes((0.14, cursor / height, 0.41, panel_height / height)))
        cursor -= gap
    replicates = results["parameters"]["replicates"]
    for ax, panel in zip(axes, panels):
        first = panel[0]
        positions = list(range(len(panel)))[::-1]
        for y, r in zip(positions, panel):
            colour = COLOURS[r.verdict]
            if math.isfinite(r.lower) and math.isfinite(r.upper):
                ax.hlines(y, 100 * r.lower, 100 * r.upper, color=colour, linewidth=3)
            ax.plot(100 * r.effect, y, MARKERS[r.method], color=colour, markersize=7)
            truth = ""
            if "truth" in results:
                fields = truth_fields(results, r)
                if fields["truth"] is not None:
                    ax.plot(100 * fields["truth"], y, "|", color="black", markersize=14,
                            markeredgewidth=2)
                    truth = f"  truth {_truth(results, r)}{_miss(results, r)}"
            ax.annotate(f"{_percent(r.effect)} {_interval(r.lower, r.upper)}{truth}  "
                        f"{r.control:.4g} -> {r.treatment_value:.4g}  "
                        f"p {_p(r.p, r.method, replicates)}  "
                        f"p_adj {_p(r.p_adjusted, r.method, replicates)}  {r.verdict}",
                        xy=(1.01, y), xycoords=("axes fraction", "data"), va="center",
                        fontsize=8.5, color=colour if r.verdict != "no difference" else "black")
        if first.margin is not None:
            sign = 1 if first.direction == "lower" else -1
            ax.axvline(100 * sign * first.margin, color="#e08214", linestyle="--", linewidth=1)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(positions)
        ax.set_yticklabels([f"{r.treatment} · {r.method}" for r in panel], fontsize=9)
        ax.set_ylim(-0.7, len(panel) - 0.3)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=8)
        role = first.role + (f", margin {first.margin:.0%}" if first.margin is not None else "")
        ax.set_title(f"{first.metric} ({role}; {first.direction} is better)", fontsize=10,
                     loc="left")
    axes[-1].set_xlabel(
        f"relative effect vs {results['control']}, % ({1 - results['parameters']['alpha']:.0%} "
        f"intervals; o bootstrap, ◆ cuped, ■ delta; green better/ok, red worse/breached, "
        f"orange inconclusive, grey no difference after Holm"
        + ("; | the truth, ✗ an interval that misses it" if "truth" in results else "") + ")",
        fontsize=9)
    fig.text(0.01, 1 - 0.35 / height, _title(results, today), fontsize=11, va="center")
    latency = _latency_summary(results)
    if latency is not None:
        breached = "breached" in latency
        fig.text(0.01, 0.5 / height, latency, fontsize=9,
                 color="#d73027" if breached else "black")
    srm = results["srm"]
    fig.text(0.01, 0.25 / height, _srm_line(srm), color="black" if srm["passed"] else "#d73027",
             fontsize=9, weight="normal" if srm["passed"] else "bold")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def print_table(results: dict, rows: list[ResultRow], console) -> None:
    from rich.table import Table

    replicates = results["parameters"]["replicates"]
    table = Table(title=f"A/B {results['experiment']} (control {results['control']})")
    simulated = "truth" in results
    for name in ["treatment", "metric", "role", "method", "control", "treatment value",
                 "effect", "CI", *(["truth"] if simulated else []), "p", "p_adj", "verdict"]:
        table.add_column(name)
    styles = {"better": "green", "ok": "green", "worse": "red", "breached": "red",
              "inconclusive": "yellow", "no difference": ""}
    for r in rows:
        table.add_row(r.treatment, r.metric, r.role, r.method, f"{r.control:.5g}",
                      f"{r.treatment_value:.5g}", _percent(r.effect),
                      _interval(r.lower, r.upper) + _miss(results, r),
                      *([_truth(results, r)] if simulated else []),
                      _p(r.p, r.method, replicates),
                      _p(r.p_adjusted, r.method, replicates), r.verdict,
                      style=styles[r.verdict])
    console.print(table)
    latency = _latency_summary(results)
    if latency is not None:
        console.print(latency, style="red" if "breached" in latency else "", markup=False,
                      highlight=False)
    srm = results["srm"]
    console.print(_srm_line(srm), style="" if srm["passed"] else "bold red")
