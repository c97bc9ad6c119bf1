"""Potential outcomes of a simulated one-day A/B day: its traffic played in process with each arm
serving everyone.

A simulated user's session depends on the recommender only through the tracks it answers, and
the service's recommenders draw their randomness from the request (service/randomness.py), so
the service's own recommenders, built through the registry from the day's service config
(runs/<id>/conf/service-<day>.yml), answer in process exactly what they answer over HTTP. The
day's users and their sessions come from the day's simulator seed (`sim.run.episode_users`),
their randomness from `sim.run.user_streams`: draw 0 replays the day's own streams, draw k > 0
the same users and sessions with fresh streams (`draw_seed`).

A per-user table holds, per arm and draw, what the event-log metrics are built from in the log
view (analysis/user_metrics.py): the user's sessions, the sum of `time` over their events
(1 + the simulator's session time, per session) and their events (the session's /next
requests, tracks + failed steps, + its /last); for an interleaved arm also each team's credit
(the listen time of the tracks it served, as analysis/interleaving.py credits it).
"""
from __future__ import annotations

import json
import multiprocessing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.sequential import LOOKS
from contract.events import TEAMS
from service.config import load_config as load_service_config
from service.interleaving import Interleaved
from service.recommenders import Listen
from service.serving import build_serving
from service.stores.memory import MemoryStore
from settings import ConfigError, validate
from sim.config import SimConfig
from sim.run import episode_users, user_streams
from sim.user import UserModel
from sim.world import World, load_world


@dataclass(frozen=True)
class AbDay:
    """What replaying a run's one-day A/B day, or interleaved day, needs."""

    name: str
    experiment: str
    control: str | None        # None on an interleaved day
    arms: list[str]            # the compared arms, control first (interleaved: the teams' arms)
    weights: list[float]       # their split weights (interleaved: the pairs' shares of users)
    seed: int                  # the day's simulator seed (the run's seed + the day's index)
    episodes: int              # the day's sessions
    previous: str | None       # the day before it (CUPED's pre-period), if any
    service_config: Path
    max_tracks: int
    pairs: list[tuple[str, str, str]] = ()   # interleaved: (arm, team a's arm, team b's arm)

    def users(self, n_users: int) -> np.ndarray:
        """The user of each of the day's sessions, in episode order."""
        return episode_users(self.seed, self.episodes, n_users)


def ab_day(run: Path, day: str | None = None) -> AbDay:
    """The A/B day `day` (default: the plan's last A/B day) of the run in folder `run`."""
    chosen, read = _plan_day(run, day, "A/B", lambda d: d.get("control") is not None)
    plain = [a for a in chosen["arms"] if a.get("interleave") is None]
    control = chosen["control"]
    arms = [control, *[a["name"] for a in plain if a["name"] != control]]
    weight = {a["name"]: float(a.get("weight", 1)) for a in plain}
    return read(control=control, arms=arms, weights=[weight[a] for a in arms])


def interleaved_day(run: Path, day: str | None = None) -> AbDay:
    """The interleaved day `day` (default: the plan's last day with interleaved arms) of the
    run in folder `run`: its `arms` are the teams' arms, its `pairs` the interleaved arms."""
    chosen, read = _plan_day(run, day, "interleaved",
                             lambda d: any(a.get("interleave") for a in d["arms"]))
    pairs = [(a["name"], a["interleave"]["a"], a["interleave"]["b"]) for a in chosen["arms"]
             if a.get("interleave")]
    weight = {a["name"]: float(a.get("weight", 1)) for a in chosen["arms"]}
    total = sum(weight.values())
    teams = list(dict.fromkeys(team for _, a, b in pairs for team in (a, b)))
    return read(control=None, arms=teams, weights=[weight[arm] / total for arm, _, _ in pairs],
                pairs=pairs)


def _plan_day(run: Path, day: str | None, kind: str, is_kind):
    """The plan's day `day` (default: its last day of the kind) and a function making its AbDay
    from the kind's fields."""
    manifest_path = run / "manifest.json"
    if not manifest_path.exists():
        raise ConfigError(f"{run}: no manifest.json; pass the folder of a pipeline run (runs/<id>)")
    manifest = json.loads(manifest_path.read_text())
    settings = manifest["settings"]
    plan = settings["plan_config"]
    days = plan["days"]
    of_kind = [d for d in days if is_kind(d)]
    chosen = [d for d in of_kind if day in (None, d["name"])]
    if not chosen:
        raise ConfigError(f"{run}: the plan has no {kind} day {day!r} ({kind} days: "
                          f"{[d['name'] for d in of_kind]})")
    chosen = chosen[-1]
    if chosen.get("sim_days", 1) > 1 or chosen.get("returns") or chosen.get("trending"):
        raise ConfigError(f"{run}: day {chosen['name']!r} plays several simulated days or returns "
                          f"or trending; its potential outcomes are not replayed (one-day "
                          f"{kind} days only)")
    index = [d["name"] for d in days].index(chosen["name"])
    service_config = run / "conf" / f"service-{chosen['name']}.yml"
    if not service_config.exists():
        raise ConfigError(f"{run}: {service_config.name} is missing: run the day first "
                          f"(./run.sh --run {run} --step {chosen['name']})")
    # the simulator config the run used (the manifest keeps a copy)
    max_tracks = validate(settings["sim"], SimConfig, manifest_path).run.max_session_tracks

    def read(**fields) -> AbDay:
        return AbDay(name=chosen["name"], experiment=chosen.get("experiment") or plan["experiment"],
                     seed=settings["seed"] + index,
                     episodes=chosen["sessions"][settings["scale"]],
                     previous=days[index - 1]["name"] if index else None,
                     service_config=service_config, max_tracks=max_tracks, **fields)
    return chosen, read


def load_serving(day: AbDay):
    """The day's service, built in process from its config (memory store)."""
    config = load_service_config(day.service_config)
    return config, build_serving(config, MemoryStore(config.session_idle_s))


def world_of(config) -> World:
    """The world whose catalog the day served."""
    return load_world(Path(config.catalog).parent)


def draw_seed(seed: int, draw: int) -> int:
    """The simulator seed of draw `draw`: the day's own for draw 0, an independent one else."""
    if draw == 0:
        return seed
    return int(np.random.SeedSequence([seed, draw]).generate_state(1)[0])


@dataclass(frozen=True)
class Sessions:
    """One play of the day's sessions, in episode order."""

    users: np.ndarray         # (episodes,)
    session_time: np.ndarray  # the simulator's session time (without the first track)
    tracks: np.ndarray        # recommended tracks listened
    failed_steps: np.ndarray
    credit: np.ndarray | None = None   # (episodes, 2): teams a and b's listen time, if interleaved


def play(world: World, users: np.ndarray, seed: int, max_tracks: int,
         recommender_of) -> Sessions:
    """Play the sessions of `users` (episode order) with the users' streams of `seed`;
    `recommender_of(user)` answers each /next as the service would (an interleaved arm drafts)."""
    model = UserModel(world, max_tracks)
    streams: dict[int, tuple] = {}
    times, tracks = np.empty(len(users)), np.empty(len(users), dtype=np.int64)
    credit = np.zeros((len(users), 2))
    for episode, user in enumerate(users.tolist()):
        if user not in streams:
            streams[user] = user_streams(seed, user)
        session = model.start_session(user, *streams[user])
        recommender = recommender_of(user)
        history = [(session.first_track, 1.0)]
        while not session.over:
            listen = Listen(user, history[-1][0], history[-1][1], history)
            if type(recommender) is Interleaved:
                track, team = recommender.draft(listen)
                history.append((track, session.listen(int(track))))
                credit[episode, TEAMS.index(team)] += history[-1][1]
            else:
                track = recommender.recommend(listen)
                history.append((track, session.listen(int(track))))
        times[episode], tracks[episode] = round(session.session_time, 2), session.tracks
    return Sessions(users, times, tracks, np.zeros(len(users), dtype=np.int64), credit)


def replay(day: AbDay, serving=None) -> Sessions:
    """The day's sessions under its real split (the service's own), in process: what the
    simulator played against the service and wrote to runs/<id>/sim/<day>.jsonl."""
    config, serving = serving or load_serving(day)
    world = world_of(config)
    return play(world, day.users(world.n_users), day.seed, day.max_tracks,
                lambda user: serving.split.assign(user)[0])


@dataclass(frozen=True)
class Outcomes:
    """Per-user sums of the day's sessions, per arm serving everyone and per draw."""

    arms: list[str]
    users: np.ndarray        # (n,) the day's distinct users, sorted
    sessions: np.ndarray     # (n,) their sessions (the same in every arm and draw)
    time_total: np.ndarray   # (arms, draws, n) sum of the events' `time`
    events: np.ndarray       # (arms, draws, n) events
    # At each look (the day's first 1/L, 2/L, ... of its sessions, in episode order): the
    # sessions and the time totals per user so far, for sequential monitoring.
    look_sessions: np.ndarray    # (looks, n)
    look_episodes: np.ndarray    # (looks,) sessions of the day by each look
    look_time_total: np.ndarray  # (arms, draws, looks, n)
    credit: np.ndarray | None = None   # (arms, draws, 2, n) teams a and b's credit (interleaved arms)

    @property
    def draws(self) -> int:
        return self.time_total.shape[1]


def per_user(sessions: Sessions, users: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sessions, time total, events) per user of `users` (sorted) in the log view."""
    index = np.searchsorted(users, sessions.users)
    count = np.bincount(index, minlength=len(users))
    time_total = np.bincount(index, weights=1.0 + sessions.session_time, minlength=len(users))
    events = np.bincount(index, weights=sessions.tracks + sessions.failed_steps + 1.0,
                         minlength=len(users))
    return count, time_total, events


# The forked workers' read-only inputs (set before forking).
_JOB: dict = {}


def look_ends(episodes: int, looks: int) -> np.ndarray:
    """The sessions of the day by each of `looks` evenly spaced looks."""
    return np.ceil(np.arange(1, looks + 1) * episodes / looks).astype(int)


def per_user_credit(sessions: Sessions, users: np.ndarray) -> np.ndarray:
    """(2, n): teams a and b's credit per user of `users` (sorted)."""
    index = np.searchsorted(users, sessions.users)
    return np.stack([np.bincount(index, weights=sessions.credit[:, team], minlength=len(users))
                     for team in range(2)])


def _play_one(task: tuple[int, int]) -> tuple:
    arm, draw = task
    job = _JOB
    recommender = job["recommenders"][arm]
    sessions = play(job["world"], job["episode_users"], draw_seed(job["seed"], draw),
                    job["max_tracks"], lambda user: recommender)
    _, time_total, events = per_user(sessions, job["users"])
    at_looks = np.stack([per_user(_first(sessions, end), job["users"])[1]
                         for end in job["look_ends"]])
    return arm, draw, time_total, events, at_looks, per_user_credit(sessions, job["users"])


def _first(sessions: Sessions, count: int) -> Sessions:
    return Sessions(sessions.users[:count], sessions.session_time[:count],
                    sessions.tracks[:count], sessions.failed_steps[:count])


def potential_outcomes(day: AbDay, draws: int, processes: int = 1, arms: list[str] | None = None,
                       serving=None, looks: int = LOOKS) -> Outcomes:
    """Every arm of `arms` (default: the day's compared arms) serving all the day's users,
    `draws` times (draw 0: the day's own streams), over `processes` forked workers; with the
    per-user time totals at each of `looks` looks (the report's, analysis/sequential.py)."""
    config, serving = serving or load_serving(day)
    world = world_of(config)
    arms = arms or day.arms
    episode = day.users(world.n_users)
    users = np.unique(episode)
    no_play = Sessions(episode, np.zeros(len(episode)), np.zeros(len(episode), dtype=np.int64),
                       np.zeros(len(episode), dtype=np.int64))
    sessions = per_user(no_play, users)[0]
    ends = look_ends(len(episode), looks)
    look_sessions = np.stack([per_user(_first(no_play, end), users)[0] for end in ends])
    _JOB.update(world=world, episode_users=episode, users=users, seed=day.seed,
                max_tracks=day.max_tracks, look_ends=ends,
                recommenders=[serving.recommenders[(day.experiment, arm)] for arm in arms])
    tasks = [(a, k) for k in range(draws) for a in range(len(arms))]
    time_total = np.empty((len(arms), draws, len(users)))
    events = np.empty((len(arms), draws, len(users)))
    look_time_total = np.empty((len(arms), draws, looks, len(users)))
    credit = np.empty((len(arms), draws, 2, len(users)))
    try:
        if processes > 1:
            with multiprocessing.get_context("fork").Pool(processes) as pool:
                results = pool.map(_play_one, tasks, chunksize=1)
        else:
            results = [_play_one(task) for task in tasks]
    finally:
        _JOB.clear()
    for a, k, t, e, at_looks, c in results:
        time_total[a, k], events[a, k], look_time_total[a, k], credit[a, k] = t, e, at_looks, c
    return Outcomes(arms=list(arms), users=users, sessions=sessions, time_total=time_total,
                    events=events, look_sessions=look_sessions, look_episodes=ends,
                    look_time_total=look_time_total, credit=credit)


def previous_day_metrics(run: Path, day: AbDay) -> dict[str, np.ndarray] | None:
    """The users' metrics on the day before (the simulator's sessions of runs/<id>/sim/<day>.jsonl
    in the log view): CUPED's covariates. None without a previous day."""
    if day.previous is None:
        return None
    path = run / "sim" / f"{day.previous}.jsonl"
    if not path.exists():
        raise ConfigError(f"{path} is missing: the previous day's simulated sessions")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line]
    sessions = Sessions(np.array([r["user"] for r in rows]),
                        np.array([r["session_time"] for r in rows], dtype=float),
                        np.array([r["tracks"] for r in rows], dtype=np.int64),
                        np.array([r["failed_steps"] for r in rows], dtype=np.int64))
    users = np.unique(sessions.users)
    count, time_total, events = per_user(sessions, users)
    return {"user": users, "sessions": count.astype(float), "mean_session_time": time_total / count,
            "mean_session_length": events / count}
