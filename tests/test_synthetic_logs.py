"""The synthetic logs the tests learn from (dataclient/synthetic_logs.py): the jobs' learnable
sessions."""
from __future__ import annotations

from contract.events import validation_error
from dataclient.synthetic_logs import synthetic_sessions


def test_generator_is_deterministic_and_follows_the_contract():
    a, b = synthetic_sessions(50, seed=3), synthetic_sessions(50, seed=3)
    assert a == b
    assert a != synthetic_sessions(50, seed=4)
    events = [e for s in a for e in s]
    assert all(validation_error(e) is None for e in events)
    assert all(s[-1]["message"] == "last" and s[0]["time"] == 1.0 for s in a)
