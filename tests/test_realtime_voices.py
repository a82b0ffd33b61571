"""Voices by name: session.update, response.create, the CLI's --voice and the client's voice=, on real voices."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import sys
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import assistant
from assistant import config as config_module
from assistant.config import TtsConfig
from assistant.engines.bundle import Engines
from assistant.engines.llm_chain import build_llm
from assistant.engines.tts import load_tts
from assistant.realtime.client import SessionRefused
from assistant.realtime.protocol import WIRE_RATE, pcm16
from assistant.realtime.server import RealtimeServer
from assistant.realtime.shared import resample
from assistant.realtime.voices import OPENAI_VOICES, Voices
from assistant.testing.ollama_server import OllamaTestServer
from tests.conftest import ROOT
from tests.test_realtime_support import (
    EVENT_TIMEOUT_S,
    REPLY,
    VOICE,
    EventAudit,
    RawClient,
    event_audit,
    make_config,
    ollama,
    raw_client,
    rt_engines,
)

__all__ = ["event_audit", "ollama", "rt_engines"]

TONE = "fixtures/tone-voice.onnx"
VOICES = {"tone": TONE, "cedar": TONE, "ghost": "piper/no-such-voice.onnx"}
"""`tone` and OpenAI's `cedar` name the tone voice; `ghost` names a file that is not there."""


def voices_config(models_dir: Path, tmp: Path, ollama_url: str) -> config_module.Config:
    base = make_config(models_dir, tmp).model_dump()
    return config_module.load(base=config_module.merge(base, {"tts": {"voices": VOICES}, "llm": {"host": ollama_url}}))


@pytest.fixture
async def voices_server(
    rt_engines: Engines, models_dir: Path, tmp_path: Path, ollama: OllamaTestServer, event_audit: EventAudit
) -> AsyncIterator[RealtimeServer]:
    config = voices_config(models_dir, tmp_path, ollama.url)
    engines = dataclasses.replace(rt_engines, llm=build_llm(config.llm))
    try:
        async with RealtimeServer(config, engines).running("127.0.0.1", 0) as running:
            yield running
    finally:
        await engines.llm.aclose()


@pytest.fixture(scope="module")
def tone(models_dir: Path) -> Any:
    return load_tts(TtsConfig(voice=TONE), models_dir)


def spoken(events: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
    """Each spoken chunk of a reply: its text and its PCM16 audio."""
    chunks: list[tuple[str, bytes]] = []
    for event in events:
        if event["type"] == "response.output_audio_transcript.delta":
            chunks.append((event["delta"].strip(), b""))
        elif event["type"] == "response.output_audio.delta":
            text, audio = chunks[-1]
            chunks[-1] = (text, audio + base64.b64decode(event["delta"]))
    return chunks


def in_tone_voice(tone: Any, text: str) -> np.ndarray:
    """What the tone voice says for `text`, as the server sends it (24 kHz PCM16)."""
    audio, rate = tone.synthesize_native(text)
    return np.frombuffer(pcm16(resample(audio, rate, WIRE_RATE)), "<i2")


def is_tone(tone: Any, chunks: list[tuple[str, bytes]]) -> bool:
    for text, audio in chunks:
        got, want = np.frombuffer(audio, "<i2"), in_tone_voice(tone, text)
        if len(got) != len(want) or np.abs(got.astype(np.int32) - want).max() > 1:
            return False
    return bool(chunks)


def above_1khz(audio: np.ndarray) -> float:
    """The share of the audio's energy above 1 kHz."""
    power = np.abs(np.fft.rfft(audio.astype(np.float64))) ** 2
    return float(power[np.fft.rfftfreq(len(audio), 1 / WIRE_RATE) > 1000].sum() / power.sum())


async def reply(client: RawClient, **response: Any) -> list[dict[str, Any]]:
    await client.send(
        {
            "type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]},
        }
    )
    await client.send({"type": "response.create", **({"response": response} if response else {})})
    events = await client.until("response.done")
    assert events[-1]["response"]["status"] == "completed", events[-1]
    return events


async def choose(client: RawClient, voice: str) -> dict[str, Any]:
    await client.send(
        {"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"voice": voice}}}}
    )
    session: dict[str, Any] = (await client.until("session.updated"))[-1]["session"]
    return session


async def test_sessions_switch_between_real_voices(voices_server: RealtimeServer, tone: Any) -> None:
    async with raw_client(voices_server.url) as joe, raw_client(voices_server.url) as other:
        assert joe.seen[0]["session"]["audio"]["output"]["voice"] == VOICE  # tts.voice is the default
        joe_chunks = spoken(await reply(joe))
        assert "".join(text + " " for text, _ in joe_chunks).strip() == REPLY
        assert not is_tone(tone, joe_chunks) and all(len(audio) > 0 for _, audio in joe_chunks)
        assert above_1khz(np.frombuffer(b"".join(audio for _, audio in joe_chunks), "<i2")) > 0.05

        assert (await choose(other, "tone"))["audio"]["output"]["voice"] == "tone"
        tone_chunks = spoken(await reply(other))
        assert [text for text, _ in tone_chunks] == [text for text, _ in joe_chunks]
        assert is_tone(tone, tone_chunks)  # the same words, now in the tone voice

        # Once a session has spoken, its voice stays (OpenAI's rule); the same voice may be named again.
        await other.send({"type": "session.update", "event_id": "e1", "session": {"voice": VOICE}})
        error = await other.error()
        assert (error["code"], error["event_id"]) == ("cannot_update_voice", "e1"), error
        assert (await choose(other, "cedar"))["audio"]["output"]["voice"] == "cedar"  # cedar is bound to tone
        assert is_tone(tone, spoken(await reply(other)))


async def test_openai_names_map_to_the_configured_defaults(voices_server: RealtimeServer, tone: Any) -> None:
    async with raw_client(voices_server.url) as client:
        assert (await choose(client, "alloy"))["audio"]["output"]["voice"] == "alloy"
        chunks = spoken(await reply(client, voice="cedar"))  # this reply's own voice, before any audio
        assert is_tone(tone, chunks)
        # The reply fixed the voice: the session now speaks as cedar (the tone voice).
        assert is_tone(tone, spoken(await reply(client)))
    voices = voices_server.shared.voices
    assert voices.spec("alloy") == voices.spec("marin") == voices.spec(VOICE) == f"piper/{VOICE}.onnx"
    assert voices.spec("cedar") == TONE and set(OPENAI_VOICES) <= set(voices.names)


async def test_unknown_and_broken_voices_get_errors(voices_server: RealtimeServer) -> None:
    async with raw_client(voices_server.url) as client:
        await client.send({"type": "session.update", "session": {"audio": {"output": {"voice": "nova"}}}})
        error = await client.error()
        assert (error["code"], error["param"]) == ("unsupported_voice", "session.audio.output.voice")
        for name in (VOICE, "tone", "alloy", "cedar"):
            assert name in error["message"], error
        await client.send({"type": "session.update", "session": {"audio": {"output": {"voice": "ghost"}}}})
        error = await client.error()
        assert (error["type"], error["code"]) == ("server_error", "voice_unavailable"), error
        assert "no-such-voice.onnx" in error["message"]
        await client.send({"type": "session.update", "session": {}})
        session = (await client.until("session.updated"))[-1]["session"]
        assert session["audio"]["output"]["voice"] == VOICE  # a refused update changes nothing


async def test_voices_load_once_and_are_shared(tmp_path: Path, models_dir: Path) -> None:
    loads: list[str] = []

    def loader(cfg: TtsConfig, models: Path) -> str:
        loads.append(cfg.voice)
        return f"voice {cfg.voice}"

    config = voices_config(models_dir, tmp_path, "http://127.0.0.1:9")
    voices = Voices(config, "the default", loader=loader)
    assert voices.names[:4] == (VOICE, "tone", "cedar", "ghost")
    got = await asyncio.gather(voices.get("tone"), voices.get("cedar"), voices.get("tone"))
    assert got == [f"voice {TONE}"] * 3 and loads == [TONE]
    assert await voices.get("default") == await voices.get("echo") == "the default"


def test_config_refuses_bad_voice_names() -> None:
    for voices, fragment in (({"default": TONE}, "'default'"), ({"tone": " "}, "is empty")):
        with pytest.raises(config_module.ConfigError) as refused:
            config_module.load(base={"tts": {"voices": voices}})
        assert "tts.voices" in str(refused.value) and fragment in str(refused.value)


async def test_cli_and_client_choose_voices(
    voices_server: RealtimeServer, speech: dict[str, Path], tmp_path: Path, tone: Any
) -> None:
    out = tmp_path / "reply.wav"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "assistant",
        "realtime",
        "--voice",
        "tone",
        "--url",
        voices_server.url,
        "--input",
        str(speech["question"]),
        "--output",
        str(out),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(EVENT_TIMEOUT_S * 2):
        _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    with wave.open(str(out), "rb") as wav:
        written = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    # The tone voice writes tones of 200-690 Hz; speech (the default voice) has a tenth of its energy above 1 kHz.
    assert len(written) > WIRE_RATE and above_1khz(written) < 0.01

    refused = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "assistant",
        "realtime",
        "--voice",
        "nova",
        "--url",
        voices_server.url,
        "--input",
        str(speech["question"]),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(EVENT_TIMEOUT_S * 2):
        _, stderr = await refused.communicate()
    assert refused.returncode == 1
    message = stderr.decode()
    assert "refused the session" in message and "'nova'" in message and "tone" in message, message
    assert "Traceback" not in message

    def connect_with(voice: str) -> str:
        with assistant.realtime.connect(url=voices_server.url, voice=voice) as session:
            session.send_text("Hello")
            return str(session.wait_response(timeout=EVENT_TIMEOUT_S)["status"])

    assert await asyncio.to_thread(connect_with, "tone") == "completed"
    with pytest.raises(SessionRefused, match="nova"):
        await asyncio.to_thread(connect_with, "nova")
