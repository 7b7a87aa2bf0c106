"""The scoring service: ``create_app(settings)`` and ``run(settings, host, port)``.

Run it with ``buyerscore serve --registry DIR --db store.duckdb --keys-file keys.txt --port 8000``.
One process owns the DuckDB store (DuckDB allows one writer); requests are served from a thread
pool, ingestion is serialised by a lock and every ``POST /v1/events`` is one committed transaction.

Logging: the access log records the route *template* (``/v1/users/{user_id}/score``), status and
duration only, never user ids, payloads or keys.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from buyerscore import __version__
from buyerscore.serving.api.deps import AppState
from buyerscore.serving.api.errors import readable_errors
from buyerscore.serving.api.routes import events, ops, scores
from buyerscore.serving.api.settings import ServeSettings

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("buyerscore.serving.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DESCRIPTION = """Real-time scoring of e-commerce shoppers: purchasing power (expected spend, tier),
credit (probability of default, points, grade) and anomaly flags, each with reason codes and the
model version.  Every `/v1` endpoint needs an `X-API-Key` header."""


class _TooLarge(Exception):
    pass


class GuardMiddleware:
    """Body-size limit (413), request timing, metrics and a privacy-safe access log (pure ASGI)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, state_getter: Callable[[], AppState | None]) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.state_getter = state_getter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status_code = 500
        limit = self.max_body_bytes
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    too_big = int(v) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(send)
                    self._record(scope, 413, t0)
                    return
        seen = 0
        started = False
        too_large = False

        async def limited_receive() -> Message:
            nonlocal seen, too_large
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    too_large = True
                    raise _TooLarge
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal status_code, started
            if too_large:  # the app caught _TooLarge while parsing (FastAPI answers 400): answer 413 instead
                if msg["type"] == "http.response.start" and not started:
                    started, status_code = True, 413
                    await self._reject(send)
                return
            if msg["type"] == "http.response.start":
                status_code = int(msg["status"])
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)
            status_code = 413
        finally:
            self._record(scope, status_code, t0)

    @staticmethod
    async def _reject(send: Send) -> None:
        body = json.dumps({"detail": "request body too large"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def _record(self, scope: Scope, status_code: int, t0: float) -> None:
        dt = time.perf_counter() - t0
        route = scope.get("route")
        template = getattr(route, "path", None) or "<unmatched>"
        method = scope.get("method", "")
        st = self.state_getter()
        if st is not None:
            st.metrics.inc("buyerscore_requests_total", help="HTTP requests by route template and status.",
                           route=template, method=method, status=str(status_code))
            st.metrics.observe(dt, route=template, method=method)
        access_logger.info("%s %s %d %.1fms", method, template, status_code, dt * 1000)


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    """Build the service.  Without settings the app only serves its OpenAPI spec (used to write the docs)."""
    app = FastAPI(title="buyerscore", version=__version__, description=DESCRIPTION,
                  openapi_tags=[{"name": "scores"}, {"name": "events"}, {"name": "operations"}])
    app.include_router(scores.router)
    app.include_router(events.router)
    app.include_router(ops.router)
    state = AppState.build(settings) if settings is not None else None
    app.state.buyerscore = state

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # field-level errors naming the field and the fix, without pydantic's union-member names; the
        # offending input is not echoed (it may hold user data)
        return JSONResponse({"detail": readable_errors(exc.errors(), request.url.path)}, status_code=422)

    app.add_middleware(GuardMiddleware, max_body_bytes=settings.max_body_bytes if settings else 1_000_000,
                       state_getter=lambda: app.state.buyerscore)
    return app


def openapi_spec() -> dict[str, Any]:
    """The OpenAPI document of the service (committed as ``docs/openapi.json``)."""
    return create_app().openapi()


def run(settings: ServeSettings, *, host: str = "127.0.0.1", port: int = 8000, port_file: Path | None = None,
        log_level: str = "warning") -> None:
    """Serve until interrupted.  ``port=0`` binds an ephemeral port, written to ``port_file`` when given."""
    import uvicorn

    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    if port_file is not None:
        tmp = Path(str(port_file) + ".tmp")
        tmp.write_text(str(sock.getsockname()[1]), encoding="utf-8")
        tmp.replace(port_file)
    config = uvicorn.Config(app, log_level=log_level, access_log=False, server_header=False, lifespan="off",
                            timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        if app.state.buyerscore is not None:
            app.state.buyerscore.close()

