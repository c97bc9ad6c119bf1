"""`./run.sh`'s plans, end to end, at the smoke scale: every artefact exists and is well formed,
the same seed gives the same results, every run is an MLflow run, a recommender from outside
`service/` runs in an A/B day, and a bad plan stops before anything starts. The runs are real
(service, simulator, dataclient, Spark jobs, analysis) on the suite's shared HDFS and Redis."""
from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sparkapp.config import spark_config

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("runs"), pytest.mark.heavy(9)]

REPO = Path(__file__).resolve().parent.parent
METRICS = {"mean_session_time", "mean_session_length"}


def pipeline(*args: str, runs_dir: Path, env: dict | None = None, timeout: float = 1500):
    config = runs_dir.parent / f"{runs_dir.name}-pipeline.yml"
    shipped = yaml.safe_load((REPO / "conf" / "pipeline.yml").read_text())
    config.write_text(yaml.safe_dump({**shipped, "runs_dir": str(runs_dir)}))
    return subprocess.run([sys.executable, "-m", "pipeline", *args, "--config", str(config)],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def run_plan(runs_dir: Path, *args: str, env: dict | None = None) -> Path:
    def runs() -> set[Path]:  # run folders, not MLflow's store beside them
        return {p.parent for p in runs_dir.glob("*/manifest.json")}

    before = runs()
    result = pipeline("--scale", "smoke", "--stack-from-env", *args, runs_dir=runs_dir, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (run,) = runs() - before
    assert f"ab_report.png: {run / 'report' / 'ab_report.png'}" in result.stdout
    return run


@pytest.fixture(scope="module")
def seed_runs(tmp_path_factory, stack_env):
    runs_dir = tmp_path_factory.mktemp("pipeline") / "runs"
    return runs_dir, run_plan(runs_dir, "--seed", "7"), run_plan(runs_dir, "--seed", "7")


def test_every_artefact_exists_and_is_well_formed(seed_runs):
    _, run, _ = seed_runs
    manifest = json.loads((run / "manifest.json").read_text())
    assert [manifest["steps"][s]["status"] for s in ("world", "day0", "day1", "ab")] == ["ok"] * 4
    assert manifest["settings"]["seed"] == 7 and manifest["settings"]["plan"] == "seed"
    assert manifest["versions"]["pyspark"]
    # Every table the plan's jobs write is checksummed.
    for table in ("day0/tracks_with_recs.json", "day0/top_tracks.json", "day1/tracks_nn.json",
                  "day1/recommendations_svd.json", "day1/top_tracks.json"):
        assert len(manifest["tables"][table]["sha256"]) == 64, table
    nn_rows = [json.loads(line) for line in (run / "tables" / "day1" / "tracks_nn.json").open()]
    assert nn_rows and all(r["track"] not in r["recommendations"] for r in nn_rows)

    report = run / "report"
    assert (report / "ab_report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "mean_session_time" in (report / "ab_report.md").read_text()
    results = json.loads((report / "results.json").read_text())
    assert manifest["results"] == results
    rows = list(csv.DictReader((report / "results.csv").open()))
    assert {r["metric"] for r in rows} >= METRICS
    # the latency guardrail: the client's waits reached the analysis through the logs
    guard = results["latency_guardrail"]["treatments"]["T1"]
    assert guard["control_requests"] > 0 and guard["lower_ms"] <= guard["upper_ms"]
    for row in rows:
        assert row["treatment"] == "T1"
        assert float(row["lower"]) <= float(row["effect"]) <= float(row["upper"])
    # The simulator's and the service's views of the A/B day agree on the number of sessions.
    sessions = sum(1 for _ in (run / "sim" / "ab.jsonl").open())
    plan = yaml.safe_load((REPO / "conf" / "plans" / "seed.yml").read_text())
    assert sessions == plan["days"][-1]["sessions"]["smoke"]


def test_the_job_server_has_the_configured_driver_memory(seed_runs):
    """conf/spark.yml's spark.driver.memory sizes the job server's heap (spark-submit's
    --driver-memory): Spark logs its storage memory, 0.6 of (heap - 300 MiB), at start-up."""
    _, run, _ = seed_runs
    log = (run / "logs" / "spark-server.log").read_text()
    size, unit = re.search(r"Registering block manager \S+ with ([\d.]+) (MiB|GiB) RAM", log).groups()
    storage_mib = float(size) * (1024 if unit == "GiB" else 1)
    memory = spark_config().conf["spark.driver.memory"]
    heap_mib = int(memory[:-1]) * {"m": 1, "g": 1024}[memory[-1].lower()]
    assert storage_mib == pytest.approx((heap_mib - 300) * 0.6, rel=0.05), (memory, size, unit)


def test_same_seed_same_results(seed_runs):
    _, first_run, second_run = seed_runs

    def table(run: Path) -> dict:
        rows = csv.DictReader((run / "report" / "results.csv").open())
        return {(r["treatment"], r["metric"], r.get("method")): r for r in rows}

    first, second = table(first_run), table(second_run)
    assert first and first == second
    for day in ("day0", "day1"):
        for table_file in (first_run / "tables" / day).iterdir():
            assert table_file.read_bytes() == (second_run / "tables" / day / table_file.name).read_bytes(), \
                f"{day}/{table_file.name} differs between two runs with the same seed"


def test_the_seed_plan_repeats_the_experiment_before_plans(seed_runs, golden):
    """`--scale smoke --seed 7` against tests/golden/pipeline/seed7-smoke.json, recorded from the
    code before plans, registry and one-driver days: the parts of the run that no floating-point
    kernel touches, so that they hold on any machine (tests/support/golden.py: how to
    regenerate)."""
    _, run, _ = seed_runs
    manifest = json.loads((run / "manifest.json").read_text())
    results = json.loads((run / "report" / "results.json").read_text())
    row = next(r for r in results["results"] if r["metric"] == "sessions" and r["method"] == "bootstrap")
    actual = {"day0/top_tracks.json sha256": manifest["tables"]["day0/top_tracks.json"]["sha256"],
              "sessions": {"control": row["control"], "treatment": row["treatment_value"]},
              "users": results["srm"]["users"]}
    expected = golden("pipeline/seed7-smoke.json", actual)
    assert actual["day0/top_tracks.json sha256"] == expected["day0/top_tracks.json sha256"]
    assert actual["sessions"] == pytest.approx(expected["sessions"])
    assert actual["users"] == expected["users"]


def test_every_run_is_an_mlflow_run_and_compare_lists_both(seed_runs):
    import mlflow

    runs_dir, first_run, second_run = seed_runs
    client = mlflow.MlflowClient(f"sqlite:///{runs_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("seed")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {first_run.name, second_run.name}
    recorded = runs[first_run.name]
    assert recorded.info.status == "FINISHED"
    params = recorded.data.params
    assert (params["plan"], params["scale"], params["seed"]) == ("seed", "smoke", "7")
    assert params["ab.T1.recommender"] == "contextual_updated"
    assert params["ab.C.recommender"] == "contextual" and len(params["git_commit"]) == 40
    metrics = recorded.data.metrics
    results = json.loads((first_run / "report" / "results.json").read_text())
    row = next(r for r in results["results"] if r["metric"] == "mean_session_time"
               and r.get("method", "bootstrap") == "bootstrap")
    assert metrics["T1.mean_session_time.effect"] == pytest.approx(row["effect"])
    assert {"T1.mean_session_time.lower", "T1.mean_session_time.upper",
            "T1.mean_session_time.p_adjusted", "T1.primary.effect", "seconds.day0",
            "seconds.ab"} <= set(metrics)
    decision = results["decision"]["treatments"]["T1"]
    assert metrics["T1.primary.lower"] == pytest.approx(decision["lower"])
    # The tables' offline checks, as the jobs reported them.
    assert any(k.startswith("offline.day1.nn.offline.") and k.endswith(".ndcg") for k in metrics)
    assert any(k.startswith("offline.day1.nn.mse.") for k in metrics)
    assert experiment.artifact_location.startswith((runs_dir / "mlartifacts").as_uri())
    assert not (REPO / "mlruns").exists()  # nothing written into the checkout
    artifacts = {a.path for a in client.list_artifacts(recorded.info.run_id)}
    assert {"manifest.json", "tables.sha256", "report"} <= artifacts
    report = {a.path for a in client.list_artifacts(recorded.info.run_id, "report")}
    assert {"report/ab_report.png", "report/results.json"} <= report

    listed = pipeline("compare", "--plan", "seed", runs_dir=runs_dir, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert first_run.name in listed.stdout and second_run.name in listed.stdout
    assert "T1 " in listed.stdout



def test_a_simulated_ab_day_shows_its_truth_beside_every_estimate(seed_runs):
    _, run, second_run = seed_runs
    truth = json.loads((run / "report" / "truth.json").read_text())
    assert truth["arms"] == ["C", "T1"] and truth["draws"] >= 2
    assert truth == {**json.loads((second_run / "report" / "truth.json").read_text()),
                     "seconds": truth["seconds"]}   # the same seed, the same truth
    rows = json.loads((run / "report" / "results.json").read_text())["results"]
    for row in rows:
        key = f"{row['metric']}:ratio" if row["method"] == "delta" else row["metric"]
        assert row["truth"] == pytest.approx(truth["effects"]["T1"][key]["effect"])
        assert row["covers_truth"] == (row["lower"] <= row["truth"] <= row["upper"])
    assert "| truth |" in (run / "report" / "ab_report.md").read_text()
    assert json.loads((run / "manifest.json").read_text())["truth"]["draws"] == truth["draws"]


def test_calibrate_scores_every_method_on_a_finished_run(seed_runs):
    import mlflow

    runs_dir, run, _ = seed_runs
    config = runs_dir.parent / f"{runs_dir.name}-pipeline.yml"
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.calibrate", "--plan", "seed", "--scale", "smoke",
         "--run", str(run), "--replications", "6", "--draws", "2", "--config", str(config)],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    calibration = json.loads((run / "calibration" / "calibration.json").read_text())
    assert calibration["replications"] == 6 and calibration["draws"] == 2
    scored = {(s["metric"], s["method"]) for s in calibration["scores"]}
    assert {("mean_session_time", "bootstrap"), ("mean_session_time", "cuped"),
            ("mean_session_time", "delta")} <= scored
    for s in calibration["scores"]:
        assert s["coverage"]["of"] == 6 and s["false_positive"]["of"] == 6
        assert s["coverage"]["lower"] <= s["coverage"]["value"] <= s["coverage"]["upper"]
    assert (run / "calibration" / "calibration.png").read_bytes()[:4] == b"\x89PNG"
    assert "coverage" in (run / "calibration" / "calibration.md").read_text()
    # the latency guardrail, which the pool cannot carry, on A/A re-splits of the real day
    a_a = calibration["latency_guardrail_a_a"]
    assert a_a["replications"] == 6 and a_a["ok"] + a_a["inconclusive"] + a_a["breached"] == 6
    assert "Client latency guardrail" in (run / "calibration" / "calibration.md").read_text()
    client = mlflow.MlflowClient(f"sqlite:///{runs_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("seed-calibration")
    (recorded,) = client.search_runs([experiment.experiment_id])
    assert "T1.mean_session_time.cuped.coverage" in recorded.data.metrics

EXTERNAL = '''
from service.recommenders.registry import BuildContext, Params


class SameArtistAsFirst:
    """Tracks by the artist of the session's first track, never one already played."""

    class Params(Params):
        pass

    def __init__(self, catalog, fallback):
        self.catalog, self.fallback = catalog, fallback

    @classmethod
    def build(cls, ctx: BuildContext):
        return cls(ctx.catalog, ctx.recommender("random"))

    def recommend(self, listen):
        played = {track for track, _ in listen.history}
        artist = self.catalog.artist_of.get(listen.history[0][0])
        fresh = [t for t in self.catalog.tracks_by_artist.get(artist, ()) if t not in played]
        return fresh[0] if fresh else self.fallback.recommend(listen)
'''


def test_a_recommender_from_outside_the_service_runs_in_an_ab_day(tmp_path, stack_env):
    """Only a plan and the user's own module: no file of the project changes."""
    (tmp_path / "my_recommenders.py").write_text(EXTERNAL)
    plan = {"description": "random vs an outside recommender vs sticky artist",
            "experiment": "OUTSIDE", "scales": {"smoke": {"processes": 1}},
            "days": [{"name": "ab", "sessions": {"smoke": 400}, "control": "C",
                      "arms": [{"name": "C", "recommender": "random"},
                               {"name": "T1", "recommender": "my_recommenders:SameArtistAsFirst"},
                               {"name": "T2", "recommender": "sticky_artist",
                                "params": {"anchor": "first"}}]}]}
    plan_file = tmp_path / "outside.yml"
    plan_file.write_text(yaml.safe_dump(plan))
    pythonpath = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    run = run_plan(tmp_path / "runs", "--plan", str(plan_file), env={"PYTHONPATH": pythonpath})
    rows = list(csv.DictReader((run / "report" / "results.csv").open()))
    assert {r["treatment"] for r in rows} == {"T1", "T2"}
    primary = [r for r in rows if r["metric"] == "mean_session_time" and r["method"] == "bootstrap"]
    assert len(primary) == 2 and all(0 <= float(r["p"]) <= float(r["p_adjusted"]) <= 1 for r in primary)
    # The outside recommender really served its arm: artist-anchored sessions are far longer
    # than random ones for the typical user (the median; the mean needs more users than this).
    median = {r["treatment"]: r for r in rows if r["metric"] == "median_session_time"}
    assert median["T1"]["verdict"] == "better" and float(median["T1"]["lower"]) > 0.5
