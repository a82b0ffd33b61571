"""The fallback chain against real (loopback) Ollama servers that fail, stop and come back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from assistant.config import LlmConfig, LlmFallbackConfig
from assistant.core.errors import LlmStreamCut, LlmUnreachable, TurnError
from assistant.core.ports import LlmOptions, Message, ToolCall
from assistant.engines.llm import OllamaLanguageModel
from assistant.engines.llm_chain import LlmChain, build_llm
from assistant.events import Event, LlmFallback, LlmHostDown, LlmHostUp
from assistant.testing.ollama_server import Behaviour, Blackhole, OllamaTestServer, split_tokens

PRIMARY_MODEL, FALLBACK_MODEL = "llama3.1:8b", "llama3.2:1b"
PRIMARY_REPLY, FALLBACK_REPLY = "The big model answers.", "The small model answers."
MESSAGES = [Message("system", "You are terse."), Message("user", "Who answers?")]


class Ticks:
    """The chain's background checks wait here; the test lets each one run with `tick`."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[None] = asyncio.Queue()

    async def sleep(self, seconds: float) -> None:
        await self.queue.get()

    def tick(self) -> None:
        self.queue.put_nowait(None)


class Recorder:
    """Collects the chain's events; `wait_for` waits on one with a timeout."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(self, kind: type[Event], count: int = 1, within_s: float = 5.0) -> None:
        async with asyncio.timeout(within_s):
            while len(self.of(kind)) < count:
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def primary() -> Iterator[OllamaTestServer]:
    with OllamaTestServer(models=[PRIMARY_MODEL], reply=PRIMARY_REPLY) as server:
        yield server


@pytest.fixture
def fallback() -> Iterator[OllamaTestServer]:
    with OllamaTestServer(models=[FALLBACK_MODEL], reply=FALLBACK_REPLY) as server:
        yield server


def host(url: str, model: str, **kwargs: Any) -> OllamaLanguageModel:
    kwargs.setdefault("timeout_s", 5.0)
    kwargs.setdefault("connect_timeout_s", 1.0)
    return OllamaLanguageModel(url, model, **kwargs)


@contextlib.asynccontextmanager
async def chain_of(*hosts: OllamaLanguageModel) -> AsyncIterator[tuple[LlmChain, Recorder, Ticks]]:
    ticks, recorder = Ticks(), Recorder()
    chain = LlmChain(hosts, recheck_s=1.0, sleep=ticks.sleep)
    chain.subscribe(recorder, lambda: 0.0)
    try:
        yield chain, recorder, ticks
    finally:
        await chain.aclose()


async def ask(chain: LlmChain, options: LlmOptions | None = None, got: list[str] | None = None) -> str:
    pieces = got if got is not None else []
    async with contextlib.aclosing(chain.stream(MESSAGES, options)) as stream:
        async for piece in stream:
            pieces.append(piece)
    return "".join(pieces)


def chats(server: OllamaTestServer) -> list[Any]:
    return [r for r in server.requests_to("/api/chat") if r.body and r.body.get("messages")]


# --- the primary goes away: the fallback answers the same request ------------------------


async def test_refused_primary_falls_back_and_is_remembered(
    primary: OllamaTestServer, fallback: OllamaTestServer
) -> None:
    primary.stop()  # the port now refuses connections
    async with chain_of(host(primary.url, PRIMARY_MODEL), host(fallback.url, FALLBACK_MODEL)) as (chain, rec, _):
        assert await ask(chain) == FALLBACK_REPLY
        (down,) = rec.of(LlmHostDown)
        assert (down.host, down.model, down.code, down.primary) == (primary.url, PRIMARY_MODEL, "llm_unreachable", True)
        (used,) = rec.of(LlmFallback)
        assert (used.host, used.model, used.reason) == (fallback.url, FALLBACK_MODEL, "llm_unreachable")
        primary.start()  # back, but nothing has checked it yet
        assert await ask(chain) == FALLBACK_REPLY
        assert chats(primary) == [], "a host known to be down is not asked again"
        assert len(rec.of(LlmFallback)) == 2, "every answer from a fallback is counted"


async def test_background_check_brings_the_primary_back(primary: OllamaTestServer, fallback: OllamaTestServer) -> None:
    primary.stop()
    async with chain_of(host(primary.url, PRIMARY_MODEL), host(fallback.url, FALLBACK_MODEL)) as (chain, rec, ticks):
        assert await ask(chain) == FALLBACK_REPLY
        primary.start()
        ticks.tick()
        await rec.wait_for(LlmHostUp)
        (up,) = rec.of(LlmHostUp)
        assert (up.host, up.primary) == (primary.url, True)
        assert await ask(chain) == PRIMARY_REPLY
        assert len(rec.of(LlmFallback)) == 1
        assert [r.path for r in primary.requests][:1] == ["/api/tags"], "the check lists the models"


async def test_primary_that_accepts_no_connection_gives_up_after_connect_timeout(fallback: OllamaTestServer) -> None:
    with Blackhole() as hole:
        primary = host(hole.url, PRIMARY_MODEL, connect_timeout_s=0.2)
        async with chain_of(primary, host(fallback.url, FALLBACK_MODEL)) as (chain, rec, _):
            assert await ask(chain) == FALLBACK_REPLY
    assert [e.code for e in rec.of(LlmHostDown)] == ["llm_unreachable"]


@pytest.mark.parametrize(
    ("behaviour", "code"),
    [
        (Behaviour(status=500, error="llama runner process has terminated"), "llm_failed"),
        (Behaviour(status=503, error="server busy"), "llm_failed"),
        (Behaviour(hang=True), "llm_timeout"),
        (Behaviour(cut_after_tokens=0), "llm_stream_cut"),
    ],
)
async def test_primary_failing_before_its_first_token_falls_back(
    primary: OllamaTestServer, fallback: OllamaTestServer, behaviour: Behaviour, code: str
) -> None:
    primary.script(behaviour)
    hosts = host(primary.url, PRIMARY_MODEL, timeout_s=0.5), host(fallback.url, FALLBACK_MODEL)
    async with chain_of(*hosts) as (chain, rec, ticks):
        assert await ask(chain) == FALLBACK_REPLY
        assert [e.code for e in rec.of(LlmHostDown)] == [code]
        ticks.tick()  # the primary is healthy again (the failure was one request)
        await rec.wait_for(LlmHostUp)
        assert await ask(chain) == PRIMARY_REPLY


async def test_model_missing_on_the_primary_until_it_is_pulled(fallback: OllamaTestServer) -> None:
    with OllamaTestServer(models=[], reply=PRIMARY_REPLY) as primary:
        async with chain_of(host(primary.url, PRIMARY_MODEL), host(fallback.url, FALLBACK_MODEL)) as (
            chain,
            rec,
            ticks,
        ):
            assert await ask(chain) == FALLBACK_REPLY
            assert [e.code for e in rec.of(LlmHostDown)] == ["llm_model_missing"]
            ticks.tick()
            await asyncio.to_thread(primary.wait_for_request, "/api/tags")
            primary.models.append(PRIMARY_MODEL)  # `ollama pull`
            ticks.tick()
            await rec.wait_for(LlmHostUp)
            assert await ask(chain) == PRIMARY_REPLY


# --- the primary dies mid-answer ----------------------------------------------------------------


async def test_primary_killed_mid_answer_fails_that_reply_then_the_fallback_answers(
    primary: OllamaTestServer, fallback: OllamaTestServer
) -> None:
    primary.script(Behaviour(stop_server_after_tokens=2))
    async with chain_of(host(primary.url, PRIMARY_MODEL), host(fallback.url, FALLBACK_MODEL)) as (chain, rec, ticks):
        got: list[str] = []
        with pytest.raises(LlmStreamCut):
            await ask(chain, got=got)
        assert got == split_tokens(PRIMARY_REPLY)[:2], "what came before the cut was passed on"
        assert await asyncio.to_thread(primary.wait_stopped)
        assert [e.code for e in rec.of(LlmHostDown)] == ["llm_stream_cut"]
        assert await ask(chain) == FALLBACK_REPLY, "the next request goes to the fallback"
        primary.start()  # systemd restarted it
        ticks.tick()
        await rec.wait_for(LlmHostUp)
        assert await ask(chain) == PRIMARY_REPLY
        assert primary.is_loaded(PRIMARY_MODEL)


async def test_single_host_restarted_mid_answer_recovers_without_a_restart_of_ours(
    primary: OllamaTestServer,
) -> None:
    primary.script(Behaviour(stop_server_after_tokens=1))
    async with chain_of(host(primary.url, PRIMARY_MODEL)) as (chain, rec, _):
        with pytest.raises(LlmStreamCut):
            await ask(chain)
        assert await asyncio.to_thread(primary.wait_stopped)
        with pytest.raises(LlmUnreachable):
            await ask(chain)  # still down: refused, and the turn says so
        primary.start()
        assert await ask(chain) == PRIMARY_REPLY, "with no other host the down one is asked anyway"
        assert [e.primary for e in rec.of(LlmHostUp)] == [True]


async def test_every_host_down_raises_the_last_error(primary: OllamaTestServer, fallback: OllamaTestServer) -> None:
    fallback.script(Behaviour(status=500, error="out of memory"))
    primary.stop()
    async with chain_of(host(primary.url, PRIMARY_MODEL), host(fallback.url, FALLBACK_MODEL)) as (chain, rec, _):
        with pytest.raises(TurnError, match="out of memory"):
            await ask(chain)
        assert {e.host for e in rec.of(LlmHostDown)} == {primary.url, fallback.url}
        assert await ask(chain) == FALLBACK_REPLY, "down hosts are still the last resort"


# --- warm-up, options, health ---------------------------------------------------------------------


async def test_warm_finds_the_primary_gone_and_warms_the_fallback(
    primary: OllamaTestServer, fallback: OllamaTestServer
) -> None:
    primary.stop()
    async with chain_of(host(primary.url, PRIMARY_MODEL), host(fallback.url, FALLBACK_MODEL)) as (chain, rec, _):
        await chain.warm(MESSAGES[:1])
        assert [e.code for e in rec.of(LlmHostDown)] == ["llm_unreachable"]
        (warm,) = fallback.requests_to("/api/chat")
        assert warm.body["options"] == {"num_predict": 1}
        assert await ask(chain) == FALLBACK_REPLY
        assert primary.requests == [], "the request went straight to the fallback"


async def test_warm_loads_the_model_on_a_restarted_server(primary: OllamaTestServer) -> None:
    async with chain_of(host(primary.url, PRIMARY_MODEL)) as (chain, _, _):
        assert await ask(chain) == PRIMARY_REPLY
        primary.restart()
        assert not primary.is_loaded(PRIMARY_MODEL)
        await chain.warm(MESSAGES[:1])
        assert primary.is_loaded(PRIMARY_MODEL)
        assert await ask(chain) == PRIMARY_REPLY, "the pooled connection from before the restart is not reused"


async def test_per_request_options_go_with_the_request(primary: OllamaTestServer, fallback: OllamaTestServer) -> None:
    primary.models.append("qwen2.5:1.5b")
    hosts = (
        host(primary.url, PRIMARY_MODEL, options={"num_ctx": 2048}),
        host(fallback.url, FALLBACK_MODEL, options={"num_ctx": 2048}),
    )
    async with chain_of(*hosts) as (chain, _, _):
        await ask(chain, LlmOptions(model="qwen2.5:1.5b", temperature=0.3, max_tokens=64))
        body = chats(primary)[-1].body
        assert body["model"] == "qwen2.5:1.5b"
        assert body["options"] == {"num_ctx": 2048, "temperature": 0.3, "num_predict": 64}
        await ask(chain)
        assert chats(primary)[-1].body["options"] == {"num_ctx": 2048}, "nothing stays behind"
        primary.stop()
        await ask(chain, LlmOptions(model="qwen2.5:1.5b", temperature=0.3))
        body = chats(fallback)[-1].body
        assert (body["model"], body["options"]) == (FALLBACK_MODEL, {"num_ctx": 2048, "temperature": 0.3})


async def test_health_says_which_host_answers(primary: OllamaTestServer, fallback: OllamaTestServer) -> None:
    async with chain_of(host(primary.url, PRIMARY_MODEL), host(fallback.url, FALLBACK_MODEL)) as (chain, _, _):
        rows = {r.part: r for r in await chain.health()}
        assert list(rows) == [
            "llm.server",
            "llm.model",
            "llm.fallbacks[0].server",
            "llm.fallbacks[0].model",
            "llm.answering",
        ]
        assert rows["llm.answering"].ok and "the primary" in rows["llm.answering"].detail
        primary.stop()
        rows = {r.part: r for r in await chain.health()}
        assert not rows["llm.server"].ok
        answering = rows["llm.answering"]
        assert answering.ok and fallback.url in answering.detail and "degraded" in answering.detail
        fallback.stop()
        assert not {r.part: r for r in await chain.health()}["llm.answering"].ok


def test_build_llm_reads_the_fallbacks_from_config() -> None:
    config = LlmConfig(
        host="server.lan",
        model=PRIMARY_MODEL,
        options={"temperature": 0.5},
        connect_timeout_s=1.5,
        fallbacks=(
            LlmFallbackConfig(host="http://10.0.0.9:11434", connect_timeout_s=0.5),
            LlmFallbackConfig(host="127.0.0.1", model=FALLBACK_MODEL),
        ),
        recheck_s=3.0,
    )
    chain = build_llm(config, timeout_s=4.0)
    assert [(h.host, h.model, h.connect_timeout_s, h.timeout_s) for h in chain.hosts] == [
        ("http://server.lan:11434", PRIMARY_MODEL, 1.5, 4.0),
        ("http://10.0.0.9:11434", PRIMARY_MODEL, 0.5, 4.0),
        ("http://127.0.0.1:11434", FALLBACK_MODEL, 1.5, 4.0),
    ]
    assert all(h.options == {"temperature": 0.5} for h in chain.hosts)
    assert chain.recheck_s == 3.0


async def test_aclose_stops_the_background_checks(primary: OllamaTestServer) -> None:
    primary.stop()
    chain = LlmChain([host(primary.url, PRIMARY_MODEL)], recheck_s=3600.0)
    with pytest.raises(LlmUnreachable):
        await ask(chain)
    checks = [t for t in asyncio.all_tasks() if t.get_name().startswith("llm-recheck")]
    assert len(checks) == 1
    await chain.aclose()
    assert checks[0].cancelled()


# --- device calls are made once, whichever host ends up answering -------------------------

TIMER_TOOL = {
    "type": "function",
    "function": {
        "name": "start_timer",
        "description": "Start a timer.",
        "parameters": {"type": "object", "properties": {"duration_s": {"type": "number"}}, "required": ["duration_s"]},
    },
}


async def test_a_call_made_before_the_primary_failed_is_not_made_again_by_the_fallback(
    primary: OllamaTestServer, fallback: OllamaTestServer
) -> None:
    ran: list[float] = []

    async def call_tool(call: ToolCall) -> str:
        ran.append(call.arguments["duration_s"])
        return f"Timer {len(ran)} set for {call.arguments['duration_s']:.0f} seconds."

    primary.script(
        Behaviour(tool_calls=[{"name": "start_timer", "arguments": {"duration_s": 600}}]),
        Behaviour(status=500, error="llama runner process has terminated"),  # after the timer was set
    )
    same, other = (
        {"name": "start_timer", "arguments": {"duration_s": 600}},
        {"name": "start_timer", "arguments": {"duration_s": 300}},
    )
    fallback.script(Behaviour(tool_calls=[same, other]), Behaviour(reply="Both timers are running."))
    options = LlmOptions(tools=[TIMER_TOOL], call_tool=call_tool)
    async with chain_of(host(primary.url, PRIMARY_MODEL), host(fallback.url, FALLBACK_MODEL)) as (chain, rec, _):
        assert await ask(chain, options) == "Both timers are running."
    assert ran == [600, 300], "the 10-minute timer was set once; the new call ran"
    second = chats(fallback)[1].body["messages"]
    results = [m["content"] for m in second if m["role"] == "tool"]
    assert results == ["Timer 1 set for 600 seconds.", "Timer 2 set for 300 seconds."], "the first result, replayed"
    assert [e.code for e in rec.of(LlmHostDown)] == ["llm_failed"]


async def test_two_equal_calls_in_one_reply_both_run(primary: OllamaTestServer) -> None:
    ran: list[float] = []

    async def call_tool(call: ToolCall) -> str:
        ran.append(call.arguments["duration_s"])
        return "Timer set."

    twice = [{"name": "start_timer", "arguments": {"duration_s": 300}}] * 2
    primary.script(Behaviour(tool_calls=twice), Behaviour(reply="Two timers."))
    async with chain_of(host(primary.url, PRIMARY_MODEL)) as (chain, _, _):
        assert await ask(chain, LlmOptions(tools=[TIMER_TOOL], call_tool=call_tool)) == "Two timers."
    assert ran == [300, 300]
