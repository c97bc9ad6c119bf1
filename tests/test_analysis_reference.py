"""The A/B statistics against a kept library, spotify-confidence (Spotify's experimentation
statistics), on the same per-user table: its z-test of per-user means and its
regression-adjusted z-test (CUPED-like) against our bootstrap and CUPED rows.

What is compared, and why the tolerances:
- the arm means and the relative effect of the plain estimate: the same arithmetic, so equal
  to rounding;
- the intervals: spotify-confidence's relative interval is its normal interval of the absolute
  difference divided by the control mean (the control mean taken as known), ours a bootstrap
  percentile interval of (treatment mean / control mean - 1). With a small effect the two
  estimate the same spread; the ends agree within 5% of the half width (the bootstrap's
  Monte-Carlo error at B = 10,000 and the effect's share of the control's variance);
- CUPED: spotify-confidence regresses on the covariate over all users pooled, we pool the
  within-arm moments; the slopes differ by the covariate's chance imbalance between arms, so
  the adjusted effects agree within 5% of the interval's half width and the intervals as above.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import spotify_confidence as confidence

from analysis.compare import compare_numpy
from analysis.config import load_config

BASE = load_config().settings
SETTINGS = dataclasses.replace(BASE, metrics={"y": "higher"}, quantiles={}, quantile_variable="y",
                               covariates={"y": "pre_y"}, ratios={}, partitions=1,
                               replicates=10_000, seed=3)
TOLERANCE = 0.05  # of the library's interval half width


@pytest.fixture(scope="module")
def users() -> pd.DataFrame:
    """20,000 users, skewed values correlated with their pre-period value, +2% in T1."""
    rng = np.random.default_rng(17)
    n = 20_000
    z1, z2 = rng.normal(size=n), rng.normal(size=n)
    arm = rng.integers(0, 2, size=n)
    pre = 3 * np.exp(0.3 * z1)
    y = 3 * np.exp(0.3 * (0.7 * z1 + np.sqrt(1 - 0.49) * z2)) * np.where(arm == 1, 1.02, 1.0)
    return pd.DataFrame({"user": np.arange(n), "arm": arm, "y": y, "pre_y": pre})


def summary(users: pd.DataFrame) -> pd.DataFrame:
    """Per arm the sufficient statistics spotify-confidence takes."""
    frame = users.assign(group=np.where(users["arm"] == 0, "C", "T1"),
                         y2=users["y"] ** 2, x2=users["pre_y"] ** 2,
                         xy=users["y"] * users["pre_y"])
    return (frame.groupby("group")
            .agg(y=("y", "sum"), y2=("y2", "sum"), n=("y", "size"), x=("pre_y", "sum"),
                 x2=("x2", "sum"), xy=("xy", "sum"))
            .reset_index())


def library_difference(test) -> pd.Series:
    return test.difference(level_1="C", level_2="T1", absolute=False).iloc[0]


@pytest.fixture(scope="module")
def ours(users):
    rows = compare_numpy(users, ["C", "T1"], SETTINGS).rows
    return {r.method: r for r in rows}


def assert_interval_agrees(row, theirs):
    half = (theirs["ci_upper"] - theirs["ci_lower"]) / 2
    assert abs(row.lower - theirs["ci_lower"]) < TOLERANCE * half, (row.lower, theirs)
    assert abs(row.upper - theirs["ci_upper"]) < TOLERANCE * half, (row.upper, theirs)


def test_plain_effect_and_interval_agree_with_spotify_confidence(users, ours):
    test = confidence.ZTest(summary(users), numerator_column="y",
                            numerator_sum_squares_column="y2", denominator_column="n",
                            categorical_group_columns="group", interval_size=1 - SETTINGS.alpha)
    theirs = library_difference(test)
    row = ours["bootstrap"]
    means = users.groupby("arm")["y"].mean()
    assert row.control_value == pytest.approx(means[0], rel=1e-12)
    assert row.treatment_value == pytest.approx(means[1], rel=1e-12)
    assert row.effect == pytest.approx(theirs["difference"], rel=1e-9)
    assert_interval_agrees(row, theirs)
    assert row.lower > 0  # the +2% is found by both
    assert theirs["ci_lower"] > 0


def test_cuped_agrees_with_spotify_confidence_regression_adjustment(users, ours):
    test = confidence.ZTestLinreg(summary(users), numerator_column="y",
                                  numerator_sum_squares_column="y2", denominator_column="n",
                                  feature_column="x", feature_sum_squares_column="x2",
                                  feature_cross_sum_column="xy",
                                  categorical_group_columns="group",
                                  interval_size=1 - SETTINGS.alpha)
    theirs = library_difference(test)
    row = ours["cuped"]
    half = (theirs["ci_upper"] - theirs["ci_lower"]) / 2
    assert abs(row.effect - theirs["difference"]) < TOLERANCE * half
    assert_interval_agrees(row, theirs)
    plain = library_difference(confidence.ZTest(
        summary(users), numerator_column="y", numerator_sum_squares_column="y2",
        denominator_column="n", categorical_group_columns="group"))
    assert half < 0.8 * (plain["ci_upper"] - plain["ci_lower"]) / 2  # both narrow it
