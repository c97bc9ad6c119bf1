"""The service's ASGI app: its routes and handlers on service/jsonapp.py (routing table, JSON
answers and errors), orjson bodies, event logging off the request path.

Routes: GET / (alive), GET /track/{track}, POST /next/{user}, POST /last/{user},
GET /openapi.json, POST /admin/reload (X-Admin-Token header). Errors are JSON
{"detail": "..."} with a 4xx status; a store outage is a 503.
"""
from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import signal
import threading
import time
from contextlib import asynccontextmanager
from time import perf_counter
from typing import Callable

import orjson
import redis

from service.jsonapp import HttpError, JsonApp, Request, Router
from service.config import ConfigError, ServiceConfig
from service.eventlog import EventLog
from service.interleaving import Interleaved
from service.openapi import DOCUMENT
from service.recommenders import Listen
from service.serving import Serving, build_serving
from service.stores import open_store
from contract.events import make_event
from contract.tables import TableError
from service.validation import MAX_BODY_BYTES, parse_id, parse_listen

log = logging.getLogger("service")


# A simulator playing several days sends each request's simulated time (ms since the epoch) in
# this header; the event is stamped with it instead of the service's clock (sim/calendar.py).
SIMULATED_TIME = b"x-simulated-time"


def event_timestamp(request: Request) -> int:
    """The event's timestamp in ms: the simulated time when the request carries one, else now."""
    simulated = request.header(SIMULATED_TIME)
    if simulated is None:
        return time.time_ns() // 1_000_000
    return parse_id(simulated, "the X-Simulated-Time header (ms since the epoch)")


# The client's own measure of how long it waited for the user's previous request (seconds), sent
# with the next one; the event carries it as `client_latency` (contract/events.py).
CLIENT_LATENCY = b"x-client-latency"


def client_latency(request: Request) -> float | None:
    """The X-Client-Latency header as seconds, None when absent or not a number >= 0."""
    value = request.header(CLIENT_LATENCY)
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < float("inf") else None


class Service:
    """The service's state: store, event log, and the Serving snapshot a reload replaces."""

    def __init__(self, config: ServiceConfig, reload_config: Callable[[], ServiceConfig]):
        self.config, self._reload_config = config, reload_config
        self.store = open_store(config.store_backend, config.redis_url, config.redis_prefix,
                                config.session_idle_s)
        self.serving: Serving = build_serving(config, self.store)
        self.store.in_service(self.serving.keyed_tables)
        gc.freeze()  # the tables' millions of objects never change: keep them out of GC passes
        log.info("loaded the catalog and %d tables in %.2f s (CPU %.2f s, %s store)",
                 len(self.serving.tables), self.serving.load_seconds,
                 self.serving.load_cpu_seconds, config.store_backend)
        self.events = EventLog(config.log_dir, config.log_max_bytes, config.log_flush_interval_s)
        self._reload_lock = asyncio.Lock()

    async def reload(self) -> Serving:
        """Re-read the config and tables in a thread (requests keep being served from the old
        snapshot) and swap them in; on any error the old snapshot stays and the error is raised."""
        async with self._reload_lock:
            def build() -> Serving:
                return build_serving(self._reload_config(), self.store)
            self.serving = await asyncio.to_thread(build)
            self.store.in_service(self.serving.keyed_tables)
            gc.freeze()  # the previous snapshot goes by reference counting; exempt the new one
            log.info("reloaded %d tables in %.2f s", len(self.serving.tables), self.serving.load_seconds)
            return self.serving

    async def reload_on_signal(self) -> None:
        try:
            await self.reload()
        except (ConfigError, TableError, redis.RedisError) as e:
            log.error("reload refused, the previous tables stay in service: %s", e)

    async def close(self) -> None:
        """Write every queued event, close the log, disconnect from the store."""
        self.events.close()
        await self.store.close()


def create_app(config: ServiceConfig, reload_config: Callable[[], ServiceConfig] | None = None) -> JsonApp:
    """The service's ASGI app; `app.service` is its state (store, event log, serving snapshot)."""
    service = Service(config, reload_config or (lambda: config))
    openapi = orjson.dumps(DOCUMENT)
    alive_body = orjson.dumps({"status": "ok", "replica": config.replica})

    async def alive(request: Request) -> bytes:
        return alive_body

    async def track(request: Request) -> bytes:
        track_id = parse_id(request.path_params["track"], "track")
        record = service.serving.catalog.records.get(track_id)
        if record is None:
            raise HttpError(404, f"track {track_id} is not in the catalog")
        return record

    def listened(request: Request) -> tuple[float, int, int, float, Serving]:
        """Parse and check a /next or /last request; the clock starts here."""
        started = perf_counter()
        user = parse_id(request.path_params["user"], "user")
        track_id, listened_time = parse_listen(request.body)
        serving = service.serving
        if track_id not in serving.track_ids:
            raise HttpError(422, f"track {track_id} is not in the catalog; send the id of the "
                                 f"track the user just listened to")
        return started, user, track_id, listened_time, serving

    async def next_track(request: Request) -> bytes:
        started, user, track_id, listened_time, serving = listened(request)
        history = await service.store.sessions.listen(user, track_id, listened_time)
        recommender, arms = serving.split.assign(user)
        listen = Listen(user, track_id, listened_time, history)
        if type(recommender) is Interleaved:   # an interleaved arm: log which team answered
            recommendation, team = recommender.draft(listen)
        else:
            recommendation, team = recommender.recommend(listen), None
        body = orjson.dumps({"user": user, "track": recommendation})
        service.events.append(make_event("next", event_timestamp(request), user, track_id, listened_time,
                                         perf_counter() - started, recommendation, arms, len(history) - 1,
                                         team, client_latency(request)))
        return body

    async def last_track(request: Request) -> bytes:
        started, user, track_id, listened_time, serving = listened(request)
        await service.store.sessions.end(user)
        _, arms = serving.split.assign(user)
        body = orjson.dumps({"user": user})
        service.events.append(make_event("last", event_timestamp(request), user, track_id, listened_time,
                                         perf_counter() - started, None, arms,
                                         client_latency=client_latency(request)))
        return body

    async def openapi_document(request: Request) -> bytes:
        return openapi

    async def admin_reload(request: Request) -> bytes:
        token = config.admin_token
        if token is None:
            raise HttpError(404, "the admin endpoint is disabled: set admin.token in the service "
                                 "config (or send SIGHUP to reload)")
        sent = (request.header(b"x-admin-token") or "").encode("utf-8", "replace")
        if not hmac.compare_digest(sent, token.encode()):
            raise HttpError(403, "missing or wrong X-Admin-Token header")
        try:
            serving = await service.reload()
        except (ConfigError, TableError) as e:
            raise HttpError(422, f"reload refused, the previous tables stay in service: {e}") from None
        return orjson.dumps({"reloaded": True, "tables": [str(p) for p in serving.tables],
                             "seconds": round(serving.load_seconds, 3)})

    def store_down(error: redis.RedisError) -> HttpError:
        log.error("store error: %s", error)
        return HttpError(503, f"the store is unavailable ({error}); retry later")

    @asynccontextmanager
    async def lifespan():
        loop = asyncio.get_running_loop()
        # Signals reach the main thread only; an in-process test client runs the app elsewhere.
        on_main_thread = threading.current_thread() is threading.main_thread()
        reloads: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks

        def reload_on_signal() -> None:
            task = loop.create_task(service.reload_on_signal())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        if on_main_thread:
            loop.add_signal_handler(signal.SIGHUP, reload_on_signal)
        try:
            yield
        finally:
            if on_main_thread:
                loop.remove_signal_handler(signal.SIGHUP)
            await service.close()

    app = JsonApp(
        Router([
            ("GET", "/", alive),
            ("GET", "/track/{track}", track),
            ("POST", "/next/{user}", next_track),
            ("POST", "/last/{user}", last_track),
            ("GET", "/openapi.json", openapi_document),
            ("POST", "/admin/reload", admin_reload),
        ]),
        lifespan,
        max_body_bytes=MAX_BODY_BYTES,
        errors={redis.RedisError: store_down},
    )
    app.service = service
    return app
