"""Latency measurement against a running realtime server, for benchmark scripts."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from assistant.audio.wav import read_wav
from assistant.config import Config
from assistant.core.ports import SAMPLE_RATE, Audio
from assistant.engines.bundle import Engines
from assistant.realtime.client import endpoint
from assistant.realtime.protocol import WIRE_RATE, pcm16

logger = logging.getLogger(__name__)


async def measure_commit_to_first_delta(
    url: str, wav_path: str | Path, n: int, *, model: str = "default", token: str | None = None, timeout_s: float = 60.0
) -> list[float]:
    """Milliseconds from sending ``input_audio_buffer.commit`` to the first ``response.output_audio.delta``.

    One connection, `n` turns: each appends the WAV (resampled to 24 kHz), commits
    with ``response.create`` right behind, times the first audio delta, then waits
    for ``response.done``.  The WAV is appended and the session is set to manual
    turns (no server VAD), so the timing covers transcription, the LLM's first
    sentence and its synthesis.
    """
    import websockets

    audio = base64.b64encode(pcm16(read_wav(wav_path, WIRE_RATE))).decode()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    results: list[float] = []
    async with websockets.connect(endpoint(url, model), additional_headers=headers, max_size=None) as ws:

        async def until(kind: str) -> dict[str, object]:
            async with asyncio.timeout(timeout_s):
                while True:
                    event: dict[str, object] = json.loads(await ws.recv())
                    if event["type"] == "error":
                        raise RuntimeError(f"server error: {event['error']}")
                    if event["type"] == kind:
                        return event

        await ws.send(
            json.dumps(
                {
                    "type": "session.update",
                    "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
                }
            )
        )
        await until("session.updated")
        for turn in range(n):
            step = 64_000  # 1 s of audio per append
            for start in range(0, len(audio), step):
                await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio[start : start + step]}))
            sent = time.perf_counter()
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            await ws.send(json.dumps({"type": "response.create"}))
            await until("response.output_audio.delta")
            results.append((time.perf_counter() - sent) * 1000)
            logger.info("turn %d: commit to first audio delta %.0f ms", turn + 1, results[-1])
            await until("response.done")
    return results


# --- fairness: one session flooding the shared worker, and sessions speaking at once ---------------


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    """p50 / p95 in ms (rounded to 0.1) and the count."""
    if not values:
        return {"p50": None, "p95": None, "n": 0}
    data = np.asarray(values, dtype=np.float64)
    return {
        "p50": round(float(np.percentile(data, 50)), 1),
        "p95": round(float(np.percentile(data, 95)), 1),
        "n": len(values),
    }


class _Connection:
    """One benchmark client: manual turns, JSON events, errors raised unless asked for."""

    def __init__(self, ws: Any, timeout_s: float) -> None:
        self.ws = ws
        self.timeout_s = timeout_s

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, url: str, model: str, token: str | None, timeout_s: float) -> AsyncIterator[_Connection]:
        import websockets

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with websockets.connect(endpoint(url, model), additional_headers=headers, max_size=None) as ws:
            connection = cls(ws, timeout_s)
            await connection.send(
                {
                    "type": "session.update",
                    "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
                }
            )
            await connection.until("session.updated")
            yield connection

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(event))

    async def append(self, audio_b64: str) -> None:
        step = 64_000  # 1 s of audio per append
        for start in range(0, len(audio_b64), step):
            await self.send({"type": "input_audio_buffer.append", "audio": audio_b64[start : start + step]})

    async def until(self, *kinds: str, errors: tuple[str, ...] = ()) -> dict[str, Any]:
        """The next event of one of `kinds`; an error whose code is in `errors` is returned, others raise."""
        async with asyncio.timeout(self.timeout_s):
            while True:
                event: dict[str, Any] = json.loads(await self.ws.recv())
                if event["type"] == "error":
                    if event["error"].get("code") in errors:
                        return event
                    raise RuntimeError(f"server error: {event['error']}")
                if event["type"] in kinds:
                    return event

    async def turn(self, audio_b64: str, ready: asyncio.Barrier | None = None) -> float:
        """Append, (wait for the others), commit with response.create; ms to the first audio delta."""
        await self.append(audio_b64)
        if ready is not None:
            await ready.wait()
        sent = time.perf_counter()
        await self.send({"type": "input_audio_buffer.commit"})
        await self.send({"type": "response.create"})
        await self.until("response.output_audio.delta")
        elapsed = (time.perf_counter() - sent) * 1000
        await self.until("response.done")
        return elapsed


async def _flood(connection: _Connection, audio_b64: str, full: asyncio.Event, counts: dict[str, int]) -> None:
    """Keep this session's share of the worker full of transcriptions until cancelled."""
    await connection.append(audio_b64)
    while True:
        await connection.send({"type": "input_audio_buffer.commit"})
        event = await connection.until("input_audio_buffer.committed", errors=("rate_limit_exceeded",))
        if event["type"] == "error":  # at its limit: the buffer is kept; commit it again once one is done
            counts["refused"] += 1
            full.set()
            await connection.until(
                "conversation.item.input_audio_transcription.completed",
                "conversation.item.input_audio_transcription.failed",
            )
            continue
        counts["committed"] += 1
        await connection.append(audio_b64)


async def measure_fairness(
    url: str,
    wav_path: str | Path,
    flood_wav_path: str | Path,
    n: int,
    *,
    sessions: int = 4,
    model: str = "default",
    token: str | None = None,
    timeout_s: float = 120.0,
) -> dict[str, Any]:
    """Commit -> first audio delta (ms) for one session alone, while another floods, and with `sessions` at once.

    * ``unloaded_ms``: `n` turns of the WAV on one connection, nothing else running.
    * ``flooded_ms``: the same while a second connection keeps as many
      transcriptions of `flood_wav_path` queued as the server lets it
      (``server.max_pending_per_session``; it commits again whenever one
      finishes); ``flooded_over_unloaded_p50`` is the ratio of the p50s.
    * ``concurrent_ms``: `sessions` connections commit the WAV at the same
      moment, `n` rounds; p50/p95 per session.
    """
    audio = base64.b64encode(pcm16(read_wav(wav_path, WIRE_RATE))).decode()
    flood_audio = base64.b64encode(pcm16(read_wav(flood_wav_path, WIRE_RATE))).decode()
    out: dict[str, Any] = {}
    async with _Connection.open(url, model, token, timeout_s) as alone:
        await alone.turn(audio)  # the first turn pays one-off costs; not counted
        out["unloaded_ms"] = percentiles([await alone.turn(audio) for _ in range(n)])
        counts = {"committed": 0, "refused": 0}
        async with _Connection.open(url, model, token, timeout_s) as flooder:
            full = asyncio.Event()
            flood = asyncio.create_task(_flood(flooder, flood_audio, full, counts), name="bench flood")
            try:
                async with asyncio.timeout(timeout_s):
                    await full.wait()
                flooded = [await alone.turn(audio) for _ in range(n)]
            finally:
                flood.cancel()
                await asyncio.wait([flood])
        out["flooded_ms"] = percentiles(flooded)
        out["flood_commits"], out["flood_refused"] = counts["committed"], counts["refused"]
    unloaded, loaded = out["unloaded_ms"]["p50"], out["flooded_ms"]["p50"]
    out["flooded_over_unloaded_p50"] = round(loaded / unloaded, 2) if unloaded and loaded else None
    logger.info("fairness: alone %s ms, beside a flood %s ms", unloaded, loaded)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(_Connection.open(url, model, token, timeout_s)) for _ in range(sessions)
        ]
        timings: list[list[float]] = [[] for _ in clients]
        for _ in range(n):
            ready = asyncio.Barrier(sessions)
            for index, elapsed in enumerate(await asyncio.gather(*(c.turn(audio, ready) for c in clients))):
                timings[index].append(elapsed)
    out["concurrent_ms"] = {f"session {i + 1}": percentiles(t) for i, t in enumerate(timings)}
    return out


async def fairness(
    config: Config,
    engines: Engines,
    request: Audio,
    folder: Path,
    turns: int,
    *,
    flood_wav: Path | None = None,
    sessions: int = 4,
) -> dict[str, Any]:
    """The fairness figures (`measure_fairness`) on a server of its own over `engines`, for scripts/bench.

    `request` is 16 kHz audio of one spoken request; the flood is `flood_wav`
    (the benchmark gives 11 s of real speech, jfk.wav) or, without one, the
    request repeated to 11 s.
    """
    from assistant.audio.wav import write_wav
    from assistant.realtime.server import RealtimeServer

    wav = folder / "fairness-request.wav"
    write_wav(wav, request)
    if flood_wav is None or not await asyncio.to_thread(flood_wav.is_file):
        flood_wav = folder / "fairness-flood.wav"
        write_wav(flood_wav, np.tile(request, int(np.ceil(11 * SAMPLE_RATE / max(len(request), 1)))))
    server_config = config.server.model_copy(update={"max_sessions": sessions + 2})
    config = config.model_copy(update={"server": server_config})
    async with RealtimeServer(config, engines).running("127.0.0.1", 0) as server:
        figures = await measure_fairness(server.url, wav, flood_wav, turns, sessions=sessions)
    figures["max_pending_per_session"] = config.server.max_pending_per_session
    return figures
