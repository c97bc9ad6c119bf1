"""The A/B job through Spark: per-user table, the Spark bootstrap engine against the numpy
one, the outputs, determinism, bad input, spark-submit over HDFS."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import ab_test
from analysis.compare import compare_numpy, compare_spark
from analysis.config import load_config
from analysis.decisions import COLUMNS, holm
from analysis.looks import look_moments
from dataclient.synthetic_logs import BASE_TIMESTAMP_MS, synthetic_events, write_events
from support.user_metrics import per_user_metrics
from analysis.user_metrics import (CONFLICT, INVALID, METRICS, OUTSIDE, RATIOS,
                                   RETENTION_METRICS, Period, analysed_events, metric_table,
                                   per_user, read_events, summarize, with_covariates)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark"), pytest.mark.heavy(8)]

REPO = Path(__file__).resolve().parents[1]
_BASE = load_config().settings
# One-day logs (no retention metrics), one partition, every method but CUPED.
SETTINGS = dataclasses.replace(_BASE, partitions=1, ratios=RATIOS, metrics={
    m: d for m, d in _BASE.metrics.items() if m in METRICS})
BAD_LINES = ["not json at all",
             '{"message": "next"}',
             '{"message": "next", "timestamp": 1, "user": "abc", "track": 1, "time": 0.5, '
             '"latency": 0.01, "recommendation": 2, "experiments": {"EXP": "C"}}',
             '{"message": "skip", "timestamp": 1, "user": 5, "track": 1, "time": 0.5, '
             '"latency": 0.01, "recommendation": 2, "experiments": {"EXP": "C"}}']


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    """~5,000 sessions of 4,000 users; T1 listens longer (session time +10% in expectation)
    and is answered 20% slower; its clients wait 50% longer (p95 4 ms x ln 20 = 12.0 ms in C,
    18.0 ms in T1)."""
    return synthetic_events(4000, seed=21, time_lift={"T1": 0.15}, latency_lift={"T1": 0.2},
                            client_latency_mean=0.004, client_latency_lift={"T1": 0.5})


def valid_line(user: int, experiments: dict) -> str:
    return json.dumps({"message": "next", "timestamp": BASE_TIMESTAMP_MS, "user": user,
                       "track": 1, "time": 0.5, "latency": 0.01, "recommendation": 2,
                       "experiments": experiments})


@pytest.fixture(scope="module")
def event_dir(events, tmp_path_factory) -> Path:
    """The events, the bad lines, one event putting user 0 in the other arm too (user 0 is
    left out), and a user 10**6 outside the experiment."""
    folder = write_events(events, tmp_path_factory.mktemp("events") / "logs", files=3)
    other_arm = {"C": "T1", "T1": "C"}[events.loc[events.user == 0, "experiments"].iloc[0]["EXP"]]
    with open(folder / "part-00001.jsonl", "a") as f:
        f.write("\n".join([*BAD_LINES, valid_line(0, {"EXP": other_arm}),
                           valid_line(10**6, {"OTHER": "C"})]) + "\n")
    return folder


def run_job(folder: Path | str, out: Path, *extra: str, experiment: str = "EXP") -> int:
    return ab_test.main(["--events", str(folder), "--experiment", experiment, "--control", "C",
                         "--out", str(out), *extra])


def assert_monitoring_ends_at_the_estimate(results: dict, rows: dict, out: Path) -> None:
    """T1's sequential looks: ten of them, the last at the full data's estimate with a wider
    (always-valid) interval, and their section in the report."""
    monitoring = results["sequential"]["treatments"]["T1"]
    assert [look["look"] for look in monitoring["looks"]] == list(range(1, 11))
    last = monitoring["looks"][-1]
    assert last["effect"] == pytest.approx(rows["mean_session_time", "bootstrap"]["effect"],
                                           rel=1e-9)
    assert last["lower"] < rows["mean_session_time", "bootstrap"]["lower"]
    assert "Sequential monitoring of mean_session_time" in (out / "ab_report.md").read_text()

def test_per_user_table_matches_pandas(spark, events, event_dir):
    table = per_user(read_events(spark, str(event_dir)), "EXP")
    summary = summarize(table)
    assert summary[INVALID].users == len(BAD_LINES)
    assert summary[CONFLICT].users == 1 and summary[OUTSIDE].users == 1
    got = metric_table(table, ["C", "T1"]).toPandas().sort_values("user").reset_index(drop=True)
    want = per_user_metrics(events, ["C", "T1"]).sort_values("user")
    want = want[want.user != 0].reset_index(drop=True)
    assert got["user"].tolist() == want["user"].tolist()
    assert (got["arm"] == want["arm"]).all()
    for metric in ["sessions", "mean_session_time", "mean_session_length", "mean_request_time"]:
        # Sums are taken in nano-units: 1e-9 absolute is the resolution.
        np.testing.assert_allclose(got[metric], want[metric], rtol=1e-9, atol=1e-9,
                                   err_msg=metric)
    assert (summary["C"].sessions + summary["T1"].sessions + summary[CONFLICT].sessions
            == (events["message"] == "last").sum())
    table.unpersist()


def test_look_moments_match_pandas_on_truncated_logs(spark, events, event_dir):
    """At each tenth of the analysed users' sessions, the per-arm moments of the primary
    metric equal pandas' over the logs up to that moment; the last look is the full table."""
    table = per_user(read_events(spark, str(event_dir)), "EXP")
    users = metric_table(table, ["C", "T1"])
    analysed = analysed_events(read_events(spark, str(event_dir)), "EXP", users)
    sessions, moments = look_moments(analysed, ["C", "T1"], "mean_session_time", 10)
    table.unpersist()
    analysed = events[events.user != 0]
    closes = analysed.loc[analysed.message == "last", "timestamp"].to_numpy()
    cutoffs = [*np.quantile(closes, np.arange(1, 10) / 10), np.inf]
    assert sessions == [int((closes <= c).sum()) for c in cutoffs]
    for cutoff, by_arm in zip(cutoffs, moments):
        want = per_user_metrics(analysed[analysed.timestamp <= cutoff], ["C", "T1"])
        want = want[want.sessions > 0]
        for arm, got in enumerate(by_arm):
            values = want.loc[want.arm == arm, "mean_session_time"]
            assert got.users == len(values)
            assert got.mean == pytest.approx(values.mean(), rel=1e-12)
            assert got.variance == pytest.approx(values.var(), rel=1e-9)


def assert_same_rows(mine_rows, their_rows):
    assert len(mine_rows) == len(their_rows)
    for mine, theirs in zip(mine_rows, their_rows):
        for field in dataclasses.fields(mine):
            a, b = getattr(mine, field.name), getattr(theirs, field.name)
            if isinstance(a, float):
                assert a == pytest.approx(b, rel=1e-9, abs=1e-12), (mine.metric, field.name)
            else:
                assert a == b, (mine.metric, field.name)


def test_covariate_fill_does_not_depend_on_the_order_of_the_users(spark):
    """Users without a pre-period value get the pooled mean of those with one. Doubles summed
    in another order give another last bit (the pre-period values below do), so the mean is
    summed exactly: the same whatever the partitioning, and equal to the exact mean."""
    from fractions import Fraction

    values = [0.1 * k + 1e-3 * (k % 7) for k in range(1, 2000)]
    assert sum(values) != sum(reversed(values))  # the order matters to a float sum
    exact = float(sum(map(Fraction, values)) / len(values))
    fills = set()
    for order, partitions in ((values, 1), (values[::-1], 1), (values, 7), (values[::-1], 13)):
        pre = spark.createDataFrame([(u, v) for u, v in enumerate(order)],
                                    "user long, pre_sessions double").repartition(partitions)
        table = spark.createDataFrame([(u,) for u in range(len(order) + 5)], "user long")
        filled, info = with_covariates(table, pre, ["sessions"])
        fills.add(info["pre_sessions"]["pooled_mean"])
        assert info["pre_sessions"]["users_with_value"] == len(values)
        missing = filled.where(filled.user >= len(order)).select("pre_sessions").collect()
        assert {row[0] for row in missing} == {info["pre_sessions"]["pooled_mean"]}
    assert len(fills) == 1 and fills.pop() == pytest.approx(exact, rel=1e-12)


def test_spark_engine_equals_numpy_engine(spark):
    events = synthetic_events(3000, seed=5, time_lift={"T1": 0.05})
    users = per_user_metrics(events, ["C", "T1"])
    frame = spark.createDataFrame(users[["user", "arm", *SETTINGS.columns]]).cache()
    settings = dataclasses.replace(SETTINGS, replicates=300)
    local = compare_numpy(users, ["C", "T1"], settings).rows
    # One partition: the same users in the same order draw the same weights.
    assert_same_rows(compare_spark(frame, ["C", "T1"], settings).rows, local)
    # Several partitions: other draws; the same point estimates, intervals within MC noise.
    spread = dataclasses.replace(settings, partitions=3)
    for mine, theirs in zip(compare_spark(frame, ["C", "T1"], spread).rows, local):
        assert mine.effect == pytest.approx(theirs.effect, rel=1e-9, abs=1e-12)
        width = theirs.upper - theirs.lower
        assert abs(mine.lower - theirs.lower) < 0.3 * width, mine.metric
        assert abs(mine.upper - theirs.upper) < 0.3 * width, mine.metric
    frame.unpersist()


def test_job_writes_report_and_detects_effect(event_dir, tmp_path, capsys):
    assert run_job(event_dir, tmp_path / "a") == 0
    out = tmp_path / "a"
    assert {p.name for p in out.iterdir()} == {"ab_report.png", "ab_report.md", "results.json",
                                               "results.csv", "client_latency.csv"}
    assert (out / "ab_report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((out / "results.json").read_text())
    assert results["parameters"]["replicates"] == 1000 and results["srm"]["passed"]
    assert results["data"]["invalid_lines"] == len(BAD_LINES)
    assert results["data"]["users_in_several_arms"] == 1
    assert results["data"]["users_outside_experiment"] == 1
    assert results["quantile_escapes"] == 0
    rows = {(r["metric"], r["method"]): r for r in results["results"]}
    assert {m for m, _ in rows} == {*SETTINGS.metrics, *SETTINGS.quantiles}
    assert {m for m, method in rows if method == "delta"} == set(RATIOS)
    session_time = rows["mean_session_time", "bootstrap"]
    assert session_time["role"] == "primary" and session_time["verdict"] == "better"
    assert session_time["p_adjusted"] == session_time["p"]  # one treatment: a family of one
    assert 0.03 < session_time["effect"] < 0.17  # true +10%; the estimate's sd is ~2%
    assert rows["mean_session_time", "delta"]["lower"] > 0
    # The clients' p95 6 ms slower against a 5 ms margin: the guardrail is breached; with a
    # 20 ms margin (a plan's override) it is not.
    guard = results["latency_guardrail"]["treatments"]["T1"]
    assert guard["control_ms"] == pytest.approx(4 * np.log(20), rel=0.1)
    assert guard["lower_ms"] < 2 * np.log(20) < guard["upper_ms"]
    assert guard["verdict"] == "breached" and guard["upper_ms"] > 5
    assert "mean_request_time" not in {m for m, _ in rows}
    assert "exposure" not in results  # one-day logs
    assert "Client latency guardrail p95_client_request_time" in (out / "ab_report.md").read_text()
    assert run_job(event_dir, tmp_path / "wide", "--latency-margin-ms", "20",
                   "--bootstrap", "200") == 0
    wide = json.loads((tmp_path / "wide" / "results.json").read_text())["latency_guardrail"]
    assert wide["margin_ms"] == 20 and wide["treatments"]["T1"]["verdict"] == "ok"
    assert rows["sessions", "bootstrap"]["verdict"] == "no difference"
    assert results["decision"]["treatments"]["T1"]["verdict"] == "better"
    assert_monitoring_ends_at_the_estimate(results, rows, out)
    assert 0 < results["decision"]["treatments"]["T1"]["mde"] < 0.1
    csv = pd.read_csv(out / "results.csv")
    assert list(csv.columns) == COLUMNS and len(csv) == len(rows)
    table = (out / "ab_report.md").read_text()
    assert "mean_session_time" in table and "SRM check passed" in table
    printed = capsys.readouterr().out
    assert "mean_session_time" in printed and "SRM check passed" in printed

    # Same seed, same file; another seed moves the intervals but not the point estimates.
    assert run_job(event_dir, tmp_path / "b") == 0
    assert (tmp_path / "b" / "results.json").read_bytes() == (out / "results.json").read_bytes()
    assert run_job(event_dir, tmp_path / "c", "--seed", "5", "--bootstrap", "200") == 0
    other = {(r["metric"], r["method"]): r for r in json.loads(
        (tmp_path / "c" / "results.json").read_text())["results"]}
    assert other["mean_session_time", "bootstrap"]["effect"] == session_time["effect"]
    assert other["mean_session_time", "bootstrap"]["lower"] != session_time["lower"]


def test_sample_ratio_mismatch_is_flagged(event_dir, tmp_path):
    """A configured 2:1 split that the 1:1 data does not follow fails the SRM check."""
    config = (REPO / "conf" / "analysis.yml").read_text().replace(
        "splits: {}", "splits: {EXP: {C: 2, T1: 1}}")
    (tmp_path / "analysis.yml").write_text(config)
    assert run_job(event_dir, tmp_path / "out", "--config", str(tmp_path / "analysis.yml"),
                   "--bootstrap", "200") == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert not results["srm"]["passed"] and results["srm"]["p_value"] < 1e-6
    assert "SRM check FAILED" in (tmp_path / "out" / "ab_report.md").read_text()
    # The split the run was configured with (the pipeline passes its plan's weights) wins.
    assert run_job(event_dir, tmp_path / "weights", "--config", str(tmp_path / "analysis.yml"),
                   "--bootstrap", "200", "--weights", "C=0.5", "T1=0.5") == 0
    assert json.loads((tmp_path / "weights" / "results.json").read_text())["srm"]["passed"]


def write_variant(events: pd.DataFrame, folder: Path, keep) -> Path:
    return write_events(events[keep(events)], folder, files=1)


@pytest.fixture(scope="module")
def three_arms() -> pd.DataFrame:
    return synthetic_events(300, seed=2, split={"C": 1, "T1": 1, "T2": 1})


def _no_last_in_t2(e):
    in_t2 = pd.Series([x["EXP"] == "T2" for x in e["experiments"]], index=e.index)
    return ~(in_t2 & (e["message"] == "last"))


@pytest.mark.parametrize("case, args, keep, message", [
    ("unknown experiment", ["--experiment", "NOPE"], None,
     "unknown experiment 'NOPE': no event carries it. Experiments in the logs: ['EXP', 'OTHER']"),
    ("control not in data", ["--control", "X"], None, "control arm 'X' not found"),
    ("treatment not in data", ["--treatment", "T9"], None, "treatment arm(s) ['T9'] not found"),
    ("arm without users", ["--treatment", "T2"], _no_last_in_t2,
     "arm 'T2' has 0 user(s) with a closed session"),
    ("no last events", [], lambda e: e["message"] != "last", 'no "last" events'),
    ("only corrupt lines", [], lambda e: e["message"] == "never", "no valid events found"),
    ("bad config", ["--bootstrap", "5"], None,
     "bootstrap.replicates: Input should be greater than or equal to 100"),
])
def test_bad_input_is_refused(spark, three_arms, tmp_path, capsys, case, args, keep, message):
    folder = write_variant(three_arms, tmp_path / "logs", keep or (lambda e: e["user"] >= 0))
    if case == "only corrupt lines":
        (folder / "bad.jsonl").write_text("\n".join(BAD_LINES) + "\n")
    argv = ["--events", str(folder), "--experiment", "EXP", "--control", "C",
            "--out", str(tmp_path / "out")]
    for flag, value in zip(args[::2], args[1::2]):
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    assert ab_test.main(argv) == 2, case
    assert message in capsys.readouterr().err.replace("\n", " "), case
    assert not (tmp_path / "out").exists()


def test_missing_events_path_is_refused(spark, tmp_path, capsys):
    assert run_job(tmp_path / "nowhere", tmp_path / "out") == 2
    assert "cannot read events" in capsys.readouterr().err


def test_spark_submit_exit_status(tmp_path):
    """Under spark-submit the script runs and its exit status and message come through
    (a config error, so no Spark job: the full spark-submit run is the pipeline's)."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[1]",
         str(REPO / "analysis" / "ab_test.py"), "--events", str(tmp_path), "--experiment", "EXP",
         "--control", "C", "--out", str(tmp_path / "out"),
         "--config", str(tmp_path / "missing.yml")],
        capture_output=True, text=True, cwd=REPO, timeout=300,
        env={**os.environ, "PYSPARK_PYTHON": sys.executable,
             "PYSPARK_DRIVER_PYTHON": sys.executable})
    assert result.returncode == 2, result.stderr[-3000:]
    # spark-submit merges the Python driver's stderr into its stdout.
    assert "missing.yml: config file not found" in result.stdout + result.stderr


def test_reads_hdfs_like_local_files(spark, three_arms, hdfs_client, hdfs_fs, hdfs_user,
                                     tmp_path):
    """The same logs on hdfs:// and on local disk give the same results.json (but the path)."""
    local_logs = write_events(three_arms, tmp_path / "logs", files=2)
    remote = f"/user/{hdfs_user}/analysis-test-{uuid.uuid4().hex[:8]}"
    hdfs_client.upload(remote, str(local_logs))
    common = ["--experiment", "EXP", "--control", "C", "--treatment", "T1", "--bootstrap", "200"]
    try:
        assert ab_test.main(["--events", f"{hdfs_fs}{remote}", "--out", str(tmp_path / "hdfs"),
                             *common]) == 0
    finally:
        hdfs_client.delete(remote, recursive=True)
    assert ab_test.main(["--events", str(local_logs), "--out", str(tmp_path / "local"),
                         *common]) == 0
    from_hdfs = json.loads((tmp_path / "hdfs" / "results.json").read_text())
    local = json.loads((tmp_path / "local" / "results.json").read_text())
    assert from_hdfs["parameters"].pop("events") != local["parameters"].pop("events")
    assert from_hdfs == local


def test_retention_metrics_on_multi_day_logs(spark, tmp_path):
    """Logs over 4 days: Spark's active_days_share and churned equal pandas'; one-day logs
    have neither."""
    events = synthetic_events(1500, seed=31, extra_sessions=1.5, days=4)
    table = per_user(read_events(spark, str(write_events(events, tmp_path / "logs", files=2))),
                     "EXP")
    summary = summarize(table)
    period = Period.of(min(summary[a].first_ts for a in ("C", "T1")),
                       max(summary[a].last_ts for a in ("C", "T1")))
    assert period.days == 4
    got = (metric_table(table, ["C", "T1"], period).toPandas().sort_values("user")
           .reset_index(drop=True))
    want = per_user_metrics(events, ["C", "T1"]).sort_values("user").reset_index(drop=True)
    for metric in RETENTION_METRICS:
        np.testing.assert_allclose(got[metric], want[metric], err_msg=metric)
    assert 0 < want["churned"].mean() < 1 and 0.25 <= want["active_days_share"].min()
    one_day = Period.of(BASE_TIMESTAMP_MS, BASE_TIMESTAMP_MS + 1000)
    assert not set(RETENTION_METRICS) & set(metric_table(table, ["C", "T1"], one_day).columns)
    table.unpersist()


def test_logs_of_any_span(spark, tmp_path):
    """Logs over 400 days (more days than a 64-bit mask has bits): the job reports every
    session metric and the retention metrics, which equal pandas' over the whole period."""
    events = synthetic_events(2000, seed=41, extra_sessions=1.5, days=400,
                              time_lift={"T1": 0.15})
    folder = write_events(events, tmp_path / "logs", files=2)
    table = per_user(read_events(spark, str(folder)), "EXP")
    summary = summarize(table)
    period = Period.of(min(summary[a].first_ts for a in ("C", "T1")),
                       max(summary[a].last_ts for a in ("C", "T1")))
    assert period.days == 400
    got = (metric_table(table, ["C", "T1"], period).toPandas().sort_values("user")
           .reset_index(drop=True))
    table.unpersist()
    want = per_user_metrics(events, ["C", "T1"]).sort_values("user").reset_index(drop=True)
    for metric in RETENTION_METRICS:
        np.testing.assert_allclose(got[metric], want[metric], err_msg=metric)
    assert (want["active_days_share"] * 400).round().max() >= 3  # days are counted, not flagged

    assert run_job(folder, tmp_path / "out") == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["data"]["days"] == 400
    rows = {(r["metric"], r["method"]): r for r in results["results"]}
    assert {m for m, _ in rows} >= {*SETTINGS.metrics, *RETENTION_METRICS}
    for metric in RETENTION_METRICS:
        by_arm = want.groupby("arm")[metric].mean()
        assert rows[metric, "bootstrap"]["control"] == pytest.approx(by_arm[0], rel=1e-12)
        assert rows[metric, "bootstrap"]["treatment_value"] == pytest.approx(by_arm[1], rel=1e-12)
    assert results["decision"]["treatments"]["T1"]["verdict"] == "better"
    assert_monitoring_ends_at_the_estimate(results, rows, tmp_path / "out")


def test_ab_n_job_on_hdfs(spark, hdfs_client, hdfs_fs, hdfs_user, tmp_path):
    """Four arms (T1 listens 15% longer, T2 and T3 are like C) over 2 days on HDFS, with the
    previous day as CUPED pre-period, run inside the caller's SparkSession: every treatment in
    one report, p_adjusted = Holm of the primary family, verdicts from p_adjusted, retention
    metrics, CUPED and delta rows; the session is still usable afterwards."""
    arms = ["C", "T1", "T2", "T3"]
    events = synthetic_events(4000, seed=41, split={a: 1 for a in arms},
                              time_lift={"T1": 0.15}, days=2)
    pre = synthetic_events(4000, seed=42, split={"C": 1}, experiment="PREVIOUS")
    pre = pre.assign(timestamp=pre.timestamp - 86_400_000)
    remote = f"/user/{hdfs_user}/analysis-abn-{uuid.uuid4().hex[:8]}"
    hdfs_client.upload(f"{remote}/ab", str(write_events(events, tmp_path / "ab", files=2)))
    hdfs_client.upload(f"{remote}/pre", str(write_events(pre, tmp_path / "pre", files=1)))
    out = tmp_path / "out"
    try:
        assert ab_test.main(["--events", f"{hdfs_fs}{remote}/ab", "--experiment", "EXP",
                             "--control", "C", "--out", str(out), "--seed", "3",
                             "--pre-events", f"{hdfs_fs}{remote}/pre"], spark=spark) == 0
    finally:
        hdfs_client.delete(remote, recursive=True)
    assert spark.range(3).count() == 3  # not stopped
    results = json.loads((out / "results.json").read_text())
    assert results["treatments"] == ["T1", "T2", "T3"] and results["data"]["days"] == 2
    rows = results["results"]
    assert {r["treatment"] for r in rows} == {"T1", "T2", "T3"}
    assert {r["method"] for r in rows} == {"bootstrap", "cuped", "delta"}
    assert {"active_days_share", "churned"} <= {r["metric"] for r in rows}
    for method in ("bootstrap", "cuped", "delta"):
        primary = [r for r in rows if r["role"] == "primary" and r["method"] == method]
        assert [r["treatment"] for r in primary] == ["T1", "T2", "T3"]
        np.testing.assert_allclose([r["p_adjusted"] for r in primary],
                                   holm([r["p"] for r in primary]))
        secondary = [r for r in rows if r["role"] == "secondary" and r["method"] == method]
        np.testing.assert_allclose([r["p_adjusted"] for r in secondary],
                                   holm([r["p"] for r in secondary]))
        if method == "bootstrap":  # six secondary metrics x three treatments in one family
            assert len(secondary) == 6 * 3
    for r in rows:
        if r["role"] != "guardrail":
            significant = r["p_adjusted"] < 0.05
            assert (r["verdict"] != "no difference") == significant, r
        else:
            assert r["verdict"] in ("ok", "breached", "inconclusive")
            assert r["p_adjusted"] == r["p"]
        assert r["p_adjusted"] >= r["p"] - 1e-12
    by_key = {(r["treatment"], r["metric"], r["method"]): r for r in rows}
    assert by_key["T1", "mean_session_time", "bootstrap"]["verdict"] == "better"
    assert results["decision"]["method"] == "cuped"
    assert set(results["decision"]["treatments"]) == {"T1", "T2", "T3"}
    cuped = by_key["T1", "mean_session_time", "cuped"]
    assert cuped["variance_reduction"] is not None  # no real pre-period link here: near 0
    assert "ratio of sums" in by_key["T1", "mean_session_time", "delta"]["estimand"]
    csv = pd.read_csv(out / "results.csv")
    assert len(csv) == len(rows) and list(csv.columns) == COLUMNS
    report = (out / "ab_report.md").read_text()
    assert "p_adj" in report and "MDE" in report and "T3" in report
    assert (out / "ab_report.png").stat().st_size > 10_000


def test_treatment_subset_alias_and_primary(spark, event_dir, tmp_path):
    """`--treatment T1` is `--treatments T1`; `--primary` moves the decision to another metric."""
    assert run_job(event_dir, tmp_path / "a", "--treatment", "T1", "--bootstrap", "200",
                   "--primary", "mean_session_length") == 0
    results = json.loads((tmp_path / "a" / "results.json").read_text())
    assert results["treatments"] == ["T1"]
    roles = {r["metric"]: r["role"] for r in results["results"]}
    assert roles["mean_session_length"] == "primary" and roles["mean_session_time"] == "secondary"
    assert results["decision"]["metric"] == "mean_session_length"


def test_effect_by_day_since_exposure(spark, tmp_path):
    """Four days of logs where T1's listening lift fades with the days since a user's first
    session (+20%, +10%, then 0 of the listened part): each day's interval covers the known
    effect, day 0's effect exceeds day 2's, and the point estimates equal pandas' per-day
    means; one-day logs have no such section."""
    lift = [0.2, 0.1, 0.0]
    events = synthetic_events(6000, seed=51, extra_sessions=2.0, days=4,
                              exposure_lift={"T1": lift})
    folder = write_events(events, tmp_path / "logs", files=2)
    assert run_job(folder, tmp_path / "out", "--bootstrap", "1000") == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    days = {d["day"]: d for d in results["exposure"]["days"]}
    assert results["exposure"]["metric"] == "mean_session_time" and set(days) == {0, 1, 2, 3}
    first = events.groupby("user")["timestamp"].transform("min")
    events = events.assign(day=(events.timestamp - first) // 86_400_000,
                           arm=[e["EXP"] for e in events.experiments])
    for day, found in days.items():
        sums = events[events.day == day].groupby(["user", "arm"]).agg(
            time=("time", "sum"), sessions=("message", lambda m: (m == "last").sum()))
        sums = sums[sums.sessions > 0]
        means = (sums.time / sums.sessions).groupby("arm").mean()
        t1 = found["treatments"]["T1"]
        assert t1["control"] == pytest.approx(means["C"], rel=1e-9)
        assert t1["effect"] == pytest.approx(means["T1"] / means["C"] - 1, rel=1e-9)
        # the lift multiplies the listened part, (control - 1) of each session's time
        truth = lift[min(day, 2)] * (t1["control"] - 1) / t1["control"]
        assert t1["lower"] <= truth <= t1["upper"], day
    assert days[0]["treatments"]["T1"]["lower"] > days[2]["treatments"]["T1"]["upper"]
    assert (tmp_path / "out" / "ab_exposure.png").read_bytes()[:4] == b"\x89PNG"
    assert "Effect by day since exposure" in (tmp_path / "out" / "ab_report.md").read_text()
