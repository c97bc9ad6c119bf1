"""Checking HTTP input. Anything wrong raises HttpError with a 4xx status and a message that
says what was wrong and what to send instead; handlers never see invalid values."""
from __future__ import annotations

import orjson

from service.jsonapp import HttpError
from service.tables import MAX_ID

BODY_FIELDS = {"track", "time"}
MAX_BODY_BYTES = 4096  # the app answers 413 past this, before reading the rest
_MAX_ID_DIGITS = len(str(MAX_ID))
_EXPECTED = 'send {"track": <track id>, "time": <fraction listened, 0..1>}'


def parse_id(text: str, name: str) -> int:
    """A path id: decimal digits, 0 <= id <= 2**63 - 1 (a Spark long in the logs)."""
    if len(text) < _MAX_ID_DIGITS and text.isdigit() and text.isascii():  # the usual case, fast
        return int(text)
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_ID_DIGITS or int(text) > MAX_ID:
        raise HttpError(422, f"{name} must be an integer between 0 and {MAX_ID}, got {text!r}")
    return int(text)


def parse_listen(body: bytes) -> tuple[int, float]:
    """The body of /next and /last -> (track, time)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise HttpError(400, f"request body is not valid JSON ({e}); {_EXPECTED}") from None
    if type(data) is dict and len(data) == 2:  # the usual case, checked fast; else say what is wrong
        track, time = data.get("track"), data.get("time")
        if type(track) is int and type(time) is float and 0 <= track <= MAX_ID and 0.0 <= time <= 1.0:
            return track, time
    if type(data) is not dict:
        raise HttpError(422, f"request body must be a JSON object, got {type(data).__name__}; {_EXPECTED}")
    if data.keys() != BODY_FIELDS:
        missing, extra = BODY_FIELDS - data.keys(), data.keys() - BODY_FIELDS
        what = "; ".join(filter(None, [missing and f"missing field(s) {sorted(missing)}",
                                       extra and f"unexpected field(s) {sorted(extra)}"]))
        raise HttpError(422, f"{what}; {_EXPECTED}")
    track, time = data["track"], data["time"]
    if type(track) is not int or not 0 <= track <= MAX_ID:  # type() refuses booleans
        raise HttpError(422, f"track must be an integer between 0 and {MAX_ID}, got {track!r}")
    if type(time) not in (int, float) or not 0 <= time <= 1:  # NaN fails the comparison
        raise HttpError(422, f"time must be a number between 0 and 1, got {time!r}")
    return track, float(time)
