"""python -m dataclient: move service logs to HDFS (log2hdfs) or a local folder (log2local).

Errors are one `dataclient: error: ...` line on stderr and exit code 1; warnings are
`dataclient: warning: ...` lines; the plan (--dry-run) and the closing summary go to stdout.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dataclient.config import (Settings, load_settings, resolve_log_dirs, resolve_url,
                               resolve_user)
from dataclient.errors import DataclientError
from dataclient.logfiles import LogFile, find_log_files
from dataclient.target import Target, TempNames
from dataclient.transfer import describe, execute, make_plan


def build_parser() -> argparse.ArgumentParser:
    # --url/--user work before or after the command: `--user U log2hdfs DIR` and
    # `log2hdfs --user U DIR` mean the same (SUPPRESS keeps a later default from erasing them).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS,
                        help="WebHDFS URL of the NameNode (default: $BOTIFY_WEBHDFS_URL, "
                             "else conf/dataclient.yml webhdfs_url)")
    common.add_argument("--user", default=argparse.SUPPRESS,
                        help="HDFS user; files go to /user/USER/HDFS_DIR (default: "
                             "$BOTIFY_HDFS_USER)")
    sources = argparse.ArgumentParser(add_help=False)
    sources.add_argument("--log-dir", action="append", metavar="DIR",
                         help="a replica's log folder; repeat for several (default: conf "
                              "log_dirs, e.g. runtime/logs/*)")
    sources.add_argument("--dry-run", action="store_true",
                         help="print what would be done and change nothing")
    sources.add_argument("--threads", type=int, metavar="N",
                         help="files copied in parallel (default: conf threads)")

    parser = argparse.ArgumentParser(prog="python -m dataclient", parents=[common],
                                     description="Move botify service logs, safely re-runnable.")
    commands = parser.add_subparsers(dest="command", required=True)
    to_hdfs = commands.add_parser("log2hdfs", parents=[common, sources],
                                  help="upload logs to /user/USER/HDFS_DIR over WebHDFS")
    to_hdfs.add_argument("--cleanup", action="store_true",
                         help="first remove everything inside HDFS_DIR (only inside /user/USER)")
    to_hdfs.add_argument("hdfs_dir", metavar="HDFS_DIR",
                         help="target folder, relative to /user/USER (or absolute inside it)")
    to_local = commands.add_parser("log2local", parents=[common, sources],
                                   help="copy logs to a local folder")
    to_local.add_argument("local_dir", metavar="LOCAL_DIR", type=Path)
    return parser


def plan_sources(settings: Settings,
                 log_dir_flags: list[str] | None) -> tuple[list[Path], list[LogFile]]:
    log_dirs = resolve_log_dirs(settings, log_dir_flags)
    files, warnings = find_log_files(log_dirs, settings.skip_names, settings.name_separator,
                                     settings.read_chunk_bytes)
    if not files:
        warnings.append(f"no log file with a complete line in {', '.join(map(str, log_dirs))}")
    for warning in warnings:
        print(f"dataclient: warning: {warning}", file=sys.stderr)
    return log_dirs, files


def run(target: Target, files: list[LogFile], threads: int, cleanup: bool, dry_run: bool,
        label: str) -> int:
    plan = make_plan(files, target, cleanup)
    if dry_run:
        print("\n".join(describe(plan, target) or ["nothing to do"]))
        return 0
    summary = execute(plan, target, threads, label)
    for failure in summary.failed:
        print(f"dataclient: error: {failure}; re-run to copy it", file=sys.stderr)
    print(f"{label} -> {target.description}: {summary.line()}")
    return 1 if summary.failed else 0


def log2hdfs(args: argparse.Namespace, settings: Settings) -> int:
    from hdfs import InsecureClient  # the local command should not need the HDFS client

    from dataclient.hdfs_target import HdfsTarget, hdfs_errors, resolve_hdfs_dir

    url = resolve_url(settings, getattr(args, "url", None))
    user = resolve_user(settings, getattr(args, "user", None))
    directory = resolve_hdfs_dir(args.hdfs_dir, user)
    _, files = plan_sources(settings, args.log_dir)  # local checks before touching HDFS
    client = InsecureClient(url, user=user, timeout=settings.timeout_seconds)
    target = HdfsTarget(client, directory, TempNames(settings.temp_prefix, settings.temp_suffix))
    with hdfs_errors(url, user, directory, settings.url_env):
        return run(target, files, args.threads or settings.threads, args.cleanup, args.dry_run,
                   "log2hdfs")


def log2local(args: argparse.Namespace, settings: Settings) -> int:
    from dataclient.local_target import LocalTarget, check_local_dir

    log_dirs, files = plan_sources(settings, args.log_dir)
    directory = check_local_dir(args.local_dir, log_dirs)
    target = LocalTarget(directory, TempNames(settings.temp_prefix, settings.temp_suffix),
                         settings.read_chunk_bytes)
    return run(target, files, args.threads or settings.threads, False, args.dry_run,
               "log2local")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        command = log2hdfs if args.command == "log2hdfs" else log2local
        return command(args, settings)
    except DataclientError as e:
        print(f"dataclient: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # local file system: unreadable log file, full disk, ...
        print(f"dataclient: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dataclient: error: interrupted; re-run to finish (complete files are kept, "
              "partial ones are replaced)", file=sys.stderr)
        return 130
