"""The Ollama adapter, through the real `ollama` client, against the test server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistant.core.errors import (
    LlmFailed,
    LlmModelMissing,
    LlmStreamCut,
    LlmTimeout,
    LlmUnreachable,
)
from assistant.core.ports import Health, Message
from assistant.engines.llm import OllamaLanguageModel, normalise_host
from assistant.testing.ollama_server import Behaviour, OllamaTestServer, split_tokens

MODEL = "llama3.2:1b"
REPLY = "Sure! It's sunny, about 21 degrees, with a light breeze."
MESSAGES = [
    Message("system", "You are a helpful voice assistant."),
    Message("user", "What's the weather like?"),
]
WIRE = [{"role": m.role, "content": m.content} for m in MESSAGES]
LONG_REPLY = " ".join(["word"] * 400)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def srv() -> Iterator[OllamaTestServer]:
    with OllamaTestServer(models=[MODEL], reply=REPLY) as server:
        yield server


def make_llm(url: str, **kwargs: Any) -> OllamaLanguageModel:
    kwargs.setdefault("timeout_s", 5.0)
    return OllamaLanguageModel(url, kwargs.pop("model", MODEL), **kwargs)


async def collect(llm: OllamaLanguageModel, got: list[str] | None = None) -> list[str]:
    pieces = got if got is not None else []
    try:
        async with contextlib.aclosing(llm.stream(MESSAGES)) as stream:
            async for piece in stream:
                pieces.append(piece)
    finally:
        await llm.aclose()
    return pieces


def check(llm: OllamaLanguageModel) -> list[Health]:
    async def go() -> list[Health]:
        try:
            return await llm.health()
        finally:
            await llm.aclose()

    return asyncio.run(go())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- streaming ------------------------------------------------------------------------


def test_stream_yields_reply_pieces_in_order(srv: OllamaTestServer) -> None:
    srv.tokens_per_s = 500.0
    pieces = asyncio.run(collect(make_llm(srv.url)))
    assert pieces == split_tokens(REPLY)
    assert "".join(pieces) == REPLY
    rec = srv.wait_for_request("/api/chat")
    assert rec.wait_finished()
    assert rec.outcome == "done"
    assert rec.tokens_sent == len(pieces)


def test_request_carries_messages_options_and_keep_alive(srv: OllamaTestServer) -> None:
    llm = make_llm(srv.url, options={"temperature": 0.2, "num_ctx": 2048}, keep_alive="10m")
    asyncio.run(collect(llm))
    body = srv.wait_for_request("/api/chat").body
    assert body["model"] == MODEL
    assert body["messages"] == WIRE
    assert body["stream"] is True
    assert body["options"] == {"temperature": 0.2, "num_ctx": 2048}
    assert body["keep_alive"] == "10m"


def test_numeric_keep_alive_arrives_as_a_number(srv: OllamaTestServer) -> None:
    asyncio.run(collect(make_llm(srv.url, keep_alive=-1)))
    assert srv.wait_for_request("/api/chat").body["keep_alive"] == -1


def test_warm_sends_the_prefix_with_the_same_options(srv: OllamaTestServer) -> None:
    llm = make_llm(srv.url, options={"temperature": 0.2}, keep_alive="30m")

    async def go() -> None:
        try:
            await llm.warm(MESSAGES[:1])
        finally:
            await llm.aclose()

    asyncio.run(go())
    rec = srv.wait_for_request("/api/chat")
    assert rec.body["messages"] == WIRE[:1]
    assert rec.body["options"] == {"temperature": 0.2, "num_predict": 1}
    assert rec.body["keep_alive"] == "30m"
    assert rec.body["stream"] is False
    assert rec.outcome == "done"
    assert rec.tokens_sent == 1
    assert llm.options == {"temperature": 0.2}  # not mutated by warm


def test_warm_without_messages_is_a_load_request(srv: OllamaTestServer) -> None:
    llm = make_llm(srv.url)

    async def go() -> None:
        try:
            await llm.warm([])
        finally:
            await llm.aclose()

    asyncio.run(go())
    rec = srv.wait_for_request("/api/chat")
    assert "messages" not in rec.body or rec.body["messages"] == []
    assert rec.outcome == "load"


def test_warm_never_raises(srv: OllamaTestServer, caplog: pytest.LogCaptureFixture) -> None:
    missing = make_llm(srv.url, model="nope:1b")
    unreachable = make_llm(f"http://127.0.0.1:{free_port()}")

    async def go() -> None:
        for llm in (missing, unreachable):
            try:
                await llm.warm(MESSAGES)
            finally:
                await llm.aclose()

    with caplog.at_level(logging.WARNING, logger="assistant.engines.llm"):
        asyncio.run(go())
    codes = [r.getMessage() for r in caplog.records]
    assert any("llm_model_missing" in m for m in codes)
    assert any("llm_unreachable" in m for m in codes)


# --- failures ---------------------------------------------------------------------------


def test_missing_model_raises_model_missing_with_pull_hint(srv: OllamaTestServer) -> None:
    with pytest.raises(LlmModelMissing) as info:
        asyncio.run(collect(make_llm(srv.url, model="nope:1b")))
    assert "ollama pull nope:1b" in str(info.value)
    assert info.value.code == "llm_model_missing"


def test_nothing_listening_raises_unreachable() -> None:
    with pytest.raises(LlmUnreachable):
        asyncio.run(collect(make_llm(f"http://127.0.0.1:{free_port()}")))


def test_no_answer_raises_timeout_and_drops_the_connection(srv: OllamaTestServer) -> None:
    srv.script(Behaviour(hang=True))
    with pytest.raises(LlmTimeout):
        asyncio.run(collect(make_llm(srv.url, timeout_s=0.3)))
    rec = srv.wait_for_request("/api/chat")
    assert rec.wait_finished()
    assert rec.outcome == "client_gone"


def test_stall_mid_stream_raises_timeout_after_the_pieces_that_came(srv: OllamaTestServer) -> None:
    srv.script(Behaviour(stall_after_tokens=2))
    got: list[str] = []
    with pytest.raises(LlmTimeout):
        asyncio.run(collect(make_llm(srv.url, timeout_s=0.3), got))
    assert got == split_tokens(REPLY)[:2]


def test_connection_cut_mid_stream_raises_stream_cut(srv: OllamaTestServer) -> None:
    srv.script(Behaviour(cut_after_tokens=3))
    got: list[str] = []
    with pytest.raises(LlmStreamCut):
        asyncio.run(collect(make_llm(srv.url), got))
    assert got == split_tokens(REPLY)[:3]
    assert srv.wait_for_request("/api/chat").outcome == "cut"


def test_stream_ending_without_done_chunk_raises_stream_cut(srv: OllamaTestServer) -> None:
    srv.script(Behaviour(omit_done=True))
    got: list[str] = []
    with pytest.raises(LlmStreamCut):
        asyncio.run(collect(make_llm(srv.url), got))
    assert "".join(got) == REPLY


def test_server_error_raises_failed(srv: OllamaTestServer) -> None:
    srv.script(Behaviour(status=500, error="llama runner process has terminated"))
    with pytest.raises(LlmFailed) as info:
        asyncio.run(collect(make_llm(srv.url)))
    assert "llama runner process has terminated" in str(info.value)
    assert "500" in str(info.value)


def test_error_line_mid_stream_raises_failed(srv: OllamaTestServer) -> None:
    srv.script(Behaviour(stream_error="out of memory"))
    with pytest.raises(LlmFailed, match="out of memory"):
        asyncio.run(collect(make_llm(srv.url)))


# --- closing ----------------------------------------------------------------------------


def test_cancelling_the_consumer_closes_the_connection(srv: OllamaTestServer) -> None:
    srv.reply, srv.tokens_per_s = LONG_REPLY, 40.0  # ten seconds of tokens
    llm = make_llm(srv.url)

    async def go() -> None:
        first = asyncio.Event()

        async def consume() -> None:
            async for _ in llm.stream(MESSAGES):
                first.set()

        task = asyncio.create_task(consume())
        try:
            await asyncio.wait_for(first.wait(), 5.0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # Still inside the loop: the close must not wait for loop teardown.
            rec = srv.wait_for_request("/api/chat")
            assert await asyncio.to_thread(rec.wait_finished, 5.0)
        finally:
            await llm.aclose()

    asyncio.run(go())
    rec = srv.wait_for_request("/api/chat")
    assert rec.outcome == "client_gone"
    assert 0 < rec.tokens_sent < len(split_tokens(LONG_REPLY))


def test_leaving_the_stream_early_closes_the_connection(srv: OllamaTestServer) -> None:
    srv.reply, srv.tokens_per_s = LONG_REPLY, 40.0
    llm = make_llm(srv.url)

    async def go() -> None:
        try:
            async with contextlib.aclosing(llm.stream(MESSAGES)) as stream:
                async for _ in stream:
                    break
            rec = srv.wait_for_request("/api/chat")
            assert await asyncio.to_thread(rec.wait_finished, 5.0)
        finally:
            await llm.aclose()

    asyncio.run(go())
    assert srv.wait_for_request("/api/chat").outcome == "client_gone"


# --- check ------------------------------------------------------------------------------


def test_check_all_ok(srv: OllamaTestServer) -> None:
    rows = check(make_llm(srv.url))
    assert [(r.part, r.ok) for r in rows] == [("llm.server", True), ("llm.model", True)]
    assert "0." in rows[0].detail


def test_check_model_missing(srv: OllamaTestServer) -> None:
    rows = check(make_llm(srv.url, model="qwen2.5:1.5b"))
    assert [(r.part, r.ok) for r in rows] == [("llm.server", True), ("llm.model", False)]
    assert rows[1].fix == "ollama pull qwen2.5:1.5b"
    assert MODEL in rows[1].detail


def test_check_server_unreachable() -> None:
    rows = check(make_llm(f"http://127.0.0.1:{free_port()}"))
    assert [(r.part, r.ok) for r in rows] == [("llm.server", False), ("llm.model", False)]
    assert "llm.host" in rows[0].fix
    assert rows[1].fix == f"ollama pull {MODEL}"


def test_check_default_tag_matches_latest() -> None:
    with OllamaTestServer(models=["qwen2.5"]) as server:
        rows = check(make_llm(server.url, model="qwen2.5:latest"))
    assert all(r.ok for r in rows)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("", "http://127.0.0.1:11434"),
        ("localhost", "http://localhost:11434"),
        ("http://10.0.0.2:8080/", "http://10.0.0.2:8080"),
        ("https://ollama.lan", "https://ollama.lan:443"),
    ],
)
def test_normalise_host(given: str, expected: str) -> None:
    assert normalise_host(given) == expected


# --- the test server itself, through raw httpx --------------------------------------------


def test_server_tags_show_version_and_ps(srv: OllamaTestServer) -> None:
    with httpx.Client(base_url=srv.url, trust_env=False) as http:
        assert http.get("/").text == "Ollama is running"
        assert isinstance(http.get("/api/version").json()["version"], str)
        (model,) = http.get("/api/tags").json()["models"]
        assert model["name"] == model["model"] == MODEL
        assert {"modified_at", "size", "digest", "details"} <= set(model)
        shown = http.post("/api/show", json={"model": MODEL}).json()
        assert {"details", "model_info", "template", "parameters", "capabilities"} <= set(shown)
        missing = http.post("/api/show", json={"model": "nope"})
        assert missing.status_code == 404
        assert missing.json() == {"error": "model 'nope' not found"}
        assert http.get("/api/ps").json() == {"models": []}
        http.post("/api/chat", json={"model": MODEL, "messages": []})
        assert [m["model"] for m in http.get("/api/ps").json()["models"]] == [MODEL]


def test_server_streams_ndjson_chat_and_generate(srv: OllamaTestServer) -> None:
    with httpx.Client(base_url=srv.url, trust_env=False) as http:
        for path, key in (("/api/chat", "messages"), ("/api/generate", "prompt")):
            body: dict[str, Any] = {"model": MODEL, key: WIRE if key == "messages" else "Hi"}
            with http.stream("POST", path, json=body) as response:
                assert response.headers["content-type"] == "application/x-ndjson"
                lines = [json.loads(line) for line in response.iter_lines() if line]
            *parts, final = lines
            texts = [p["message"]["content"] if key == "messages" else p["response"] for p in parts]
            assert "".join(texts) == REPLY
            assert all(p["done"] is False and p["model"] == MODEL and "created_at" in p for p in parts)
            if key == "messages":
                assert all(p["message"]["role"] == "assistant" for p in parts)
            assert final["done"] is True
            assert final["done_reason"] == "stop"
            assert final["eval_count"] == len(parts)
            for stat in (
                "total_duration",
                "load_duration",
                "prompt_eval_count",
                "prompt_eval_duration",
                "eval_duration",
            ):
                assert isinstance(final[stat], int)


def test_server_non_streaming_load_and_errors(srv: OllamaTestServer) -> None:
    with httpx.Client(base_url=srv.url, trust_env=False) as http:
        whole = http.post("/api/chat", json={"model": MODEL, "messages": WIRE, "stream": False}).json()
        assert whole["message"] == {"role": "assistant", "content": REPLY}
        assert whole["done"] is True
        limited = http.post(
            "/api/generate", json={"model": MODEL, "prompt": "Hi", "stream": False, "options": {"num_predict": 2}}
        ).json()
        assert (limited["response"], limited["done_reason"]) == ("".join(split_tokens(REPLY)[:2]), "length")
        load = http.post("/api/generate", json={"model": MODEL}).json()
        assert (load["response"], load["done"], load["done_reason"]) == ("", True, "load")
        missing = http.post("/api/chat", json={"model": "x", "messages": WIRE})
        assert missing.status_code == 404
        assert missing.json() == {"error": 'model "x" not found, try pulling it first'}
        bad = http.post("/api/chat", content=b"{not json")
        assert bad.status_code == 400
        assert "error" in bad.json()
    assert [r.path for r in srv.requests][-1] == "/api/chat"
    assert srv.requests[0].headers["content-type"] == "application/json"


def test_server_stops_promptly_with_hung_and_streaming_clients() -> None:
    server = OllamaTestServer(models=[MODEL]).start()
    server.script(Behaviour(hang=True), Behaviour(stall_after_tokens=1))
    failures: list[BaseException] = []

    def call() -> None:
        try:
            with (
                httpx.Client(base_url=server.url, trust_env=False, timeout=30.0) as http,
                http.stream("POST", "/api/chat", json={"model": MODEL, "messages": WIRE}) as response,
            ):
                for _ in response.iter_lines():
                    pass
        except httpx.HTTPError as exc:
            failures.append(exc)

    threads = [threading.Thread(target=call, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    server.wait_for_request("/api/chat", index=1)
    server.stop(timeout=5.0)
    for thread in threads:
        thread.join(10.0)
        assert not thread.is_alive()
    assert len(failures) == 2
    assert {r.outcome for r in server.requests} == {"stopped"}


def test_server_runs_as_a_module() -> None:
    server = "assistant.testing.ollama_server"
    command = [sys.executable, "-m", server, "--port", "0", "--ttft-ms", "0", "--reply", "Hi there."]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line.startswith("listening on http://127.0.0.1:")
            url = line.removeprefix("listening on ")
            with httpx.Client(base_url=url, trust_env=False, timeout=10.0) as http:
                assert http.get("/").text == "Ollama is running"
                reply = http.post("/api/chat", json={"model": MODEL, "messages": WIRE, "stream": False})
                assert reply.json()["message"]["content"] == "Hi there."
                records = http.get("/_test/requests").json()
            assert [r["path"] for r in records] == ["/", "/api/chat"]
            assert records[1]["tokens_sent"] == 3
            assert records[1]["finished_at"] >= records[1]["received_at"]
        finally:
            proc.terminate()
            assert proc.wait(10.0) == 0
