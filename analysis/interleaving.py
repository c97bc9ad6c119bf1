"""Interleaving analysis: in each interleaved arm, which of its two recommenders the users
preferred, from the event logs (service/interleaving.py drafts the teams).

    spark-submit analysis/interleaving.py --events PATH --experiment NAME \\
        --pair ARM=A:B [--pair ...] --out DIR [--seed S] [--bootstrap B] [--alpha 0.05]

Credit: a team is credited with the listen time of each track it recommended, which the next
event of the user's session carries (the user listened to the recommended track, then asked
again or left). Per user: credit_a, credit_b and sessions. Per pair, over its users:
- `share`: sum credit_b / sum (credit_a + credit_b), the share of all listening that b earned
  (0.5: no preference), with a percentile bootstrap interval over users;
- `difference`: the mean over users of (credit_b - credit_a) / sessions, per session, with its
  bootstrap interval;
- a sign test over users (users whose b credit beat a's against the reverse; ties left out),
  its p-value Holm-adjusted across the pairs;
- `first step`: b's share of the mean listen time of a session's first recommended track,
  over the sessions whose first pair b led against those a led (a fair coin per session), with
  its bootstrap interval over users. The first answer is the only one no team's earlier tracks
  can have shaped (each recommender sees the whole session, whoever served it), so it is a
  carryover-free comparison of the two; a pair whose first-step interval lies wholly on the
  other side of 0.5 from its share's is flagged: one team's tracks change what the other earns,
  and its interleaving is not to be trusted (`trusted` false).
Writes interleaving.json, interleaving.md and interleaving.png into DIR. The per-user table is
built in Spark; the bootstrap runs on it (one row per user) with numpy.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from analysis.decisions import holm
from analysis.errors import AnalysisError
from analysis.user_metrics import CORRUPT, read_events


@dataclass(frozen=True)
class Preference:
    arm: str
    a: str
    b: str
    users: int
    sessions: int
    credit_a: float
    credit_b: float
    share: float
    share_lower: float
    share_upper: float
    difference: float
    difference_lower: float
    difference_upper: float
    b_wins: int
    a_wins: int
    p: float
    p_adjusted: float
    verdict: str
    first_step: float
    first_step_lower: float
    first_step_upper: float
    trusted: bool


def parse_pair(text: str) -> tuple[str, str, str]:
    arm, _, teams = text.partition("=")
    a, _, b = teams.partition(":")
    if not (arm and a and b):
        raise argparse.ArgumentTypeError(f"--pair {text!r}: write ARM=A:B (the interleaved arm "
                                         f"and the arms of its teams a and b)")
    return arm, a, b


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="interleaving.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", required=True, help="folder, file or glob of event logs")
    parser.add_argument("--experiment", required=True, help="experiment name in `experiments`")
    parser.add_argument("--pair", required=True, action="append", type=parse_pair, metavar="ARM=A:B",
                        help="an interleaved arm and the arms of its teams a and b (repeatable)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--seed", type=int, default=42, help="seed of the bootstrap")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap replicates")
    parser.add_argument("--alpha", type=float, default=0.05, help="family alpha of the sign tests")
    return parser.parse_args(argv)


def user_credits(events, experiment: str):
    """Per (arm, user): credit_a, credit_b (listen time of the tracks each team recommended),
    sessions, and the first step's first_a, first_b (listen time of the sessions' first
    recommended track, by the team that served it) and led_a, led_b (the sessions each team
    led), for the users of interleaved arms (events with a team)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    valid = events.where(F.col(CORRUPT).isNull() & F.col("experiments")[experiment].isNotNull())
    order = Window.partitionBy("user").orderBy(
        "timestamp", (F.col("message") == "last").cast("int"), "position", "track")
    credited = (valid.withColumn("arm", F.col("experiments")[experiment])
                .withColumn("listened", F.lead("time").over(order)))
    first = (F.col("position") == 0) & (F.col("message") == "next")
    sums = []
    for team in ("a", "b"):
        sums += [F.sum(F.when(F.col("team") == team, F.col("listened"))).alias(f"credit_{team}"),
                 F.sum(F.when(first & (F.col("team") == team), F.col("listened"))).alias(f"first_{team}"),
                 F.sum((first & (F.col("team") == team)).cast("int")).alias(f"led_{team}")]
    return (credited.groupBy("arm", "user")
            .agg(*sums, F.sum((F.col("message") == "last").cast("int")).alias("sessions"))
            .where(F.col("sessions") > 0)
            .fillna(0.0, ["credit_a", "credit_b", "first_a", "first_b", "led_a", "led_b"]))


def preference(arm: str, a: str, b: str, credit_a: np.ndarray, credit_b: np.ndarray,
               sessions: np.ndarray, replicates: int, seed: int,
               first: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None) -> dict:
    """The pair's preference for b (share and per-session difference) with percentile bootstrap
    intervals over users (multinomial resampling), and the sign test's p-value; with `first`
    (first_a, first_b, led_a, led_b per user), the first step's share with its interval (the
    same resamples)."""
    if len(credit_a) < 2:
        raise AnalysisError(f"interleaved arm {arm!r} has {len(credit_a)} user(s) with a closed "
                            f"session: nothing to compare")
    rng = np.random.default_rng(seed)
    difference = (credit_b - credit_a) / sessions
    counts = rng.multinomial(len(credit_a), np.full(len(credit_a), 1 / len(credit_a)), size=replicates)
    total_b, total = counts @ credit_b, counts @ (credit_a + credit_b)
    shares = np.divide(total_b, total, out=np.full(replicates, 0.5), where=total > 0)
    differences = counts @ difference / len(credit_a)
    first_step = first_step_share(*first, counts) if first is not None else (np.nan,) * 3
    b_wins, a_wins = int((credit_b > credit_a).sum()), int((credit_a > credit_b).sum())
    p = binomtest(b_wins, b_wins + a_wins).pvalue if b_wins + a_wins else 1.0
    whole = credit_a.sum() + credit_b.sum()
    return {"arm": arm, "a": a, "b": b, "users": len(credit_a), "sessions": int(sessions.sum()),
            "credit_a": float(credit_a.sum()), "credit_b": float(credit_b.sum()),
            "share": float(credit_b.sum() / whole) if whole else 0.5,
            "share_lower": float(np.quantile(shares, 0.025)), "share_upper": float(np.quantile(shares, 0.975)),
            "difference": float(difference.mean()),
            "difference_lower": float(np.quantile(differences, 0.025)),
            "difference_upper": float(np.quantile(differences, 0.975)),
            "b_wins": b_wins, "a_wins": a_wins, "p": float(p), "first_step": first_step[0],
            "first_step_lower": first_step[1], "first_step_upper": first_step[2]}


def first_step_share(first_a: np.ndarray, first_b: np.ndarray, led_a: np.ndarray,
                     led_b: np.ndarray, counts: np.ndarray) -> tuple[float, float, float]:
    """b's share of the first step's mean listen time, mean_b / (mean_a + mean_b), over the
    sessions each team led, and its percentile interval over the resamples `counts` (NaN
    where a resample has no session led by a team)."""
    def share(sum_a, sum_b, n_a, n_b):
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_a, mean_b = sum_a / n_a, sum_b / n_b
            return mean_b / (mean_a + mean_b)

    point = share(first_a.sum(), first_b.sum(), led_a.sum(), led_b.sum())
    resampled = share(counts @ first_a, counts @ first_b, counts @ led_a, counts @ led_b)
    if not np.isfinite(resampled).all():
        return float(point), float("nan"), float("nan")
    return (float(point), float(np.quantile(resampled, 0.025)),
            float(np.quantile(resampled, 0.975)))


def carryover(found: dict) -> bool:
    """The first step's interval lies wholly on the other side of 0.5 from the share's."""
    if not np.isfinite(found["first_step_lower"]):
        return False
    if found["share_lower"] > 0.5:
        return found["first_step_upper"] < 0.5
    if found["share_upper"] < 0.5:
        return found["first_step_lower"] > 0.5
    return False


def decide(found: list[dict], alpha: float) -> list[Preference]:
    """Holm across the pairs; the verdict names the preferred arm when the sign test rejects."""
    adjusted = holm([f["p"] for f in found])
    decided = []
    for f, p_adj in zip(found, adjusted):
        if p_adj >= alpha:
            verdict = "no preference"
        else:
            verdict = f"{f['b']} preferred" if f["b_wins"] > f["a_wins"] else f"{f['a']} preferred"
        decided.append(Preference(**f, p_adjusted=float(p_adj), verdict=verdict,
                                  trusted=not carryover(f)))
    return decided


def analyze(spark, args: argparse.Namespace) -> list[Preference]:
    table = user_credits(read_events(spark, args.events), args.experiment).toPandas()
    found = []
    for index, (arm, a, b) in enumerate(args.pair):
        users = table[table["arm"] == arm]
        column = {name: users[name].to_numpy(float) for name in users.columns if name not in ("arm", "user")}
        found.append(preference(arm, a, b, column["credit_a"], column["credit_b"], column["sessions"],
                                args.bootstrap, args.seed + index,
                                (column["first_a"], column["first_b"], column["led_a"], column["led_b"])))
    return decide(found, args.alpha)


def markdown(preferences: list[Preference], experiment: str) -> str:
    lines = [f"# Interleaving {experiment}", "",
             "Each interleaved arm drafts two recommenders into every session (team a, team b); a "
             "team's credit is the listen time of the tracks it recommended. `share`: b's share of "
             "all credit (0.5 = no preference); `difference`: mean over users of (b - a) credit per "
             "session; 95% bootstrap intervals over users; sign test over users, Holm-adjusted. "
             "`first step`: b's share of the mean listen time of the sessions' first recommended "
             "track (the one answer no team's earlier tracks shaped); a pair whose first step "
             "prefers the other team (intervals on opposite sides of 0.5) shows carryover and "
             "is flagged ⚠: its interleaving is not to be trusted.", "",
             "| pair | a | b | users | share of b | CI | difference | CI | b wins / a wins | p_adj | verdict "
             "| first step | CI |",
             "|---|---|---|---:|---:|---|---:|---|---:|---:|---|---:|---|"]
    for p in preferences:
        lines.append(f"| {p.arm} | {p.a} | {p.b} | {p.users} | {p.share:.3f} | "
                     f"[{p.share_lower:.3f}, {p.share_upper:.3f}] | {p.difference:+.3f} | "
                     f"[{p.difference_lower:+.3f}, {p.difference_upper:+.3f}] | {p.b_wins} / {p.a_wins} | "
                     f"{p.p_adjusted:.3g} | {p.verdict}{'' if p.trusted else ' ⚠ carryover'} | "
                     f"{p.first_step:.3f} | [{p.first_step_lower:.3f}, {p.first_step_upper:.3f}] |")
    return "\n".join(lines) + "\n"


def plot(path: Path, preferences: list[Preference], experiment: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.6 * len(preferences) + 1.4))
    for row, p in enumerate(preferences):
        ax.errorbar(p.share, row, xerr=[[p.share - p.share_lower], [p.share_upper - p.share]],
                    fmt="o", color="tab:green" if p.verdict != "no preference" else "tab:gray", capsize=4)
    ax.axvline(0.5, color="black", linewidth=0.8)
    ax.set_yticks(range(len(preferences)), [f"{p.b} over {p.a}{'' if p.trusted else ' (carryover!)'}"
                                            for p in preferences])
    ax.set_xlabel("share of listening credit earned by b (95% bootstrap interval)")
    ax.set_title(f"Interleaving {experiment}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(out: Path, preferences: list[Preference], experiment: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    document = {"experiment": experiment, "pairs": [asdict(p) for p in preferences]}
    (out / "interleaving.json").write_text(json.dumps(document, indent=2) + "\n")
    (out / "interleaving.md").write_text(markdown(preferences, experiment))
    plot(out / "interleaving.png", preferences, experiment)


def main(argv: list[str] | None = None, spark=None) -> int:
    """Run the job; with `spark` given, inside that session (the pipeline's job server)."""
    args = parse_args(argv)
    if spark is None:
        from sparkapp.session import spark_session
        spark = spark_session("interleaving")
    try:
        preferences = analyze(spark, args)
    except AnalysisError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    write_outputs(args.out, preferences, args.experiment)
    print(markdown(preferences, args.experiment))
    return 0


if __name__ == "__main__":
    sys.exit(main())
