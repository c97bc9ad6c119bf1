"""Plan a run (what to remove, upload, leave alone) and carry it out, reporting progress.

Re-run safety comes from three rules:
- a file becomes visible only by an atomic rename of a size-verified temp file;
- temp files left by a killed run are removed at the start of the next run;
- a visible file whose (size, mtime) equals the local file's planned (length, mtime) is left
  alone, any other is replaced (deterministically: same local bytes -> same target bytes).
So after any interruption, re-running gives the folder exactly one clean run would give.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from dataclient.logfiles import LocalFileChanged, LogFile
from dataclient.target import Target
from infra.progress import progress_meter


@dataclass
class Plan:
    remove: list[str]          # --cleanup: every entry of the folder; else stale temp files
    upload: list[LogFile]
    unchanged: list[LogFile]
    create_folder: bool

    @property
    def upload_bytes(self) -> int:
        return sum(lf.length for lf in self.upload)


@dataclass
class Summary:
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    unchanged: int = 0
    removed: int = 0
    failed: list[str] = field(default_factory=list)

    def line(self) -> str:
        mb = self.bytes / 1e6
        rate = mb / self.seconds if self.seconds > 0 else 0.0
        text = (f"{self.files} files, {mb:.1f} MB in {self.seconds:.2f} s ({rate:.1f} MB/s); "
                f"{self.unchanged} unchanged, {self.removed} removed")
        return text + (f"; {len(self.failed)} FAILED" if self.failed else "")


def make_plan(files: list[LogFile], target: Target, cleanup: bool) -> Plan:
    listing = target.list()
    if cleanup:
        return Plan(remove=sorted([*listing.files, *listing.temps, *listing.other]),
                    upload=list(files), unchanged=[], create_folder=not listing.exists)
    upload, unchanged = [], []
    for lf in files:
        same = listing.files.get(lf.target_name) == (lf.length, lf.mtime_ms)
        (unchanged if same else upload).append(lf)
    return Plan(remove=sorted(listing.temps), upload=upload, unchanged=unchanged,
                create_folder=not listing.exists)


def describe(plan: Plan, target: Target) -> list[str]:
    """The --dry-run report, one line per action."""
    lines = [f"would create {target.description}"] if plan.create_folder else []
    lines += [f"would remove {target.description}/{name}" for name in plan.remove]
    lines += [f"would copy {lf.path} -> {target.description}/{lf.target_name} ({lf.length} bytes)"
              for lf in plan.upload]
    lines += [f"unchanged {lf.path} = {target.description}/{lf.target_name}"
              for lf in plan.unchanged]
    return lines


def execute(plan: Plan, target: Target, threads: int, label: str) -> Summary:
    """Carry out the plan. A local file that changed under us (rotated, truncated) is reported
    and the others go on; any target error stops the run and propagates."""
    summary = Summary(unchanged=len(plan.unchanged))
    start = time.perf_counter()
    if plan.create_folder:
        target.make_folder()
    for name in plan.remove:
        target.remove(name)
    summary.removed = len(plan.remove)
    with progress_meter(plan.upload_bytes, label, "B", unit_scale=True, unit_divisor=1024) as bar, \
            ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        futures = {pool.submit(target.put, lf, bar.update): lf for lf in plan.upload}
        for future in as_completed(futures):
            try:
                future.result()
            except LocalFileChanged as e:
                summary.failed.append(str(e))
                continue
            except BaseException:
                pool.shutdown(cancel_futures=True)  # running copies end, no new one starts
                raise
            summary.files += 1
            summary.bytes += futures[future].length
    summary.seconds = time.perf_counter() - start
    return summary
