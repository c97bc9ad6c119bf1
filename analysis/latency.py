"""The latency guardrail: the request time a client sees, compared between arms.

Each event may carry `client_latency`, the seconds the client waited for the same user's
previous request (contract/events.py; sim/remote.py measures it). Per arm, the statistic is a
quantile (e.g. the 95th percentile) of those waits over all the arm's requests, in
milliseconds; the guardrail is the difference treatment - control, with a Poisson-bootstrap
percentile interval over users (users are the randomisation unit, and a user's requests are
not independent of each other), judged against `margin_ms` like every guardrail
(analysis/decisions.py): `ok` when the interval's upper end is within the margin (the treatment
is shown to keep the quantile within `margin_ms` of the control's), `breached` when its lower
end is beyond it (harm of more than the margin shown), else `inconclusive`. Why three states: a
breach must be shown, so that an A/A breaches at most at the interval's one-sided level
(alpha / 2) however few its users; "not shown to be within the margin" is `inconclusive`.

The waits are binned per user on a logarithmic grid (bins 1% wide from 1 us to 10 min), so a
bootstrap replicate's histogram of an arm is one sparse product, user histograms x Poisson
weights, and its quantile interpolates inside the bin where it falls (analysis/bootstrap.py's
`histogram_quantile`). Spark counts the (user, bin) pairs; the driver, which receives one row
per pair, draws the weights. A wait's cell is the number of EDGES at or below it (in ms).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import sparse

from analysis.bootstrap import histogram_quantile, poisson1_weights
from analysis.decisions import guardrail_verdict

LOW_MS, HIGH_MS, BIN_RATIO = 0.001, 600_000.0, 1.01
BINS = math.ceil(math.log(HIGH_MS / LOW_MS) / math.log(BIN_RATIO))
EDGES = LOW_MS * BIN_RATIO ** np.arange(BINS + 1)  # cell 0 below EDGES[0], cell BINS + 1 above
STREAM = 0x1A7E  # the guardrail's weights: their own stream of the seed, apart from the metrics'


def user_histograms(analysed):
    """Spark: per analysed user the count of their requests' `client_latency` per cell
    (analysis.user_metrics.analysed_events), as a pandas frame `user`, `arm`, `cell`,
    `requests`."""
    from pyspark.sql import functions as F

    ms = F.greatest(F.col("client_latency") * 1000.0, F.lit(LOW_MS / 2))
    cell = F.least(F.greatest(F.floor(F.log(ms / LOW_MS) / math.log(BIN_RATIO)) + 1, F.lit(0)),
                   F.lit(BINS + 1))
    return (analysed.where(F.col("client_latency").isNotNull())
            .groupBy("user", "arm", cell.cast("long").alias("cell"))
            .agg(F.count(F.lit(1)).alias("requests"))
            .toPandas())


def arm_quantiles(histograms: pd.DataFrame, arms: int, level: float, replicates: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per arm, the sample's level-quantile (ms) and B bootstrap replicates of it: arrays of
    shape (arms,) and (arms, B)."""
    sample, reps = np.full(arms, np.nan), np.full((arms, replicates), np.nan)
    for arm in range(arms):
        rows = histograms[histograms["arm"] == arm]
        users, user_index = np.unique(rows["user"].to_numpy(), return_inverse=True)
        if not len(users):
            continue
        counts = sparse.csr_matrix((rows["requests"].to_numpy(dtype=float),
                                    (rows["cell"].to_numpy(), user_index)),
                                   shape=(BINS + 2, len(users)))
        weights = np.ones((len(users), replicates + 1))
        weights[:, 1:] = poisson1_weights(rng, len(users), replicates)
        histogram = np.asarray(counts @ weights)
        # a replicate that drew no user of the arm has no quantile
        values, _ = histogram_quantile(histogram, EDGES, level)
        values = np.where(histogram.sum(axis=0) > 0, values, np.nan)
        sample[arm], reps[arm] = values[0], values[1:]
    return sample, reps


def guardrail(histograms: pd.DataFrame, arm_names: list[str], level: float, margin_ms: float,
              replicates: int, seed: int, alpha: float) -> dict:
    """The guardrail of every treatment against arm 0: the arms' quantiles, their difference
    with its 1 - alpha percentile interval (ms) and the verdict against `margin_ms`."""
    rng = np.random.default_rng([seed, STREAM])
    sample, reps = arm_quantiles(histograms, len(arm_names), level, replicates, rng)
    requests = histograms.groupby("arm")["requests"].sum()
    users = histograms.groupby("arm")["user"].nunique()
    treatments = {}
    for arm in range(1, len(arm_names)):
        difference = reps[arm] - reps[0]
        difference = difference[np.isfinite(difference)]
        lower, upper = (np.quantile(difference, [alpha / 2, 1 - alpha / 2])
                        if len(difference) else (math.nan, math.nan))
        treatments[arm_names[arm]] = {
            "control_ms": float(sample[0]), "treatment_ms": float(sample[arm]),
            "difference_ms": float(sample[arm] - sample[0]),
            "lower_ms": float(lower), "upper_ms": float(upper),
            "verdict": guardrail_verdict(lower, upper, "lower", margin_ms),
            "control_requests": int(requests.get(0, 0)),
            "treatment_requests": int(requests.get(arm, 0)),
            "control_users": int(users.get(0, 0)), "treatment_users": int(users.get(arm, 0))}
    return {"metric": f"p{level * 100:g}_client_request_time", "quantile": level,
            "margin_ms": margin_ms, "alpha": alpha, "treatments": treatments}


def client_guardrail(analysed, arm_names: list[str], level: float,
                     margin_ms: float, replicates: int, seed: int, alpha: float) -> dict:
    """The guardrail from the logs, with `histograms` (the per-user frame it was computed
    from, which the report writes out for the calibration), or `{"skipped": why}` when an
    arm's events carry no client_latency (logs of a client that does not measure it)."""
    histograms = user_histograms(analysed)
    missing = [name for arm, name in enumerate(arm_names)
               if not (histograms["arm"] == arm).any()]
    if missing:
        return {"metric": f"p{level * 100:g}_client_request_time", "quantile": level,
                "margin_ms": margin_ms,
                "skipped": f"no event of arm(s) {missing} carries client_latency"}
    return {**guardrail(histograms, arm_names, level, margin_ms, replicates, seed, alpha),
            "histograms": histograms}


def a_a_verdicts(histograms: pd.DataFrame, arm: int, level: float, margin_ms: float,
                 replications: int, replicates: int, seed: int, alpha: float) -> list[str]:
    """The guardrail's verdict on `replications` A/A experiments: the users of one arm of a
    real day (the client's real waits) split in two at random each time. Why: the
    calibration's pool is played in process, without HTTP, so it has no client latency; a
    re-split of one arm's users keeps everything a real A/A would share (the same service, the
    same moments, the users' own waits) and changes only who is called control."""
    rows = histograms[histograms["arm"] == arm]
    users = np.unique(rows["user"].to_numpy())
    rng = np.random.default_rng([seed, STREAM])
    verdicts = []
    for replication in range(replications):
        half = dict(zip(users, rng.integers(0, 2, len(users))))
        split = rows.assign(arm=rows["user"].map(half))
        found = guardrail(split, ["A", "A'"], level, margin_ms, replicates,
                          seed + replication, alpha)
        verdicts.append(found["treatments"]["A'"]["verdict"])
    return verdicts
