"""The effect by day since exposure (analysis/exposure.py) from a per-(user, day) table, no
JVM: on synthetic logs with a known fading lift each day's interval covers it, and the rows'
order (Spark gives none) does not change the result. The Spark side is in
tests/test_analysis_job.py."""
from __future__ import annotations

import pandas as pd

from analysis.ab_test import job_settings
from analysis.config import load_config
from analysis.exposure import effects_by_day
from dataclient.synthetic_logs import synthetic_events

LIFT = [0.25, 0.1, 0.0]


def user_days(events: pd.DataFrame) -> pd.DataFrame:
    """mean_session_time per (user, day since the user's first event), users with a session
    closed that day."""
    first = events.groupby("user")["timestamp"].transform("min")
    events = events.assign(day=(events.timestamp - first) // 86_400_000,
                           arm=[0 if e["EXP"] == "C" else 1 for e in events.experiments],
                           closes=events.message == "last")
    sums = events.groupby(["user", "arm", "day"]).agg(time=("time", "sum"),
                                                      sessions=("closes", "sum")).reset_index()
    sums = sums[sums.sessions > 0]
    return sums.assign(value=sums.time / sums.sessions)[["user", "arm", "day", "value"]]


def test_each_days_interval_covers_the_known_effect_whatever_the_row_order():
    events = synthetic_events(5000, seed=61, extra_sessions=2.0, days=3,
                              exposure_lift={"T1": LIFT})
    frame = user_days(events)
    settings = job_settings(load_config(), {"mean_session_time"}, covariates=False)
    days = effects_by_day(frame, ["C", "T1"], "mean_session_time", settings)
    assert [d["day"] for d in days] == [0, 1, 2]
    for d in days:
        found = d["treatments"]["T1"]
        # the lift multiplies the listened part of a session's time, (control - 1)
        truth = LIFT[d["day"]] * (found["control"] - 1) / found["control"]
        assert found["lower"] <= truth <= found["upper"], d
        assert d["users"]["C"] + d["users"]["T1"] == (frame.day == d["day"]).sum()
    assert days[0]["treatments"]["T1"]["lower"] > days[2]["treatments"]["T1"]["upper"]
    shuffled = frame.sample(frac=1.0, random_state=3)
    assert effects_by_day(shuffled, ["C", "T1"], "mean_session_time", settings) == days


def test_a_day_where_an_arm_has_fewer_than_two_users_is_left_out():
    frame = pd.DataFrame({"user": [1, 2, 3, 4, 5], "arm": [0, 0, 1, 1, 0],
                          "day": [0, 0, 0, 0, 1], "value": [1.0, 2.0, 3.0, 4.0, 5.0]})
    settings = job_settings(load_config(), {"mean_session_time"}, covariates=False)
    assert [d["day"] for d in effects_by_day(frame, ["C", "T1"], "mean_session_time",
                                             settings)] == [0]
