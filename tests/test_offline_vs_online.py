"""pipeline/offline_vs_online.py on synthetic figures: rows per table and serving arm, an arm's
first table as its point, and each offline metric's rank agreement with the A/B effects."""
from __future__ import annotations

import pytest

from pipeline import offline_vs_online
from pipeline.plan import Plan

PLAN = Plan.model_validate({
    "description": "synthetic", "experiment": "EXP", "scales": {"small": {}},
    "days": [{"name": "day1", "sessions": {"small": 10}, "arms": [{"name": "r", "recommender": "random"}]},
             {"name": "ab", "sessions": {"small": 10}, "control": "c", "arms": [
                 {"name": "c", "recommender": "contextual", "tables": {"tracks": "day1/c.json"}},
                 {"name": "a", "recommender": "contextual", "tables": {"tracks": "day1/a.json"}},
                 {"name": "b", "recommender": "indexed",
                  "tables": {"users": "day1/b.json", "toppop": "day1/top.json"}},
                 {"name": "s", "recommender": "sticky_artist"},
                 {"name": "off", "weight": 0, "recommender": "contextual", "tables": {"tracks": "day1/a.json"}}]}]})
DAY = PLAN.days[1]


def figures(coverage, hit, ndcg):
    return {"queries": 100, "coverage": coverage, "hit_rate": hit, "ndcg": ndcg, "k": 10}


def manifest(offline, effects):
    return {"offline": {"day1.nn": {"offline": {"x": figures(1, 1, 1)}},
                        "day1.offline_tables": {"offline": offline}},
            "results": {"decision": {"metric": "mean_session_time", "method": "cuped", "treatments": {
                arm: {"effect": e, "lower": e - 0.1, "upper": e + 0.1} for arm, e in effects.items()}}}}


# hit rate orders a > c > b, NDCG b > c > a, coverage is equal; the A/B says b > c > a.
OFFLINE = {"day1/c.json": figures(0.5, 0.2, 0.05), "day1/a.json": figures(0.5, 0.3, 0.01),
           "day1/b.json": figures(0.5, 0.1, 0.09), "day1/top.json": figures(1.0, 0.05, 0.02),
           "day1/unserved.json": figures(0.2, 0.4, 0.1), "top-pop": figures(1.0, 0.05, 0.02)}
EFFECTS = {"a": -0.2, "b": 0.5, "s": 0.1}


def test_rows_pair_each_table_with_the_arms_serving_it():
    s = offline_vs_online.summary(PLAN, DAY, manifest(OFFLINE, EFFECTS))
    pairs = [(r["table"], r["arm"]) for r in s["rows"]]
    assert pairs == [("day1/c.json", "c"), ("day1/a.json", "a"), ("day1/b.json", "b"), ("day1/top.json", "b"),
                     ("day1/unserved.json", None), ("top-pop", None)]   # "off" serves nobody
    control = s["rows"][0]
    assert control["control"] and (control["effect"], control["lower"], control["upper"]) == (0, 0, 0)
    assert s["rows"][1]["effect"] == -0.2 and s["rows"][1]["upper"] == pytest.approx(-0.1)
    assert s["rows"][4]["effect"] is None


def test_each_arm_is_ranked_by_its_first_table_and_arms_without_one_stay_out():
    s = offline_vs_online.summary(PLAN, DAY, manifest(OFFLINE, EFFECTS))
    assert {arm: p["table"] for arm, p in s["arms"].items()} == {
        "c": "day1/c.json", "a": "day1/a.json", "b": "day1/b.json"}
    assert s["ab_order"] == ["b", "c", "a"]


def test_agreement_per_offline_metric():
    agreement = offline_vs_online.summary(PLAN, DAY, manifest(OFFLINE, EFFECTS))["agreement"]
    assert agreement["ndcg"]["order"] == ["b", "c", "a"]
    assert agreement["ndcg"]["spearman"] == pytest.approx(1.0)
    assert agreement["ndcg"]["kendall"] == pytest.approx(1.0)
    assert agreement["hit_rate"]["order"] == ["a", "c", "b"]
    assert agreement["hit_rate"]["spearman"] == pytest.approx(-1.0)
    assert agreement["coverage"]["spearman"] is None          # a constant metric orders nothing


def test_written_files_and_mlflow_metrics(tmp_path):
    data = manifest(OFFLINE, EFFECTS)
    s = offline_vs_online.write(PLAN, DAY, data, tmp_path)
    text = (tmp_path / "offline_vs_online.md").read_text()
    assert "| day1/b.json | b | 0.500 | 0.1000 | 0.0900 | +50.0% [+40.0%, +60.0%] |" in text
    assert "| day1/c.json | c (control) |" in text
    assert "A/B order: b > c > a" in text and "| ndcg@10 | b > c > a | +1.00 | +1.00 |" in text
    assert "| coverage | a = b = c | – | – |" in text               # a tie is no order
    assert (tmp_path / "offline_vs_online.json").exists()
    metrics = offline_vs_online.metrics({**data, "offline_vs_online": s})
    assert metrics["offline_vs_online.ndcg.spearman"] == pytest.approx(1.0)
    assert metrics["offline_vs_online.hit_rate.kendall"] == pytest.approx(-1.0)
    assert "offline_vs_online.coverage.spearman" not in metrics


def test_nothing_to_compare_without_the_job_or_the_results(tmp_path):
    without_job = manifest(OFFLINE, EFFECTS)
    del without_job["offline"]["day1.offline_tables"]
    assert offline_vs_online.write(PLAN, DAY, without_job, tmp_path) is None
    assert offline_vs_online.summary(PLAN, DAY, {**manifest(OFFLINE, EFFECTS), "results": None}) is None
    assert not list(tmp_path.iterdir())
    assert offline_vs_online.metrics({}) == {}
