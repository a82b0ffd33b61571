"""The realtime server: OpenAI Realtime-compatible WebSocket endpoints and the browser page.

``/v1/realtime`` and ``/api/realtime`` speak the Realtime protocol (GA event
names, beta names for clients that send ``OpenAI-Beta: realtime=v1``); every
other GET serves a file of the page in ``web/``.  Bound to loopback by
default; on any other address a token is required, given as
``Authorization: Bearer TOKEN`` or the ``openai-insecure-api-key.TOKEN``
subprotocol.  Every request must name this server in ``Host`` and every
WebSocket handshake from a browser must come from an allowed ``Origin``
(`assistant.realtime.access`); refusals are HTTP 403 with a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from assistant.config import Config, check_bind
from assistant.core.fairness import FairExecutor
from assistant.core.ports import DeviceTools
from assistant.engines.bundle import Engines
from assistant.realtime.access import Access, resolve_model
from assistant.realtime.protocol import Dialect
from assistant.realtime.session import RealtimeSession
from assistant.realtime.shared import SessionEngines

if TYPE_CHECKING:
    from assistant.metrics import Metrics

logger = logging.getLogger(__name__)

ENDPOINTS = ("/v1/realtime", "/api/realtime")
MAX_PATH_CHARS = 2048
"""Longer request targets get HTTP 414."""
SEND_QUEUE_BYTES = 8 * 1024 * 1024
"""Bytes of events waiting for a slow client before its session is dropped (about 60 s of audio)."""
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
SECURITY_HEADERS = (
    # The page loads only its own scripts and talks only to its own server (and ws:/wss: URLs typed into it).
    (
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self' ws: wss:; img-src 'self' data:; media-src 'self' blob:; worker-src 'self' blob:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
    ),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)


class RealtimeServer:
    """Serves sessions over shared engines; use `running` to start and stop it."""

    def __init__(
        self,
        config: Config,
        engines: Engines,
        *,
        executor: FairExecutor | None = None,
        shared: SessionEngines | None = None,
        metrics: Metrics | None = None,
        tools: DeviceTools | None = None,
        clock: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.config = config
        self.metrics = metrics
        """Answers GET /metrics (under the server's token) when given."""
        self.shared = shared or SessionEngines(config, engines, executor=executor, tools=tools, clock=clock)
        self.token = config.server.token
        self.access = Access.build(
            config.server.host, config.server.allowed_hosts, config.server.allowed_origins, self.token
        )
        self.sessions: set[RealtimeSession] = set()
        self._changed = asyncio.Event()
        self.server: Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """``ws://HOST:PORT`` of the running server."""
        return f"ws://{self._host}:{self.port}"

    @contextlib.asynccontextmanager
    async def running(self, host: str | None = None, port: int | None = None) -> AsyncIterator[RealtimeServer]:
        """Listen on `host`:`port` (config defaults; port 0 picks one) until the block ends."""
        host = host or self.config.server.host
        port = self.config.server.port if port is None else port
        check_bind(host, self.token)
        self._host = host
        server_config = self.config.server
        self.access = Access.build(host, server_config.allowed_hosts, server_config.allowed_origins, self.token)
        server = await ws_serve(
            self._handle,
            host,
            port,
            process_request=self._process_request,
            select_subprotocol=self._select_subprotocol,
            max_size=self.config.server.max_message_bytes,
            max_queue=16,
            server_header=None,
        )
        self.server = server
        self.port = server.sockets[0].getsockname()[1] if server.sockets else port
        logger.info(
            "realtime server listening on ws://%s:%d/v1/realtime (page at http://%s:%d/)",
            host,
            self.port,
            host,
            self.port,
        )
        try:
            yield self
        finally:
            server.close()
            await server.wait_closed()
            self.shared.close()
            logger.info("realtime server stopped")

    async def wait_for_sessions(self, count: int) -> None:
        """Return once exactly `count` sessions are open."""
        while len(self.sessions) != count:
            self._changed.clear()
            await self._changed.wait()

    # --- handshake --------------------------------------------------------------------

    def _model(self, request: Request) -> tuple[str, str | None]:
        """The ``?model=`` a client asked for and the Ollama model it maps to (None: not allowed)."""
        requested = (parse_qs(urlsplit(request.path).query).get("model") or [""])[0]
        llm = self.config.llm.model
        return requested, resolve_model(requested, llm, self.config.server.allowed_models)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if len(request.path) > MAX_PATH_CHARS:
            return _text(http.HTTPStatus.REQUEST_URI_TOO_LONG, f"the path is longer than {MAX_PATH_CHARS} characters\n")
        headers = request.headers
        host = headers.get("Host")
        if not self.access.host_allowed(host):
            logger.warning(
                "realtime: refused a request for Host %r (not this server's name; add it to "
                "server.allowed_hosts if it is)",
                host,
            )
            return _text(
                http.HTTPStatus.FORBIDDEN, "this server does not answer to that Host name (server.allowed_hosts)\n"
            )
        path = urlsplit(request.path).path
        if path in ENDPOINTS:
            origin = headers.get("Origin")
            if not self.access.origin_allowed(origin, host):
                logger.warning(
                    "realtime: refused a WebSocket from origin %r (allow it with server.allowed_origins)", origin
                )
                return _text(
                    http.HTTPStatus.FORBIDDEN,
                    f"origin {origin!r} is not allowed to use this server (server.allowed_origins)\n",
                )
            if not self.access.authorized(headers.get("Authorization"), headers.get_all("Sec-WebSocket-Protocol")):
                logger.warning("realtime: refused a connection with a missing or wrong token")
                return _text(
                    http.HTTPStatus.UNAUTHORIZED,
                    "missing or wrong token: send 'Authorization: Bearer "
                    "TOKEN' or the subprotocol 'openai-insecure-api-key.TOKEN'\n",
                )
            if len(self.sessions) >= self.config.server.max_sessions:
                logger.warning("realtime: refused a connection: %d sessions open", len(self.sessions))
                return _text(
                    http.HTTPStatus.SERVICE_UNAVAILABLE,
                    f"too many sessions: the server allows "
                    f"{self.config.server.max_sessions} at once (server.max_sessions); try again later\n",
                )
            requested, model = self._model(request)
            if model is None:
                allowed = ", ".join(sorted({self.config.llm.model, *self.config.server.allowed_models}))
                logger.warning("realtime: refused a connection asking for model %r (allowed: %s)", requested, allowed)
                return _text(
                    http.HTTPStatus.FORBIDDEN,
                    f"model {requested!r} is not allowed; allowed: {allowed} (server.allowed_models), or 'default'\n",
                )
            if "upgrade" not in request.headers.get("Connection", "").lower():
                return _text(http.HTTPStatus.UPGRADE_REQUIRED, "this is a WebSocket endpoint\n")
            return None
        if path == "/metrics" and self.metrics is not None:
            from assistant.metrics import respond

            status, body, kind = respond(self.metrics, request.headers.get("Authorization", ""), self.token)
            return _response(status, body, kind)
        return _static(path)

    @staticmethod
    def _select_subprotocol(connection: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
        # Browsers send ["realtime", "openai-insecure-api-key.KEY"]; Chromium fails the handshake
        # unless the server picks one of them.
        return Subprotocol("realtime") if "realtime" in offered else None

    # --- connections ------------------------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        request = connection.request
        assert request is not None
        model, llm_model = self._model(request)
        assert llm_model is not None  # refused at the handshake otherwise
        beta = "realtime=v1" in request.headers.get("OpenAI-Beta", "")
        outbox = Outbox()
        session = RealtimeSession(
            self.shared, dialect=Dialect.BETA if beta else Dialect.GA, model=model, llm_model=llm_model, send=outbox.put
        )
        if len(self.sessions) >= self.config.server.max_sessions:
            session.error(
                "session_limit",
                f"too many sessions: the server allows {self.config.server.max_sessions} at once (server.max_sessions)",
                kind="server_error",
            )
            await connection.send(await outbox.get())
            await connection.close(1013, "too many sessions")
            return
        self.sessions.add(session)
        self._changed.set()
        logger.info("session %s opened (%s, model %r, %d open)", session.id, session.dialect, model, len(self.sessions))
        writer = asyncio.create_task(self._write(connection, outbox), name=f"writer {session.id}")
        watchdog = asyncio.create_task(self._watch(connection, outbox, session), name=f"watch {session.id}")
        try:
            await session.start()
            async for message in connection:
                await session.handle(message)
                # Let the writer and other sessions run even when this client floods us.
                await asyncio.sleep(0)
        except ConnectionClosed as exc:
            logger.info("session %s: connection closed (%s)", session.id, exc)
        finally:
            self.sessions.discard(session)
            self._changed.set()
            await session.close()
            writer.cancel()
            watchdog.cancel()
            await asyncio.wait([writer, watchdog])
            logger.info("session %s closed (%d open)", session.id, len(self.sessions))

    @staticmethod
    async def _write(connection: ServerConnection, outbox: Outbox) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await connection.send(await outbox.get())

    @staticmethod
    async def _watch(connection: ServerConnection, outbox: Outbox, session: RealtimeSession) -> None:
        """Drop a client that stopped reading: its events piled up past the send queue."""
        await outbox.overflow.wait()
        logger.warning(
            "session %s: the client is not reading (over %d bytes queued); dropping it", session.id, SEND_QUEUE_BYTES
        )
        connection.transport.abort()


class Outbox:
    """A session's outgoing events, bounded in bytes; `overflow` is set once the bound is passed."""

    def __init__(self, limit: int = SEND_QUEUE_BYTES) -> None:
        self.limit = limit
        self.queued = 0
        self.overflow = asyncio.Event()
        self._queue: asyncio.Queue[str] = asyncio.Queue()

    def put(self, event: dict[str, Any]) -> None:
        """Queue an event (never blocks; past the bound it sets `overflow` and drops the rest)."""
        if self.overflow.is_set():
            return
        text = json.dumps(event)
        if self.queued + len(text) > self.limit:
            self.overflow.set()
            return
        self.queued += len(text)
        self._queue.put_nowait(text)

    async def get(self) -> str:
        """The next event to send."""
        text = await self._queue.get()
        self.queued -= len(text)
        return text


def _text(status: http.HTTPStatus, text: str, content_type: str = "text/plain; charset=utf-8") -> Response:
    return _response(status, text.encode(), content_type)


def _response(status: http.HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-cache"),
            ("Connection", "close"),
            *SECURITY_HEADERS,
        ]
    )
    return Response(status.value, status.phrase, headers, body)


def _static(path: str) -> Response:
    """A file of the browser page (``/`` is ``index.html``); any other name is 404 without touching the disk."""
    name = "index.html" if path in ("/", "") else path[1:]
    web = resources.files("assistant.realtime").joinpath("web")
    if name not in _page_files():
        return _text(http.HTTPStatus.NOT_FOUND, "not found\n")
    return _response(http.HTTPStatus.OK, web.joinpath(name).read_bytes(), CONTENT_TYPES["." + name.rsplit(".", 1)[-1]])


@functools.cache
def _page_files() -> frozenset[str]:
    web = resources.files("assistant.realtime").joinpath("web")
    return frozenset(f.name for f in web.iterdir() if f.is_file() and "." + f.name.rsplit(".", 1)[-1] in CONTENT_TYPES)


async def serve(
    config: Config,
    engines: Engines,
    *,
    host: str | None = None,
    port: int | None = None,
    ready: asyncio.Event | None = None,
    executor: FairExecutor | None = None,
    metrics: Metrics | None = None,
    tools: DeviceTools | None = None,
    clock: Callable[[], float] = lambda: 0.0,
) -> None:
    """Serve the realtime API and page until cancelled (`ready` is set once listening).

    `tools` are the device's functions and `clock` its audio time (inside `assistant run`).
    """
    server = RealtimeServer(config, engines, executor=executor, metrics=metrics, tools=tools, clock=clock)
    async with server.running(host, port):
        if ready is not None:
            ready.set()
        assert server.server is not None
        await server.server.serve_forever()
