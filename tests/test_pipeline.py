"""`./run.sh`'s experiment, shortened (scale "smoke"): every artefact exists and is well formed,
and the same seed gives the same results. Runs the real thing: its own HDFS, Redis, service,
simulator, dataclient, Spark jobs and analysis."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
METRICS = {"mean_session_time", "mean_session_length", "mean_request_time"}


def run_pipeline(tmp_path: Path, name: str, seed: int) -> Path:
    config = yaml.safe_load((REPO / "conf" / "pipeline.yml").read_text())
    config["runs_dir"] = str(tmp_path / name)
    config_path = tmp_path / f"{name}.yml"
    config_path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "pipeline", "--scale", "smoke", "--seed", str(seed),
                             "--config", str(config_path)], cwd=REPO, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (run,) = (tmp_path / name).iterdir()
    assert f"ab_report.png: {run / 'report' / 'ab_report.png'}" in result.stdout
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("pipeline")
    return run_pipeline(tmp_path, "first", seed=7), run_pipeline(tmp_path, "second", seed=7)


def test_every_artefact_exists_and_is_well_formed(runs):
    run = runs[0]
    manifest = json.loads((run / "manifest.json").read_text())
    assert [manifest["steps"][s]["status"] for s in ("world", "day0", "day1", "ab")] == ["ok"] * 4
    assert manifest["settings"]["seed"] == 7
    assert manifest["versions"]["pyspark"]
    # Every table the service was given is checksummed.
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
    for row in rows:
        assert row["treatment"] == "T1"
        assert float(row["lower"]) <= float(row["effect"]) <= float(row["upper"])
    # The simulator's and the service's views of day 2 agree on the number of sessions.
    sessions = sum(1 for _ in (run / "sim" / "ab.jsonl").open())
    assert sessions == manifest["settings"]["sizes"]["ab_sessions"]


def test_same_seed_same_results(runs):
    def table(run: Path) -> dict:
        rows = csv.DictReader((run / "report" / "results.csv").open())
        # mean_request_time is wall-clock latency: it may differ between runs.
        return {(r["treatment"], r["metric"]): r for r in rows if r["metric"] != "mean_request_time"}

    first, second = table(runs[0]), table(runs[1])
    assert first and first == second
    for day in ("day0", "day1"):
        for table_file in (runs[0] / "tables" / day).iterdir():
            assert table_file.read_bytes() == (runs[1] / "tables" / day / table_file.name).read_bytes(), \
                f"{day}/{table_file.name} differs between two runs with the same seed"
