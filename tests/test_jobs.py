"""Tests of the Spark jobs (jobs/): transformations on hand-written data, the jobs' outputs on
synthetic logs, corrupt-record accounting, and one run over the real HDFS. The standalone-cluster
test is in test_jobs_cluster.py."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest
from pyspark.sql import functions as F

from jobs import batch, common, driver, fetch, nn, offline, ranking, server, sessions, svd, toppop
from sparkapp.config import spark_config
from pipeline.job_server import serve_command
from contract.events import make_event, spark_schema
from dataclient.synthetic_logs import synthetic_sessions, write_event_log
from support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark"), pytest.mark.heavy(8)]

REPO = Path(__file__).resolve().parent.parent


def event(message, ts, user, track, time=0.5, rec=None, arm="C"):
    return make_event(message, ts, user, track, time, 0.01, rec if message == "next" else None,
                      {"CONTEXTUAL": arm})


def args_for(job, argv):
    return common.parse_args(job.NAME, "test", job.add_arguments, argv)


def write_lines(folder: Path, name: str, lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(line + "\n" for line in lines))
    return folder


def read_jsonl(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


# --- sessions ----------------------------------------------------------------------------------

def test_sessionize_orders_by_time_and_cuts_after_last(spark):
    rows = [
        # user 1: two sessions, lines out of order; user 2 interleaved, its session never closed.
        event("next", 1003, 1, 12, 0.4, rec=13),
        event("next", 1000, 1, 10, 1.0, rec=11),
        event("next", 1001, 2, 20, 1.0, rec=21),
        event("last", 1005, 1, 13, 0.1),
        event("next", 1002, 1, 11, 0.9, rec=12),
        event("next", 1004, 2, 21, 0.7, rec=22),
        event("next", 1010, 1, 30, 1.0, rec=31, arm="T1"),
        event("last", 1011, 1, 31, 0.0, arm="T1"),
        event("next", 1012, 2, 22, 0.2, rec=23),
    ]
    events = spark.createDataFrame(rows, schema=spark_schema())
    got = {(r.user, r.session): r for r in sessions.sessionize(events).collect()}
    assert sorted(got) == [(1, 0), (1, 1), (2, 0)]
    first = got[(1, 0)]
    assert first.tracks == [10, 11, 12, 13] and first.times == [1.0, 0.9, 0.4, 0.1]
    assert (first.first_track, first.start_ts, first.end_ts, first.events) == (10, 1000, 1005, 4)
    assert first.closed and first.total_time == pytest.approx(2.4)
    assert got[(1, 1)].tracks == [30, 31] and got[(1, 1)].experiments == {"CONTEXTUAL": "T1"}
    open_session = got[(2, 0)]
    assert open_session.tracks == [20, 21, 22] and not open_session.closed

    users = {r.user: r for r in sessions.user_aggregates(sessions.sessionize(events)).collect()}
    assert users[1].sessions == 2 and users[1].events == 6
    assert users[1].mean_session_time == pytest.approx((2.4 + 1.0) / 2)
    assert users[1].mean_request_time == pytest.approx(0.01)
    assert users[2].sessions == 0 and users[2].mean_session_time is None


def test_sessionize_orders_same_millisecond_requests_by_their_position(spark):
    """A user's requests can come faster than the millisecond timestamps: the service's
    `position` field keeps them in the order they happened, whatever their track ids."""
    rows = [make_event("next", 5000, 7, 900, 1.0, 0.01, 40, {"E": "C"}, position=0),
            make_event("next", 5000, 7, 40, 0.5, 0.01, 3, {"E": "C"}, position=1),
            make_event("next", 5000, 7, 3, 0.2, 0.01, 8, {"E": "C"}, position=2),
            make_event("last", 5000, 7, 8, 0.1, 0.01, None, {"E": "C"})]
    (session,) = sessions.sessionize(spark.createDataFrame(rows, schema=spark_schema())).collect()
    assert session.tracks == [900, 40, 3, 8] and session.first_track == 900


def test_sessions_job_quarantines_corrupt_lines_and_enforces_threshold(spark, tmp_path):
    good = [orjson.dumps(event("next", 1000 + i, 1, i, rec=i + 1)).decode() for i in range(96)]
    good.append(orjson.dumps(event("last", 2000, 1, 99)).decode())
    bad = ['{"message": "next", "timestamp": 5',                                  # not JSON
           orjson.dumps({**event("next", 1, 1, 1, rec=2), "user": "7"}).decode(),  # wrong type
           orjson.dumps({k: v for k, v in event("next", 1, 1, 1, rec=2).items() if k != "time"}).decode(),
           orjson.dumps({**event("next", 1, 1, 1, rec=2), "experiments": {"X": 1}}).decode()]
    events = write_lines(tmp_path / "events", "a.jsonl", good + bad)
    out = tmp_path / "out"

    with pytest.raises(common.JobError, match=r"4 of 101 lines \(3.96%\)"):
        sessions.run(spark, args_for(sessions, ["--events", str(events), "--out", str(out)]))
    quarantined = [orjson.loads(line) for f in (out / "quarantine").glob("part-*")
                   for line in f.read_bytes().splitlines()]
    assert sorted(q["line"] for q in quarantined) == sorted(bad)
    reasons = " | ".join(q["error"] for q in quarantined)
    for expected in ("not JSON", "field 'user' has type str", "missing field 'time'",
                     "experiments must map strings to strings"):
        assert expected in reasons
    assert not (out / "sessions").exists(), "sessions must not be published from rejected input"

    result = sessions.run(spark, args_for(sessions, ["--events", str(events), "--out", str(out),
                                                     "--max-corrupt-share", "0.05"]))
    assert result == {"lines": 101, "corrupt": 4, "sessions": 1}
    row = spark.read.parquet(str(out / "sessions")).first()
    assert row.tracks == list(range(96)) + [99] and row.closed


def contract_cases() -> list[str]:
    """Valid events and many ways to break the contract, as raw lines."""
    base = make_event("next", 1_700_000_000_000, 3, 10, 0.25, 0.0015, 11, {"CONTEXTUAL": "C"}, position=2)
    valid = [base, {**base, "time": 1, "latency": 0}, {**base, "recommendation": None},
             {**base, "experiments": {}}, {**base, "latency": 1.5e-05}, {**base, "extra": "x", "more": {"a": 2}},
             {**base, "experiments": {"A": "x", "B": "y"}}, {**base, "position": None},
             {k: v for k, v in base.items() if k != "position"}, {**base, "message": "last"}]
    lines = [orjson.dumps(e).decode() for e in valid]
    lines += [' {"message": "next" , "timestamp":1700000000000,"user":3,"track":10,"time":0.5,'
              '"latency":0.1,"recommendation":4,"experiments":{ "E" : "C" }} ']
    lines.append(orjson.dumps({**base, "extra": [1, {"a": 2}]}).decode())   # valid, not plain
    wrong = ["7", 7, 7.5, True, None, [], {}, "NaN", 1e300, 2**64 - 1, -0.0]
    for name in [*base, "experiments"]:
        lines += [orjson.dumps({**base, name: value}).decode() for value in wrong]
        lines.append(orjson.dumps({k: v for k, v in base.items() if k != name}).decode())
    line = lines[0]
    lines += [line[:-1], line + " x", line + line, "[" + line + "]", "", "null", '"text"', "3",
              line.replace('"C"', "'C'"), line.replace('"next"', '"ne\\u0078t"'),
              line.replace('"C"', '"\\u00e9"'), line.replace('"C"', '"é"'), line.replace('"C"', '"\\ud800"'),
              line.replace("0.25", "NaN"), line.replace("0.25", "2.5e999"), line.replace("0.25", ".25"),
              line.replace("0.25", "00.25"), line.replace("0.25", "1" * 400), line.replace('"user":3', '"user":' + "9" * 25),
              line.replace("}", "}}", 1),
              line[:-1] + ',"user":"3"}', line[:-1] + ',"user":4}', line.replace('"C"', '"C","D":1'),
              line.replace('"next"', '"NEXT"'), line.replace('{"message"', '{"message":"x","message"')]
    return lines


def test_native_contract_check_gives_the_contracts_verdict_on_every_line(spark):
    """The Spark-native check plus validation_error on what it leaves: exactly validation_error's
    verdict and reason for every line, and the valid lines' values as the contract schema reads them."""
    lines = contract_cases()
    frame = spark.createDataFrame([(line, "f") for line in lines], "value string, file string")
    events, suspects = sessions.read_checked(sessions.checked_lines(frame))
    natively = [r.asDict() for r in events.collect()]
    checked = {r.value: r.error for r in suspects.collect()}
    expected = dict(zip(lines, sessions.contract_errors(lines)))
    accepted = [line for line in lines if line not in checked]
    assert len(natively) == len(accepted) and len(checked) == len(set(lines)) - len(set(accepted))
    assert all(expected[line] is None for line in accepted), "accepted natively, invalid by the contract"
    assert {line: checked[line] for line in checked} == {line: expected[line] for line in checked}
    # Every plainly written valid event is accepted natively (the Python check stays for the few
    # odd lines), with the values the contract's schema reads.
    assert not set(lines[:11]) & set(checked)
    assert any(error is None for error in checked.values())   # valid, but only Python can tell
    reference = spark.createDataFrame([(line,) for line in accepted], "value string").select(
        F.from_json("value", spark_schema()).alias("e")).select("e.*")
    assert sorted(map(repr, natively)) == sorted(repr(r.asDict()) for r in reference.collect())


# --- ranking, tables ---------------------------------------------------------------------------

def test_top_k_is_strictly_ordered_and_excludes():
    rng = np.random.default_rng(0)
    queries, items = rng.normal(size=(7, 5)), rng.normal(size=(300, 5))
    items[10] = items[11]  # a tie: the smaller index must come first

    def exclude(start, end):
        return np.arange(end - start), np.arange(start, end)  # row i never gets item i

    got = ranking.top_k(queries, items, 100, exclude=exclude, batch=3)
    unordered = ranking.top_k(queries, items, 100, ordered=False, exclude=exclude, batch=3)
    for i, row in enumerate(got):
        scores = (queries[i].astype(np.float32) @ items.T.astype(np.float32))
        scores[i] = -np.inf
        expected = np.lexsort((np.arange(300), -scores))[:100]
        assert row.tolist() == expected.tolist()
        assert i not in row and len(set(row)) == 100
        # The same best scores (which of two tied items is left out may differ), in the order
        # argpartition of the negated row gives (the course's table).
        assert sorted(scores[unordered[i]]) == sorted(scores[row])
        assert unordered[i].tolist() == np.argpartition(-scores, 100)[:100].tolist()
    assert any(u.tolist() != o.tolist() for u, o in zip(unordered, got))
    # Fewer items than k once the excluded are gone: rows are just shorter.
    assert [len(r) for r in ranking.top_k(queries[:2], items[:4], 100, exclude=exclude)] == [3, 3]


def test_top_k_scores_are_numpys_own_block_products():
    """Each block is scored by numpy's float32 product at BLAS's own thread count: the code the
    speed issue measured (e61dc4b) did so, and on some CPUs OpenBLAS's product differs in its
    last bits with the thread count (one thread changed the seed plan's tables here), which
    reorders the unordered top-k."""
    rng = np.random.default_rng(3)
    # scores all near 100, apart by about their rounding: the top 100 hang on the last bits
    queries = (1 + 1e-6 * rng.normal(size=(1024, 100))).astype(np.float32)
    items = (1 + 1e-6 * rng.normal(size=(4000, 100))).astype(np.float32)
    got = ranking.top_k(queries, items, 100, ordered=False, batch=512)
    items_t = np.ascontiguousarray(items.T)
    expected = [row for start in (0, 512)
                for row in np.argpartition(-(queries[start:start + 512] @ items_t), 100, axis=1)[:, :100]]
    assert all(g.tolist() == e.tolist() for g, e in zip(got, expected))


@pytest.mark.parametrize("n_items", [150, 1_000, 4_321])
def test_ordered_top_k_is_a_full_sort_cut_at_k_even_with_many_ties(n_items):
    """The bound on each row's k-th best score never drops an item of its k best."""
    rng = np.random.default_rng(n_items)
    queries = rng.integers(-2, 3, size=(40, 3)).astype(np.float32)  # few distinct scores
    items = rng.integers(-2, 3, size=(n_items, 3)).astype(np.float32)
    got = ranking.top_k(queries, items, 100, batch=16)
    for query, row in zip(queries, got):
        scores = items @ query
        assert row.tolist() == np.lexsort((np.arange(n_items), -scores))[:100].tolist()


def test_hit_rate_and_ndcg():
    table = {1: [5, 6, 7], 2: [9]}
    got = offline.hit_rate_ndcg(table.get, [1, 1, 2, 3], [6, 8, 9, 5], k=2)
    assert got["coverage"] == 0.75 and got["hit_rate"] == 0.5
    assert got["ndcg"] == pytest.approx((1 / np.log2(3) + 1) / 4)


@pytest.fixture(scope="module")
def synthetic_run(spark, tmp_path_factory):
    """sessions -> toppop, nn, nn --unordered, svd on ~60k synthetic events; the jobs' results."""
    root = tmp_path_factory.mktemp("jobs")
    write_event_log(synthetic_sessions(9_000, n_tracks=1_000, n_users=600, seed=11), root / "events")
    work, tables = str(root / "work"), str(root / "tables")
    results = {"root": root, "sessions": sessions.run(spark, args_for(
        sessions, ["--events", str(root / "events"), "--out", work]))}
    day = ["--sessions", f"{work}/sessions", "--out", tables]
    results["toppop"] = toppop.run(spark, args_for(toppop, day))
    results["nn"] = nn.run(spark, args_for(nn, day + ["--dim", "32", "--iterations", "5"]))
    results["course"] = nn.run(spark, args_for(nn, day + ["--dim", "16", "--iterations", "5", "--unordered"]))
    results["svd"] = svd.run(spark, args_for(svd, day + ["--rank", "16"]))
    return results


def test_tables_have_the_contract_formats(synthetic_run):
    tables = synthetic_run["root"] / "tables"
    assert sorted(p.name for p in tables.iterdir()) == [
        "recommendations_svd.json", "top_tracks.json", "tracks_nn.json", "tracks_with_recs.json"]
    top = orjson.loads((tables / "top_tracks.json").read_bytes())
    assert top == synthetic_run["toppop"] and len(top) == 100 and len(set(top)) == 100
    for name in ("tracks_nn.json", "tracks_with_recs.json"):
        rows = read_jsonl(tables / name)
        assert [r["track"] for r in rows] == sorted({r["track"] for r in rows})
        for r in rows:
            assert set(r) == {"track", "recommendations"} and len(r["recommendations"]) == 100
            assert r["track"] not in r["recommendations"] and len(set(r["recommendations"])) == 100
    users = read_jsonl(tables / "recommendations_svd.json")
    assert len(users) == 600 and all(set(u) == {"user", "tracks"} and len(u["tracks"]) == 100 for u in users)


def test_nn_beats_the_mean_and_reports_the_offline_check(synthetic_run):
    mse = synthetic_run["nn"]["mse"]
    # Random-recommender logs: most variance is the users' consume bias, which the context
    # barely tells; the model must still beat the mean on held-out listens.
    assert mse["model"] < 0.99 * mse["baseline"] and mse["model_known"] < mse["baseline_known"]
    for name, table in (("nn", "tracks_nn.json"), ("course", "tracks_with_recs.json"),
                        ("svd", "recommendations_svd.json")):
        checks = synthetic_run[name]["offline"]
        assert checks[table]["queries"] == checks["top-pop"]["queries"] > 100
        assert checks[table]["hit_rate"] > 0 and checks[table]["coverage"] > 0.9


def test_svd_recommends_only_unplayed_tracks(spark, synthetic_run):
    work = synthetic_run["root"] / "work" / "sessions"
    train = spark.read.parquet(str(work)).withColumn("heldout", common.holdout_flag(42, 0.1))
    played = {}
    for r in train.where("NOT heldout").select("user", "tracks").collect():
        played.setdefault(r.user, set()).update(r.tracks)
    for row in read_jsonl(synthetic_run["root"] / "tables" / "recommendations_svd.json"):
        assert not played[row["user"]] & set(row["tracks"])


def test_jobs_are_deterministic(spark, synthetic_run, tmp_path):
    root = synthetic_run["root"]
    day = ["--sessions", str(root / "work" / "sessions"), "--out", str(tmp_path)]
    nn.run(spark, args_for(nn, day + ["--dim", "16", "--iterations", "5", "--unordered"]))
    assert (tmp_path / "tracks_with_recs.json").read_bytes() == (root / "tables" / "tracks_with_recs.json").read_bytes()


@pytest.mark.parametrize("run, flags, table", [
    ("nn", ["--dim", "32", "--iterations", "5"], "tracks_nn.json"),
    ("course", ["--dim", "16", "--iterations", "5", "--unordered"], "tracks_with_recs.json")])
def test_nn_on_the_executors_writes_the_drivers_table(spark, synthetic_run, tmp_path, run, flags, table):
    """Above --driver-max-ratings nn runs on the executors (3 partitions: some rows of a side in
    each); the synthetic run's tables came from the driver path."""
    root, on_driver = synthetic_run["root"], synthetic_run[run]
    assert not on_driver["on_executors"]
    day = ["--sessions", str(root / "work" / "sessions"), "--out", str(tmp_path)]
    on_executors = nn.run(spark, args_for(nn, day + flags + ["--driver-max-ratings", "0", "--partitions", "3"]))
    assert on_executors["on_executors"]
    assert (tmp_path / table).read_bytes() == (root / "tables" / table).read_bytes()
    assert on_executors["offline"].keys() == on_driver["offline"].keys()
    for name, figures in on_driver["offline"].items():
        assert on_executors["offline"][name] == pytest.approx(figures, rel=1e-12)
    for key, value in on_driver["mse"].items():
        assert on_executors["mse"][key] == pytest.approx(value, rel=1e-9)


def test_offline_check_on_executors_counts_like_the_driver(spark, synthetic_run):
    """compare_on_executors (nn's) on a table gives compare's (svd's) figures for the same table."""
    sessions_path = str(synthetic_run["root"] / "work" / "sessions")
    heldout = spark.read.parquet(sessions_path).where(common.holdout_flag(42, 0.1))
    rows = read_jsonl(synthetic_run["root"] / "tables" / "tracks_nn.json")[::2]   # half the contexts: misses too
    table = spark.createDataFrame([(r["track"], r["recommendations"]) for r in rows], "context long, recs array<long>")
    top = synthetic_run["toppop"][:100]
    on_driver = offline.compare("t", "t", {r["track"]: r["recommendations"] for r in rows}.get, heldout,
                                "context", top, 0.8, 100)
    on_executors = offline.compare_on_executors("t", "t", table, heldout, "context", top, 0.8, 100)
    assert on_executors.keys() == on_driver.keys()
    for name, figures in on_driver.items():
        assert on_executors[name]["queries"] == figures["queries"]
        for metric in ("coverage", "hit_rate", "ndcg"):
            assert on_executors[name][metric] == pytest.approx(figures[metric], rel=1e-12)
    assert 0.3 < on_driver["t"]["coverage"] < 0.7


def test_missing_input_is_a_clear_error(spark, tmp_path):
    with pytest.raises(common.JobError, match="sessions table not found"):
        toppop.run(spark, args_for(toppop, ["--sessions", str(tmp_path / "nope"), "--out", str(tmp_path)]))
    cli = subprocess.run([sys.executable, str(REPO / "jobs" / "fetch.py"), str(tmp_path / "nope"), str(tmp_path)],
                         capture_output=True, text=True)
    assert cli.returncode == 2 and "is not a folder" in cli.stderr


@pytest.mark.parametrize("name", ["sessions", "toppop", "nn", "svd", "fetch", "driver"])
def test_help(name):
    cli = subprocess.run([sys.executable, str(REPO / "jobs" / f"{name}.py"), "--help"],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0 and "usage:" in cli.stdout


# --- a batch: several jobs in one SparkSession -------------------------------------------------

def test_a_batch_runs_jobs_in_the_given_session_and_leaves_it_running(spark, tmp_path):
    events = tmp_path / "events"
    write_event_log(synthetic_sessions(200, n_tracks=150, n_users=30, seed=3), events, n_files=2)
    work, tables = str(tmp_path / "work"), str(tmp_path / "tables")
    words = ["sessions", "--events", str(events), "--out", work, ";",
             "toppop", "--sessions", f"{work}/sessions", "--out", tables, "--size", "7"]
    plan = batch.split_invocations(words)
    assert batch.join_invocations(plan) == words
    assert batch.run_batch(spark, plan, tmp_path / "timings.json") == 0
    timings = orjson.loads((tmp_path / "timings.json").read_bytes())
    assert [(t["job"], t["exit"]) for t in timings["jobs"]] == [("sessions", 0), ("toppop", 0)]
    assert all(t["seconds"] > 0 for t in timings["jobs"]) and timings["startup"] is None
    assert timings["jobs"][0]["summary"]["sessions"] == 200
    assert len(orjson.loads((tmp_path / "tables" / "top_tracks.json").read_bytes())) == 7
    # The jobs ran in the test's session and left it running.
    assert spark.range(3).count() == 3
    # A job's own main() takes the session the same way.
    assert toppop.main(["--sessions", f"{work}/sessions", "--out", tables], spark=spark) == 0
    assert spark.range(2).count() == 2


def test_driver_names_the_failing_job_and_stops(tmp_path):
    """The real command line (its own Spark): the first job fails, the second never runs."""
    timings = tmp_path / "timings.json"
    cli = subprocess.run(
        [sys.executable, str(REPO / "jobs" / "driver.py"), "--master", "local[1]", "--timings", str(timings),
         "--", "toppop", "--sessions", str(tmp_path / "missing"), "--out", str(tmp_path / "tables"),
         ";", "svd", "--sessions", str(tmp_path / "missing"), "--out", str(tmp_path / "tables")],
        capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert cli.returncode == 2, cli.stderr[-3000:]
    assert "error: toppop: sessions table not found" in cli.stderr
    assert "error: batch: job 1 of 2: toppop failed with exit status 2" in cli.stderr
    recorded = orjson.loads(timings.read_bytes())
    assert [(t["job"], t["exit"]) for t in recorded["jobs"]] == [("toppop", 2)]
    assert recorded["startup"] > 0 and recorded["total"] >= sum(t["seconds"] for t in recorded["jobs"])
    assert not (tmp_path / "tables").exists()


def test_the_drivers_botify_starts_run_with_its_java_options(spark):
    """conf/spark.yml's driver_java_options reach a driver pyspark launches (tests/conftest.py)
    and a run's job server (spark-submit's --driver-java-options)."""
    options = spark_config().driver_java_options
    arguments = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()
    assert options and set(options) <= set(arguments)
    argv = serve_command("local[1]", "/tmp/jobs.sock")
    assert argv[argv.index("--driver-java-options") + 1] == " ".join(options)


def test_job_server_runs_batch_after_batch_in_one_spark_application(tmp_path):
    """The real `spark-submit jobs/server.py serve`: a batch whose second job fails reports it
    and leaves the server serving; the next batch runs in the same JVM; `stop` ends it."""
    events = tmp_path / "events"
    write_event_log(synthetic_sessions(100, n_tracks=100, n_users=20, seed=4), events, n_files=1)
    work, socket_path = str(tmp_path / "work"), str(tmp_path / "jobs.sock")

    def run(*words: str, timings: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "jobs.server", "run", socket_path,
                               *(["--timings", str(timings)] if timings else []), "--", *words],
                              capture_output=True, text=True, timeout=600, cwd=REPO)

    not_yet = run("toppop", "--sessions", work, "--out", work)
    assert not_yet.returncode == 2 and "no job server on" in not_yet.stderr
    server_log = open(tmp_path / "server.log", "w")
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    process = subprocess.Popen(serve_command("local[1]", socket_path),   # as a run starts it
                               cwd=REPO, stdout=server_log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for(lambda: server.ready(socket_path), 600, "the job server to be ready", process,
                 interval=0.2, details=lambda: "\n" + (tmp_path / "server.log").read_text()[-3000:])
        failed = run("sessions", "--events", str(events), "--out", work,
                     ";", "toppop", "--sessions", str(tmp_path / "missing"), "--out", str(tmp_path / "tables"),
                     ";", "svd", "--sessions", f"{work}/sessions", "--out", str(tmp_path / "tables"),
                     timings=tmp_path / "failed.json")
        assert failed.returncode == 2, failed.stdout[-3000:]
        # The jobs' output (stderr included) reaches the client that asked, as it comes.
        assert "[sessions] done in" in failed.stdout
        assert "error: toppop: sessions table not found" in failed.stdout
        assert "error: batch: job 2 of 3: toppop failed with exit status 2" in failed.stdout
        recorded = orjson.loads((tmp_path / "failed.json").read_bytes())
        assert [(t["job"], t["exit"]) for t in recorded["jobs"]] == [("sessions", 0), ("toppop", 2)]
        # What the jobs before the failure wrote stays; the job after it never ran.
        assert (tmp_path / "work" / "sessions").is_dir() and not (tmp_path / "tables").exists()

        ok = run("toppop", "--sessions", f"{work}/sessions", "--out", str(tmp_path / "tables"), "--size", "5")
        assert ok.returncode == 0, ok.stdout[-3000:]
        assert len(orjson.loads((tmp_path / "tables" / "top_tracks.json").read_bytes())) == 5

        server.stop(socket_path)
        assert process.wait(timeout=120) == 0
        assert not Path(socket_path).exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        server_log.close()


@pytest.mark.parametrize("words, message", [
    (["sessions", "--out", "x", ";", "nope", "--flag"], "unknown job 'nope' (job 2): no module jobs.nope"),
    (["toppop", ";", ";", "svd"], "empty job invocation (job 2)"),
    ([], "empty job invocation (job 1)")])
def test_driver_refuses_a_bad_batch_before_starting_spark(words, message, capsys):
    assert driver.main(["--", *words]) == 2
    assert message in capsys.readouterr().err


# --- real HDFS ---------------------------------------------------------------------------------

def test_pipeline_over_real_hdfs(spark, hdfs_client, hdfs_user, hdfs_fs, tmp_path):
    """Events uploaded to HDFS -> sessions and toppop reading/writing hdfs:// -> fetch to local."""
    local = tmp_path / "events"
    lines = write_event_log(synthetic_sessions(300, n_tracks=200, n_users=50, seed=5), local, n_files=2)
    base = f"/user/{hdfs_user}/test_jobs_{os.getpid()}"
    hdfs_client.delete(base, recursive=True)
    hdfs_client.upload(f"{base}/events", str(local))
    try:
        uri = f"{hdfs_fs}{base}"
        got = sessions.run(spark, args_for(sessions, ["--events", f"{uri}/events", "--out", f"{uri}/work"]))
        assert got["lines"] == lines and got["corrupt"] == 0 and got["sessions"] == 300
        assert any(n.startswith("part-") for n in hdfs_client.list(f"{base}/work/sessions"))
        top = toppop.run(spark, args_for(toppop, ["--sessions", f"{uri}/work/sessions", "--out", f"{uri}/tables"]))
        assert hdfs_client.list(f"{base}/tables") == ["top_tracks.json"]

        assert fetch.main([f"{uri}/tables", str(tmp_path / "data")]) == 0
        assert orjson.loads((tmp_path / "data" / "top_tracks.json").read_bytes()) == top
        # In a batch of jobs it goes through the session's JVM, not a JVM of its own.
        assert fetch.main([f"{uri}/tables", str(tmp_path / "in-session")], spark=spark) == 0
        assert (tmp_path / "in-session" / "top_tracks.json").read_bytes() == \
            (tmp_path / "data" / "top_tracks.json").read_bytes()
        assert fetch.main([f"{uri}/tables", str(tmp_path / "data"), "--tables", "tracks_nn.json"]) == 2
    finally:
        hdfs_client.delete(base, recursive=True)
