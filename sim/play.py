"""Playing sessions. A session is the sequence of requests its user sends (`requests`); a lane
plays sessions one after another; `play_lanes` plays several lanes side by side, sending the
current request of every lane in one round trip. Against the service that is one pipelined
write per round (sim/remote.py); an in-process agent answers one request at a time (`play`,
`answer_each`).

A lane yields Requests and gets each one's answer back, or yields None when it must wait for
the clock before its next request (resumed with None on the next round).
"""
from __future__ import annotations

import time
from typing import Callable, Generator, NamedTuple, Sequence

from sim.agents import Agent
from sim.user import Session

NEXT, LAST = b"next", b"last"
# a round in which every lane waits for the clock sleeps this long (seconds)
_WAIT_S = 0.0001


class Request(NamedTuple):
    session: Session
    endpoint: bytes   # NEXT: answered with the recommended track, or None (a failed step);
    track: int        # LAST: answered with whether it was delivered
    time: float


Answer = int | bool | None
Lane = Generator[Request | None, Answer, None]
AnswerAll = Callable[[Sequence[Request]], list[Answer]]


def requests(session: Session) -> Generator[Request, Answer, int]:
    """The session's requests, to its end: /next with the track just listened to and its time,
    until the session is over, then /last. Returns the number of /next steps."""
    track, listened = session.first_track, 1.0
    steps = 0
    while not session.over:
        steps += 1
        recommended = yield Request(session, NEXT, track, listened)
        if recommended is None:
            session.fail()  # re-send the same (track, time) next: nothing new was played
        else:
            listened = session.listen(recommended)
            track = recommended
    if not (yield Request(session, LAST, track, listened)):
        session.failed_steps += 1
    return steps


def answer_each(agent: Agent) -> AnswerAll:
    """An in-process agent's answers, one request after another."""
    def answer_all(batch: Sequence[Request]) -> list[Answer]:
        return [agent.recommend(r.session, r.track, r.time) if r.endpoint == NEXT
                else agent.finish(r.session, r.track, r.time) for r in batch]
    return answer_all


def play_lanes(lanes: Sequence[Lane], answer_all: AnswerAll) -> None:
    """Play every lane to its end. Each round sends the current request of every lane that has
    one in one `answer_all` call and resumes each lane with its answer."""
    rounds: list[list] = []   # [lane, its current request]
    for lane in lanes:
        try:
            rounds.append([lane, next(lane)])
        except StopIteration:
            pass
    while rounds:
        ready = [entry for entry in rounds if entry[1] is not None]
        if ready:
            for entry, answer in zip(ready, answer_all([entry[1] for entry in ready])):
                entry[1] = answer
        else:
            time.sleep(_WAIT_S)  # every lane waits for the clock
        for entry in rounds:
            try:
                # a lane that waited is resumed with None: its request was None
                entry[1] = entry[0].send(entry[1])
            except StopIteration:
                entry[0] = None
        if any(entry[0] is None for entry in rounds):
            rounds = [entry for entry in rounds if entry[0] is not None]


def play(session: Session, agent: Agent) -> int:
    """Play one session to its end against an in-process agent; returns its /next steps."""
    steps = 0

    def lane() -> Lane:
        nonlocal steps
        steps = yield from requests(session)

    play_lanes([lane()], answer_each(agent))
    return steps
