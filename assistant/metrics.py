"""Prometheus metrics for a fleet, derived from the event bus alone.

`Metrics` is one more bus subscriber (like the LEDs and the `--events` file):
the core publishes events and knows nothing of Prometheus.  The text format is
made by `prometheus_client`; `serve_metrics` answers ``GET /metrics`` on a
listener of its own, and the realtime server answers it too when
`metrics.port` is null (`assistant/realtime/server.py`).
"""

from __future__ import annotations

import asyncio
import hmac
import http
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from assistant.config import check_bind
from assistant.events import (
    AudioStarted,
    DeviceLost,
    DeviceRestored,
    Error,
    Event,
    Muted,
    SpeechStopped,
    StateChanged,
    TurnLatency,
    Wake,
)

logger = logging.getLogger(__name__)

STATES = ("idle", "listening", "thinking", "speaking", "muted")
DEVICES = ("microphone", "speaker")
LATENCY_BUCKETS_S = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
HISTOGRAMS = {  # TurnLatency field -> metric name (seconds)
    "endpointing_ms": "assistant_endpointing_seconds",
    "stt_ms": "assistant_stt_seconds",
    "llm_first_token_ms": "assistant_llm_first_token_seconds",
    "tts_ms": "assistant_tts_first_audio_seconds",
    "end_of_speech_to_first_audio_ms": "assistant_end_of_speech_to_first_audio_seconds",
}
THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")
"""The SoC temperature in millidegrees on a Raspberry Pi (and most ARM boards)."""


class _SocTemperature(Collector):
    """`assistant_soc_temperature_celsius`, read at scrape time where the board has a thermal zone."""

    def __init__(self, path: Path = THERMAL_ZONE) -> None:
        self.path = path

    def collect(self) -> Iterable[Metric]:
        try:
            millidegrees = int(self.path.read_text().strip())
        except (OSError, ValueError):
            return []
        family = GaugeMetricFamily("assistant_soc_temperature_celsius", "SoC temperature (thermal_zone0)")
        family.add_metric([], millidegrees / 1000)
        return [family]


class Metrics:
    """Counters, latency histograms and gauges, fed by the bus; `render()` is the /metrics body."""

    def __init__(self, llm_host: str, *, thermal_zone: Path = THERMAL_ZONE) -> None:
        self.registry = registry = CollectorRegistry()
        self.wakes = Counter("assistant_wakes", "Wake-word detections", ["model"], registry=registry)
        self.turns = Counter("assistant_turns", "Turns completed (a reply or an apology)", registry=registry)
        self.failed_turns = Counter(
            "assistant_failed_turns", "Turns that failed, by the first error code", ["code"], registry=registry
        )
        self.lost_turns = Counter(
            "assistant_lost_turns",
            "Requests heard that never got a reply (a new wake word before any audio, or a device lost)",
            registry=registry,
        )
        self.barge_ins = Counter("assistant_barge_ins", "Replies interrupted by the wake word", registry=registry)
        self.errors = Counter("assistant_errors", "Error events, by code", ["code"], registry=registry)
        self.reconnects = Counter(
            "assistant_device_reconnects", "Sound devices found again after a fault", ["device"], registry=registry
        )
        self.device_up = Gauge("assistant_device_up", "1 while the sound device works", ["device"], registry=registry)
        self.fallbacks = Counter("assistant_llm_fallbacks", "Switches to another LLM host", registry=registry)
        self.state = Gauge("assistant_state", "1 for the current state", ["state"], registry=registry)
        self.llm_host = Gauge("assistant_llm_host", "1 for the LLM host in use", ["host"], registry=registry)
        self.latency = {
            field: Histogram(name, f"Turn latency: {field[:-3]}", buckets=LATENCY_BUCKETS_S, registry=registry)
            for field, name in HISTOGRAMS.items()
        }
        ProcessCollector(registry=registry)  # process_resident_memory_bytes, CPU seconds, open fds
        registry.register(_SocTemperature(thermal_zone))
        for device in DEVICES:
            self.device_up.labels(device).set(1)
        self._show_state("idle")
        self._host = ""
        self._show_host(llm_host)
        self._in_turn = False  # between SpeechStopped and the turn's TurnLatency
        self._playing = False  # the turn's reply has started to sound
        self._turn_error: str | None = None
        self._muted = False
        self._turn_state = "idle"

    def __call__(self, event: Event) -> None:
        """The bus subscriber."""
        if isinstance(event, Wake):
            self.wakes.labels(event.model).inc()
            if self._in_turn:
                (self.barge_ins if self._playing else self.lost_turns).inc()
                self._end_turn()
        elif isinstance(event, SpeechStopped):
            self._in_turn, self._playing, self._turn_error = True, False, None
        elif isinstance(event, AudioStarted):
            self._playing = self._in_turn
        elif isinstance(event, Error):
            self.errors.labels(event.code).inc()
            if self._in_turn and self._turn_error is None:
                self._turn_error = event.code
        elif isinstance(event, TurnLatency):
            self._on_turn(event)
        elif isinstance(event, DeviceLost):
            self.device_up.labels(event.device).set(0)
            if self._in_turn and event.device == "microphone" and not self._playing:
                self.lost_turns.inc()
                self._end_turn()
        elif isinstance(event, DeviceRestored):
            self.device_up.labels(event.device).set(1)
            self.reconnects.labels(event.device).inc()
        elif isinstance(event, StateChanged):
            self._turn_state = event.state
            self._show_state("muted" if self._muted else event.state)
        elif isinstance(event, Muted):
            self._muted = event.muted
            self._show_state("muted" if event.muted else self._turn_state)
        elif event.type == "llm_fallback":  # published by the LLM client when it changes host
            self.fallbacks.inc()
            host = getattr(event, "host", None) or getattr(event, "to_host", None)
            if isinstance(host, str) and host:
                self._show_host(host)

    def _on_turn(self, event: TurnLatency) -> None:
        if not self._in_turn:
            return  # a latency record with no request heard (cannot happen today): not a turn
        self.turns.inc()
        if self._turn_error is not None:
            self.failed_turns.labels(self._turn_error).inc()
        for field, histogram in self.latency.items():
            value = getattr(event, field)
            if value is not None and value >= 0:
                histogram.observe(value / 1000)
        self._end_turn()

    def _end_turn(self) -> None:
        self._in_turn, self._playing, self._turn_error = False, False, None

    def _show_state(self, state: str) -> None:
        for name in {*STATES, state}:
            self.state.labels(name).set(1 if name == state else 0)

    def _show_host(self, host: str) -> None:
        if self._host:
            self.llm_host.labels(self._host).set(0)
        self._host = host
        self.llm_host.labels(host).set(1)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


def authorized(header: str, token: str | None) -> bool:
    """Whether an `Authorization` header carries `token` (always, when there is no token)."""
    if not token:
        return True
    return header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip().encode(), token.encode())


def respond(metrics: Metrics, authorization: str, token: str | None) -> tuple[http.HTTPStatus, bytes, str]:
    """Status, body and content type for one ``GET /metrics``."""
    if not authorized(authorization, token):
        body = b"missing or wrong token: send 'Authorization: Bearer TOKEN'\n"
        return http.HTTPStatus.UNAUTHORIZED, body, "text/plain"
    return http.HTTPStatus.OK, metrics.render(), CONTENT_TYPE_LATEST


async def serve_metrics(
    metrics: Metrics, host: str, port: int, token: str | None, *, ready: asyncio.Event | None = None
) -> None:
    """Serve ``GET /metrics`` on `host`:`port` until cancelled; off loopback a token is required."""
    from websockets.asyncio.server import ServerConnection
    from websockets.asyncio.server import serve as ws_serve
    from websockets.datastructures import Headers
    from websockets.http11 import Request, Response

    check_bind(host, token, key="metrics")

    def answer(connection: ServerConnection, request: Request) -> Response:
        if request.path.split("?", 1)[0] != "/metrics":
            status, body, kind = http.HTTPStatus.NOT_FOUND, b"not found: try /metrics\n", "text/plain"
        else:
            status, body, kind = respond(metrics, request.headers.get("Authorization", ""), token)
        headers = Headers([("Content-Type", kind), ("Content-Length", str(len(body))), ("Connection", "close")])
        return Response(status.value, status.phrase, headers, body)

    async def refuse(connection: ServerConnection) -> None:  # never reached: every request gets an answer
        await connection.close()

    async with ws_serve(refuse, host, port, process_request=answer) as server:
        bound = server.sockets[0].getsockname()[1] if server.sockets else port
        logger.info("metrics at http://%s:%d/metrics (pid %d)", host, bound, os.getpid())
        if ready is not None:
            ready.set()
        await server.serve_forever()
