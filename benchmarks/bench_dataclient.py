"""Upload speed of `dataclient log2hdfs` against a plain single-stream WebHDFS PUT.

Generates seeded log files (default 1 GB: 4 replicas x 4 files x 64 MB) in a temp folder,
then, against the same HDFS in the same run:
  plain      each file PUT once, one after another, with bare requests (CREATE -> redirect ->
             PUT to the DataNode): no temp name, no rename, no verification;
  dataclient `python -m dataclient log2hdfs` in-process (plan, temp+rename, size check, mtime),
             timed from the call to its return, with --threads 1 and with conf's threads;
  re-run     the same command again, nothing to upload (the cost of a safe re-run).
It ends with whether conf's threads meet the targets on throughput and on the share of the
plain PUT's rate. Everything on HDFS is removed afterwards. The latest figures are in
docs/SPEED.md.

    .venv/bin/python benchmarks/bench_dataclient.py                # 1 GB
    .venv/bin/python benchmarks/bench_dataclient.py --mb 128       # quick check
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
import time
import uuid
from pathlib import Path

import requests
from hdfs import InsecureClient

from dataclient.cli import main as dataclient_main
from dataclient.config import load_settings, resolve_url, resolve_user
from dataclient.synthetic_logs import write_replica_logs


def plain_put(url: str, user: str, hdfs_dir: str, files: list[Path]) -> None:
    with requests.Session() as session:
        for path in files:
            create = session.put(f"{url}/webhdfs/v1{hdfs_dir}/{path.parent.name}__{path.name}",
                                 params={"op": "CREATE", "user.name": user, "overwrite": "true"},
                                 allow_redirects=False)
            create.raise_for_status()
            with open(path, "rb") as body:
                session.put(create.headers["Location"], data=body).raise_for_status()


def check_complete(client: InsecureClient, hdfs_dir: str, total_bytes: int) -> None:
    stored = sum(st["length"] for _, st in client.list(hdfs_dir, status=True))
    if stored != total_bytes:
        raise SystemExit(f"{hdfs_dir} holds {stored} bytes, expected {total_bytes}")


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=1024, help="total MB of logs (MiB)")
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--files-per-replica", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--url", help="WebHDFS URL (default: as the dataclient resolves it)")
    parser.add_argument("--user", help="HDFS user (default: $BOTIFY_HDFS_USER)")
    args = parser.parse_args()

    settings = load_settings()
    url = resolve_url(settings, args.url).rstrip("/")
    user = resolve_user(settings, args.user)
    client = InsecureClient(url, user=user)
    n_files = args.replicas * args.files_per_replica
    bytes_per_file = args.mb * 2**20 // n_files
    run_dir = f"dataclient-bench-{uuid.uuid4().hex[:8]}"
    base = f"/user/{user}/{run_dir}"

    with tempfile.TemporaryDirectory(prefix="dataclient-bench-") as tmp:
        t = time.perf_counter()
        folders = write_replica_logs(Path(tmp), args.replicas, args.files_per_replica,
                                     bytes_per_file, args.seed)
        files = sorted(p for folder in folders for p in folder.iterdir())
        total_bytes = sum(p.stat().st_size for p in files)
        total_mb = total_bytes / 1e6
        print(f"generated {len(files)} files, {total_mb:.1f} MB (seed {args.seed}) in "
              f"{time.perf_counter() - t:.1f} s")
        log_dir_flags = [flag for folder in folders for flag in ("--log-dir", str(folder))]
        try:
            client.makedirs(f"{base}/plain")
            plain_s = timed(lambda: plain_put(url, user, f"{base}/plain", files))
            seconds = {}
            # The CLI prints its own summary; keep the benchmark's output to the figures.
            with contextlib.redirect_stdout(io.StringIO()):
                for threads in sorted({1, settings.threads}):
                    command = ["--url", url, "--user", user, "log2hdfs", "--threads",
                               str(threads), *log_dir_flags, f"{run_dir}/dc{threads}"]
                    seconds[threads] = timed(lambda: dataclient_main(command))
                    check_complete(client, f"{base}/dc{threads}", total_bytes)
                rerun_s = timed(lambda: dataclient_main(command))
        finally:
            client.delete(base, recursive=True)

    plain_rate = total_mb / plain_s
    print(f"plain single-stream PUT      : {plain_s:6.2f} s  {plain_rate:7.1f} MB/s")
    for threads, s in seconds.items():
        rate = total_mb / s
        print(f"dataclient log2hdfs threads={threads}: {s:6.2f} s  {rate:7.1f} MB/s  "
              f"({rate / plain_rate:.0%} of plain)")
    print(f"re-run, nothing to do        : {rerun_s:6.2f} s   (cpus={os.cpu_count()})")
    rate = total_mb / seconds[settings.threads]
    print(f"targets (conf threads={settings.threads}): >= 100 MB/s "
          f"{'MET' if rate >= 100 else 'MISSED'}; >= 80% of plain "
          f"{'MET' if rate >= 0.8 * plain_rate else 'MISSED'}")


if __name__ == "__main__":
    main()
