"""semantic_vad through the official openai SDK: Smart Turn ends a finished question, waits on "um"."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant import config as config_module
from assistant.audio.wav import read_wav
from assistant.engines.bundle import Engines
from assistant.realtime.protocol import WIRE_RATE
from assistant.realtime.server import RealtimeServer
from assistant.testing.ollama_server import OllamaTestServer
from tests.conftest import speak
from tests.test_realtime_sdk import of, sdk, until
from tests.test_realtime_support import b64_chunks, ollama, silence

__all__ = ["ollama"]


@pytest.fixture(scope="module")
def semantic_engines(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Engines:
    """Real Whisper tiny.en, Silero VAD and Smart Turn (the voice is only plumbing here)."""
    from assistant.engines.llm import OllamaLanguageModel
    from assistant.engines.smart_turn import load_turn
    from assistant.engines.stt import load_stt
    from assistant.engines.tts import load_tts
    from assistant.engines.vad import load_vad

    config = semantic_config(models_dir, tmp_path_factory.mktemp("semantic"), "http://127.0.0.1:9")
    return Engines(
        wake=None,
        vad=load_vad(config.vad, config.models_path),
        stt=load_stt(config.stt, config.models_path),
        llm=OllamaLanguageModel(host=config.llm.host, model=config.llm.model),
        tts=load_tts(config.tts, config.models_path),
        turn=load_turn(config.turn, config.models_path),
    )


def semantic_config(models_dir: Path, tmp: Path, host: str) -> config_module.Config:
    return config_module.load(
        base={
            "models_dir": str(models_dir),
            "state_dir": str(tmp / "state"),
            "stt": {"model": "whisper/ggml-tiny.en-real.bin", "threads": 1},
            "tts": {"voice": "fixtures/tone-voice.onnx"},  # plumbing only: this test is about when turns end
            "llm": {"model": "test-model", "host": host, "timeout_s": 10},
        }
    )


@pytest.fixture
async def semantic_server(
    semantic_engines: Engines, models_dir: Path, tmp_path: Path, ollama: OllamaTestServer
) -> AsyncIterator[RealtimeServer]:
    config = semantic_config(models_dir, tmp_path, ollama.url)
    async with RealtimeServer(config, semantic_engines).running("127.0.0.1", 0) as running:
        yield running


def spoken(text: str, tmp_path: Path) -> np.ndarray:
    return read_wav(speak(text, tmp_path / "speech.wav"), WIRE_RATE)


async def use_semantic(conn: Any, eagerness: str) -> Any:
    await conn.session.update(
        session={
            "type": "realtime",
            "audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": eagerness}}},
        }
    )
    return (await until(conn, "session.updated"))[-1].session.audio.input.turn_detection


async def test_semantic_vad_ends_a_finished_question(semantic_server: RealtimeServer, tmp_path: Path) -> None:
    question = spoken("what is the capital of France", tmp_path)
    async with sdk(semantic_server) as conn:
        turn = await use_semantic(conn, "medium")
        assert (turn.type, turn.eagerness) == ("semantic_vad", "medium")
        # 1.5 s of silence after the question: less than medium's 4 s longest wait, so only
        # a "finished" verdict can end the turn.
        for chunk in b64_chunks(np.concatenate([silence(0.5), question, silence(1.5)])):
            await conn.input_audio_buffer.append(audio=chunk)
        events = await until(conn, "input_audio_buffer.committed")
    # The server committed the turn itself, with no commit from the client.
    assert len(of(events, "input_audio_buffer.speech_stopped")) == 1


async def test_semantic_vad_waits_when_the_sentence_is_unfinished(
    semantic_server: RealtimeServer, tmp_path: Path
) -> None:
    unfinished = spoken("tell me about the, um", tmp_path)
    async with sdk(semantic_server) as conn:
        turn = await use_semantic(conn, "low")
        assert (turn.type, turn.eagerness) == ("semantic_vad", "low")
        for chunk in b64_chunks(np.concatenate([silence(0.5), unfinished, silence(1.5)])):
            await conn.input_audio_buffer.append(audio=chunk)
        # Events come in order: had the pause ended the turn, speech_stopped would precede this commit.
        await conn.input_audio_buffer.commit()
        events = await until(conn, "input_audio_buffer.committed")
    assert of(events, "input_audio_buffer.speech_started")
    assert not of(events, "input_audio_buffer.speech_stopped")


async def test_session_update_rejects_bad_eagerness_and_reports_server_vad_again(
    semantic_server: RealtimeServer,
) -> None:
    async with sdk(semantic_server) as conn:
        await conn.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "eager"}}},
                },
            }
        )
        error = (await until(conn, "error"))[-1].error
        assert error.param == "session.audio.input.turn_detection.eagerness"
        assert "low, medium, high, auto" in error.message
        await use_semantic(conn, "auto")
        await conn.session.update(
            session={"type": "realtime", "audio": {"input": {"turn_detection": {"type": "server_vad"}}}}
        )
        turn = (await until(conn, "session.updated"))[-1].session.audio.input.turn_detection
    assert turn.type == "server_vad" and turn.silence_duration_ms == 500
