"""The room recommenders have in the default world: mean session time from floor to ceiling.

    .venv/bin/python benchmarks/bench_sim_room.py [--world data/world] [--episodes 2000]

Besides the simulator's own dummy (random) and oracle agents, two reference recommenders
that use only what learned models can recover from the event logs:

- same-genre: a random track of the genre of the session's first track (what a co-listening
  or matrix-factorisation model learns: tracks listened together share a genre);
- same-artist: a random track of the first track's artist (the catalog alone gives that; the
  artist discount gamma ** plays makes it a poor strategy).

Figures are the simulator's session time (recommended tracks only; logs add 1.0).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sim.agents import DummyAgent, OracleAgent  # noqa: E402
from sim.config import load_config  # noqa: E402
from sim.play import play  # noqa: E402
from sim.run import episode_users, user_streams  # noqa: E402
from sim.user import UserModel  # noqa: E402
from sim.world import World, ensure_world, load_world  # noqa: E402


class FirstTrackGroupAgent:
    """A random track of the group (genre or artist) of the session's first track."""

    def __init__(self, groups: np.ndarray):
        self.groups = groups
        order = np.argsort(groups, kind="stable")
        bounds = np.searchsorted(groups[order], np.arange(groups.max() + 2))
        self.members = [order[bounds[g]:bounds[g + 1]] for g in range(groups.max() + 1)]

    def recommend(self, session, track, time):
        members = self.members[self.groups[session.first_track]]
        return int(members[session.agent_rng.integers(len(members))])

    def finish(self, session, track, time):
        return True


def room(world: World, agent, episodes: int, max_tracks: int, seed: int) -> tuple:
    model = UserModel(world, max_tracks)
    times, lengths, truncated = [], [], 0
    started = time.perf_counter()
    for user in episode_users(seed, episodes, world.n_users):
        session = model.start_session(int(user), *user_streams(seed, int(user)))
        play(session, agent)
        times.append(session.session_time)
        lengths.append(session.tracks)
        truncated += session.truncated
    times = np.array(times)
    return (times.mean(), times.std(ddof=1) / np.sqrt(episodes), np.median(times),
            np.mean(lengths), truncated, time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="conf/sim.yml")
    parser.add_argument("--world", default="data/world")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--episodes", type=int, default=2000)
    args = parser.parse_args()
    config = load_config(args.config)
    ensure_world(Path(args.world), config, args.seed)
    world = load_world(Path(args.world))
    agents = {
        "dummy (random)": (DummyAgent(world), args.episodes),
        "same-artist": (FirstTrackGroupAgent(world.track_artist), args.episodes),
        "same-genre": (FirstTrackGroupAgent(world.track_genre), args.episodes),
        "oracle": (OracleAgent(world, config.run.oracle_candidates), args.episodes // 4),
    }
    print(f"{'recommender':16} {'sessions':>8} {'mean time ± s.e.':>18} {'median':>7} "
          f"{'tracks':>7} {'truncated':>9}")
    for name, (agent, episodes) in agents.items():
        mean, error, median, tracks, truncated, seconds = room(
            world, agent, episodes, config.run.max_session_tracks, args.seed)
        print(f"{name:16} {episodes:8d} {mean:10.2f} ± {error:5.2f} {median:7.2f} "
              f"{tracks:7.1f} {truncated:9d}   ({seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
