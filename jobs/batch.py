"""A batch of jobs run one after the other in one SparkSession: how jobs/driver.py (one batch,
under spark-submit) and jobs/server.py (batch after batch, the pipeline's) run jobs.

A batch is written `JOB [FLAGS] ; JOB [FLAGS] ...`: a job name, then exactly the flags that job
takes on its own command line, invocations separated by a lone `;` word. A job is a module of
jobs/ by name (sessions, toppop, nn, svd, ...) or a dotted module (analysis.ab_test) with
`main(argv, spark)`. The jobs run in order; the first that fails stops the batch. Its status:
the failed job's (2 for bad input), 1 for a job that crashed (after its traceback). The timings
file, written also when a job failed, is
{"startup": s|null, "jobs": [{"job", "args", "seconds", "exit", "summary"}, ...], "total": s}.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import time
import traceback
from pathlib import Path

from jobs import common

NAME = "batch"
SEPARATOR = ";"

Invocation = tuple[str, list[str]]


def job_module(job: str) -> str:
    """A job's module: `nn` is jobs/nn.py; a dotted name (analysis.ab_test) is taken as it is."""
    return job if "." in job else f"jobs.{job}"


def known(job: str) -> bool:
    try:
        return importlib.util.find_spec(job_module(job)) is not None
    except ModuleNotFoundError:
        return False


def split_invocations(words: list[str]) -> list[Invocation]:
    """`job args ; job args ...` -> [(job, args)], or JobError naming what is wrong (checked
    before Spark starts)."""
    invocations, current = [], []
    for word in [*words, SEPARATOR]:
        if word != SEPARATOR:
            current.append(word)
            continue
        if not current:
            raise common.JobError(f"empty job invocation (job {len(invocations) + 1}): give "
                                  f"`JOB [FLAGS]` between the {SEPARATOR!r} separators")
        job, *args = current
        if not known(job):
            raise common.JobError(f"unknown job {job!r} (job {len(invocations) + 1}): no module "
                                  f"{job_module(job)}; jobs are the modules of jobs/ (sessions, "
                                  f"toppop, nn, svd, ...) or a dotted module such as analysis.ab_test")
        invocations.append((job, args))
        current = []
    return invocations


def join_invocations(invocations: list[Invocation]) -> list[str]:
    """The inverse of split_invocations: the words of a batch's command line."""
    words: list[str] = []
    for number, (job, args) in enumerate(invocations):
        words += ([SEPARATOR] if number else []) + [job, *args]
    return words


def run_job(spark, job: str, args: list[str], summary: dict) -> int:
    """One job's main() in `spark`; its exit status. A jobs/ job's summary (row counts, offline
    checks) goes into `summary`."""
    module = importlib.import_module(job_module(job))
    try:
        if hasattr(module, "run") and hasattr(module, "add_arguments"):
            return common.job_main(module.NAME, module.__doc__.splitlines()[0],
                                   module.add_arguments, module.run, args, spark, summary)
        return module.main(args, spark=spark)
    except SystemExit as e:   # argparse's exit on a bad flag (it printed the usage)
        return e.code if isinstance(e.code, int) else 2
    except Exception:   # a crash (bug, Spark error): its traceback, then the job's name
        traceback.print_exc()
        return 1


def run_batch(spark, invocations: list[Invocation], timings_path: Path | None = None,
              startup: float | None = None) -> int:
    """Run the jobs in `spark`, stopping at the first failure; write the timings file (with the
    session's `startup` seconds, if it was started for this batch). Returns the exit status."""
    timings: dict = {"startup": startup, "jobs": [], "total": None}
    started = time.perf_counter()
    code = 0
    try:
        for number, (job, args) in enumerate(invocations, 1):
            where = f"job {number} of {len(invocations)}: {job}"
            common.log(NAME, f"{where} starts")
            job_started, summary = time.perf_counter(), {}
            code = run_job(spark, job, args, summary)
            seconds = time.perf_counter() - job_started
            timings["jobs"].append({"job": job, "args": args, "seconds": round(seconds, 2),
                                    "exit": code, "summary": summary})
            if code != 0:
                print(f"error: {NAME}: {where} failed with exit status {code} after "
                      f"{seconds:.1f} s; the jobs after it did not run", file=sys.stderr)
                break
            common.log(NAME, f"{where} done in {seconds:.1f} s")
    finally:
        timings["total"] = round(time.perf_counter() - started + (startup or 0), 2)
        if timings_path is not None:
            timings_path.parent.mkdir(parents=True, exist_ok=True)
            timings_path.write_text(json.dumps(timings, indent=1, default=float) + "\n")
    common.log(NAME, f"{len(timings['jobs'])} of {len(invocations)} jobs ran in {timings['total']:.1f} s")
    return code
