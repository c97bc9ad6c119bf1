"""driver: run one batch of jobs in ONE Spark application (jobs/batch.py), under spark-submit.

    spark-submit jobs/driver.py [--timings FILE] [--master M] -- \\
        sessions --events E --out W ';' toppop --sessions W/sessions --out T ';' nn ... ';' svd ...

After `--` comes the batch: job invocations separated by a lone `;` argument (quote it in a
shell), each a job name and exactly the flags that job takes on its own command line. Exit
status: the batch's (jobs/batch.py), 2 for an unknown job or an empty invocation (checked
before Spark starts). `--timings FILE` receives each job's seconds as JSON.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from jobs import batch, common
from sparkapp.session import spark_session

NAME = "driver"


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
        invocations = batch.split_invocations(argv[cut + 1:])
    except common.JobError as e:
        print(f"error: {NAME}: {e}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    spark = spark_session(NAME, args.master)
    startup = round(time.perf_counter() - started, 2)
    common.log(NAME, f"Spark session up in {startup:.1f} s; {len(invocations)} jobs")
    try:
        return batch.run_batch(spark, invocations, args.timings, startup)
    finally:
        spark.stop()


if __name__ == "__main__":
    raise SystemExit(main())
