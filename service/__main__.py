"""python -m service --config conf/service.yml [--experiments FILE] [--host H] [--port P]
                     [--uds PATH] [--log-dir DIR] [--replica NAME]

Serves the app (service/app.py) with uvicorn in this process, one worker: the app's state
(event log, sessions, reload) lives in this process. Listens on host:port, or on a Unix socket
instead (`--uds`, `server.uds`: the pipeline's simulator, on the same machine, talks to it there).
SIGTERM and SIGINT stop it gracefully (no new connections, in-flight requests finish, the event
log is flushed and closed; exit status 0). SIGHUP reloads the experiments config and tables.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

import redis
import uvicorn

from service.config import ConfigError, load_config
from contract.tables import TableError

BACKLOG = 2048  # connections waiting to be accepted: a simulator opens many at once
GRACE_S = 10    # how long in-flight requests may take to finish after SIGTERM


def serve(app, host: str, port: int, uds: Path | None) -> None:
    """Serve the ASGI `app` with uvicorn (uvloop, httptools) until SIGTERM/SIGINT."""
    # uvicorn handles SIGTERM/SIGINT itself and, once shut down, raises the signal again for the
    # handler it found: these do nothing, so a clean stop exits with status 0.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    # The app never reads the client's address nor needs a `server` header: no proxy-headers
    # middleware, no header to write.
    uvicorn.Server(uvicorn.Config(
        app, host=host, port=port, uds=str(uds) if uds else None, loop="uvloop", http="httptools",
        lifespan="on", ws="none", backlog=BACKLOG, access_log=False, log_level="warning",
        proxy_headers=False, server_header=False, timeout_graceful_shutdown=GRACE_S)).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__.split("\n\n")[1])
    parser.add_argument("--config", required=True, help="service config YAML (e.g. conf/service.yml)")
    parser.add_argument("--experiments", help="experiments YAML; overrides the config's `experiments`")
    parser.add_argument("--host", help="listen address (default: server.host)")
    parser.add_argument("--port", type=int, help="listen port (default: server.port)")
    parser.add_argument("--uds", help="serve on this Unix socket instead of host:port (default: server.uds)")
    parser.add_argument("--log-dir", help="event-log root; events go to <log-dir>/<replica>/")
    parser.add_argument("--replica", help="replica name, the event-log sub-folder (default: log.replica)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    def read_config():
        return load_config(args.config, experiments=args.experiments, host=args.host,
                           port=args.port, uds=args.uds, log_root=args.log_dir, replica=args.replica)

    from service.app import create_app  # after logging is set up
    try:
        config = read_config()
        app = create_app(config, read_config)
    except (ConfigError, TableError) as e:
        print(f"botify service: {e}", file=sys.stderr)
        return 2
    except redis.RedisError as e:
        print(f"botify service: cannot use Redis at {config.redis_url}: {e}; start redis-server "
              f"or fix store.redis_url", file=sys.stderr)
        return 2
    where = f"unix socket {config.uds}" if config.uds else f"http://{config.host}:{config.port}"
    logging.getLogger("service").info("replica %s serving on %s, events in %s", config.replica,
                                      where, config.log_dir)
    serve(app, config.host, config.port, config.uds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
