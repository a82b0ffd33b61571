"""Conformance in the beta dialect (raw WebSocket + OpenAI-Beta header), bad input, limits and tokens."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket

import numpy as np
import pytest
import websockets
from openai import AsyncOpenAI
from websockets.exceptions import ConnectionClosed, InvalidStatus

from assistant.core.errors import ConfigError
from assistant.realtime.server import RealtimeServer
from assistant.testing.ollama_server import Behaviour, OllamaTestServer
from tests.test_realtime_support import (
    EVENT_TIMEOUT_S,
    REPLY,
    VOICE,
    ServerFactory,
    b64_chunks,
    chat_messages,
    event_audit,
    ollama,
    question_audio,
    raw_client,
    rt_engines,
    server,
    silence,
    sounds_like,
    start_server,
)

__all__ = ["event_audit", "ollama", "question_audio", "rt_engines", "server", "start_server"]

GA_ONLY = {
    "conversation.item.added",
    "conversation.item.done",
    "response.output_audio.delta",
    "response.output_audio_transcript.delta",
    "response.output_audio.done",
}


async def wait_sessions(server: RealtimeServer, count: int) -> None:
    async with asyncio.timeout(EVENT_TIMEOUT_S):
        await server.wait_for_sessions(count)


async def test_beta_dialect_manual_turn(
    server: RealtimeServer, question_audio: np.ndarray, ollama: OllamaTestServer
) -> None:
    async with raw_client(server.url, beta=True) as client:
        assert client.seen[0]["session"]["input_audio_format"] == "pcm16"
        await client.send(
            {
                "type": "session.update",
                "session": {
                    "turn_detection": None,
                    "voice": VOICE,
                    "input_audio_transcription": {"model": "whisper-1"},
                    "temperature": 0.6,
                    "max_response_output_tokens": 64,
                },
            }
        )
        session = (await client.until("session.updated"))[-1]["session"]
        assert session["turn_detection"] is None and session["voice"] == VOICE
        for chunk in b64_chunks(question_audio):
            await client.send({"type": "input_audio_buffer.append", "audio": chunk})
        await client.send({"type": "input_audio_buffer.commit"})
        await client.send({"type": "response.create"})
        events = await client.until("response.done")
    kinds = [e["type"] for e in events]
    assert not GA_ONLY & set(kinds), kinds
    for kind in (
        "input_audio_buffer.committed",
        "conversation.item.created",
        "response.audio.delta",
        "response.audio_transcript.delta",
        "response.audio.done",
        "response.audio_transcript.done",
        "conversation.item.input_audio_transcription.completed",
    ):
        assert kind in kinds, f"no {kind} in {kinds}"
    transcribed = next(e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed")
    assert sounds_like(transcribed["transcript"]), transcribed
    done = events[-1]["response"]
    assert done["status"] == "completed" and done["output"][0]["content"][0] == {"type": "audio", "transcript": REPLY}
    request = [r.body for r in ollama.requests_to("/api/chat") if r.body.get("messages")][-1]
    assert request["options"] == {"temperature": 0.6, "num_predict": 64}


async def test_barge_in_cancels_the_reply(
    server: RealtimeServer, question_audio: np.ndarray, ollama: OllamaTestServer
) -> None:
    long_reply = " ".join(f"Sentence number {n} is here." for n in range(1, 60))
    ollama.script(Behaviour(reply=long_reply, tokens_per_s=50), Behaviour(reply="Second answer."))
    turn = np.concatenate([question_audio, silence(1.0)])
    async with raw_client(server.url, beta=True) as client:
        for chunk in b64_chunks(turn):
            await client.send({"type": "input_audio_buffer.append", "audio": chunk})
        await client.until("response.audio.delta")
        for chunk in b64_chunks(turn):
            await client.send({"type": "input_audio_buffer.append", "audio": chunk})
        events = await client.until("response.done")
        assert "input_audio_buffer.speech_started" in [e["type"] for e in events]
        assert events[-1]["response"]["status"] == "cancelled"
        assert events[-1]["response"]["status_details"]["reason"] == "turn_detected"
        events = await client.until("response.done")
        assert events[-1]["response"]["status"] == "completed"
    messages = chat_messages(ollama)[-1]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert long_reply.startswith(messages[2]["content"])


async def test_item_delete_and_retrieve(server: RealtimeServer, ollama: OllamaTestServer) -> None:
    async with raw_client(server.url) as client:
        for text in ("first", "second"):
            await client.send(
                {
                    "type": "conversation.item.create",
                    "item": {
                        "id": f"item_{text}",
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": text}],
                    },
                }
            )
            await client.until("conversation.item.done")
        await client.send({"type": "conversation.item.delete", "item_id": "item_first"})
        assert (await client.until("conversation.item.deleted"))[-1]["item_id"] == "item_first"
        await client.send({"type": "conversation.item.retrieve", "item_id": "item_second", "event_id": "r1"})
        item = (await client.until("conversation.item.retrieved"))[-1]["item"]
        assert item["content"] == [{"type": "input_text", "text": "second"}]
        await client.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
        events = await client.until("response.done")
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == REPLY
    assert chat_messages(ollama)[-1][1:] == [{"role": "user", "content": "second"}]


BAD_EVENTS: list[tuple[str | bytes, str, str | None]] = [
    ("{not json", "invalid_json", None),
    ('["a", "list"]', "invalid_event", None),
    (json.dumps({"type": "no.such.event", "event_id": "e1"}), "unknown_event", "type"),
    (json.dumps({"event_id": "e2"}), "missing_required_parameter", "type"),
    (json.dumps({"type": "input_audio_buffer.append", "event_id": "e3"}), "missing_required_parameter", "audio"),
    (json.dumps({"type": "input_audio_buffer.append", "audio": "!!not base64!!"}), "invalid_audio", "audio"),
    (
        json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"abc").decode()}),
        "invalid_audio",
        "audio",
    ),
    (json.dumps({"type": "input_audio_buffer.append", "audio": 12}), "invalid_type", "audio"),
    (json.dumps({"type": "input_audio_buffer.commit"}), "input_audio_buffer_commit_empty", None),
    (
        json.dumps({"type": "session.update", "session": {"turn_detection": {"type": "bogus_vad"}}}),
        "unsupported_turn_detection",
        "session.turn_detection.type",
    ),
    (json.dumps({"type": "session.update", "session": {"temperature": "hot"}}), "invalid_type", "session.temperature"),
    (
        json.dumps({"type": "session.update", "session": {"audio": {"input": {"format": {"type": "audio/pcmu"}}}}}),
        "unsupported_audio_format",
        "session.audio.input.format",
    ),
    (
        json.dumps(
            {
                "type": "conversation.item.create",
                "item": {"type": "message", "role": "robot", "content": [{"type": "input_text", "text": "x"}]},
            }
        ),
        "invalid_value",
        "item.role",
    ),
    (
        json.dumps({"type": "conversation.item.create", "item": {"type": "image"}}),
        "unsupported_item_type",
        "item.type",
    ),
    (
        json.dumps({"type": "conversation.item.create", "item": {"type": "function_call"}}),
        "missing_required_parameter",
        "item.name",
    ),
    (
        json.dumps({"type": "conversation.item.truncate", "item_id": "nope", "audio_end_ms": 5}),
        "item_not_found",
        "item_id",
    ),
    (json.dumps({"type": "conversation.item.delete"}), "missing_required_parameter", "item_id"),
    (json.dumps({"type": "response.cancel"}), "response_cancel_not_active", None),
    (
        json.dumps({"type": "response.create", "response": {"max_output_tokens": 0}}),
        "invalid_value",
        "response.max_output_tokens",
    ),
    (b"\x00\x01binary", "invalid_event", None),
]


async def test_bad_input_gets_errors_and_the_session_goes_on(server: RealtimeServer) -> None:
    async with raw_client(server.url) as client:
        for message, code, param in BAD_EVENTS:
            await client.send(message)
            error = await client.error()
            assert (error["code"], error["param"]) == (code, param), (message, error)
            assert error["type"] == "invalid_request_error" and error["message"]
            if isinstance(message, str) and '"event_id"' in message:
                assert error["event_id"] == json.loads(message)["event_id"]
        await client.send({"type": "session.update", "session": {"instructions": "still here"}})
        assert (await client.until("session.updated"))[-1]["session"]["instructions"] == "still here"


async def test_active_response_and_buffer_limit(start_server: ServerFactory, ollama: OllamaTestServer) -> None:
    ollama.script(Behaviour(reply=REPLY, tokens_per_s=5))
    async with start_server(max_buffer_s=1.0) as running, raw_client(running.url) as client:
        await client.send({"type": "session.update", "session": {"turn_detection": None}})
        await client.until("session.updated")
        await client.send({"type": "response.create"})
        await client.until("response.created")
        await client.send({"type": "response.create", "event_id": "again"})
        error = await client.error()
        assert error["code"] == "conversation_already_has_active_response" and error["event_id"] == "again"
        await client.send({"type": "response.cancel"})
        assert (await client.until("response.done"))[-1]["response"]["status"] == "cancelled"
        chunks = list(b64_chunks(silence(1.2)))
        for chunk in chunks[:10]:
            await client.send({"type": "input_audio_buffer.append", "audio": chunk})
        await client.send({"type": "input_audio_buffer.append", "audio": chunks[10]})
        error = await client.error()
        assert error["code"] == "input_audio_buffer_full" and "server.max_buffer_s" in error["message"]
        await client.send({"type": "input_audio_buffer.clear"})
        await client.until("input_audio_buffer.cleared")


async def test_oversized_message_closes_only_that_session(start_server: ServerFactory) -> None:
    async with start_server(max_message_bytes=4096) as running, raw_client(running.url) as other:
        async with raw_client(running.url) as client:
            await client.send(json.dumps({"type": "input_audio_buffer.append", "audio": "A" * 8192}))
            with pytest.raises(ConnectionClosed) as closed:
                await client.until("never")
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        await other.send({"type": "session.update", "session": {"instructions": "fine"}})
        assert (await other.until("session.updated"))[-1]["session"]["instructions"] == "fine"


def ws_frame(text: str) -> bytes:
    """One masked WebSocket text frame, as a client sends it."""
    payload = text.encode()
    size = len(payload)
    head = bytes([0x81]) + (
        bytes([0x80 | size])
        if size < 126
        else bytes([0x80 | 126]) + size.to_bytes(2, "big")
        if size < 65536
        else bytes([0x80 | 127]) + size.to_bytes(8, "big")
    )
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def test_a_client_that_stops_reading_is_dropped(server: RealtimeServer) -> None:
    # A hand-made client on a socket with a tiny receive buffer that never reads after the handshake.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /v1/realtime HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    await wait_sessions(server, 1)
    big = "x" * 200_000
    writer.write(
        ws_frame(
            json.dumps(
                {
                    "type": "conversation.item.create",
                    "item": {
                        "id": "item_big",
                        "type": "message",
                        "role": "system",
                        "content": [{"type": "input_text", "text": big}],
                    },
                }
            )
        )
    )
    retrieve = ws_frame(json.dumps({"type": "conversation.item.retrieve", "item_id": "item_big"}))
    # Ask for the big item over and over without reading: the server's queue fills and it drops us.
    with pytest.raises(ConnectionError):
        async with asyncio.timeout(EVENT_TIMEOUT_S):
            while True:
                writer.write(retrieve)
                await writer.drain()
    writer.close()
    await wait_sessions(server, 0)
    async with raw_client(server.url) as again:
        await again.send({"type": "session.update", "session": {}})
        await again.until("session.updated")


async def test_session_limit(start_server: ServerFactory) -> None:
    async with start_server(max_sessions=1) as running:
        async with raw_client(running.url):
            with pytest.raises(InvalidStatus) as refused:
                async with raw_client(running.url):
                    pass
            assert refused.value.response.status_code == 503
            assert b"too many sessions" in refused.value.response.body
        await wait_sessions(running, 0)
        async with raw_client(running.url):
            pass


async def test_token_required_off_loopback(start_server: ServerFactory) -> None:
    with pytest.raises(ConfigError, match=r"server\.token"):
        async with start_server(host="0.0.0.0"):
            pass
    async with start_server(host="0.0.0.0", token="s3cret") as running:
        url = f"ws://127.0.0.1:{running.port}"
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            with pytest.raises(InvalidStatus) as refused:
                async with raw_client(url, headers=headers):
                    pass
            assert refused.value.response.status_code == 401
        async with raw_client(url, subprotocols=["realtime", "openai-insecure-api-key.s3cret"]) as client:
            assert client.ws.subprotocol == "realtime"
        client_sdk = AsyncOpenAI(api_key="s3cret", websocket_base_url=url + "/v1")
        async with client_sdk.realtime.connect(model="gpt-realtime") as conn:
            assert (await conn.recv()).type == "session.created"


async def test_page_and_unknown_paths(server: RealtimeServer) -> None:
    import httpx

    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient(base_url=base, trust_env=False) as http:
        page = await http.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert (await http.get("/app.js")).status_code == 200
        assert (await http.get("/../pyproject.toml")).status_code == 404
        assert (await http.get("/v1/realtime")).status_code == 426
    with pytest.raises(InvalidStatus):
        async with websockets.connect(server.url.replace("ws://", "ws://") + "/elsewhere"):
            pass
