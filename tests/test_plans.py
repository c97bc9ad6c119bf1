"""Plans (pipeline/plan.py): every shipped plan is valid, and a bad plan stops before anything
starts, with one line naming the file, the key and what to write instead."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.plan import PLANS, available, load_plan
from settings import ConfigError

REPO = Path(__file__).resolve().parent.parent


def test_every_shipped_plan_is_valid_and_listed():
    listed = available()
    assert "seed" in listed
    for path in PLANS.glob("*.yml"):
        plan = load_plan(path)
        assert listed[path.stem] == plan.description
        assert len(plan.ab_days) == 1, f"{path.name}: one A/B day, whose report the run prints"


def seed_plan() -> dict:
    return yaml.safe_load((PLANS / "seed.yml").read_text())


def arm(plan: dict, day: int, index: int) -> dict:
    return plan["days"][day]["arms"][index]


@pytest.mark.parametrize("change,key,advice", [
    (lambda p: arm(p, 2, 1).update(recommender="contextual_updatd"),
     "days[2].arms[1].recommender", "use one of contextual, contextual_updated"),
    (lambda p: arm(p, 1, 0)["tables"].update(tracks="day1/tracks_nn.json"),
     "days[1].arms[0].tables.tracks", "comes from this or a later day; use one of"),
    (lambda p: arm(p, 2, 1)["tables"].pop("users"),
     "days[2].arms[1].tables.users is required", "write `users: <day>/<file>` naming a users table"),
    (lambda p: [a.update(weight=0) for a in p["days"][2]["arms"]],
     "days[2]", "the weights must add up to something positive"),
    (lambda p: arm(p, 2, 1).update(params={"window": 0}),
     "days[2].arms[1].params.window", "greater than or equal to 1"),
    (lambda p: arm(p, 2, 1).update(params={"windw": 3}),
     "days[2].arms[1].params.windw", "unknown key"),
    (lambda p: p["days"][2].update(control="X"), "days[2]", "control 'X' is not one of the day's arms"),
    (lambda p: p["days"][0]["sessions"].pop("smoke"), "(top level)", "no count for scale(s) ['smoke']"),
    (lambda p: p["days"][0]["jobs"][0]["args"].append("{event}"),
     "days[0].jobs[0].args", "unknown placeholder {event}"),
    (lambda p: p.update(latency_guardrail={"margin_ms": 0}),
     "latency_guardrail.margin_ms", "greater than 0"),
    (lambda p: p.update(latency_guardrail={"quantile": 95}),
     "latency_guardrail.quantile", "less than 1"),
])
def test_a_bad_plan_stops_before_anything_starts_with_one_line(tmp_path, change, key, advice):
    plan = seed_plan()
    change(plan)
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    result = subprocess.run([sys.executable, "-m", "pipeline", "--plan", str(path)], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and key in lines[0] and advice in lines[0], lines[0]
    assert "run folder" not in result.stdout  # nothing started


def test_an_unknown_plan_name_lists_the_plans():
    result = subprocess.run([sys.executable, "-m", "pipeline", "--plan", "nope"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "no such plan" in result.stderr and "seed" in result.stderr


def test_run_sh_plans_lists_each_plan_on_a_line():
    result = subprocess.run([sys.executable, "-m", "pipeline", "plans"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert sorted(names) == sorted(p.stem for p in PLANS.glob("*.yml"))


def test_an_arm_may_serve_a_table_of_the_users_own_checked_like_any_table(tmp_path):
    plan = seed_plan()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "neighbours.jsonl").write_text('{"track": 1, "recommendations": [2, 3]}\n')
    arm(plan, 2, 1).update(recommender="i2i", params={}, tables={"neighbours": "file:mine/neighbours.jsonl"})
    path = tmp_path / "own.yml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    loaded = load_plan(path)
    assert loaded.days[2].arms[1].tables == {"neighbours": f"file:{tmp_path / 'mine' / 'neighbours.jsonl'}"}

    (tmp_path / "mine" / "neighbours.jsonl").write_text('{"track": 1, "recs": [2, 3]}\n')
    with pytest.raises(ConfigError, match=r"days\[2\]\.arms\[1\]\.tables\.neighbours: .*neighbours.jsonl"):
        load_plan(path)
    (tmp_path / "mine" / "neighbours.jsonl").unlink()
    with pytest.raises(ConfigError, match="does not exist"):
        load_plan(path)


def test_an_ab_day_is_split_independently_of_the_day_before_it():
    """CUPED's pre-period is the day before, and a user's arm hashes (experiment, user): after a
    day that split its users between arms, an A/B day of the same name would split them alike,
    and the pre-period would differ by arm. Such a day takes its own experiment name."""
    for path in PLANS.glob("*.yml"):
        plan = load_plan(path)
        for before, day in zip(plan.days, plan.days[1:]):
            if day.control is not None and sum(arm.weight > 0 for arm in before.arms) > 1:
                assert plan.experiment_of(day) != plan.experiment_of(before), \
                    f"{path.name}: day {day.name} splits like day {before.name}"
