"""driver: run several jobs one after the other in ONE SparkSession (one JVM start-up, not one per job).

    spark-submit jobs/driver.py [--timings FILE] [--master M] -- \\
        sessions --events E --out W ';' toppop --sessions W/sessions --out T ';' nn ... ';' svd ...

After `--` come the job invocations, separated by a lone `;` argument (quote it in a shell):
a job name, then exactly the flags that job takes on its own command line. The jobs run in the
order given; the first that fails stops the run and is named in the error. Exit status: the
failed job's (2 for bad input), 1 for a job that crashed (after its traceback), 2 for an
unknown job or an empty invocation (checked before Spark starts). Each job's start, end and
seconds are logged; `--timings FILE` receives them as JSON, also when a job failed:
{"startup": s, "jobs": [{"job", "args", "seconds", "exit"}, ...], "total": s}.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
import time
import traceback
from pathlib import Path

from jobs import common

NAME = "driver"
SEPARATOR = ";"


def job_module(job: str) -> str:
    """A job's module: `nn` is jobs/nn.py; a dotted name (analysis.ab_test) is taken as it is."""
    return job if "." in job else f"jobs.{job}"


def known(job: str) -> bool:
    try:
        return importlib.util.find_spec(job_module(job)) is not None
    except ModuleNotFoundError:
        return False


def split_invocations(words: list[str]) -> list[tuple[str, list[str]]]:
    """`job args ; job args ...` -> [(job, args)], or JobError naming what is wrong."""
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


def run_jobs(spark, invocations: list[tuple[str, list[str]]], timings: dict) -> int:
    """Run each job's main() in `spark`; stop at the first failure. Returns the exit status."""
    for number, (job, args) in enumerate(invocations, 1):
        where = f"job {number} of {len(invocations)}: {job}"
        common.log(NAME, f"{where} starts")
        started = time.perf_counter()
        module, summary = importlib.import_module(job_module(job)), {}
        try:
            if hasattr(module, "run") and hasattr(module, "add_arguments"):  # a jobs/ job: keep its summary
                code = common.job_main(module.NAME, module.__doc__.splitlines()[0],
                                       module.add_arguments, module.run, args, spark, summary)
            else:
                code = module.main(args, spark=spark)
        except SystemExit as e:   # argparse's exit on a bad flag (it printed the usage)
            code = e.code if isinstance(e.code, int) else 2
        except Exception:   # a crash (bug, Spark error): its traceback, then the job's name below
            traceback.print_exc()
            code = 1
        seconds = time.perf_counter() - started
        timings["jobs"].append({"job": job, "args": args, "seconds": round(seconds, 2), "exit": code,
                                "summary": summary})
        if code != 0:
            print(f"error: {NAME}: {where} failed with exit status {code} after {seconds:.1f} s; "
                  f"the jobs after it did not run", file=sys.stderr)
            return code
        common.log(NAME, f"{where} done in {seconds:.1f} s")
    return 0


def write_timings(path: Path, timings: dict) -> None:
    """The `--timings` JSON file (jobs/server.py writes its batches' the same way)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(timings, indent=1, default=float) + "\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        argv = [*argv, "--"]   # let argparse print the usage (or --help) before the error below
    cut = argv.index("--")
    parser = argparse.ArgumentParser(
        prog="spark-submit jobs/driver.py", description=__doc__.splitlines()[0],
        usage="%(prog)s [--timings FILE] [--master M] -- JOB [FLAGS] ';' JOB [FLAGS] ...",
        epilog="jobs: the modules of jobs/ by name (sessions, toppop, nn, svd, ...) or a dotted "
               "module (analysis.ab_test); `spark-submit jobs/JOB.py --help` lists a job's flags")
    parser.add_argument("--timings", type=Path, help="write each job's seconds to this JSON file")
    parser.add_argument("--master", default=None,
                        help="Spark master; default: spark-submit's --master, else conf/spark.yml")
    args = parser.parse_args(argv[:cut])
    try:
        invocations = split_invocations(argv[cut + 1:])
    except common.JobError as e:
        print(f"error: {NAME}: {e}", file=sys.stderr)
        return 2

    started = time.perf_counter()
    timings: dict = {"startup": None, "jobs": [], "total": None}
    spark = common.spark_session(NAME, args.master)
    timings["startup"] = round(time.perf_counter() - started, 2)
    common.log(NAME, f"Spark session up in {timings['startup']:.1f} s; {len(invocations)} jobs")
    try:
        code = run_jobs(spark, invocations, timings)
    finally:
        spark.stop()
        timings["total"] = round(time.perf_counter() - started, 2)
        if args.timings:
            write_timings(args.timings, timings)
    common.log(NAME, f"{len(timings['jobs'])} of {len(invocations)} jobs ran in {timings['total']:.1f} s")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
