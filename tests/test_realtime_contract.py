"""The wire contract: the SDK's models, refused fields, usage, rate limits, out-of-band replies, cut streams."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from assistant.realtime.protocol import Dialect
from assistant.realtime.server import RealtimeServer
from assistant.testing.ollama_server import Behaviour, OllamaTestServer, split_tokens
from tests.test_realtime_support import (
    REPLY,
    VOICE,
    b64_chunks,
    chat_messages,
    check_event,
    decode_delta,
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


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


def test_the_contract_check_catches_mismatches() -> None:
    good = {"type": "input_audio_buffer.cleared", "event_id": "event_1"}
    assert check_event(good).model_dump()["event_id"] == "event_1"
    bad: list[tuple[dict[str, Any], Dialect, str]] = [
        ({**good, "extra": 1}, Dialect.GA, "does not have: ['extra']"),
        ({"type": "response.done", "event_id": "e"}, Dialect.GA, "response"),
        ({"type": "no.such.event", "event_id": "e"}, Dialect.GA, "no ga server event"),
        ({"type": "conversation.item.done", "event_id": "e", "item": {}}, Dialect.BETA, "no beta server event"),
        (
            {
                "type": "response.content_part.added",
                "event_id": "e",
                "response_id": "r",
                "item_id": "i",
                "output_index": 0,
                "content_index": 0,
                "part": {"type": "output_audio"},
            },
            Dialect.GA,
            "part.type",
        ),
        (
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "event_id": "e",
                "item_id": "i",
                "content_index": 0,
                "transcript": "x",
            },
            Dialect.GA,
            "usage",
        ),
    ]
    for event, dialect, needle in bad:
        with pytest.raises(AssertionError, match=needle.replace("[", r"\[").replace("]", r"\]")):
            check_event(event, dialect)


REFUSED: list[tuple[dict[str, Any], str, str]] = [
    (
        {"type": "session.update", "session": {"tools": [{"type": "mcp", "server_label": "deepwiki"}]}},
        "unsupported_parameter",
        "session.tools[0].type",
    ),
    (
        {"type": "session.update", "session": {"tool_choice": {"type": "mcp", "server_label": "deepwiki"}}},
        "unsupported_parameter",
        "session.tool_choice",
    ),
    (
        {"type": "session.update", "session": {"tool_choice": {"type": "function", "name": "nowhere"}}},
        "invalid_value",
        "session.tool_choice",
    ),
    (
        {"type": "session.update", "session": {"tools": [{"type": "function", "name": "f", "strict": True}]}},
        "unknown_parameter",
        "session.tools[0].strict",
    ),
    (
        {"type": "session.update", "session": {"tools": [{"type": "function", "name": "no spaces"}]}},
        "invalid_value",
        "session.tools[0].name",
    ),
    (
        {"type": "session.update", "session": {"tools": [{"name": "f", "parameters": {"type": "string"}}]}},
        "invalid_value",
        "session.tools[0].parameters.type",
    ),
    (
        {"type": "session.update", "session": {"audio": {"output": {"voice": "nova"}}}},
        "unsupported_voice",
        "session.audio.output.voice",
    ),
    ({"type": "session.update", "session": {"voice": "fable"}}, "unsupported_voice", "session.voice"),
    (
        {"type": "session.update", "session": {"audio": {"output": {"speed": 1.5}}}},
        "unsupported_parameter",
        "session.audio.output.speed",
    ),
    ({"type": "session.update", "session": {"speed": 0.8}}, "unsupported_parameter", "session.speed"),
    (
        {"type": "session.update", "session": {"audio": {"input": {"noise_reduction": {"type": "near_field"}}}}},
        "unsupported_parameter",
        "session.audio.input.noise_reduction",
    ),
    ({"type": "session.update", "session": {"tracing": "auto"}}, "unsupported_parameter", "session.tracing"),
    ({"type": "session.update", "session": {"truncation": "disabled"}}, "unsupported_parameter", "session.truncation"),
    ({"type": "session.update", "session": {"prompt": {"id": "pmpt_1"}}}, "unsupported_parameter", "session.prompt"),
    (
        {"type": "session.update", "session": {"include": ["item.input_audio_transcription.logprobs"]}},
        "unsupported_parameter",
        "session.include",
    ),
    ({"type": "session.update", "session": {"model": "llama3.2:1b"}}, "unsupported_parameter", "session.model"),
    ({"type": "session.update", "session": {"type": "transcription"}}, "unsupported_parameter", "session.type"),
    (
        {"type": "session.update", "session": {"audio": {"input": {"turn_detection": {"idle_timeout_ms": 5000}}}}},
        "unsupported_parameter",
        "session.audio.input.turn_detection.idle_timeout_ms",
    ),
    (
        {"type": "session.update", "session": {"audio": {"input": {"transcription": {"language": "de"}}}}},
        "unsupported_parameter",
        "session.audio.input.transcription.language",
    ),
    (
        {"type": "session.update", "session": {"input_audio_transcription": {"prompt": "names: Zoë"}}},
        "unsupported_parameter",
        "session.input_audio_transcription.prompt",
    ),
    ({"type": "session.update", "session": {"colour": "blue"}}, "unknown_parameter", "session.colour"),
    ({"type": "session.update", "session": {}, "extra": 1}, "unknown_parameter", "extra"),
    (
        {"type": "response.create", "response": {"tools": [{"type": "mcp", "server_label": "deepwiki"}]}},
        "unsupported_parameter",
        "response.tools[0].type",
    ),
    (
        {"type": "response.create", "response": {"tool_choice": "sometimes"}},
        "invalid_value",
        "response.tool_choice",
    ),
    (
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": "call_nowhere", "output": "{}"},
        },
        "invalid_value",
        "item.call_id",
    ),
    (
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call", "name": "f", "call_id": "call_1", "arguments": "not json"},
        },
        "invalid_value",
        "item.arguments",
    ),
    (
        {"type": "response.create", "response": {"audio": {"output": {"voice": "onyx"}}}},
        "unsupported_voice",
        "response.audio.output.voice",
    ),
    ({"type": "response.create", "response": {"metadata": {"k": 5}}}, "invalid_value", "response.metadata"),
    (
        {
            "type": "response.create",
            "response": {
                "input": [{"type": "message", "role": "user", "content": [{"type": "input_audio", "audio": ""}]}]
            },
        },
        "unsupported_parameter",
        "response.input[0].content",
    ),
    (
        {"type": "response.create", "response": {"input": [{"type": "item_reference", "id": "nope"}]}},
        "item_not_found",
        "response.input[0].id",
    ),
    ({"type": "response.create", "response": {"seed": 1}}, "unknown_parameter", "response.seed"),
    (
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "name": "bob",
                "content": [{"type": "input_text", "text": "x"}],
            },
        },
        "unknown_parameter",
        "item.name",
    ),
    ({"type": "input_audio_buffer.commit", "force": True}, "unknown_parameter", "force"),
]


async def test_every_unsupported_field_gets_an_error_naming_it(server: RealtimeServer) -> None:
    async with raw_client(server.url) as client:
        for event, code, param in REFUSED:
            await client.send({**event, "event_id": "ev"})
            error = await client.error()
            assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, param), event
            assert param.rsplit(".", 1)[-1] in error["message"] and error["event_id"] == "ev", error
            if code == "unsupported_voice":
                assert VOICE in error["message"]
        # What the server does implement, or values that ask for nothing, are accepted.
        await client.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "model": "gpt-realtime",
                    "tools": [],
                    "tool_choice": "auto",
                    "tracing": None,
                    "truncation": "auto",
                    "include": [],
                    "audio": {"output": {"voice": VOICE, "speed": 1.0}, "input": {"noise_reduction": None}},
                },
            }
        )
        session = (await client.until("session.updated"))[-1]["session"]
        assert session["audio"]["output"]["voice"] == VOICE
    assert not [e for e in client.seen if e["type"] == "response.created"]


async def test_usage_rate_limits_and_transcription_events(
    server: RealtimeServer, question_audio: np.ndarray, ollama: OllamaTestServer
) -> None:
    async with raw_client(server.url) as client:
        await client.send(
            {
                "type": "session.update",
                "session": {
                    "audio": {
                        "input": {"turn_detection": None, "transcription": {"model": "whisper-1", "language": "en"}}
                    }
                },
            }
        )
        await client.until("session.updated")
        for chunk in b64_chunks(question_audio):
            await client.send({"type": "input_audio_buffer.append", "audio": chunk})
        await client.send({"type": "input_audio_buffer.commit"})
        events = await client.until("conversation.item.input_audio_transcription.completed")
        await client.send({"type": "response.create"})
        events += await client.until("response.done")
    delta = of(events, "conversation.item.input_audio_transcription.delta")
    completed = of(events, "conversation.item.input_audio_transcription.completed")[0]
    assert len(delta) == 1 and delta[0]["delta"] == completed["transcript"] and sounds_like(completed["transcript"])
    assert completed["usage"] == {"type": "duration", "seconds": round(len(question_audio) / 24_000, 3)}
    kinds = [e["type"] for e in events]
    assert kinds.index("response.created") < kinds.index("rate_limits.updated") < kinds.index("response.done")
    request = [r for r in ollama.requests_to("/api/chat") if r.body.get("messages")][-1]
    usage = events[-1]["response"]["usage"]
    assert usage["output_tokens"] == request.tokens_sent == len(split_tokens(REPLY))
    # The test server counts the prompt's words as Ollama's prompt_eval_count.
    prompt = " ".join(m["content"] for m in request.body["messages"])
    assert usage["input_tokens"] == len(split_tokens(prompt))
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["input_token_details"]["text_tokens"] == usage["input_tokens"]
    parts = of(events, "response.content_part.added") + of(events, "response.content_part.done")
    assert [p["part"]["type"] for p in parts] == ["audio", "audio"]
    assert of(events, "response.output_item.done")[0]["item"]["content"][0]["type"] == "output_audio"


async def test_out_of_band_reply_with_input_and_metadata(server: RealtimeServer, ollama: OllamaTestServer) -> None:
    async with raw_client(server.url, beta=True) as client:
        await client.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "id": "item_kept",
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "kept"}],
                },
            }
        )
        await client.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "not in the prompt"}],
                },
            }
        )
        await client.until("conversation.item.created")
        await client.until("conversation.item.created")
        ollama.script(Behaviour(reply="Sorted."))
        await client.send(
            {
                "type": "response.create",
                "response": {
                    "conversation": "none",
                    "modalities": ["text"],
                    "metadata": {"purpose": "classify"},
                    "instructions": "Classify.",
                    "input": [
                        {"type": "item_reference", "id": "item_kept"},
                        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Only this."}]},
                    ],
                },
            }
        )
        events = await client.until("response.done")
        response = events[-1]["response"]
        assert response["status"] == "completed" and response["metadata"] == {"purpose": "classify"}
        assert response["conversation_id"] is None
        assert "conversation.item.created" not in [e["type"] for e in events]
        await client.send({"type": "conversation.item.retrieve", "item_id": response["output"][0]["id"]})
        assert (await client.error())["code"] == "item_not_found"
    assert chat_messages(ollama)[-1] == [
        {"role": "system", "content": "Classify."},
        {"role": "user", "content": "kept"},
        {"role": "user", "content": "Only this."},
    ]
    assert "".join(e["delta"] for e in events if e["type"] == "response.text.delta") == "Sorted."


async def test_a_cut_stream_still_speaks_what_arrived(server: RealtimeServer, ollama: OllamaTestServer) -> None:
    tokens = split_tokens(REPLY)
    cut = len(split_tokens("The capital of France is Paris, a city on the river Seine. It is"))
    ollama.script(Behaviour(reply=REPLY, cut_after_tokens=cut))
    async with raw_client(server.url) as client:
        await client.send(
            {
                "type": "conversation.item.create",
                "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Tell me."}]},
            }
        )
        await client.send({"type": "response.create"})
        events = await client.until("response.done")
    arrived = "".join(tokens[:cut]).strip()
    spoken = " ".join(e["delta"].strip() for e in of(events, "response.output_audio_transcript.delta"))
    assert spoken == arrived == of(events, "response.output_audio_transcript.done")[0]["transcript"]
    assert of(events, "response.output_audio_transcript.delta")[-1]["delta"].strip() == "It is"  # the fragment
    audio = np.concatenate([decode_delta(e["delta"]) for e in of(events, "response.output_audio.delta")])
    assert len(audio) > 24_000 and float(np.abs(audio).max()) > 0.05
    error = of(events, "error")[0]["error"]
    assert error["code"] == "llm_stream_cut" and error["type"] == "server_error"
    done = events[-1]["response"]
    assert done["status"] == "failed" and done["status_details"]["error"]["code"] == "llm_stream_cut"
    assert done["output"][0]["status"] == "incomplete" and done["output"][0]["content"][0]["transcript"] == arrived
    assert json.dumps(done)  # plain JSON all the way down
