"""pipeline/tracking.py: where MLflow keeps a run's artifacts."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from settings import REPO_ROOT

# A pipeline run and then a calibration in one process, as `./run.sh calibrate` without --run
# records them; in a subprocess, as MLflow's tracking URI is process state.
SCRIPT = """
import json, sys
from pathlib import Path
from pipeline import tracking
runs = Path(sys.argv[1])
locations = {}
for name in ("seed", "seed-calibration"):
    mlflow = tracking._mlflow(runs)
    tracking._use_experiment(mlflow, runs, name)
    locations[name] = mlflow.get_experiment_by_name(name).artifact_location
print(json.dumps(locations))
"""


def test_every_experiment_of_the_own_store_keeps_its_artifacts_in_the_runs_folder(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(runs)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    locations = json.loads(result.stdout.strip().splitlines()[-1])
    for name, location in locations.items():
        assert location == (runs / "mlartifacts" / name).resolve().as_uri()
    assert not (tmp_path / "mlruns").exists()  # nothing in the folder it was run from
