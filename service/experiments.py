"""Splitting users between the arms of the configured experiments.

A user's arm in an experiment is a stable hash of (experiment name, user): MurmurHash3
(mmh3, 32-bit, unsigned, seed 0) of the string "<experiment>:<user>", mapped to [0, 1) and
compared with the arms' cumulative weights. The same user lands in the same arm on every
replica, on every day and after every restart, and experiments with different names split
users independently. No state is kept.

Every event logs the user's arm in every experiment. The recommendation comes from the arm
of the FIRST experiment listed; later experiments only tag users (an A/A check, or a split
prepared for the next day).
"""
from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate, product

import mmh3

from service.config import Experiment
from service.recommenders import Recommender

_HASH_RANGE = 2**32
_RECENT_USERS = 100_000  # about 10 MB at most


class Split:
    def __init__(self, experiments: tuple[Experiment, ...],
                 recommenders: dict[tuple[str, str], Recommender]):
        """`recommenders` maps (experiment name, arm name) -> the arm's recommender."""
        self._splits = []
        for exp in experiments:
            weights = [arm.weight for arm in exp.arms]
            total = sum(weights)
            bounds = [w / total for w in accumulate(weights)]
            bounds[-1] = 1.0  # no user may fall past the last arm through rounding
            self._splits.append((exp.name, bounds))
        # Every combination of arm indexes -> (serving recommender, {experiment: arm}), built
        # once: a request hashes, or finds its user in `_recent`, and looks up (configs have a
        # handful of experiments).
        self._assignments = {}
        for indexes in product(*(range(len(exp.arms)) for exp in experiments)):
            arms = {exp.name: exp.arms[i].name for exp, i in zip(experiments, indexes)}
            serving = recommenders[(experiments[0].name, arms[experiments[0].name])]
            self._assignments[indexes] = (serving, arms)
        # user -> its assignment, for the users seen lately: a user's requests come in sessions,
        # so most requests skip the hashing. Emptied when full (it holds no state of its own).
        self._recent: dict[int, tuple[Recommender, dict[str, str]]] = {}

    def assign(self, user: int) -> tuple[Recommender, dict[str, str]]:
        """The recommender serving `user` and the user's arm in every experiment (a dict
        shared by every user of the same arms: read it, never change it)."""
        assignment = self._recent.get(user)
        if assignment is None:
            indexes = ()
            for name, bounds in self._splits:
                indexes += (bisect_right(bounds, mmh3.hash(f"{name}:{user}", signed=False) / _HASH_RANGE),)
            if len(self._recent) >= _RECENT_USERS:
                self._recent.clear()
            assignment = self._recent[user] = self._assignments[indexes]
        return assignment
