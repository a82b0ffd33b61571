"""Latency measurement against a running realtime server, for benchmark scripts."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from pathlib import Path

from assistant.audio.wav import read_wav
from assistant.realtime.client import endpoint
from assistant.realtime.protocol import WIRE_RATE, pcm16

log = logging.getLogger(__name__)


async def measure_commit_to_first_delta(url: str, wav_path: str | Path, n: int, *, model: str = "default",
                                        token: str | None = None, timeout_s: float = 60.0) -> list[float]:
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

        await ws.send(json.dumps({"type": "session.update", "session": {
            "type": "realtime", "audio": {"input": {"turn_detection": None}}}}))
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
            log.info("turn %d: commit to first audio delta %.0f ms", turn + 1, results[-1])
            await until("response.done")
    return results
