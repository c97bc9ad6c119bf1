"""Upload speed of `dataclient log2hdfs` against a plain single-stream WebHDFS PUT.

Generates seeded log files (default 1 GB: 4 replicas x 4 files x 64 MB) in a temp folder,
then, against the same HDFS in the same run:
  plain      each file PUT once, one after another, with bare requests (CREATE -> redirect ->
             PUT to the DataNode): no temp name, no rename, no verification;
  dataclient `python -m dataclient log2hdfs` in-process (plan, temp+rename, size check, mtime),
             timed from the call to its return, threads from conf/dataclient.yml;
  re-run     the same command again, nothing to upload (the cost of a safe re-run).
Targets: dataclient >= 100 MB/s and >= 80% of plain. Everything on HDFS is removed afterwards.

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
        total_mb = sum(p.stat().st_size for p in files) / 1e6
        print(f"generated {len(files)} files, {total_mb:.1f} MB (seed {args.seed}) in "
              f"{time.perf_counter() - t:.1f} s")
        log_dir_flags = [flag for folder in folders for flag in ("--log-dir", str(folder))]
        command = ["--url", url, "--user", user, "log2hdfs", *log_dir_flags, f"{run_dir}/dc"]
        try:
            client.makedirs(f"{base}/plain")
            plain_s = timed(lambda: plain_put(url, user, f"{base}/plain", files))
            # The CLI prints its own summary; keep the benchmark's output to the figures.
            with contextlib.redirect_stdout(io.StringIO()):
                dc_s = timed(lambda: dataclient_main(command))
                rerun_s = timed(lambda: dataclient_main(command))
            uploaded = sum(st["length"] for _, st in client.list(f"{base}/dc", status=True))
            assert round(uploaded / 1e6, 1) == round(total_mb, 1), "dataclient upload incomplete"
        finally:
            client.delete(base, recursive=True)

    plain_rate, dc_rate = total_mb / plain_s, total_mb / dc_s
    print(f"plain single-stream PUT : {plain_s:6.2f} s  {plain_rate:7.1f} MB/s")
    print(f"dataclient log2hdfs     : {dc_s:6.2f} s  {dc_rate:7.1f} MB/s  "
          f"({dc_rate / plain_rate:.0%} of plain; threads={settings.threads}, cpus={os.cpu_count()})")
    print(f"re-run, nothing to do   : {rerun_s:6.2f} s")
    print(f"targets: >= 100 MB/s {'MET' if dc_rate >= 100 else 'MISSED'}; "
          f">= 80% of plain {'MET' if dc_rate >= 0.8 * plain_rate else 'MISSED'}")


if __name__ == "__main__":
    main()
