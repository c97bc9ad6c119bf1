"""A plan: one experiment end to end, declared in conf/plans/<name>.yml (docs/DESIGN.md, "Plans").

A plan names the world's seed source, its scales, and its days in order. Each day has its
arms (name, weight, recommender, params, tables as `<day>/<file>` outputs of earlier days, or
`file:<path>` for a table of the user's own, relative to the plan's folder),
its session count per scale, and the jobs that run on its logs afterwards (job, arguments,
table files written). A day with a `control` arm is an A/B day: its logs are analysed, every
other arm against the control, on the plan's primary metric.

The whole plan is checked before anything starts (`load_plan`): recommenders, table slots and
parameters against the recommender registry, table references against earlier days' `writes`,
weights, session counts for every scale. A mistake is one line naming the file, the key and
what to write instead.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from service.config import Interleave, check_interleaved, recommender_or_interleave
from service.recommenders.registry import check_arm
from service.tables import TableError, read_keyed, read_list
from settings import CONF, ConfigError, Strict, read_yaml, resolve, validate

PLANS = CONF / "plans"
# Placeholders a job's arguments may use; the pipeline fills them in (pipeline/experiment.py).
PLACEHOLDER = re.compile(r"\{(\w+)(?::(\w+))?\}")
DAY_PATHS = ("events", "aggregates", "sessions", "tables")
PLACEHOLDERS = (*DAY_PATHS, "seed", "catalog")   # catalog: the world's public tracks.jsonl
USER_FILE = "file:"  # an arm's table from a file of the user's own, e.g. their own model's neighbours


def user_table(ref: str, folder: Path = Path.cwd()) -> Path | None:
    """The file a `file:<path>` table reference names (relative to `folder`, the plan's: a
    loaded plan holds absolute ones); None for a `<day>/<file>` reference."""
    if not ref.startswith(USER_FILE):
        return None
    return (folder / Path(ref[len(USER_FILE):]).expanduser()).resolve()


def _check_user_table(path: Path, kind: str, where: str, plan_file: Path) -> None:
    """A table of the user's own is read as the service reads it: a format error stops the plan
    before anything starts (ids against the catalog are checked when the service loads it)."""
    if not path.is_file():
        raise ConfigError(f"{plan_file}: {where}: {path} does not exist")
    try:
        if kind == "toppop":
            read_list(path)
        else:
            read_keyed(path, kind)
    except TableError as error:
        raise ConfigError(f"{plan_file}: {where}: {error}") from None


class Scale(Strict):
    processes: int = Field(1, ge=1, description="simulator worker processes")


class ArmPlan(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    weight: float = Field(1, ge=0)
    recommender: str | None = None
    params: dict[str, Any] = {}
    tables: dict[str, str] = {}   # slot -> "<day>/<file>" or "file:<path>"
    interleave: Interleave | None = None   # two other arms of the day drafted into each session

    @model_validator(mode="after")
    def _recommender_or_interleave(self) -> "ArmPlan":
        return recommender_or_interleave(self)


class JobPlan(Strict):
    job: str = Field(pattern=r"^[a-z_][a-z0-9_.]*$", description="jobs/<job>.py, or a dotted module")
    args: list[str] = []
    writes: list[str] = []        # table files the job writes into {tables}

    @field_validator("args")
    @classmethod
    def _known_placeholders(cls, args: list[str]) -> list[str]:
        for arg in args:
            for name, _ in PLACEHOLDER.findall(arg):
                if name not in PLACEHOLDERS:
                    raise ValueError(f"unknown placeholder {{{name}}} in {arg!r}; "
                                     f"use one of {', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
        return args


class DayPlan(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    sessions: dict[str, int]      # scale -> simulated sessions
    arms: list[ArmPlan] = Field(min_length=1)
    control: str | None = None    # set on an A/B day: the arm the others are compared with
    # The day's experiment name in the service and logs (default: the plan's). A user's arm is a
    # hash of (experiment, user), so days of one name split alike: a day whose previous day
    # split by other arms takes its own name, or CUPED's pre-period would differ by arm.
    experiment: str | None = None
    jobs: list[JobPlan] = []
    # The simulator's long term (sim/README.md, "Days and returns"): this step may span several
    # simulated calendar days, with listeners who come back or leave, and trending tracks.
    sim_days: int = Field(1, ge=1)
    returns: bool = False
    trending: bool = False

    @model_validator(mode="after")
    def _arms(self) -> "DayPlan":
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must differ, got {names}")
        if sum(arm.weight for arm in self.arms) <= 0:
            raise ValueError("arms: the weights must add up to something positive "
                             "(give at least one arm a weight > 0)")
        if self.control is not None and self.control not in names:
            raise ValueError(f"control {self.control!r} is not one of the day's arms {names}")
        if self.control is not None and len(names) < 2:
            raise ValueError("an A/B day (with a control) needs at least two arms")
        check_interleaved(self.arms)
        if self.control is not None and self.control in {a.name for a in self.arms if a.interleave}:
            raise ValueError(f"control {self.control!r} is an interleaved arm: compare plain arms")
        return self

    @property
    def interleaved(self) -> bool:
        return any(arm.interleave is not None for arm in self.arms)


class LatencyOverride(Strict):
    quantile: float | None = Field(None, gt=0, lt=1)
    margin_ms: float | None = Field(None, gt=0)


class Plan(Strict):
    description: str
    world_seed: int | Literal["run"] = "run"   # "run": the world is generated from --seed
    seed: int = 42                             # the run's default seed (--seed overrides)
    experiment: str = "EXP"                    # experiment name in the service config and logs
    primary_metric: str = "mean_session_time"
    # The client latency guardrail's quantile and margin_ms for this plan (conf/analysis.yml's
    # latency_guardrail holds the defaults).
    latency_guardrail: LatencyOverride = LatencyOverride()
    scales: dict[str, Scale]
    days: list[DayPlan] = Field(min_length=1)

    @model_validator(mode="after")
    def _days(self) -> "Plan":
        names = [day.name for day in self.days]
        if len(set(names)) != len(names):
            raise ValueError(f"day names must differ, got {names}")
        for day in self.days:
            missing = sorted(set(self.scales) - set(day.sessions))
            if missing:
                raise ValueError(f"day {day.name!r}: sessions has no count for scale(s) {missing}")
        return self

    def world_seed_for(self, run_seed: int) -> int:
        return run_seed if self.world_seed == "run" else self.world_seed

    @property
    def ab_days(self) -> list[DayPlan]:
        return [day for day in self.days if day.control is not None]

    def experiment_of(self, day: DayPlan) -> str:
        return day.experiment or self.experiment


def plan_path(name_or_path: str | Path) -> Path:
    """`seed` -> conf/plans/seed.yml; a path is taken as it is."""
    text = str(name_or_path)
    if text.endswith((".yml", ".yaml")) or "/" in text:
        return resolve(text)
    return PLANS / f"{text}.yml"


def available() -> dict[str, str]:
    """Every plan in conf/plans/ with its one-line description."""
    plans = {}
    for path in sorted(PLANS.glob("*.yml")):
        try:
            plans[path.stem] = load_plan(path).description
        except ConfigError as error:
            plans[path.stem] = f"(invalid: {error})"
    return plans


def load_plan(name_or_path: str | Path) -> Plan:
    """The plan, fully checked, or ConfigError naming the file and the key."""
    path = plan_path(name_or_path)
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in PLANS.glob("*.yml")))
        raise ConfigError(f"{path}: no such plan (plans: {known}; `./run.sh plans` lists them)")
    plan = validate(read_yaml(path), Plan, path)
    _check_against_registry_and_days(plan, path)
    return plan


def _check_against_registry_and_days(plan: Plan, path: Path) -> None:
    written: dict[str, set[str]] = {}   # day -> table files its jobs write
    for i, day in enumerate(plan.days):
        for j, arm in enumerate(day.arms):
            where = f"days[{i}].arms[{j}]"
            if arm.interleave is not None:
                continue
            spec, _ = check_arm(arm.recommender, arm.params, arm.tables, path, where, "<day>/<file>")
            for slot, ref in arm.tables.items():
                own = user_table(ref, path.parent)
                if own is not None:
                    _check_user_table(own, spec.tables[slot].kind, f"{where}.tables.{slot}", path)
                    arm.tables[slot] = f"{USER_FILE}{own}"
                    continue
                source_day, _, file = ref.partition("/")
                if source_day not in written or file not in written[source_day]:
                    later = source_day in {d.name for d in plan.days[i:]}
                    offered = sorted(f"{d}/{f}" for d, files in written.items() for f in files)
                    reason = ("comes from this or a later day" if later
                              else "is not written by any earlier day's job")
                    raise ConfigError(f"{path}: {where}.tables.{slot}: {ref!r} {reason}; "
                                      f"use one of {offered or 'nothing yet (day 0 has no tables)'}")
        for k, job in enumerate(day.jobs):
            for arg in job.args:
                for name, other in PLACEHOLDER.findall(arg):
                    if other and other not in written and other != day.name:
                        raise ConfigError(f"{path}: days[{i}].jobs[{k}].args: {arg!r} names day "
                                          f"{other!r}, which is not this or an earlier day")
        written[day.name] = {file for job in day.jobs for file in job.writes}
