"""A long-lived driver: one Spark application serving batches of jobs over a Unix socket, so
a whole run (every day's jobs and the A/B analysis) pays for one JVM start-up, and later jobs
run in a JVM that is already warm.

    spark-submit [--master M] jobs/server.py serve SOCKET      # until `stop` or SIGTERM
    python -m jobs.server run SOCKET [--timings FILE] -- JOB [FLAGS] ';' JOB [FLAGS] ...
    python -m jobs.server stop SOCKET

`run` takes a batch as jobs/batch.py writes it (what `spark-submit jobs/driver.py` takes after
`--`; the server runs it with jobs/batch.py), prints the jobs' output as it comes and exits
with the batch's status; `--timings FILE` is written by the server. The server answers one
batch at a time. Spark's own JVM log stays in the server's output; a
job's Python output (stdout and stderr) goes to the client that asked for it.

Protocol: the client sends one JSON line {"jobs": [[job, [args]], ...], "timings": path|null}
or {"stop": true}; the server answers with JSON lines {"out": text} ... then {"exit": status}.
"""
from __future__ import annotations

import argparse
import codecs
import json
import os
import socket
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from jobs import batch, common
from sparkapp.session import spark_session

NAME = "server"


# --- the server (inside spark-submit) -----------------------------------------------------------

class _Forwarder(threading.Thread):
    """Sends what is written to the pipe's other end to the client as {"out": text} lines. A
    client that went away gets nothing more, but the pipe is still drained so jobs never block."""

    def __init__(self, read_fd: int, stream):
        super().__init__(daemon=True)
        self.read_fd, self.stream = read_fd, stream

    def run(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # chunks cut characters
        with os.fdopen(self.read_fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                self.send({"out": decoder.decode(chunk)})

    def send(self, message: dict) -> None:
        if self.stream is None:
            return
        try:
            self.stream.write(json.dumps(message).encode() + b"\n")
            self.stream.flush()
        except OSError:  # the client is gone: keep draining, stop sending
            self.stream = None


@contextmanager
def _output_to(stream):
    """Point this process's stdout and stderr (file descriptors 1 and 2, so C-level writes too)
    at the client for the duration of a batch; yields the forwarder (to send the last line)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    read_fd, write_fd = os.pipe()
    forwarder = _Forwarder(read_fd, stream)
    forwarder.start()
    os.dup2(write_fd, 1)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    try:
        yield forwarder
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)   # the pipe's last writers close: the forwarder sees its end
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        forwarder.join()


def _run_batch(spark, request: dict, stream) -> None:
    with _output_to(stream) as forwarder:
        try:
            invocations = [(job, list(args)) for job, args in request["jobs"]]
            timings = Path(request["timings"]) if request.get("timings") else None
            code = batch.run_batch(spark, invocations, timings)
        except Exception as error:  # noqa: BLE001 - a bad request must not end the server
            print(f"error: {NAME}: {error}", file=sys.stderr)
            code = 2
    forwarder.send({"exit": code})


def _answer(spark, connection: socket.socket) -> bool:
    """Handle one connection; True when it asked the server to stop."""
    try:
        with connection, connection.makefile("rwb") as stream:
            line = stream.readline()
            if not line:  # a readiness probe (`ready`): connected and left
                return False
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError
            except ValueError:
                stream.write(b'{"out": "error: server: the request is not a JSON object\\n"}\n{"exit": 2}\n')
                return False
            if request.get("stop"):
                stream.write(b'{"exit": 0}\n')
                return True
            _run_batch(spark, request, stream)
    except OSError:  # the client went away mid-answer: nobody to tell
        pass
    return False


def serve(spark, path: str) -> None:
    """Answer batches on the Unix socket at `path` until a stop request."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen()
        common.log(NAME, f"serving jobs on {path}")
        try:
            while True:
                connection, _ = listener.accept()
                if _answer(spark, connection):
                    return
        finally:
            Path(path).unlink(missing_ok=True)


# --- the client --------------------------------------------------------------------------------

class NotServing(Exception):
    """No server answers on the socket."""


def _connect(path: str) -> socket.socket:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(path)
    except (FileNotFoundError, ConnectionRefusedError) as error:
        client.close()
        raise NotServing(f"no job server on {path} ({error.strerror}): start one with "
                         f"`spark-submit jobs/server.py serve {path}`") from None
    return client


def submit(path: str, invocations: list[tuple[str, list[str]]], timings: str | None = None,
           out=None) -> int:
    """Run a batch on the server at `path`, writing its output to `out` as it comes."""
    out = out or sys.stdout
    with _connect(path) as client, client.makefile("rwb") as stream:
        stream.write(json.dumps({"jobs": invocations, "timings": timings}).encode() + b"\n")
        stream.flush()
        for line in stream:
            message = json.loads(line)
            if "exit" in message:
                return message["exit"]
            out.write(message["out"])
            out.flush()
    print(f"error: {NAME}: the job server on {path} closed the connection before the batch "
          f"ended (it stopped or crashed: see its log)", file=sys.stderr)
    return 1


def stop(path: str, timeout: float | None = None) -> None:
    """Ask the server to stop once its current batch ends; OSError (TimeoutError) if it has not
    answered within `timeout` seconds."""
    with _connect(path) as client, client.makefile("rwb") as stream:
        client.settimeout(timeout)
        stream.write(b'{"stop": true}\n')
        stream.flush()
        stream.readline()


def ready(path: str) -> bool:
    """Whether a server listens on `path` (a connection is accepted and closed at once)."""
    try:
        _connect(path).close()
    except NotServing:
        return False
    return True


# --- command line ------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    jobs_words = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="jobs/server.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="start Spark and serve batches (under spark-submit)")
    serve_cmd.add_argument("socket")
    serve_cmd.add_argument("--master", default=None,
                           help="Spark master; default: spark-submit's --master, else conf/spark.yml")
    run_cmd = commands.add_parser("run", help="run a batch of jobs on a server: -- JOB [FLAGS] ';' ...")
    run_cmd.add_argument("socket")
    run_cmd.add_argument("--timings", help="the server writes each job's seconds to this JSON file")
    stop_cmd = commands.add_parser("stop", help="stop a server")
    stop_cmd.add_argument("socket")
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            from infra.lifetime import die_with_parent
            die_with_parent()  # under spark-submit the parent is the JVM: go when it goes
            spark = spark_session(NAME, args.master)
            try:
                serve(spark, args.socket)
            finally:
                spark.stop()
            return 0
        if args.command == "stop":
            stop(args.socket)
            return 0
        invocations = batch.split_invocations(jobs_words)
        timings = str(Path(args.timings).resolve()) if args.timings else None
        return submit(args.socket, invocations, timings)
    except (common.JobError, NotServing) as error:
        print(f"error: {NAME}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
