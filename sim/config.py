"""conf/sim.yml, parsed and validated: a bad key or value is refused with its dotted name."""
from __future__ import annotations

from datetime import date
from pathlib import Path

from pydantic import Field, model_validator

from settings import ConfigError, load
from settings import Strict as _Strict

DEFAULT_CONFIG = Path("conf/sim.yml")
__all__ = ["ConfigError", "SimConfig", "load_config"]


class Spread(_Strict):
    shared: float = Field(ge=0)
    genre: float = Field(ge=0)
    artist: float = Field(ge=0)
    track: float = Field(gt=0)


class WorldConfig(_Strict):
    tracks: int = Field(gt=0)
    artists: int = Field(gt=0)
    genres: int = Field(gt=0)
    dimension: int = Field(gt=1)
    tracks_per_artist_sigma: float = Field(ge=0)
    artists_per_genre_sigma: float = Field(ge=0)
    spread: Spread
    scale: float = Field(gt=0)

    @model_validator(mode="after")
    def _sizes_nest(self) -> "WorldConfig":
        if self.artists > self.tracks:
            raise ValueError(f"artists ({self.artists}) must not exceed tracks ({self.tracks})")
        if self.genres > self.artists:
            raise ValueError(f"genres ({self.genres}) must not exceed artists ({self.artists})")
        return self


class UsersConfig(_Strict):
    users: int = Field(gt=0)
    interests: int = Field(gt=0)
    interest_neighbours: int = Field(gt=0)
    consume_bias: tuple[float, float]
    consume_sharpness: tuple[float, float]
    session_budget: int = Field(gt=0)
    artist_discount_gamma: float = Field(gt=0, le=1)

    @model_validator(mode="after")
    def _ranges_ordered(self) -> "UsersConfig":
        for name in ("consume_bias", "consume_sharpness"):
            low, high = getattr(self, name)
            if not low <= high:
                raise ValueError(f"{name}: [low, high] needs low <= high, got [{low}, {high}]")
        return self


class RunConfig(_Strict):
    url: str
    timeout_s: float = Field(gt=0)
    max_session_tracks: int = Field(gt=0)
    oracle_candidates: int = Field(gt=0)
    sessions_in_flight: int = Field(gt=0, le=256)


class CalendarConfig(_Strict):
    """Simulated days (`sim.run --days N`, or returns/trending on): see sim/calendar.py."""
    start_date: date                      # the first simulated day, UTC
    day_hours: float = Field(gt=0, le=23)  # sessions start in the day's first hours
    track_seconds: float = Field(ge=0)    # a track listened fully lasts this long
    step_seconds: float = Field(ge=0.001)   # every request also takes this long


class ReturnsConfig(_Strict):
    """Users who come back more when satisfied and leave for good when not: sim/returns.py."""
    enabled: bool
    max_sessions_per_day: int = Field(gt=0)
    reference_session_time: float = Field(gt=0)
    reference_spread: float = Field(ge=0)
    smoothing: float = Field(gt=0, le=1)
    sensitivity: float = Field(ge=0)
    leave_threshold: float
    leave_after_days: int = Field(gt=0)


class TrendingConfig(_Strict):
    """Tracks whose appeal is boosted for a few days: sim/trending.py."""
    enabled: bool
    per_genre: int = Field(gt=0)
    boost: float = Field(ge=0)
    decay: float = Field(ge=0, lt=1)


class SimConfig(_Strict):
    world: WorldConfig
    users: UsersConfig
    run: RunConfig
    calendar: CalendarConfig
    returns: ReturnsConfig
    trending: TrendingConfig

    def world_fingerprint(self) -> dict:
        """What the generated world depends on (besides the seed)."""
        return {"world": self.world.model_dump(), "users": self.users.model_dump(mode="json")}


def load_config(path: str | Path = DEFAULT_CONFIG) -> SimConfig:
    return load(path, SimConfig)
