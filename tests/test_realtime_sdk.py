"""Conformance: the official openai SDK (GA dialect) against a real server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from openai import AsyncOpenAI

from assistant.realtime.server import RealtimeServer
from assistant.testing.ollama_server import Behaviour, OllamaTestServer
from tests.test_realtime_support import (
    EVENT_TIMEOUT_S,
    REPLY,
    VOICE,
    b64_chunks,
    chat_messages,
    decode_delta,
    event_audit,
    ollama,
    question_audio,
    rt_engines,
    server,
    silence,
    sounds_like,
    start_server,
)

__all__ = ["event_audit", "ollama", "question_audio", "rt_engines", "server", "start_server"]


@asynccontextmanager
async def sdk(server: RealtimeServer, api_key: str = "unused") -> AsyncIterator[Any]:
    client = AsyncOpenAI(api_key=api_key, websocket_base_url=server.url + "/v1")
    async with client.realtime.connect(model="gpt-realtime") as conn:
        created = await conn.recv()
        assert created.type == "session.created"
        yield conn


async def until(conn: Any, kind: str) -> list[Any]:
    events = []
    async with asyncio.timeout(EVENT_TIMEOUT_S):
        while True:
            event = await conn.recv()
            events.append(event)
            if event.type == kind:
                return events


def of(events: list[Any], kind: str) -> list[Any]:
    return [e for e in events if e.type == kind]


def speech_span_ms(audio: np.ndarray, level: float = 0.02) -> tuple[float, float]:
    """Where the speech in `audio` starts and ends (ms): the first and last 10 ms frame above `level` RMS."""
    frame = 240
    rms = np.sqrt(np.mean(audio[: len(audio) // frame * frame].reshape(-1, frame) ** 2, axis=1))
    loud = np.flatnonzero(rms > level)
    return loud[0] * 10.0, (loud[-1] + 1) * 10.0


async def test_full_turn_with_server_vad(
    server: RealtimeServer, question_audio: np.ndarray, ollama: OllamaTestServer
) -> None:
    async with sdk(server) as conn:
        await conn.session.update(
            session={
                "type": "realtime",
                "instructions": "Answer briefly.",
                "audio": {
                    "input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 500}},
                    "output": {"voice": VOICE},
                },
            }
        )
        updated = (await until(conn, "session.updated"))[-1]
        assert updated.session.instructions == "Answer briefly."
        assert updated.session.audio.output.voice == VOICE
        for chunk in b64_chunks(np.concatenate([silence(0.5), question_audio, silence(1.5)])):
            await conn.input_audio_buffer.append(audio=chunk)
        events = await until(conn, "response.done")
    kinds = [e.type for e in events]
    for kind in (
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_audio.delta",
        "response.output_audio_transcript.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
    ):
        assert kind in kinds, f"no {kind} in {kinds}"
    assert kinds.index("input_audio_buffer.speech_started") < kinds.index("input_audio_buffer.speech_stopped")
    heard = of(events, "conversation.item.input_audio_transcription.completed")[0].transcript
    assert sounds_like(heard), heard
    # OpenAI's definitions: the start includes prefix_padding_ms (300), the end silence_duration_ms (500).
    onset_ms, end_ms = speech_span_ms(question_audio)
    started = of(events, "input_audio_buffer.speech_started")[0]
    assert abs(started.audio_start_ms - (500 + onset_ms - 300)) <= 100, (started.audio_start_ms, onset_ms)
    stopped = of(events, "input_audio_buffer.speech_stopped")[0]
    assert abs(stopped.audio_end_ms - (500 + end_ms + 500)) <= 150, (stopped.audio_end_ms, end_ms)
    audio = np.concatenate([decode_delta(e.delta) for e in of(events, "response.output_audio.delta")])
    assert len(audio) > 24_000 and float(np.abs(audio).max()) > 0.05
    transcript = "".join(e.delta for e in of(events, "response.output_audio_transcript.delta"))
    assert transcript == of(events, "response.output_audio_transcript.done")[0].transcript == REPLY
    done = events[-1].response
    assert done.status == "completed"
    assert done.output[0].content[0].transcript == REPLY
    messages = chat_messages(ollama)[-1]
    assert messages[0] == {"role": "system", "content": "Answer briefly."}
    assert messages[-1] == {"role": "user", "content": heard}


async def test_manual_commit_text_and_options(
    server: RealtimeServer, question_audio: np.ndarray, ollama: OllamaTestServer
) -> None:
    async with sdk(server) as conn:
        await conn.session.update(
            session={"type": "realtime", "audio": {"input": {"turn_detection": None}}, "max_output_tokens": 42}
        )
        assert (await until(conn, "session.updated"))[-1].session.audio.input.turn_detection is None
        for chunk in b64_chunks(question_audio):
            await conn.input_audio_buffer.append(audio=chunk)
        await conn.input_audio_buffer.commit()
        events = await until(conn, "conversation.item.input_audio_transcription.completed")
        assert "input_audio_buffer.speech_started" not in [e.type for e in events]
        await conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "And of Spain?"}]}
        )
        await until(conn, "conversation.item.added")
        ollama.script(Behaviour(reply="Madrid."))
        await conn.response.create(response={"instructions": "Be terse."})
        events = await until(conn, "response.done")
    assert events[-1].response.status == "completed"
    assert "".join(e.delta for e in of(events, "response.output_audio_transcript.delta")) == "Madrid."
    request = [r.body for r in ollama.requests_to("/api/chat") if r.body.get("messages")][-1]
    assert [m["role"] for m in request["messages"]] == ["system", "user", "user"]
    assert request["messages"][0]["content"] == "Be terse." and sounds_like(request["messages"][1]["content"])
    assert request["messages"][2]["content"] == "And of Spain?"
    assert request["options"]["num_predict"] == 42


async def test_cancel_then_truncate_trims_history(server: RealtimeServer, ollama: OllamaTestServer) -> None:
    long_reply = " ".join(f"Sentence number {n} is here." for n in range(1, 40))
    ollama.script(Behaviour(reply=long_reply, tokens_per_s=100), Behaviour(reply="Fine."))
    async with sdk(server) as conn:
        await conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Count slowly."}]}
        )
        await conn.response.create()
        events = await until(conn, "response.output_audio.delta")
        item_id = of(events, "response.output_item.added")[0].item.id
        await conn.response.cancel()
        events += await until(conn, "response.done")
        assert events[-1].response.status == "cancelled"
        assert events[-1].response.status_details.reason == "client_cancelled"
        # The first chunk's audio: the deltas before the second transcript delta.
        first_chunk = 0
        for event in events[[e.type for e in events].index("response.output_audio_transcript.delta") + 1 :]:
            if event.type == "response.output_audio_transcript.delta":
                break
            if event.type == "response.output_audio.delta":
                first_chunk += len(decode_delta(event.delta))
        # The client had played half of the first sentence when the user interrupted.
        played_ms = first_chunk * 1000 // 24_000 // 2
        await conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=played_ms)
        truncated = (await until(conn, "conversation.item.truncated"))[-1]
        assert truncated.item_id == item_id and truncated.audio_end_ms == played_ms
        await conn.conversation.item.retrieve(item_id=item_id)
        item = (await until(conn, "conversation.item.retrieved"))[-1].item
        heard = item.content[0].transcript
        assert heard == "Sentence number"
        await conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Go on."}]}
        )
        await conn.response.create()
        await until(conn, "response.done")
    messages = chat_messages(ollama)[-1]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == heard
