"""conf/analysis.yml as pydantic models (read through `settings.load`), and the job's settings.

The file holds every default (one home, like conf/sim.yml); the models hold the keys' types and
bounds, so a file that leaves a key out is refused, naming it.

Every mistake is an AnalysisError naming the file, the dotted key and what is allowed, e.g.
`conf/analysis.yml: roles.primary: unknown metric 'foo' (known: sessions, ...)`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

import settings
from analysis.compare import Settings
from analysis.errors import AnalysisError
from analysis.user_metrics import METRICS, RETENTION_METRICS

DEFAULT_CONFIG = settings.CONF / "analysis.yml"
PER_USER_METRICS = (*METRICS, *RETENTION_METRICS)
Direction = Literal["higher", "lower"]


def _known(names) -> str:
    return ", ".join(names)


def _fail(model: str, key: tuple[str, ...], message: str) -> ValidationError:
    """A validation error at `key` (so settings.describe names the dotted key), raised from a
    check that spans several fields."""
    return ValidationError.from_exception_data(model, [InitErrorDetails(
        type=PydanticCustomError("value_error", "{message}", {"message": message}),
        loc=key, input=None)])


class Bootstrap(settings.Strict):
    replicates: int = Field(ge=100, description="B; percentile intervals need hundreds")
    seed: int
    partitions: int = Field(ge=1)
    chunk_rows: int = Field(ge=1)


class Quantiles(settings.Strict):
    variable: str
    direction: Direction
    levels: dict[str, float]
    bins: int = Field(ge=1)
    window_sd: float = Field(gt=0)

    @model_validator(mode="after")
    def _check(self):
        if self.variable not in PER_USER_METRICS:
            raise _fail("Quantiles", ("variable",), f"unknown metric {self.variable!r} "
                        f"(known: {_known(PER_USER_METRICS)})")
        bad = [name for name, level in self.levels.items() if not 0 < level < 1]
        if bad:
            raise _fail("Quantiles", ("levels",), f"{bad} must lie strictly between 0 and 1")
        return self


class Srm(settings.Strict):
    alpha: float = Field(gt=0, lt=1, description="the check fails below this p")
    splits: dict[str, dict[str, float]]


class LatencyGuardrail(settings.Strict):
    """The request time a client sees (analysis/latency.py): a quantile of it per arm, and how
    many milliseconds more the treatment's may take than the control's."""

    quantile: float = Field(gt=0, lt=1, description="e.g. 0.95: the arm's p95")
    margin_ms: float = Field(gt=0, description="breached when the difference's upper end "
                                               "exceeds this")


class Roles(settings.Strict):
    """Which metric decides (primary), which are reported with a family-wise correction
    (secondary), and which may not get worse by more than a margin (guardrails)."""

    primary: str
    secondary: list[str]
    guardrails: dict[str, float] = Field(
        description="metric -> largest tolerated relative change in its bad direction")

    def role(self, metric: str) -> str:
        if metric == self.primary:
            return "primary"
        return "guardrail" if metric in self.guardrails else "secondary"

    def with_primary(self, metric: str) -> Roles:
        """`--primary`: `metric` decides; the former primary becomes a secondary."""
        if metric == self.primary:
            return self
        secondary = [m for m in self.secondary if m != metric] + [self.primary]
        guardrails = {m: v for m, v in self.guardrails.items() if m != metric}
        return Roles(primary=metric, secondary=secondary, guardrails=guardrails)


class AnalysisConfig(settings.Strict):
    alpha: float = Field(gt=0, lt=1, description="1 - interval level")
    family_alpha: float = Field(gt=0, lt=1, description="Holm family-wise alpha")
    power: float = Field(gt=0, lt=1, description="power of the reported MDE")
    bootstrap: Bootstrap
    metrics: dict[str, Direction]
    roles: Roles
    quantiles: Quantiles
    srm: Srm
    latency_guardrail: LatencyGuardrail

    @model_validator(mode="after")
    def _check(self):
        unknown = [m for m in self.metrics if m not in PER_USER_METRICS]
        if unknown:
            raise _fail("AnalysisConfig", ("metrics",), f"unknown metric(s) {unknown} "
                        f"(known: {_known(PER_USER_METRICS)})")
        if not self.metrics:
            raise _fail("AnalysisConfig", ("metrics",), "is empty; list at least the primary")
        clash = sorted(set(self.quantiles.levels) & set(self.metrics))
        if clash:
            raise _fail("AnalysisConfig", ("quantiles", "levels"),
                        f"names {clash} are also in metrics")
        reported = [*self.metrics, *self.quantiles.levels]
        roles = self.roles
        for key, names in [("primary", [roles.primary]), ("secondary", roles.secondary),
                           ("guardrails", list(roles.guardrails))]:
            unknown = [m for m in names if m not in reported]
            if unknown:
                raise _fail("AnalysisConfig", ("roles", key), f"unknown metric(s) {unknown} "
                            f"(known: {_known(reported)})")
        listed = [roles.primary, *roles.secondary, *roles.guardrails]
        twice = sorted({m for m in listed if listed.count(m) > 1})
        if twice:
            raise _fail("AnalysisConfig", ("roles",),
                        f"{twice} listed in more than one role (or twice)")
        missing = [m for m in reported if m not in listed]
        if missing:
            raise _fail("AnalysisConfig", ("roles",), f"metric(s) {missing} have no role; add "
                        f"them to roles.secondary or roles.guardrails")
        bad = {m: v for m, v in roles.guardrails.items() if not 0 < v < 1}
        if bad:
            raise _fail("AnalysisConfig", ("roles", "guardrails"),
                        f"margins are fractions between 0 and 1 (0.05 = 5%), got {bad}")
        return self

    @property
    def settings(self) -> Settings:
        q = self.quantiles
        return Settings(metrics=dict(self.metrics), quantiles=dict(q.levels),
                        quantile_variable=q.variable, quantile_direction=q.direction,
                        replicates=self.bootstrap.replicates, seed=self.bootstrap.seed,
                        alpha=self.alpha, bins=q.bins, window_sd=q.window_sd,
                        partitions=self.bootstrap.partitions, chunk_rows=self.bootstrap.chunk_rows)

    def expected_split(self, experiment: str, arms: list[str]) -> dict[str, float]:
        """The configured weight of each arm, equal weights when the experiment is not listed."""
        split = self.srm.splits.get(experiment)
        if split is None:
            return {arm: 1.0 for arm in arms}
        missing = [arm for arm in arms if arm not in split]
        if missing:
            raise AnalysisError(f"conf srm.splits.{experiment} has no weight for arm(s) "
                                f"{missing}; add them (weights: {split})")
        return {arm: float(split[arm]) for arm in arms}


def load_config(path: str | Path = DEFAULT_CONFIG, replicates: int | None = None,
                seed: int | None = None, primary: str | None = None,
                latency: dict[str, float] | None = None) -> AnalysisConfig:
    """Read the YAML at `path`; the command line's `replicates`, `seed`, `primary` and
    `latency` (latency_guardrail keys, e.g. a plan's margin) win."""
    try:
        config = settings.load(path, AnalysisConfig)
        data = config.model_dump()
        if replicates is not None:
            data["bootstrap"]["replicates"] = replicates
        if seed is not None:
            data["bootstrap"]["seed"] = seed
        data["latency_guardrail"].update(latency or {})
        if primary is not None:
            known = [*config.metrics, *config.quantiles.levels]
            if primary not in known:
                raise settings.ConfigError(f"--primary: unknown metric {primary!r} "
                                           f"(known: {_known(known)})")
            data["roles"] = config.roles.with_primary(primary).model_dump()
        return settings.validate(data, AnalysisConfig,
                                 f"{settings.resolve(path)} (with command-line overrides)")
    except settings.ConfigError as error:
        raise AnalysisError(str(error)) from None
