"""The user simulator CLI: plays simulated sessions against a recommender.

    python -m sim.run --episodes 5000 --recommender remote --config conf/sim.yml --seed 42 \
        [--world data/world] [--url http://127.0.0.1:5001 ...] [--processes N] [--output FILE] \
        [--days N] [--start-date YYYY-MM-DD] [--returns] [--trending]

Episode i belongs to a user drawn uniformly from the seed. Users are partitioned across
worker processes (user % N), so one user never has two sessions open at once, and every
user's randomness is its own stream derived from (seed, user): the same seed, world and
service behaviour give the same sessions with any number of processes.

With `--days N > 1`, or `returns`/`trending` enabled in the config, the run plays simulated
calendar days instead (sim/days.py): requests carry their simulated time, and each session's
output row says its day and start time.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import orjson
from rich.console import Console
from rich.table import Table
from infra.lifetime import die_with_parent
from infra.progress import progress_meter
from sim.agents import Agent, ConsoleAgent, DummyAgent, OracleAgent
from sim.calendar import Clock, day_start_ms
from sim.config import ConfigError, SimConfig, load_config
from sim.days import Schedule, episode_users
from sim.play import AnswerAll, Lane, answer_each, play_lanes, requests
from sim.remote import RemoteAgent, ServiceUnreachable, check_service
from sim.trending import trending_boosts
from sim.user import Session, UserModel
from sim.world import World, ensure_world, load_world

AGENTS = ("remote", "console", "dummy", "oracle")
# a worker reports progress at most this often (seconds)
_PROGRESS_EVERY_S = 0.2


@dataclass
class RunStats:
    steps: int = 0                    # /next requests (or in-process recommendations)
    truncated: int = 0                # sessions cut at run.max_session_tracks
    worker_seconds: float = 0.0       # wall time of the workers, summed
    worker_cpu_seconds: float = 0.0   # CPU time of the workers (simulator + HTTP client)
    departures: dict[int, int] = field(default_factory=dict)  # user -> day they left for good

    def add(self, other: "RunStats") -> None:
        self.steps += other.steps
        self.truncated += other.truncated
        self.worker_seconds += other.worker_seconds
        self.worker_cpu_seconds += other.worker_cpu_seconds
        self.departures.update(other.departures)


@dataclass
class RunSpec:
    """Everything a worker needs besides the world (inherited by fork)."""
    agent: str
    seed: int
    urls: list[str]                   # service replicas: worker i asks urls[i % len(urls)]
    config: SimConfig
    episodes: list[tuple[int, int]] = field(default_factory=list)  # (episode, user)
    days: int = 0                     # > 0: play simulated days (sim/days.py) instead
    episodes_per_day: int = 0         # with days: sessions a day (expected, with returns)
    part: tuple[int, int] = (0, 1)    # this worker's users: user % [1] == [0]

    @property
    def calendar(self) -> bool:
        return self.days > 0


def long_term(config: SimConfig, days: int) -> bool:
    """Does this run play simulated days, or is it the one-day run of the user model alone?"""
    return days > 1 or config.returns.enabled or config.trending.enabled


def user_streams(seed: int, user: int) -> tuple[np.random.Generator, np.random.Generator]:
    """(the user's own generator, the generator agents use in this user's sessions)."""
    return (np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, user))),
            np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2, user))))


def make_agent(name: str, world: World, config: SimConfig, url: str) -> Agent | RemoteAgent:
    if name == "dummy":
        return DummyAgent(world)
    if name == "oracle":
        return OracleAgent(world, config.run.oracle_candidates)
    if name == "console":
        return ConsoleAgent(world)
    if name == "remote":
        return RemoteAgent(url, config.run.timeout_s, world.n_tracks)
    raise ValueError(f"unknown recommender {name!r}; choose one of {', '.join(AGENTS)}")


def lanes_of(items: list, users: list[int], width: int, processes: int) -> list[list]:
    """This worker's items split into `width` lanes by user: the worker owns the users with
    user % processes == its index, and lane k the k-th of every `width` of them in turn, so a
    user's sessions stay in one lane, in order."""
    lanes: list[list] = [[] for _ in range(width)]
    for item, user in zip(items, users):
        lanes[user // processes % width].append(item)
    return [lane for lane in lanes if lane]


def counted(session: Session, stats: RunStats) -> Lane:
    """Play the session to its end, adding its steps and whether it was truncated to `stats`."""
    # not `stats.steps += yield from ...`: that would read stats.steps before the other lanes'
    # sessions of this round added theirs
    steps = yield from requests(session)
    stats.steps += steps
    stats.truncated += session.truncated


def episode_lane(spec: RunSpec, model: UserModel, episodes: list[tuple[int, int]], remote: bool,
                 progress, results: list[dict], stats: RunStats) -> Lane:
    """The one-day run's `episodes` in order, stamped by the service's own clock."""
    streams: dict[int, tuple[np.random.Generator, np.random.Generator]] = {}
    ended_ms: dict[int, int] = {}  # user -> millisecond their last session ended (remote only)
    for episode, user in episodes:
        if user not in streams:
            streams[user] = user_streams(spec.seed, user)
        # The service stamps events in milliseconds. A user's new session must not start in the
        # millisecond its previous one ended in, or the logs could not tell the two sessions
        # apart (within one session the events' `position` keeps their order).
        while remote and time.time_ns() // 1_000_000 <= ended_ms.get(user, -1):
            yield None
        session = model.start_session(user, *streams[user])
        yield from counted(session, stats)
        if remote:
            ended_ms[user] = time.time_ns() // 1_000_000
        results.append(session.result(episode))
        progress(1)


def day_lane(spec: RunSpec, model: UserModel, schedule: Schedule, day: int,
             plan: list[tuple[int, list[float]]], boost: np.ndarray | None,
             streams: dict[int, tuple[np.random.Generator, np.random.Generator]], progress,
             results: list[dict], stats: RunStats) -> Lane:
    """One simulated day of the users in `plan` (user, start hours), each on its own clock.
    Rows get `day` and `start` (ms); their `episode` is set once all workers are done (rows
    ordered by day, start, user)."""
    day_start = day_start_ms(spec.config.calendar.start_date, day)
    for user, starts in plan:
        if user not in streams:
            streams[user] = user_streams(spec.seed, user)
        clock = Clock(spec.config.calendar, day_start)
        for hours in starts:
            start = clock.begin(hours)
            session = model.start_session(user, *streams[user], clock, boost)
            yield from counted(session, stats)
            clock.close(session)
            schedule.after_session(user, session.session_time)
            row = session.result(-1)
            row["day"], row["start"] = day, start
            results.append(row)
            progress(1)


def play_days(world: World, spec: RunSpec, model: UserModel, answer_all: AnswerAll, width: int,
              progress, results: list[dict], stats: RunStats) -> None:
    """Simulated days for this worker's users, a day's users side by side in `width` lanes."""
    config = spec.config
    schedule = Schedule(config, spec.seed, spec.episodes_per_day, world.n_users, spec.part)
    boosts = (trending_boosts(world, config.trending, spec.seed, spec.days)
              if config.trending.enabled else None)
    streams: dict[int, tuple[np.random.Generator, np.random.Generator]] = {}
    for day in range(spec.days):
        boost = None if boosts is None else boosts[day]
        plan = schedule.sessions_today(day)
        play_lanes([day_lane(spec, model, schedule, day, lane, boost, streams, progress, results, stats)
                    for lane in lanes_of(plan, [user for user, _ in plan], width, spec.part[1])],
                   answer_all)
        stats.departures.update((user, day) for user in schedule.end_of_day())


def run_episodes(world: World, spec: RunSpec, progress) -> tuple[list[dict], RunStats]:
    """Play this worker's sessions in this process; `progress(n)` after each session. Against
    the service, `run.sessions_in_flight` sessions of different users at a time."""
    started, started_cpu = time.perf_counter(), time.process_time()
    model = UserModel(world, spec.config.run.max_session_tracks)
    agent = make_agent(spec.agent, world, spec.config, spec.urls[spec.part[0] % len(spec.urls)])
    remote = isinstance(agent, RemoteAgent)
    # in-process agents answer at once, and the oracle keeps one session's state
    answer_all, width = ((agent.answer_all, spec.config.run.sessions_in_flight) if remote
                         else (answer_each(agent), 1))
    results: list[dict] = []
    stats = RunStats()
    try:
        if spec.calendar:
            play_days(world, spec, model, answer_all, width, progress, results, stats)
        else:
            lanes = lanes_of(spec.episodes, [user for _, user in spec.episodes], width, spec.part[1])
            play_lanes([episode_lane(spec, model, lane, remote, progress, results, stats)
                        for lane in lanes], answer_all)
    except KeyboardInterrupt:
        pass  # console agent quit (or Ctrl-C): keep the sessions finished so far
    finally:
        if remote:
            agent.close()
    stats.worker_seconds = time.perf_counter() - started
    stats.worker_cpu_seconds = time.process_time() - started_cpu
    return results, stats


def _worker(world: World, spec: RunSpec, messages) -> None:
    # A worker ends with its run, even a killed one, which cannot stop it (infra/lifetime.py);
    # a run that died before this line has left the worker to another parent already.
    die_with_parent()
    if os.getppid() != multiprocessing.parent_process().pid:
        return
    pending, last = 0, time.perf_counter()

    def progress(count: int) -> None:
        nonlocal pending, last
        pending += count
        if time.perf_counter() - last >= _PROGRESS_EVERY_S:
            messages.put(("progress", pending))
            pending, last = 0, time.perf_counter()

    try:
        results, stats = run_episodes(world, spec, progress)
        messages.put(("progress", pending))
        messages.put(("done", results, stats))
    except BaseException:  # the parent must hear about any crash, or it would wait forever
        messages.put(("error", traceback.format_exc()))


def run_parallel(world: World, spec: RunSpec, processes: int,
                 progress) -> tuple[list[dict], RunStats]:
    """Partition users across `processes` forked workers (user % processes); `progress(n)` as
    the workers report finished sessions."""
    context = multiprocessing.get_context("fork")  # workers share the world copy-on-write
    messages = context.Queue()
    workers = []
    for index in range(processes):
        part = RunSpec(spec.agent, spec.seed, spec.urls, spec.config,
                       [(e, u) for e, u in spec.episodes if u % processes == index],
                       spec.days, spec.episodes_per_day, (index, processes))
        worker = context.Process(target=_worker, args=(world, part, messages), daemon=True)
        worker.start()
        workers.append(worker)
    results: list[dict] = []
    stats = RunStats()
    done = 0
    while done < processes:
        try:
            message = messages.get(timeout=1.0)
        except KeyboardInterrupt:
            # the workers got the same Ctrl-C: each stops after its session and reports
            print("interrupted: waiting for the workers' finished sessions", file=sys.stderr)
            continue
        except queue.Empty:
            dead = [w for w in workers if w.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"a simulator worker died with exit code {dead[0].exitcode}")
            continue
        if message[0] == "progress":
            progress(message[1])
        elif message[0] == "done":
            results.extend(message[1])
            stats.add(message[2])
            done += 1
        else:
            raise RuntimeError(f"a simulator worker failed:\n{message[1]}")
    for worker in workers:
        worker.join()
    return results, stats


def _mean_and_error(values: np.ndarray) -> str:
    if len(values) == 0:
        return "-"
    error = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return f"{values.mean():.3f} ± {error:.3f}"


def summary_table(results: list[dict], stats: RunStats, agent: str, wall_s: float) -> Table:
    session_time = np.array([r["session_time"] for r in results], dtype=float)
    tracks = np.array([r["tracks"] for r in results], dtype=float)
    failed = sum(r["failed_steps"] for r in results)
    table = Table(title=f"simulation summary ({agent})", show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("sessions", str(len(results)))
    table.add_row("mean session time (± s.e.)", _mean_and_error(session_time))
    table.add_row("mean tracks per session (± s.e.)", _mean_and_error(tracks))
    table.add_row("failed steps", f"{failed} in {sum(r['failed_steps'] > 0 for r in results)} "
                                  f"sessions")
    table.add_row("truncated sessions", str(stats.truncated))
    table.add_row("steps", str(stats.steps))
    table.add_row("wall time, s", f"{wall_s:.1f}")
    table.add_row("steps/s", f"{stats.steps / wall_s:,.0f}" if wall_s > 0 else "-")
    if agent == "remote" and stats.worker_seconds > 0:
        # CPU time over wall time of the workers: the rest was spent waiting on the service
        busy = stats.worker_cpu_seconds / stats.worker_seconds
        table.add_row("workers' time in the simulator", f"{min(busy, 1.0):.0%}")
    table.caption = ("session time and tracks count only recommended tracks; "
                     "the service's logs add the first track (time 1.0)")
    return table


def days_table(results: list[dict], stats: RunStats, days: int, n_users: int) -> Table:
    """Per simulated day: sessions, users who came, mean session time, users gone so far."""
    table = Table(title=f"simulated days ({n_users} users)")
    for name in ("day", "sessions", "sessions per user", "users who came",
                 "mean session time", "users gone for good"):
        table.add_column(name, justify="right")
    for day in range(days):
        rows = [r for r in results if r["day"] == day]
        gone = sum(1 for left in stats.departures.values() if left <= day)
        table.add_row(str(day), str(len(rows)), f"{len(rows) / n_users:.3f}",
                      str(len({r["user"] for r in rows})),
                      _mean_and_error(np.array([r["session_time"] for r in rows], dtype=float)),
                      f"{gone} ({gone / n_users:.1%})")
    table.caption = (f"all days: {len(results) / (n_users * days):.3f} sessions per user per "
                     f"day; {len(stats.departures) / n_users:.1%} of the users gone for good")
    return table


def with_flags(config: SimConfig, args: argparse.Namespace) -> SimConfig:
    """The config with the long-term command-line flags that were given applied."""
    sections = {"calendar": {"start_date": args.start_date}, "returns": {"enabled": args.returns},
                "trending": {"enabled": args.trending}}
    for section, values in sections.items():
        values = {key: value for key, value in values.items() if value is not None}
        if values:
            config = config.model_copy(update={section: getattr(config, section).model_copy(
                update=values)})
    return config


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sim.run",
        description="Simulate listening sessions against a recommender and summarise them.")
    parser.add_argument("--episodes", type=int, default=5000, help="sessions to simulate")
    parser.add_argument("--recommender", choices=AGENTS, default="remote",
                        help="remote: the botify service over HTTP; dummy: random tracks; "
                             "oracle: the ceiling, cheating with hidden embeddings; "
                             "console: you pick the tracks")
    parser.add_argument("--config", default="conf/sim.yml", help="simulator config (YAML)")
    parser.add_argument("--seed", type=int, default=42,
                        help="run seed (also the world seed when the world is generated here)")
    parser.add_argument("--world", default="data/world",
                        help="world folder; generated from --seed when missing")
    parser.add_argument("--url", nargs="+", help="botify service url, http://host:port or "
                        "unix:///path/to/socket (default: run.url in the config); several: "
                        "replicas of one service, worker i asking the (i mod n)-th, so that "
                        "each user's sessions reach one replica (--processes at least n)")
    parser.add_argument("--processes", type=int, default=1, help="parallel worker processes")
    parser.add_argument("--output", help="write one JSON line per session to this file")
    parser.add_argument("--days", type=int, default=1,
                        help="simulated days to play; more than 1 (or returns/trending on in "
                             "the config) plays calendar days and sends the simulated time; "
                             "--episodes is then sessions per day (expected, with returns)")
    parser.add_argument("--start-date", type=date.fromisoformat,
                        help="first simulated day, YYYY-MM-DD UTC (default: calendar.start_date)")
    parser.add_argument("--returns", action=argparse.BooleanOptionalAction,
                        help="users come back more after good sessions and leave after bad "
                             "ones (default: returns.enabled in the config)")
    parser.add_argument("--trending", action=argparse.BooleanOptionalAction,
                        help="trending tracks (default: trending.enabled in the config)")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes must be at least 1, got {args.episodes}")
    if args.days < 1:
        parser.error(f"--days must be at least 1, got {args.days}")
    if args.processes < 1:
        parser.error(f"--processes must be at least 1, got {args.processes}")
    if args.recommender == "console" and args.processes != 1:
        parser.error("--recommender console needs --processes 1 (one person at the keyboard)")
    if args.url and args.processes < len(args.url):
        # a user's sessions must all reach the replica that keeps the user's session state
        parser.error(f"--processes {args.processes} is fewer than the {len(args.url)} service "
                     f"urls: each replica serves the users of whole workers")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    try:
        config = load_config(args.config)
        world_dir = Path(args.world)
        if not world_dir.exists():
            ensure_world(world_dir, config, args.seed, log=lambda line: print(line,
                                                                              file=sys.stderr))
        world = load_world(world_dir)
        urls = args.url or [config.run.url]
        config = with_flags(config, args)
        calendar = long_term(config, args.days)
        if calendar and config.returns.enabled:
            rate = args.episodes / world.n_users
            if rate > config.returns.max_sessions_per_day:
                raise ValueError(f"--episodes {args.episodes} asks {rate:.2f} sessions per user "
                                 f"per day of {world.n_users} users, more than "
                                 f"returns.max_sessions_per_day "
                                 f"({config.returns.max_sessions_per_day})")
        if args.recommender == "remote":
            for url in urls:
                check_service(url, config.run.timeout_s)
    except (ConfigError, FileNotFoundError, ServiceUnreachable, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    if calendar:
        spec = RunSpec(args.recommender, args.seed, urls, config, days=args.days,
                       episodes_per_day=args.episodes)
    else:
        users = episode_users(args.seed, args.episodes, world.n_users)
        spec = RunSpec(args.recommender, args.seed, urls, config,
                       [(episode, int(user)) for episode, user in enumerate(users)])
    started = time.perf_counter()
    expected = args.episodes * (args.days if calendar else 1)
    with progress_meter(expected, f"sim {args.recommender}", "session",
                        disable=args.recommender == "console") as bar:
        if args.processes == 1:
            results, stats = run_episodes(world, spec, bar.update)
        else:
            results, stats = run_parallel(world, spec, args.processes, bar.update)
    wall_s = time.perf_counter() - started

    if calendar:
        results.sort(key=lambda row: (row["day"], row["start"], row["user"]))
        for episode, row in enumerate(results):
            row["episode"] = episode
    else:
        results.sort(key=lambda row: row["episode"])
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        with open(args.output, "wb") as out:
            for row in results:
                out.write(orjson.dumps(row) + b"\n")
    console.print(f"world {world_dir} (seed {world.seed}), run seed {args.seed}")
    console.print(summary_table(results, stats, args.recommender, wall_s))
    if calendar:
        console.print(days_table(results, stats, args.days, world.n_users))
    return 0


if __name__ == "__main__":
    sys.exit(main())
