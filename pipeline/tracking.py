"""Every pipeline run is an MLflow run (docs/DESIGN.md, "Tracking").

Experiment = the plan's name, run name = the run folder's name. Params: plan, scale, seeds, git
commit, every day's arms with their recommenders, weights and params. Metrics: each treatment's
`<arm>.<metric>.effect|lower|upper|p_adjusted` (a non-bootstrap method adds `.<method>` after
the metric; a simulated A/B day adds `.truth|truth_mc_se`) and `<arm>.primary.*` (the primary
metric by the method that decides), the tables' offline checks, each step's seconds.
Artifacts: the report, the manifest and the tables' checksums. A calibration
(pipeline/calibrate.py) is a run of experiment `<plan>-calibration`.

The store is MLFLOW_TRACKING_URI when set (a team's server), else a local SQLite store in the
runs folder (artifacts in runs/mlartifacts/): browse it with
`mlflow ui --backend-store-uri sqlite:///runs/mlflow.db`.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import warnings
from pathlib import Path

from pipeline import offline_vs_online
from pipeline.plan import Plan

# truth, truth_mc_se: a simulated day's rows only (analysis/truth.py)
RESULT_FIELDS = ("effect", "lower", "upper", "p_adjusted", "truth", "truth_mc_se")
# The report files a run may have: the A/B report and, on an interleaved day, the interleaving one.
REPORT_FILES = ("ab_report.png", "ab_report.md", "results.json", "results.csv",
                "ab_exposure.png", "client_latency.csv",
                "interleaving.png", "interleaving.md", "interleaving.json", "truth.json",
                "offline_vs_online.md", "offline_vs_online.json")


def tracking_uri(runs_dir: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or _own_store(runs_dir)


def _own_store(runs_dir: Path) -> str:
    """The runs folder's own store: what tracks a run when MLFLOW_TRACKING_URI names no other."""
    return f"sqlite:///{runs_dir.resolve() / 'mlflow.db'}"


def _quiet() -> None:
    warnings.filterwarnings("ignore", module="mlflow")
    for name in ("mlflow", "alembic"):  # their INFO lines (store creation, migrations) are noise here
        logging.getLogger(name).setLevel(logging.WARNING)


def _import_in_background() -> None:
    _quiet()
    try:
        import mlflow  # noqa: F401
        if "MLFLOW_TRACKING_URI" not in os.environ:   # the local SQLite store's code, too
            import sqlalchemy.orm

            import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
            sqlalchemy.orm.configure_mappers()   # else done by the store's first query
    except Exception:  # noqa: BLE001 - record_run imports it again and reports the failure
        pass


def preload() -> None:
    """Import MLflow and its SQL store on a background thread while a run works, so that
    recording the run at its end does not wait for them."""
    threading.Thread(target=_import_in_background, name="mlflow-import", daemon=True).start()


def _mlflow(runs_dir: Path):
    _quiet()
    import mlflow   # imported late (or by preload): `./run.sh plans` needs none of it

    mlflow.set_tracking_uri(tracking_uri(runs_dir))
    return mlflow


def _use_experiment(mlflow, runs_dir: Path, name: str) -> None:
    """Make `name` the active experiment; in the runs folder's own store, a new experiment keeps
    its artifacts beside the database (runs/mlartifacts/<name>), not in the current folder.
    Why compare with the store's URI rather than look for MLFLOW_TRACKING_URI: setting the
    tracking URI sets that variable too, so after a first run in this process it is always there."""
    if tracking_uri(runs_dir) == _own_store(runs_dir) and mlflow.get_experiment_by_name(name) is None:
        mlflow.create_experiment(name, (runs_dir.resolve() / "mlartifacts" / name).as_uri())
    mlflow.set_experiment(name)


def plan_params(plan_name: str, plan: Plan, scale: str, seed: int, commit: str) -> dict[str, str]:
    params = {"plan": plan_name, "scale": scale, "seed": seed, "git_commit": commit,
              "world_seed": plan.world_seed_for(seed),
              "primary_metric": plan.primary_metric}
    for day in plan.days:
        params[f"{day.name}.sessions"] = day.sessions[scale]
        for arm in day.arms:
            params[f"{day.name}.{arm.name}.recommender"] = arm.recommender
            params[f"{day.name}.{arm.name}.weight"] = arm.weight
            if arm.params:
                params[f"{day.name}.{arm.name}.params"] = json.dumps(arm.params, sort_keys=True)
    return {key: str(value) for key, value in params.items()}


def result_metrics(results: dict) -> dict[str, float]:
    """`<arm>.<metric>[.<method>].<field>` of every row of an A/B results.json, and the
    headline `<arm>.primary.<field>`: the primary metric by the method that decides."""
    metrics = {f"{arm}.primary.{field}": float(value)
               for arm, decision in results.get("decision", {}).get("treatments", {}).items()
               for field, value in decision.items()
               if field in RESULT_FIELDS and isinstance(value, (int, float))}
    for row in results.get("results", []):
        method = "" if row["method"] == "bootstrap" else f".{row['method']}"
        key = f"{row['treatment']}.{row['metric']}{method}"
        for field in RESULT_FIELDS:
            if isinstance(row.get(field), (int, float)):   # null: undefined (e.g. zero control)
                metrics[f"{key}.{field}"] = float(row[field])
    return metrics


def guardrail_metrics(results: dict) -> dict[str, float]:
    """`<arm>.<pNN>_client_request_time.<field>` of the client latency guardrail: the arms'
    quantiles, the difference, its interval and `breached` (1 or 0)."""
    guard = results.get("latency_guardrail") or {}
    fields = ("control_ms", "treatment_ms", "difference_ms", "lower_ms", "upper_ms")
    metrics = {}
    for arm, g in guard.get("treatments", {}).items():
        key = f"{arm}.{guard['metric']}"
        metrics |= {f"{key}.{field}": float(g[field]) for field in fields}
        metrics[f"{key}.breached"] = float(g["verdict"] == "breached")
    return metrics


def exposure_steps(results: dict) -> list[tuple[str, float, int]]:
    """(key, value, day) of the primary effect per day since exposure, logged with the day
    as MLflow's step so each treatment's curve plots as one metric:
    `<arm>.exposure.<effect|lower|upper>`."""
    return [(f"{arm}.exposure.{field}", float(e[field]), day["day"])
            for day in (results.get("exposure") or {}).get("days", [])
            for arm, e in day["treatments"].items() for field in ("effect", "lower", "upper")]


def interleaving_metrics(interleaving: dict) -> dict[str, float]:
    """`interleaving.<arm>.<field>` of every interleaved pair: b's share of the credit and the
    per-session difference with their intervals, the sign test's adjusted p."""
    fields = ("share", "share_lower", "share_upper", "difference", "difference_lower",
              "difference_upper", "p_adjusted", "users")
    return {f"interleaving.{pair['arm']}.{field}": float(pair[field])
            for pair in interleaving.get("pairs", []) for field in fields}


def step_metrics(manifest: dict) -> dict[str, float]:
    metrics = {}
    for step, entry in manifest.get("steps", {}).items():
        if entry.get("seconds") is not None:
            metrics[f"seconds.{step}"] = entry["seconds"]
        for name, seconds in entry.get("substeps", {}).items():
            metrics[f"seconds.{step}.{name}"] = seconds
    return metrics


def offline_metrics(manifest: dict) -> dict[str, float]:
    """hit@k, NDCG@k and MSE of every table as the jobs reported them (manifest "offline"),
    flattened: `offline.<day>.<job>.offline.<table>.hit_rate`, `offline.day1.nn.mse.model`..."""
    def flatten(prefix: str, value) -> dict[str, float]:
        if isinstance(value, dict):
            return {k: v for key, item in value.items() for k, v in flatten(f"{prefix}.{key}", item).items()}
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return {prefix.replace("@", "_"): float(value)} if ok else {}
    return flatten("offline", manifest.get("offline", {}))


def record_run(runs_dir: Path, plan_name: str, run_folder: Path, params: dict[str, str],
               succeeded: bool) -> str:
    """Log one finished (or failed) pipeline run from its folder; returns the MLflow run id."""
    mlflow = _mlflow(runs_dir)
    manifest = json.loads((run_folder / "manifest.json").read_text())
    _use_experiment(mlflow, runs_dir, plan_name)
    with mlflow.start_run(run_name=run_folder.name) as run:
        mlflow.log_params(params)
        metrics = {**step_metrics(manifest), **offline_metrics(manifest),
                   **offline_vs_online.metrics(manifest),
                   **result_metrics(manifest.get("results") or {}),
                   **guardrail_metrics(manifest.get("results") or {}),
                   **interleaving_metrics(manifest.get("interleaving") or {})}
        if metrics:
            mlflow.log_metrics(metrics)
        for key, value, day in exposure_steps(manifest.get("results") or {}):
            mlflow.log_metric(key, value, step=day)
        mlflow.set_tag("run_folder", str(run_folder))
        mlflow.log_artifact(str(run_folder / "manifest.json"))
        checksums = "".join(f"{entry['sha256']}  {table}\n"
                            for table, entry in sorted(manifest.get("tables", {}).items()))
        mlflow.log_text(checksums, "tables.sha256")
        report = run_folder / "report"
        for name in REPORT_FILES:
            if (report / name).exists():
                mlflow.log_artifact(str(report / name), "report")
        mlflow.end_run("FINISHED" if succeeded else "FAILED")
        return run.info.run_id


def leaderboard(runs_dir: Path, plan_name: str | None) -> list[dict]:
    """Every finished run (of one plan, or all) with each treatment's primary effect."""
    mlflow = _mlflow(runs_dir)
    client = mlflow.MlflowClient()
    experiments = ([client.get_experiment_by_name(plan_name)] if plan_name
                   else client.search_experiments())
    ids = [e.experiment_id for e in experiments if e is not None]
    if not ids:
        return []
    rows = []
    for run in client.search_runs(ids, order_by=["attributes.start_time DESC"]):
        params, metrics = run.data.params, run.data.metrics
        arms = {}
        for key, value in metrics.items():
            arm, _, rest = key.partition(".")
            if rest == "primary.effect":
                arms[arm] = (value, metrics.get(f"{arm}.primary.lower"),
                             metrics.get(f"{arm}.primary.upper"),
                             metrics.get(f"{arm}.primary.p_adjusted"))
        rows.append({"run": run.info.run_name, "plan": params.get("plan"),
                     "scale": params.get("scale"), "seed": params.get("seed"),
                     "status": run.info.status, "primary": params.get("primary_metric", "?"),
                     "arms": dict(sorted(arms.items()))})
    return rows


def format_leaderboard(rows: list[dict]) -> str:
    if not rows:
        return "no runs recorded yet (run `./run.sh` first)"
    lines = [f"{'run':<18} {'plan':<12} {'scale':<6} {'seed':>5}  {'status':<9} primary effect per arm "
             f"(95% interval, Holm-adjusted p)"]
    for row in rows:
        arms = "; ".join(
            f"{arm} {effect:+.1%} [{lower:+.1%}, {upper:+.1%}]"
            + ("" if p is None else " p<0.001" if p < 0.001 else f" p={p:.3g}")
            for arm, (effect, lower, upper, p) in row["arms"].items()) or "(no A/B result)"
        lines.append(f"{row['run']:<18} {row['plan'] or '?':<12} {row['scale'] or '?':<6} "
                     f"{row['seed'] or '?':>5}  {row['status']:<9} {row['primary']}: {arms}")
    return "\n".join(lines)


def calibration_metrics(scores) -> dict[str, float]:
    """`<treatment>.<metric>.<method>.<score>` (and `_lower`/`_upper`) of a calibration's
    scores (analysis/calibration.py)."""
    metrics = {}
    for s in scores:
        key = f"{s.treatment}.{s.metric}.{s.method}"
        for name in ("coverage", "false_positive", "power", "bias", "width"):
            value = getattr(s, name)
            if value is None:
                continue
            for field, number in (("", value.value), ("_lower", value.lower),
                                  ("_upper", value.upper)):
                if number == number:   # NaN: undefined
                    metrics[f"{key}.{name}{field}"] = float(number)
        metrics[f"{key}.truth"] = float(s.truth)
    return metrics


def record_calibration(runs_dir: Path, plan_name: str, folder: Path, info: dict,
                       metrics: dict[str, float], artifacts: list[str]) -> str:
    """Log a calibration (pipeline/calibrate.py) as a run of experiment `<plan>-calibration`:
    its `metrics` and the files `artifacts` of `folder`."""
    mlflow = _mlflow(runs_dir)
    experiment = f"{plan_name}-calibration"
    _use_experiment(mlflow, runs_dir, experiment)
    params = {key: str(info[key]) for key in ("plan", "scale", "run", "day", "replications",
                                              "draws", "users", "sessions", "alpha", "seed")}
    with mlflow.start_run(run_name=Path(info["run"]).name) as run:
        mlflow.log_params(params)
        mlflow.log_metrics({**metrics, "seconds": info["seconds"]})
        for name in artifacts:
            mlflow.log_artifact(str(folder / name), "calibration")
        return run.info.run_id
