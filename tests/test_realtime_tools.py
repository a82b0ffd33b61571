"""Realtime function calling: the official openai SDK against a server with the device's skills (Ollama test server).

A client's functions go to the LLM beside the device's; a call of the client's ends
the response with a ``function_call`` item, its ``function_call_output`` goes back
into the conversation and ``response.create`` continues; a call of the device's runs
on the device inside the response. Every event is checked against the SDK's models.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openai import AsyncOpenAI

from assistant.config import SkillsConfig
from assistant.engines.bundle import Engines
from assistant.engines.llm_chain import build_llm
from assistant.realtime.server import RealtimeServer
from assistant.skills import Skills
from assistant.skills.matcher import IntentMatcher
from assistant.skills.store import StateFile
from assistant.testing.ollama_server import Behaviour, OllamaTestServer
from tests.test_realtime_support import (
    EVENT_TIMEOUT_S,
    EventAudit,
    event_audit,
    make_config,
    ollama,
    raw_client,
    rt_engines,
)

__all__ = ["event_audit", "ollama", "rt_engines"]

NOON = datetime(2025, 3, 4, 12, 0, tzinfo=ZoneInfo("Europe/Berlin"))
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city now.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
LIGHTS = {"type": "function", "name": "lights", "description": "Turn the lights on or off.", "parameters": None}
ASK = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather in Oslo?"}]}


@pytest.fixture
def skills(matcher: IntentMatcher, tmp_path: Path) -> Skills:
    return Skills(SkillsConfig(), StateFile.in_dir(tmp_path / "skills"), calendar=lambda: NOON, matcher=matcher)


@pytest.fixture
async def server(
    rt_engines: Engines,
    models_dir: Path,
    tmp_path: Path,
    ollama: OllamaTestServer,
    event_audit: EventAudit,
    skills: Skills,
) -> AsyncIterator[RealtimeServer]:
    """A server as `assistant run` has it: the device's skills on its audio clock (here 5 s)."""
    config = make_config(models_dir, tmp_path)
    config = config.model_copy(update={"llm": config.llm.model_copy(update={"host": ollama.url})})
    engines = dataclasses.replace(rt_engines, llm=build_llm(config.llm))
    try:
        async with RealtimeServer(config, engines, tools=skills, clock=lambda: 5.0).running("127.0.0.1", 0) as up:
            yield up
    finally:
        await engines.llm.aclose()


@asynccontextmanager
async def sdk(server: RealtimeServer) -> AsyncIterator[Any]:
    client = AsyncOpenAI(api_key="unused", websocket_base_url=server.url + "/v1")
    async with client.realtime.connect(model="gpt-realtime") as conn:
        assert (await conn.recv()).type == "session.created"
        yield conn


async def until(conn: Any, kind: str) -> list[Any]:
    events = []
    async with asyncio.timeout(EVENT_TIMEOUT_S):
        while True:
            events.append(await conn.recv())
            if events[-1].type == kind:
                return events


def of(events: list[Any], kind: str) -> list[Any]:
    return [e for e in events if e.type == kind]


def chats(ollama: OllamaTestServer) -> list[dict[str, Any]]:
    return [r.body for r in ollama.requests_to("/api/chat") if r.body.get("messages")]


def offered(body: dict[str, Any]) -> list[str]:
    return [tool["function"]["name"] for tool in body.get("tools") or []]


async def test_a_client_function_call_round_trip_with_the_sdk(
    server: RealtimeServer, ollama: OllamaTestServer, skills: Skills
) -> None:
    ollama.script(
        Behaviour(reply="Let me check.", tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}]),
        Behaviour(reply="It is sunny in Oslo."),
    )
    async with sdk(server) as conn:
        await conn.session.update(session={"type": "realtime", "tools": [WEATHER], "tool_choice": "auto"})
        session = (await until(conn, "session.updated"))[-1].session
        assert [t.name for t in session.tools] == ["get_weather"] and session.tool_choice == "auto"
        assert session.tools[0].parameters == WEATHER["parameters"]
        await conn.conversation.item.create(item=ASK)
        await conn.response.create()
        first = await until(conn, "response.done")
        call = of(first, "response.function_call_arguments.done")[0]
        await conn.conversation.item.create(
            item={"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "sunny"}'}
        )
        added = (await until(conn, "conversation.item.added"))[-1].item
        await conn.response.create()
        second = await until(conn, "response.done")
    # The first response: the spoken message, then the function call, and it completes.
    done = first[-1].response
    assert done.status == "completed"
    assert [o.type for o in done.output] == ["message", "function_call"]
    assert done.output[0].content[0].transcript == "Let me check."
    function = done.output[1]
    assert (function.name, function.arguments, function.status) == ("get_weather", '{"city":"Oslo"}', "completed")
    assert (call.name, call.arguments, call.item_id, call.output_index) == (
        "get_weather",
        '{"city":"Oslo"}',
        function.id,
        1,
    )
    assert function.call_id == call.call_id and call.call_id.startswith("call_")
    assert "".join(d.delta for d in of(first, "response.function_call_arguments.delta")) == call.arguments
    kinds = [e.type for e in first]
    audio_done = kinds.index("response.output_audio.done")
    added_call = [i for i, e in enumerate(first) if e.type == "response.output_item.added" and e.output_index == 1]
    assert audio_done < added_call[0] < kinds.index("response.function_call_arguments.done"), "message, then call"
    assert [e.item.type for e in of(first, "conversation.item.added")][-2:] == ["message", "function_call"]
    # The client's output joined the conversation, and the next response continued from it.
    assert (added.type, added.call_id, added.output) == ("function_call_output", call.call_id, '{"sky": "sunny"}')
    assert second[-1].response.status == "completed"
    assert second[-1].response.output[0].content[0].transcript == "It is sunny in Oslo."
    asked, answered = chats(ollama)
    assert offered(asked)[-1] == "get_weather" and "start_timer" in offered(asked), "the client's beside the device's"
    weather = next(t for t in asked["tools"] if t["function"]["name"] == "get_weather")
    assert weather["function"]["parameters"]["required"] == ["city"]
    assert answered["messages"][-3:] == [
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}],
        },
        {"role": "tool", "content": '{"sky": "sunny"}', "tool_name": "get_weather"},
    ]
    assert skills.call_tool("timer_status", {}, 5.0) == "You don't have any timers."


async def test_a_device_function_runs_on_the_device_inside_the_response(
    server: RealtimeServer, ollama: OllamaTestServer, skills: Skills
) -> None:
    ollama.script(
        Behaviour(tool_calls=[{"name": "start_timer", "arguments": {"duration_s": 600, "name": "pasta"}}]),
        Behaviour(reply="Your pasta timer is running."),
    )
    async with sdk(server) as conn:
        await conn.session.update(session={"type": "realtime", "tools": [WEATHER], "output_modalities": ["text"]})
        await until(conn, "session.updated")
        await conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Pasta, 10 min."}]}
        )
        await conn.response.create()
        events = await until(conn, "response.done")
    done = events[-1].response
    assert done.status == "completed" and [o.type for o in done.output] == ["message"]
    assert done.output[0].content[0].text == "Your pasta timer is running."
    assert not of(events, "response.function_call_arguments.done"), "the device's call is not the client's"
    assert "pasta timer" in skills.call_tool("timer_status", {}, 5.0).lower(), "the timer exists on the device"
    _, answered = chats(ollama)
    assert answered["messages"][-1] == {
        "role": "tool",
        "content": "Pasta timer set for 10 minutes.",
        "tool_name": "start_timer",
    }


async def test_a_device_call_beside_a_client_call_reaches_the_next_prompt(
    server: RealtimeServer, ollama: OllamaTestServer
) -> None:
    both = [
        {"name": "lights", "arguments": {"on": True}},
        {"name": "get_current_time", "arguments": {}},
        {"name": "dim", "arguments": {}},
    ]
    ollama.script(Behaviour(tool_calls=both), Behaviour(reply="Lights are on."))
    async with sdk(server) as conn:
        await conn.session.update(session={"type": "realtime", "tools": [LIGHTS], "output_modalities": ["text"]})
        await until(conn, "session.updated")
        await conn.conversation.item.create(item=ASK)
        await conn.response.create()
        first = (await until(conn, "response.done"))[-1].response
        assert [o.type for o in first.output] == ["function_call"], "no message: the reply only called"
        call = first.output[0]
        await conn.conversation.item.create(
            item={"type": "function_call_output", "call_id": call.call_id, "output": "done"}
        )
        await until(conn, "conversation.item.added")
        await conn.response.create()
        await until(conn, "response.done")
    asked, answered = chats(ollama)
    assert "dim" not in offered(asked)
    assert answered["messages"][:2] == asked["messages"], "the same conversation, continued"
    calls, device, client = answered["messages"][2:]
    assert calls["role"] == "assistant" and "content" not in calls  # the ollama client leaves an empty one out
    assert [c["function"]["name"] for c in calls["tool_calls"]] == ["get_current_time", "lights"]
    assert device["tool_name"] == "get_current_time" and device["content"].startswith("It's 12 PM")
    assert client == {"role": "tool", "content": "done", "tool_name": "lights"}


async def test_tool_choice_decides_what_the_llm_is_offered(server: RealtimeServer, ollama: OllamaTestServer) -> None:
    async with sdk(server) as conn:
        await conn.session.update(
            session={"type": "realtime", "tools": [WEATHER, LIGHTS], "output_modalities": ["text"]}
        )
        await until(conn, "session.updated")
        await conn.conversation.item.create(item=ASK)
        for response in (
            {"tool_choice": "none"},
            {"tool_choice": {"type": "function", "name": "lights"}},
            {"tool_choice": "required"},
            {"tools": []},
            {"tool_choice": {"type": "function", "name": "set_volume"}},
        ):
            ollama.script(Behaviour(reply="Ok."))
            await conn.response.create(response=response)
            assert (await until(conn, "response.done"))[-1].response.status == "completed"
        await conn.session.update(session={"tool_choice": {"type": "function", "name": "get_weather"}})
        chosen = (await until(conn, "session.updated"))[-1].session.tool_choice
        assert (chosen.type, chosen.name) == ("function", "get_weather")
    none, named, required, without_client, device_named = chats(ollama)
    assert offered(none) == []
    assert offered(named) == ["lights"] and "calling the function lights" in named["messages"][0]["content"]
    assert offered(required)[-2:] == ["get_weather", "lights"] and "start_timer" in offered(required)
    assert "calling one of the functions" in required["messages"][0]["content"]
    assert "get_weather" not in offered(without_client) and "start_timer" in offered(without_client)
    assert offered(device_named) == ["set_volume"]


async def test_the_beta_dialect_round_trip(server: RealtimeServer, ollama: OllamaTestServer) -> None:
    ollama.script(Behaviour(tool_calls=[{"name": "lights", "arguments": {"on": False}}]), Behaviour(reply="Dark."))
    async with raw_client(server.url, beta=True) as client:
        await client.send(
            {
                "type": "session.update",
                "session": {
                    "tools": [LIGHTS],
                    "tool_choice": {"type": "function", "function": {"name": "lights"}},
                    "modalities": ["text"],
                },
            }
        )
        session = (await client.until("session.updated"))[-1]["session"]
        assert session["tool_choice"] == "lights" and session["tools"][0]["name"] == "lights"
        await client.send({"type": "conversation.item.create", "item": ASK})
        await client.send({"type": "response.create", "response": {"tool_choice": "auto"}})
        events = await client.until("response.done")
        done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
        assert "name" not in done and json.loads(done["arguments"]) == {"on": False}
        await client.send(
            {
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": done["call_id"], "output": "off"},
            }
        )
        created = (await client.until("conversation.item.created"))[-1]["item"]
        assert created["type"] == "function_call_output"
        await client.send({"type": "response.create"})
        final = (await client.until("response.done"))[-1]["response"]
    assert final["status"] == "completed" and final["output"][0]["content"][0]["text"] == "Dark."
    assert chats(ollama)[-1]["messages"][-1] == {"role": "tool", "content": "off", "tool_name": "lights"}


async def test_a_cancelled_response_calls_nothing(server: RealtimeServer, ollama: OllamaTestServer) -> None:
    ollama.script(Behaviour(reply="Wait. " * 200, tokens_per_s=50, tool_calls=[{"name": "lights", "arguments": {}}]))
    async with sdk(server) as conn:
        await conn.session.update(session={"type": "realtime", "tools": [LIGHTS]})
        await until(conn, "session.updated")
        await conn.conversation.item.create(item=ASK)
        await conn.response.create()
        await until(conn, "response.output_audio.delta")
        await conn.response.cancel()
        events = await until(conn, "response.done")
    done = events[-1].response
    assert done.status == "cancelled" and [o.type for o in done.output] == ["message"]
    assert not of(events, "response.function_call_arguments.done")
