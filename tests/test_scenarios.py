"""Scenario tests: WAV files through `assistant run` on the real engines.

Each test runs the real command line in a subprocess (`--input`, `--output`,
`--events`, `--fast`) against the Ollama test server on loopback and asserts
what happened from the events and the output audio.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.audio.wav import read_wav
from assistant.bench.wer import normalise
from assistant.testing.ollama_server import Behaviour, OllamaTestServer
from tests.conftest import ROOT, concat, sounds_like, speak

REPLY = (
    "The capital of France is Paris, a city on the river Seine. "
    "It has been the capital for more than a thousand years. "
    "Paris is famous for the Eiffel Tower and the Louvre. "
    "Millions of people visit it every year."
)


@dataclass
class Run:
    returncode: int
    stderr: str
    events: list[dict[str, Any]]
    output: np.ndarray

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    def states(self) -> list[str]:
        return [e["state"] for e in self.of("state")]

    def rms(self, start: float, end: float) -> float:
        part = self.output[int(start * 16000) : int(end * 16000)]
        return float(np.sqrt(np.mean(part**2))) if len(part) else 0.0


def run_assistant(config: Path, wav: Path, tmp: Path, *sets: str, fast: bool = True, timeout: float = 120) -> Run:
    events, output = tmp / "events.jsonl", tmp / "out.wav"
    command = [
        sys.executable,
        "-m",
        "assistant",
        "run",
        "--config",
        str(config),
        "--input",
        str(wav),
        "--output",
        str(output),
        "--events",
        str(events),
    ]
    command += ["--fast"] if fast else []
    for item in sets:
        command += ["--set", item]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    parsed = [json.loads(line) for line in events.read_text().splitlines()] if events.exists() else []
    audio = read_wav(output) if output.exists() else np.zeros(0, np.float32)
    return Run(done.returncode, done.stderr, parsed, audio)


@pytest.fixture
def ollama() -> Any:
    with OllamaTestServer(models=["test-model"], reply=REPLY, ttft_ms=150, tokens_per_s=40) as server:
        yield server


def test_whole_turn(test_config: Path, speech: dict[str, Path], ollama: Any, tmp_path: Path) -> None:
    wav = concat(tmp_path / "in.wav", speech["silence_1"], speech["wake_and_question"], speech["silence_4"])
    run = run_assistant(test_config, wav, tmp_path, f"llm.host={ollama.url}")
    assert run.returncode == 0, run.stderr
    assert run.states()[:5] == ["idle", "listening", "thinking", "speaking", "idle"]
    kinds = [e["type"] for e in run.events]
    for kind in (
        "wake",
        "speech_started",
        "speech_stopped",
        "transcript",
        "llm_request",
        "llm_first_token",
        "sentence",
        "audio_started",
        "audio_stopped",
        "turn",
    ):
        assert kind in kinds, f"no {kind} event in {kinds}"
    assert run.of("wake")[0]["model"] == "hey_jarvis"
    transcript = run.of("transcript")[0]["text"]
    assert sounds_like(transcript, "what is the capital of France"), transcript
    assert run.of("audio_stopped")[0]["interrupted"] is False
    # The reply is streamed: the first sentence plays before the LLM has finished.
    assert run.of("audio_started")[0]["t"] < run.of("llm_done")[0]["t"]
    assert [s["text"] for s in run.of("sentence")][:2] == [
        "The capital of France is Paris,",
        "a city on the river Seine.",
    ]
    # The output lines up with the input timeline: silent before, the reply after.
    started, stopped = run.of("audio_started")[0]["t"], run.of("audio_stopped")[0]["t"]
    assert run.rms(0, run.of("wake")[0]["t"]) == 0.0
    assert run.rms(started, stopped) > 0.05
    turn = run.of("turn")[0]
    for key in (
        "endpointing_ms",
        "stt_ms",
        "llm_first_token_ms",
        "first_sentence_ms",
        "tts_ms",
        "end_of_speech_to_first_audio_ms",
    ):
        assert turn[key] is not None and turn[key] >= 0, key
    # The LLM got the persona, the request and keep_alive; the prefix was warmed on wake.
    chats = [r for r in ollama.requests_to("/api/chat") if r.body.get("messages")]
    request = chats[-1].body
    assert request["messages"][0]["role"] == "system"
    assert request["messages"][-1] == {"role": "user", "content": transcript}, "the request, without the wake word"
    assert request["keep_alive"] == "30m"
    assert len(chats) >= 2, "the prompt prefix is sent when the wake word fires"


def test_request_after_a_pause(test_config: Path, speech: dict[str, Path], ollama: Any, tmp_path: Path) -> None:
    wav = concat(
        tmp_path / "in.wav", speech["hey_jarvis"], speech["silence_1"], speech["question"], speech["silence_4"]
    )
    run = run_assistant(test_config, wav, tmp_path, f"llm.host={ollama.url}")
    assert run.returncode == 0, run.stderr
    assert run.of("speech_started")[0]["t"] > run.of("wake")[0]["t"] + 0.5
    assert len(run.of("transcript")) == 1 and len(run.of("audio_started")) == 1


def test_barge_in(test_config: Path, speech: dict[str, Path], ollama: Any, tmp_path: Path) -> None:
    # The wake word comes 8 s after the request, while the long reply is playing (not while thinking).
    wav = concat(
        tmp_path / "in.wav", speech["wake_and_question"], speech["silence_8"], speech["hey_jarvis"], speech["silence_8"]
    )
    long_reply = " ".join([REPLY] * 4)
    ollama.script(Behaviour(), Behaviour(reply=long_reply))  # the first answers the warm-up
    run = run_assistant(test_config, wav, tmp_path, f"llm.host={ollama.url}")
    assert run.returncode == 0, run.stderr
    wakes = run.of("wake")
    assert len(wakes) == 2
    stopped = run.of("audio_stopped")[0]
    assert stopped["interrupted"] is True
    barge = wakes[1]["t"]
    assert stopped["t"] - barge <= 0.1
    assert run.rms(barge - 1.0, barge) > 0.05, "the reply was playing when the wake word came"
    assert run.rms(barge + 0.1, barge + 2.0) == 0.0, "silent within 100 ms of the detection"
    assert run.states()[-1] == "idle"
    assert "speaking" in run.states() and run.states()[run.states().index("speaking") + 1] == "listening"


def test_follow_up_window(test_config: Path, speech: dict[str, Path], ollama: Any, tmp_path: Path) -> None:
    wav = concat(
        tmp_path / "in.wav", speech["wake_and_question"], speech["silence_8"], speech["question"], speech["silence_8"]
    )
    ollama.script(Behaviour(), Behaviour(reply="Paris."), Behaviour(reply="Still Paris."))
    run = run_assistant(test_config, wav, tmp_path, f"llm.host={ollama.url}", "conversation.follow_up_s=8")
    assert run.returncode == 0, run.stderr
    assert len(run.of("wake")) == 1
    assert len(run.of("transcript")) == 2
    chats = [r.body for r in ollama.requests_to("/api/chat") if r.body.get("messages")]
    last = chats[-1]["messages"]
    assert [m["role"] for m in last[-3:]] == ["user", "assistant", "user"]
    assert last[-2]["content"] == "Paris."


def test_no_speech_timeout(test_config: Path, speech: dict[str, Path], ollama: Any, tmp_path: Path) -> None:
    wav = concat(tmp_path / "in.wav", speech["hey_jarvis"], speech["silence_8"])
    run = run_assistant(test_config, wav, tmp_path, f"llm.host={ollama.url}", "vad.no_speech_timeout_s=3")
    assert run.returncode == 0, run.stderr
    assert len(run.of("no_speech")) == 1
    assert run.of("no_speech")[0]["t"] - run.of("wake")[0]["t"] == pytest.approx(3.0, abs=0.2)
    assert run.of("transcript") == [] and run.states()[-1] == "idle"
    assert not [
        r
        for r in ollama.requests_to("/api/chat")
        if r.body.get("messages", [])[-1:] and r.body["messages"][-1]["role"] == "user"
    ]


def test_no_wake_without_the_wake_word(
    test_config: Path, speech: dict[str, Path], audio_dir: Path, ollama: Any, tmp_path: Path
) -> None:
    wav = concat(tmp_path / "in.wav", speech["other"], audio_dir / "jfk.wav", audio_dir / "hey_jane.wav")
    run = run_assistant(test_config, wav, tmp_path, f"llm.host={ollama.url}")
    assert run.returncode == 0, run.stderr
    assert run.of("wake") == [] and run.of("transcript") == []
    assert run.rms(0, len(run.output) / 16000) == 0.0


def test_ollama_down_apologises_and_keeps_working(test_config: Path, speech: dict[str, Path], tmp_path: Path) -> None:
    wav = concat(
        tmp_path / "in.wav",
        speech["wake_and_question"],
        speech["silence_8"],
        speech["wake_and_question"],
        speech["silence_8"],
    )
    run = run_assistant(test_config, wav, tmp_path, "llm.host=http://127.0.0.1:9")
    assert run.returncode == 0, run.stderr
    errors = run.of("error")
    assert [e["code"] for e in errors] == ["llm_unreachable", "llm_unreachable"]
    assert len(run.of("audio_started")) == 2, "an answer is spoken each time (the notice, then the apology)"
    started = run.of("audio_started")[0]["t"]
    assert run.rms(started, started + 0.5) > 0.05
    assert run.states()[-1] == "idle"
    assert "Traceback" not in run.stderr


def test_ollama_cut_mid_reply(test_config: Path, speech: dict[str, Path], ollama: Any, tmp_path: Path) -> None:
    wav = concat(tmp_path / "in.wav", speech["wake_and_question"], speech["silence_8"])
    ollama.script(Behaviour(), Behaviour(cut_after_tokens=14))
    run = run_assistant(test_config, wav, tmp_path, f"llm.host={ollama.url}")
    assert run.returncode == 0, run.stderr
    assert [e["code"] for e in run.of("error")] == ["llm_stream_cut"]
    spoken = [s["text"] for s in run.of("sentence")]
    assert spoken[0].startswith("The capital of France")
    assert spoken[-1] == "Sorry, I couldn't get an answer just now."
    assert run.states()[-1] == "idle"


def test_missing_model_exits_78(test_config: Path, speech: dict[str, Path], tmp_path: Path) -> None:
    run = run_assistant(test_config, speech["hey_jarvis"], tmp_path, "stt.model=/nonexistent/ggml-base.en.bin")
    assert run.returncode == 78
    assert "/nonexistent/ggml-base.en.bin" in run.stderr
    assert "Traceback" not in run.stderr


def test_missing_bundled_model_names_the_download_command(
    test_config: Path, speech: dict[str, Path], tmp_path: Path
) -> None:
    run = run_assistant(test_config, speech["hey_jarvis"], tmp_path, "stt.model=base.en")
    assert run.returncode == 78
    assert "ggml-base.en.bin" in run.stderr and "assistant models download base.en" in run.stderr


def test_bad_config_exits_78(test_config: Path, speech: dict[str, Path], tmp_path: Path) -> None:
    run = run_assistant(test_config, speech["hey_jarvis"], tmp_path, "wake.threshold=2")
    assert run.returncode == 78
    assert "wake.threshold = 2" in run.stderr and "less than 1" in run.stderr
    assert "Traceback" not in run.stderr
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text("llm:\n  modle: x\n")
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "run", "--config", str(bad_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 78
    assert "llm.modle: unknown key" in done.stderr and "model" in done.stderr


def test_dynamic_endpointing_ends_a_complete_question_sooner(
    test_config: Path, speech: dict[str, Path], ollama: Any, tmp_path: Path
) -> None:
    wav = concat(tmp_path / "in.wav", speech["wake_and_question"], speech["silence_4"])
    run = run_assistant(
        test_config,
        wav,
        tmp_path,
        f"llm.host={ollama.url}",
        "vad.silence_ms=3000",
        "vad.complete_silence_ms=300",
        "vad.trailing_silence_ms=3500",
    )
    assert run.returncode == 0, run.stderr
    turn = run.of("turn")[0]
    # The speculative transcript ("...France?") is a complete question, so the turn ends well
    # before the 3 s fixed silence (as soon as the full-window transcript is back), and STT is
    # not run twice.
    assert turn["endpointing_ms"] < 3000
    assert sounds_like(run.of("transcript")[0]["text"], "what is the capital of France")


def test_the_speaker_says_the_answer(
    test_config: Path, speech: dict[str, Path], ollama: Any, tmp_path: Path, models_dir: Path
) -> None:
    from assistant.config import SttConfig
    from assistant.engines.stt import load_stt

    wav = concat(tmp_path / "in.wav", speech["silence_1"], speech["wake_and_question"], speech["silence_8"])
    ollama.script(Behaviour(), Behaviour(reply="The capital of France is Paris. It lies on the river Seine."))
    run = run_assistant(test_config, wav, tmp_path, f"llm.host={ollama.url}")
    assert run.returncode == 0, run.stderr
    started, stopped = run.of("audio_started")[0]["t"], run.of("audio_stopped")[0]["t"]
    reply = run.output[int(started * 16000) : int(stopped * 16000) + 1600]
    whisper = load_stt(SttConfig(model="whisper/ggml-tiny.en-real.bin"), models_dir)
    said = whisper.transcribe(reply)
    # Whisper's own errors on the voice ("Francis Paris", "river scene") are allowed; the answer's words are not.
    assert {"capital", "paris", "lies", "river"} <= set(normalise(said)), said
    assert sounds_like(said, "The capital of France is Paris. It lies on the river Seine.", errors=3), said


def test_nothing_heard_is_said_out_loud(
    test_config: Path, speech: dict[str, Path], ollama: Any, tmp_path: Path
) -> None:
    # Voiced, so the VAD hears speech; Whisper writes "uh" for it, which holds no request.
    sound = speak("ahhhh", tmp_path / "ah.wav")
    wav = concat(tmp_path / "in.wav", speech["hey_jarvis"], speech["silence_0.5"], sound, speech["silence_4"])
    run = run_assistant(test_config, wav, tmp_path, f"llm.host={ollama.url}", "conversation.not_heard=Say that again?")
    assert run.returncode == 0, run.stderr
    assert run.of("speech_started") and run.of("transcript") == []
    assert [e["code"] for e in run.of("error")] == ["nothing_heard"]
    assert [s["text"] for s in run.of("sentence")] == ["Say that again?"]
    started = run.of("audio_started")[0]["t"]
    assert run.rms(started, started + 0.5) > 0.02, "the answer is spoken"
    assert not [r for r in ollama.requests_to("/api/chat") if r.body.get("messages", [{}])[-1].get("role") == "user"]
    assert run.states()[-1] == "idle"


def ask_twice(speech: dict[str, Path], tmp_path: Path, gap: str) -> Path:
    """The question, `gap` of silence (a `speech` key), then "hey jarvis what time is it" and 8 s."""
    second = speak("hey jarvis what time is it", tmp_path / "second.wav")
    return concat(tmp_path / "in.wav", speech["wake_and_question"], speech[gap], second, speech["silence_8"])


def answered_the_time_alone(run: Run, ollama: Any) -> None:
    """Only the second request reached the LLM, and its answer was spoken; the device is idle again."""
    assert sounds_like(run.of("transcript")[-1]["text"], "what time is it")
    last = [r.body for r in ollama.requests_to("/api/chat") if r.body.get("messages")][-1]["messages"][-1]
    assert sounds_like(last["content"], "what time is it")
    assert "It is noon." in [s["text"] for s in run.of("sentence")]
    assert run.states()[-1] == "idle"


def test_a_wake_word_while_thinking_answers_the_new_request(
    test_config: Path, speech: dict[str, Path], ollama: Any, tmp_path: Path
) -> None:
    wav = ask_twice(speech, tmp_path, "silence_4")
    # The first answer is slow, so the second wake word lands while the first turn is thinking: in its
    # transcription (abandoned, so the first request never reaches the LLM) or waiting for the LLM.
    # The turn has ended by then (at most 1.6 s of silence), whatever the machine's speed.
    ollama.reply = "It is noon."
    ollama.script(Behaviour(), Behaviour(ttft_ms=6000, reply=REPLY))
    # The device would tell the time itself: here the LLM must answer, so its own skills are off.
    run = run_assistant(test_config, wav, tmp_path, f"llm.host={ollama.url}", "skills.enabled=false")
    assert run.returncode == 0, run.stderr
    wakes = run.of("wake")
    assert len(wakes) == 2
    thinking = [e for e in run.of("state") if e["state"] == "thinking"]
    assert thinking and thinking[0]["t"] < wakes[1]["t"], "the second wake word came while thinking"
    assert run.of("audio_started")[-1]["t"] > wakes[1]["t"]
    answered_the_time_alone(run, ollama)


def test_a_wake_word_after_a_pause_starts_a_new_request(
    test_config: Path, speech: dict[str, Path], ollama: Any, tmp_path: Path
) -> None:
    # One second after the first request the user starts again. Depending on the machine's speed the first
    # turn is still listening (waiting for its transcript check) or already thinking; either way only the
    # new request is answered.
    wav = ask_twice(speech, tmp_path, "silence_1")
    ollama.reply = "It is noon."
    run = run_assistant(test_config, wav, tmp_path, f"llm.host={ollama.url}", "skills.enabled=false")
    assert run.returncode == 0, run.stderr
    assert len(run.of("wake")) == 2
    transcripts = [t["text"] for t in run.of("transcript")]
    assert transcripts and sounds_like(transcripts[-1], "what time is it"), transcripts
    assert "France" not in transcripts[-1], "the first request is not part of the second"
    answered_the_time_alone(run, ollama)
