"""One session flooding the shared Whisper worker against another, through the real server and real engines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.audio.wav import read_wav
from assistant.realtime.protocol import WIRE_RATE
from assistant.realtime.server import RealtimeServer
from assistant.realtime.session import RealtimeSession
from tests.test_realtime_support import (
    REPLY,
    RawClient,
    b64_chunks,
    event_audit,
    ollama,
    question_audio,
    raw_client,
    rt_engines,
    server,
    sounds_like,
    start_server,
)

__all__ = ["event_audit", "ollama", "question_audio", "rt_engines", "server", "start_server"]

COMPLETED = "conversation.item.input_audio_transcription.completed"
JFK = "And so my fellow Americans ask not what your country can do for you ask what you can do for your country"


@pytest.fixture
def emitted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str | None]]:
    """Every event the server's sessions emit, in the server's own order: (GA type, item id)."""
    order: list[tuple[str, str | None]] = []
    original = RealtimeSession.emit

    def emit(self: RealtimeSession, ga_type: str, **fields: Any) -> None:
        order.append((ga_type, fields.get("item_id") or (fields.get("item") or {}).get("id")))
        original(self, ga_type, **fields)

    monkeypatch.setattr(RealtimeSession, "emit", emit)
    return order


async def append(client: RawClient, audio: np.ndarray) -> None:
    for chunk in b64_chunks(audio, chunk_ms=1000):
        await client.send({"type": "input_audio_buffer.append", "audio": chunk})


async def test_a_flooding_session_does_not_hold_another_up(
    server: RealtimeServer, audio_dir: Path, question_audio: np.ndarray, emitted: list[tuple[str, str | None]]
) -> None:
    long_clip = read_wav(audio_dir / "jfk.wav", WIRE_RATE)
    limit = server.config.server.max_pending_per_session
    manual = {"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}}}
    async with raw_client(server.url) as flood, raw_client(server.url) as other:
        for client in (flood, other):
            await client.send(manual)
            await client.until("session.updated")
        # The flooding session fills its share of the worker, and one more commit is refused.
        flood_items = []
        for _ in range(limit):
            await append(flood, long_clip)
            await flood.send({"type": "input_audio_buffer.commit"})
            flood_items.append((await flood.until("input_audio_buffer.committed"))[-1]["item_id"])
        await append(flood, long_clip)
        await flood.send({"type": "input_audio_buffer.commit", "event_id": "one_too_many"})
        error = await flood.error()
        assert (error["type"], error["code"], error["event_id"]) == (
            "invalid_request_error",
            "rate_limit_exceeded",
            "one_too_many",
        )
        assert "server.max_pending_per_session" in error["message"]
        # The other session's turn goes through while the flood is still queued.
        await append(other, question_audio)
        await other.send({"type": "input_audio_buffer.commit"})
        await other.send({"type": "response.create"})
        events = await other.until("response.done")
        other_item = next(e["item_id"] for e in events if e["type"] == "input_audio_buffer.committed")
        heard = next(e for e in events if e["type"] == COMPLETED)
        assert sounds_like(heard["transcript"]), heard
        assert events[-1]["response"]["status"] == "completed"
        assert events[-1]["response"]["output"][0]["content"][0]["transcript"] == REPLY
        # The refused commit kept its audio: once a transcription is done, committing again sends it.
        await flood.until(COMPLETED)
        await flood.send({"type": "input_audio_buffer.commit"})
        flood_items.append((await flood.until("input_audio_buffer.committed"))[-1]["item_id"])
        while len(transcripts := {e["item_id"]: e["transcript"] for e in flood.seen if e["type"] == COMPLETED}) < len(
            flood_items
        ):
            await flood.until(COMPLETED)
    assert all(sounds_like(text, JFK) for text in transcripts.values()), transcripts
    # In the server's own order: between the other session's commit and its transcript, at most the
    # flood's job already running finished (a FIFO would have finished all `limit` of them first).
    start = emitted.index(("input_audio_buffer.committed", other_item))
    end = emitted.index((COMPLETED, other_item))
    overtaken = [item for kind, item in emitted[start:end] if kind == COMPLETED and item in flood_items]
    assert len(overtaken) <= 1, (overtaken, flood_items)
