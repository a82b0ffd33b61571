"""Tool calling through the real `ollama` client against the test server, with the device's real skills."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from assistant.config import SkillsConfig
from assistant.core.errors import LlmFailed
from assistant.core.ports import LlmOptions, Message, TokenUsage, ToolCall
from assistant.engines.llm import MAX_TOOL_ROUNDS, OllamaLanguageModel
from assistant.skills import Skills
from assistant.skills.matcher import IntentMatcher
from assistant.skills.store import StateFile
from assistant.testing.ollama_server import Behaviour, OllamaTestServer, RecordedRequest, split_tokens

MODEL = "qwen3:1.7b"
QUESTION = [Message("system", "You are a kitchen speaker."), Message("user", "How long until my pasta is done?")]
NOON = datetime(2025, 3, 4, 12, 0, tzinfo=ZoneInfo("Europe/Berlin"))


@pytest.fixture
def srv() -> Iterator[OllamaTestServer]:
    with OllamaTestServer(models=[MODEL, "gemma3:1b"], no_tools=["gemma3:1b"], reply="Plain text.") as server:
        yield server


@pytest.fixture
def skills(matcher: IntentMatcher, tmp_path: Path) -> Skills:
    return Skills(SkillsConfig(), StateFile.in_dir(tmp_path), calendar=lambda: NOON, matcher=matcher)


def device_tools(skills: Skills, **extra: Any) -> LlmOptions:
    async def call(tool: ToolCall) -> str:
        return skills.call_tool(tool.name, tool.arguments, 0.0)

    return LlmOptions(tools=skills.tools(), call_tool=call, **extra)


def run(server: OllamaTestServer, options: LlmOptions | None, model: str = MODEL, times: int = 1) -> list[str]:
    async def go() -> list[str]:
        llm = OllamaLanguageModel(server.url, model, timeout_s=5.0)
        pieces: list[str] = []
        try:
            for _ in range(times):
                async with contextlib.aclosing(llm.stream(QUESTION, options)) as stream:
                    pieces += [piece async for piece in stream]
        finally:
            await llm.aclose()
        return pieces

    return asyncio.run(go())


def chats(server: OllamaTestServer) -> list[RecordedRequest]:
    return server.requests_to("/api/chat")


def sent_back(request: RecordedRequest) -> list[dict[str, Any]]:
    """The messages a request added after the question: the assistant's calls and the tool results."""
    messages: list[dict[str, Any]] = request.body["messages"]
    return messages[len(QUESTION) :]


def timer_status(skills: Skills) -> str:
    return skills.call_tool("timer_status", {}, 1.0)


def test_a_call_is_run_and_its_result_goes_back_as_a_tool_message(srv: OllamaTestServer, skills: Skills) -> None:
    srv.script(
        Behaviour(tool_calls=[{"name": "start_timer", "arguments": {"duration_s": 600, "name": "pasta"}}]),
        Behaviour(reply="Your pasta will be done in ten minutes."),
    )
    usage: list[TokenUsage] = []
    assert "".join(run(srv, device_tools(skills, on_usage=usage.append))) == "Your pasta will be done in ten minutes."
    first, second = chats(srv)
    offered = [tool["function"]["name"] for tool in first.body["tools"]]
    assert offered == [tool["function"]["name"] for tool in skills.tools()] and "start_timer" in offered
    assert first.body["tools"][1]["function"]["parameters"]["required"] == ["duration_s"]
    call = {"function": {"name": "start_timer", "arguments": {"duration_s": 600, "name": "pasta"}}}
    assert sent_back(second) == [
        {"role": "assistant", "tool_calls": [call]},  # the ollama client leaves an empty content out
        {"role": "tool", "content": "Pasta timer set for 10 minutes.", "tool_name": "start_timer"},
    ]
    assert second.body["tools"] == first.body["tools"], "the second request may call tools again"
    assert "pasta" in timer_status(skills).lower(), "the timer really exists"
    (counts,) = usage  # one report for the whole reply: both requests' tokens
    assert counts.output_tokens > len(split_tokens("Your pasta will be done in ten minutes."))


def test_several_calls_in_one_reply_each_get_their_result_in_order(srv: OllamaTestServer, skills: Skills) -> None:
    srv.script(
        Behaviour(
            reply="Setting both. ",
            tool_calls=[
                {"name": "start_timer", "arguments": {"duration_s": 480, "name": "pasta"}},
                {"name": "start_timer", "arguments": {"duration_s": 1200, "name": "rice"}},
            ],
        ),
        Behaviour(reply="Both timers are running."),
    )
    assert "".join(run(srv, device_tools(skills))) == "Setting both. Both timers are running."
    assistant, *results = sent_back(chats(srv)[1])
    assert assistant["content"] == "Setting both. "
    assert [c["function"]["arguments"]["name"] for c in assistant["tool_calls"]] == ["pasta", "rice"]
    assert results == [
        {"role": "tool", "content": "Pasta timer set for 8 minutes.", "tool_name": "start_timer"},
        {"role": "tool", "content": "Rice timer set for 20 minutes.", "tool_name": "start_timer"},
    ]
    status = timer_status(skills).lower()
    assert "pasta" in status and "rice" in status


def test_bad_arguments_are_answered_to_the_model_as_errors(srv: OllamaTestServer, skills: Skills) -> None:
    srv.script(
        Behaviour(
            tool_calls=[
                {"name": "start_timer", "arguments": {"duration_s": "ten minutes"}},
                {"name": "start_timer", "arguments": {"duration_s": -300}},
                {"name": "set_alarm", "arguments": {"time": "25:00"}},
                {"name": "boil_water", "arguments": {}},
                {"name": "set_volume", "arguments": {"level_pct": 50, "loud": True}},
            ]
        ),
        Behaviour(reply="Sorry, I could not set that."),
    )
    assert "".join(run(srv, device_tools(skills))) == "Sorry, I could not set that."
    results = [m["content"] for m in sent_back(chats(srv)[1])[1:]]
    assert len(results) == 5 and all(r.startswith("error: ") for r in results), results
    assert "duration_s" in results[0] and "'ten minutes'" in results[0]
    assert "greater than 0" in results[1]
    assert "25:00" in results[2]
    assert "unknown tool 'boil_water'" in results[3] and "start_timer" in results[3]
    assert "loud" in results[4]
    assert timer_status(skills) == "You don't have any timers."
    assert skills.call_tool("list_alarms", {}, 1.0) == "You don't have any alarms."


def test_a_tool_that_raises_is_answered_as_an_error(srv: OllamaTestServer) -> None:
    async def broken(call: ToolCall) -> str:
        raise RuntimeError("the mixer is gone")

    tools = [{"type": "function", "function": {"name": "set_volume", "parameters": {"type": "object"}}}]
    srv.script(Behaviour(tool_calls=[{"name": "set_volume", "arguments": {}}]), Behaviour(reply="No luck."))
    assert "".join(run(srv, LlmOptions(tools=tools, call_tool=broken))) == "No luck."
    assert sent_back(chats(srv)[1])[1]["content"] == "error: set_volume failed: the mixer is gone"


def test_a_model_without_tool_support_is_asked_again_without_them_once(
    srv: OllamaTestServer, skills: Skills, caplog: pytest.LogCaptureFixture
) -> None:
    srv.script(Behaviour(reply="I can only talk."), Behaviour(reply="Still only talk."))
    with caplog.at_level(logging.WARNING, logger="assistant.engines.llm"):
        pieces = run(srv, device_tools(skills), model="gemma3:1b", times=2)
    assert "".join(pieces) == "I can only talk.Still only talk."
    refused, asked, again = chats(srv)
    assert refused.outcome == "error" and refused.body["tools"]
    assert not asked.body.get("tools") and not again.body.get("tools"), "not sent again to that model"
    assert asked.body["messages"] == refused.body["messages"]
    warnings = [r.getMessage() for r in caplog.records if "does not support tools" in r.getMessage()]
    assert len(warnings) == 1, warnings


def test_the_server_answers_ollamas_error_for_a_model_without_tools(srv: OllamaTestServer) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    with httpx.Client(base_url=srv.url, trust_env=False) as http:
        body = {"model": "gemma3:1b", "messages": [{"role": "user", "content": "hi"}]}
        refused = http.post("/api/chat", json={**body, "tools": tools})
        assert refused.status_code == 400
        assert refused.json() == {"error": "registry.ollama.ai/library/gemma3:1b does not support tools"}
        assert http.post("/api/chat", json={**body, "tools": [], "stream": False}).status_code == 200
        assert http.post("/api/show", json={"model": "gemma3:1b"}).json()["capabilities"] == ["completion"]
        assert http.post("/api/show", json={"model": MODEL}).json()["capabilities"] == ["completion", "tools"]


def test_the_server_sends_tool_calls_streamed_and_whole(srv: OllamaTestServer) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    calls = [{"name": "f", "arguments": {"x": 1}}, {"name": "g", "arguments": {"y": "two"}}]
    wire = [
        {"function": {"index": 0, "name": "f", "arguments": {"x": 1}}},
        {"function": {"index": 1, "name": "g", "arguments": {"y": "two"}}},
    ]
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "tools": tools}
    with httpx.Client(base_url=srv.url, trust_env=False) as http:
        srv.script(Behaviour(reply="One moment.", tool_calls=calls))
        with http.stream("POST", "/api/chat", json=body) as response:
            lines = [json.loads(line) for line in response.iter_lines() if line]
        *texts, with_calls, final = lines
        assert "".join(p["message"]["content"] for p in texts) == "One moment."
        assert all("tool_calls" not in p["message"] for p in texts)
        assert with_calls["message"] == {"role": "assistant", "content": "", "tool_calls": wire}
        assert with_calls["done"] is False and final["done"] is True and final["done_reason"] == "stop"
        assert final["message"] == {"role": "assistant", "content": ""}
        srv.script(Behaviour(tool_calls=calls))
        whole = http.post("/api/chat", json={**body, "stream": False}).json()
        assert whole["message"] == {"role": "assistant", "content": "", "tool_calls": wire} and whole["done"]
        srv.script(Behaviour(tool_calls=calls))  # no tools offered: the model can only answer in text
        plain = http.post("/api/chat", json={**body, "tools": [], "stream": False}).json()
        assert plain["message"] == {"role": "assistant", "content": "Plain text."}


def test_a_model_that_keeps_calling_tools_is_stopped(
    srv: OllamaTestServer, skills: Skills, caplog: pytest.LogCaptureFixture
) -> None:
    ask_time = Behaviour(tool_calls=[{"name": "get_current_time", "arguments": {}}])
    srv.script(*[ask_time] * (MAX_TOOL_ROUNDS + 3))
    with caplog.at_level(logging.WARNING, logger="assistant.engines.llm"), pytest.raises(LlmFailed, match="rounds"):
        run(srv, device_tools(skills))
    requests = chats(srv)
    assert len(requests) == MAX_TOOL_ROUNDS + 1
    results = [m for m in sent_back(requests[-1]) if m["role"] == "tool"]
    assert len(results) == MAX_TOOL_ROUNDS and results[0]["content"].startswith("It's 12 PM")
    assert any("get_current_time" in r.getMessage() and "giving up" in r.getMessage() for r in caplog.records)


def test_a_call_handed_on_ends_the_reply_after_its_round(srv: OllamaTestServer) -> None:
    handed: list[ToolCall] = []

    async def client_side(call: ToolCall) -> str | None:
        handed.append(call)
        return None

    tools = [{"type": "function", "function": {"name": "lights", "parameters": {"type": "object"}}}]
    srv.script(Behaviour(reply="Turning them on.", tool_calls=[{"name": "lights", "arguments": {"on": True}}]))
    assert "".join(run(srv, LlmOptions(tools=tools, call_tool=client_side))) == "Turning them on."
    assert handed == [ToolCall("lights", {"on": True})]
    assert len(chats(srv)) == 1, "no new request: someone else answers the call"


def test_without_call_tool_the_calls_are_not_run(srv: OllamaTestServer) -> None:
    tools = [{"type": "function", "function": {"name": "lights", "parameters": {"type": "object"}}}]
    srv.script(Behaviour(reply="Hm.", tool_calls=[{"name": "lights", "arguments": {}}]))
    assert "".join(run(srv, LlmOptions(tools=tools))) == "Hm."
    assert len(chats(srv)) == 1


def test_warm_sends_the_tools_and_learns_a_model_has_none(srv: OllamaTestServer, skills: Skills) -> None:
    async def go(model: str) -> None:
        llm = OllamaLanguageModel(srv.url, model, timeout_s=5.0)
        try:
            await llm.try_warm(QUESTION[:1], device_tools(skills))
            await llm.try_warm(QUESTION[:1], device_tools(skills))
        finally:
            await llm.aclose()

    asyncio.run(go(MODEL))
    assert [len(r.body["tools"]) for r in chats(srv)] == [len(skills.tools())] * 2
    asyncio.run(go("gemma3:1b"))
    refused, *rest = chats(srv)[2:]
    assert refused.outcome == "error" and [r.outcome for r in rest] == ["done", "done"]
    assert all(not r.body.get("tools") for r in rest)
