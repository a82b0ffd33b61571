"""Smart Turn through `assistant run --fast` on the real models: a pause is waited out, a question is not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from assistant.testing.ollama_server import OllamaTestServer
from tests.conftest import concat, silence, speak
from tests.test_scenarios import run_assistant

REAL = ("stt.model=whisper/ggml-tiny.en-real.bin", "turn.mode=smart_turn")


@pytest.fixture
def ollama() -> Any:
    with OllamaTestServer(models=["test-model"], reply="Sure.", ttft_ms=50, tokens_per_s=200) as server:
        yield server


def test_a_pause_mid_request_is_waited_out(
    test_config: Path, speech: dict[str, Path], ollama: Any, tmp_path: Path
) -> None:
    first = speak("remind me to", tmp_path / "first.wav")
    second = speak("call my sister", tmp_path / "second.wav")
    pause = silence(tmp_path / "pause.wav", 1.0)
    wav = concat(
        tmp_path / "in.wav", speech["silence_1"], speech["hey_jarvis"], first, pause, second, speech["silence_4"]
    )
    run = run_assistant(test_config, wav, tmp_path, f"llm.host={ollama.url}", *REAL)
    assert run.returncode == 0, run.stderr
    transcripts = [t["text"] for t in run.of("transcript")]
    assert len(transcripts) == 1, transcripts
    assert "sister" in transcripts[0].lower(), transcripts
    assert run.of("end_of_turn"), "the model was asked during the pause"
    # One request: the VAD heard speech stop once, after the second part.
    assert len(run.of("speech_stopped")) == 1


def test_a_complete_question_ends_sooner_than_the_fixed_silence(
    test_config: Path, speech: dict[str, Path], ollama: Any, tmp_path: Path
) -> None:
    wav = concat(tmp_path / "in.wav", speech["silence_1"], speech["wake_and_question"], speech["silence_4"])
    run = run_assistant(
        test_config, wav, tmp_path, f"llm.host={ollama.url}", *REAL, "vad.silence_ms=700", "turn.transcript_check=false"
    )
    assert run.returncode == 0, run.stderr
    assert "capital of france" in run.of("transcript")[0]["text"].lower()
    verdicts = run.of("end_of_turn")
    assert verdicts and verdicts[-1]["probability"] >= 0.5
    stopped = run.of("speech_stopped")[0]["t"]
    endpoint_ms = run.of("turn")[0]["endpointing_ms"]
    # Audio time: the turn ended less than the fixed 700 ms after the VAD's end of speech.
    assert endpoint_ms < 700, (endpoint_ms, stopped)
