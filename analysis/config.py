"""conf/analysis.yml: load, check and turn into the job's settings."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from analysis.compare import Settings
from analysis.errors import AnalysisError
from analysis.user_metrics import METRICS

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "conf" / "analysis.yml"
DIRECTIONS = ("higher", "lower")


@dataclass(frozen=True)
class AnalysisConfig:
    settings: Settings
    srm_alpha: float
    srm_splits: dict[str, dict[str, float]]

    def expected_split(self, experiment: str, arms: list[str]) -> dict[str, float]:
        """The configured weight of each arm, equal weights when the experiment is not listed."""
        split = self.srm_splits.get(experiment)
        if split is None:
            return {arm: 1.0 for arm in arms}
        missing = [arm for arm in arms if arm not in split]
        if missing:
            raise AnalysisError(f"conf srm.splits.{experiment} has no weight for arm(s) "
                                f"{missing}; add them (weights: {split})")
        return {arm: float(split[arm]) for arm in arms}


def load_config(path: str | Path = DEFAULT_CONFIG, replicates: int | None = None,
                seed: int | None = None) -> AnalysisConfig:
    """Read the YAML at `path`; `replicates` and `seed` (from the command line) win over it."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise AnalysisError(f"config file {path} not found: pass --config with an existing "
                            f"file (the default is {DEFAULT_CONFIG})") from None
    except yaml.YAMLError as error:
        raise AnalysisError(f"config file {path} is not valid YAML: {error}") from None
    try:
        boot, quant, srm = raw["bootstrap"], raw["quantiles"], raw["srm"]
        metrics = dict(raw["metrics"])
        settings = Settings(
            metrics=metrics,
            quantiles={str(k): float(v) for k, v in quant["levels"].items()},
            quantile_variable=quant["variable"], quantile_direction=quant["direction"],
            replicates=int(replicates if replicates is not None else boot["replicates"]),
            seed=int(seed if seed is not None else boot["seed"]),
            alpha=float(raw["alpha"]), bins=int(quant["bins"]),
            window_sd=float(quant["window_sd"]), partitions=int(boot["partitions"]),
            chunk_rows=int(boot["chunk_rows"]))
        config = AnalysisConfig(settings=settings, srm_alpha=float(srm["alpha"]),
                                srm_splits=dict(srm.get("splits") or {}))
    except (KeyError, TypeError, ValueError) as error:
        raise AnalysisError(f"config file {path} is missing or has a malformed key ({error!r}); "
                            f"compare it with {DEFAULT_CONFIG}") from None
    _check(config, path)
    return config


def _check(config: AnalysisConfig, path: Path) -> None:
    s = config.settings
    problems = []
    for name in [*s.metrics, s.quantile_variable]:
        if name not in METRICS:
            problems.append(f"unknown metric {name!r} (known: {', '.join(METRICS)})")
    for name, direction in [*s.metrics.items(), ("quantiles.direction", s.quantile_direction)]:
        if direction not in DIRECTIONS:
            problems.append(f"{name}: direction {direction!r} is not one of {DIRECTIONS}")
    if not s.metrics:
        problems.append("metrics is empty")
    if s.replicates < 100:
        problems.append(f"bootstrap replicates {s.replicates} < 100: percentile intervals need "
                        f"at least a few hundred")
    if not 0 < s.alpha < 1 or not 0 < config.srm_alpha < 1:
        problems.append("alpha and srm.alpha must lie strictly between 0 and 1")
    if not all(0 < q < 1 for q in s.quantiles.values()):
        problems.append("quantile levels must lie strictly between 0 and 1")
    if s.bins < 1 or s.window_sd <= 0 or s.partitions < 1 or s.chunk_rows < 1:
        problems.append("bins, window_sd, partitions and chunk_rows must be positive")
    if problems:
        raise AnalysisError(f"config {path}: " + "; ".join(problems))
