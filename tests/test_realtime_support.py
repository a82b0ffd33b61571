"""Shared helpers for the realtime tests: engines on the shared models, a server on a free port, audio.

It holds no tests itself; the `test_realtime_*` modules import its fixtures.  Every event a test
server sends goes through `check_event`, which parses it with the official SDK's model for that
event type (GA or beta) and refuses extra or missing fields; the `start_server` fixture fails the
test if any event did not match.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pydantic
import pytest
import websockets
from openai.types.beta.realtime import realtime_server_event as beta_events
from openai.types.realtime import realtime_server_event as ga_events
from websockets.asyncio.client import ClientConnection

from assistant import config as config_module
from assistant.audio.wav import read_wav
from assistant.engines.bundle import Engines
from assistant.engines.llm_chain import build_llm
from assistant.realtime.protocol import WIRE_RATE, Dialect, pcm16
from assistant.realtime.server import RealtimeServer
from assistant.realtime.session import RealtimeSession
from assistant.testing.ollama_server import OllamaTestServer

REPLY = "The capital of France is Paris, a city on the river Seine. It is famous for the Eiffel Tower."
QUESTION = "what is the capital of France?"
"""What the espeak-ng question says; real Whisper may differ in case, punctuation or a word."""
VOICE = "en_US-joe-medium"
EVENT_TIMEOUT_S = 30.0
"""A guard against a hung test, never a measurement."""

ServerFactory = Callable[..., AbstractAsyncContextManager[RealtimeServer]]


def words(text: str) -> list[str]:
    """Lower-cased words without punctuation."""
    return "".join(c if c.isalnum() or c.isspace() else " " for c in text.lower()).split()


def sounds_like(transcript: str, expected: str = QUESTION, share: float = 0.75) -> bool:
    """Whether a real transcript has most of the expected words (Whisper makes small errors)."""
    want = words(expected)
    got = set(words(transcript))
    return sum(w in got for w in want) >= share * len(want)


# --- the SDK's models are the contract ------------------------------------------------------


def _models(union: Any) -> dict[str, type[pydantic.BaseModel]]:
    members = get_args(get_args(union)[0])  # Annotated[Union[...], PropertyInfo]
    return {get_args(cls.model_fields["type"].annotation)[0]: cls for cls in members}


SDK_MODELS = {
    Dialect.GA: _models(ga_events.RealtimeServerEvent),
    Dialect.BETA: _models(beta_events.RealtimeServerEvent),
}


def _no_extras(value: Any, path: str) -> None:
    if isinstance(value, pydantic.BaseModel):
        extra = value.model_extra or {}
        assert not extra, f"{path}: fields the SDK's {type(value).__name__} does not have: {sorted(extra)}"
        for name in type(value).model_fields:
            _no_extras(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for index, element in enumerate(value):
            _no_extras(element, f"{path}[{index}]")


def check_event(event: dict[str, Any], dialect: Dialect = Dialect.GA) -> pydantic.BaseModel:
    """`event` parsed with the SDK's model for its type; AssertionError for a missing, extra or mistyped field."""
    kind = event.get("type")
    model = SDK_MODELS[dialect].get(str(kind))
    assert model is not None, f"the SDK has no {dialect} server event {kind!r}"
    try:
        parsed = model.model_validate(event)
    except pydantic.ValidationError as exc:
        raise AssertionError(f"{kind} does not match the SDK's {model.__name__}: {exc}") from None
    _no_extras(parsed, str(kind))
    return parsed


class EventAudit:
    """Checks every event the sessions of a test server send; the fixture asserts none failed."""

    def __init__(self) -> None:
        self.checked: dict[str, int] = {}
        self.failures: list[str] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        audit = self
        original = RealtimeSession.__init__

        def init(session: RealtimeSession, *args: Any, **kwargs: Any) -> None:
            original(session, *args, **kwargs)
            send = session._send

            def checked(event: dict[str, Any]) -> None:
                try:
                    check_event(event, session.dialect)
                except AssertionError as exc:
                    audit.failures.append(str(exc))
                audit.checked[event["type"]] = audit.checked.get(event["type"], 0) + 1
                send(event)

            session._send = checked

        monkeypatch.setattr(RealtimeSession, "__init__", init)


def make_config(models_dir: Path, tmp: Path, **server: Any) -> config_module.Config:
    """A config on the shared models (real Whisper tiny.en, real Piper voice) and the given server keys."""
    return config_module.load(
        base={
            "models_dir": str(models_dir),
            "state_dir": str(tmp / "state"),
            # The whole 30 s context: on real weights a trimmed one makes Whisper repeat itself (shared/NOTES.md).
            "stt": {"model": "whisper/ggml-tiny.en-real.bin", "threads": 2},
            "tts": {"voice": f"piper/{VOICE}.onnx"},
            "llm": {"model": "test-model", "timeout_s": 10, "system_prompt": "You are a test."},
            "server": server,
        }
    )


@pytest.fixture(scope="session")
def rt_engines(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Engines:
    """STT, TTS and VAD loaded once for every realtime test (no wake word: the server needs none)."""
    from assistant.engines.stt import load_stt
    from assistant.engines.tts import load_tts
    from assistant.engines.vad import load_vad

    config = make_config(models_dir, tmp_path_factory.mktemp("rt"))
    engines = Engines(
        wake=None,
        vad=load_vad(config.vad, config.models_path),
        stt=load_stt(config.stt, config.models_path),
        llm=build_llm(config.llm),  # replaced per test by one that asks the test's server
        tts=load_tts(config.tts, config.models_path),
    )
    engines.stt.warm()
    engines.tts.warm()
    return engines


@pytest.fixture
def ollama() -> Iterator[OllamaTestServer]:
    with OllamaTestServer(models=["test-model"], reply=REPLY, ttft_ms=5, tokens_per_s=2000) as server:
        yield server


@pytest.fixture
def event_audit(monkeypatch: pytest.MonkeyPatch) -> Iterator[EventAudit]:
    """Every server event of the test checked against the SDK's models; fails the test on a mismatch."""
    audit = EventAudit()
    audit.install(monkeypatch)
    yield audit
    assert not audit.failures, "server events that do not match the SDK's models:\n" + "\n".join(audit.failures)


@pytest.fixture
def start_server(
    rt_engines: Engines, models_dir: Path, tmp_path: Path, ollama: OllamaTestServer, event_audit: EventAudit
) -> ServerFactory:
    """`async with start_server(host=..., token=...) as server:` a server on a free port."""

    @asynccontextmanager
    async def start(host: str = "127.0.0.1", **server: Any) -> AsyncIterator[RealtimeServer]:
        config = make_config(models_dir, tmp_path, host=host, **server)
        config = config.model_copy(update={"llm": config.llm.model_copy(update={"host": ollama.url})})
        engines = dataclasses.replace(rt_engines, llm=build_llm(config.llm))
        try:
            async with RealtimeServer(config, engines).running(host, 0) as running:
                yield running
        finally:
            await engines.llm.aclose()

    return start


@pytest.fixture
async def server(start_server: ServerFactory) -> AsyncIterator[RealtimeServer]:
    async with start_server() as running:
        yield running


@pytest.fixture(scope="session")
def question_audio(speech: dict[str, Path]) -> np.ndarray:
    """The spoken question at 24 kHz, float32."""
    return read_wav(speech["question"], WIRE_RATE)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * WIRE_RATE), dtype=np.float32)


def b64_chunks(audio: np.ndarray, chunk_ms: int = 100) -> Iterator[str]:
    """Base64 PCM16 pieces of `audio`, `chunk_ms` each, as clients append them."""
    step = WIRE_RATE * chunk_ms // 1000
    for start in range(0, len(audio), step):
        yield base64.b64encode(pcm16(audio[start : start + step])).decode()


def decode_delta(delta: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(delta), "<i2").astype(np.float32) / 32768.0


class RawClient:
    """A raw WebSocket client speaking JSON events (for the beta dialect and bad input)."""

    def __init__(self, ws: ClientConnection, dialect: Dialect = Dialect.GA) -> None:
        self.ws = ws
        self.dialect = dialect
        self.seen: list[dict[str, Any]] = []

    async def send(self, event: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(event if isinstance(event, (str, bytes)) else json.dumps(event))

    async def recv(self) -> dict[str, Any]:
        async with asyncio.timeout(EVENT_TIMEOUT_S):
            event: dict[str, Any] = json.loads(await self.ws.recv())
        check_event(event, self.dialect)
        self.seen.append(event)
        return event

    async def until(self, kind: str) -> list[dict[str, Any]]:
        """Events up to and including the next one of type `kind`."""
        events = []
        while True:
            event = await self.recv()
            events.append(event)
            if event["type"] == kind:
                return events

    async def error(self) -> dict[str, Any]:
        """The next `error` event's error object (other events are skipped)."""
        events = await self.until("error")
        error: dict[str, Any] = events[-1]["error"]
        return error


@asynccontextmanager
async def raw_client(
    url: str,
    *,
    beta: bool = False,
    headers: dict[str, str] | None = None,
    subprotocols: list[str] | None = None,
    path: str = "/v1/realtime?model=gpt-realtime",
    max_size: int | None = None,
) -> AsyncIterator[RawClient]:
    """Connect a `RawClient` and read past ``session.created``."""
    extra = dict(headers or {})
    if beta:
        extra["OpenAI-Beta"] = "realtime=v1"
    async with websockets.connect(
        url + path,
        additional_headers=extra,
        subprotocols=subprotocols,  # type: ignore[arg-type]
        max_size=max_size,
    ) as ws:
        client = RawClient(ws, Dialect.BETA if beta else Dialect.GA)
        first = await client.recv()
        assert first["type"] == "session.created", first
        yield client


def chat_messages(ollama: OllamaTestServer) -> list[list[dict[str, str]]]:
    """The messages of every real (non-warm-up) chat request so far."""
    return [r.body["messages"] for r in ollama.requests_to("/api/chat") if r.body and r.body.get("messages")]
