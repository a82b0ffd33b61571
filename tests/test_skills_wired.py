"""The device's own skills in the appliance: `assistant run` on real Whisper tiny.en, Piper and espeak-ng speech.

Answers the device gives itself reach no LLM; a timer rings on the audio
clock, is heard in the output and stops on "stop" said alone; a timer set
before a restart is announced after it; a phrasing the device's intents do not
know reaches the same timers through the LLM's tool call. Times are audio
times from the events.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from assistant.testing.ollama_server import Behaviour, OllamaTestServer
from tests.conftest import SPOKEN_TIME, concat, silence, sounds_like, speak, spoken_hour_minute
from tests.test_scenarios import Run, run_assistant


@pytest.fixture
def ollama() -> Any:
    with OllamaTestServer(models=["test-model"], reply="This should not be said.", ttft_ms=50) as server:
        yield server


def chats(server: Any) -> list[dict[str, Any]]:
    return [r.body for r in server.requests_to("/api/chat")]


def spoken_after(run: Run, t: float) -> list[str]:
    return [s["text"] for s in run.of("sentence") if s["t"] >= t]


def test_what_time_is_it_without_the_llm(test_config: Path, ollama: Any, tmp_path: Path) -> None:
    wav = concat(
        tmp_path / "in.wav",
        silence(tmp_path / "s1.wav", 1),
        speak("hey jarvis, what time is it", tmp_path / "ask.wav"),
        silence(tmp_path / "s4.wav", 4),
    )
    before = datetime.now().astimezone()
    run = run_assistant(test_config, wav, tmp_path, f"llm.host={ollama.url}", "llm.warm_on_wake=false")
    after = datetime.now().astimezone()
    assert run.returncode == 0, run.stderr
    assert sounds_like(run.of("transcript")[0]["text"], "what time is it"), run.of("transcript")
    assert chats(ollama) == [], "the device answered the time itself"
    assert run.of("llm_request") == []
    said = " ".join(spoken_after(run, 0))
    expected = {spoken_hour_minute(moment) for moment in (before, after)}
    assert re.match(SPOKEN_TIME, said), said
    assert any(said.startswith(f"It's {time_said}") for time_said in expected), (said, expected)
    started, stopped = run.of("audio_started")[0]["t"], run.of("audio_stopped")[0]["t"]
    assert stopped > started and run.rms(started, stopped) > 0.02, "the answer is in the output"
    assert run.states()[-1] == "idle"


def test_a_timer_rings_and_stop_said_alone_stops_it(test_config: Path, ollama: Any, tmp_path: Path) -> None:
    # The request, 20 s of silence, "stop" alone, silence. The timer rings 10 s after the transcript,
    # which comes 3-7 s into the file on this machine; "stop" said before the ring would be ignored.
    wav = concat(
        tmp_path / "in.wav",
        speak("hey jarvis, set a timer for ten seconds", tmp_path / "ask.wav", voice="en", speed=140),
        silence(tmp_path / "s20.wav", 20),
        speak("stop", tmp_path / "stop.wav"),
        silence(tmp_path / "s8.wav", 8),
    )
    run = run_assistant(test_config, wav, tmp_path, f"llm.host={ollama.url}", "llm.warm_on_wake=false")
    assert run.returncode == 0, run.stderr
    transcripts = run.of("transcript")
    assert sounds_like(transcripts[0]["text"], "set a timer for ten seconds"), transcripts
    assert spoken_after(run, 0)[0] == "Timer set for 10 seconds.", run.of("sentence")
    rings = run.of("ringing")
    assert rings, f"nothing rang: {[e['type'] for e in run.events]}"
    first = rings[0]
    assert first["kind"] == "timer" and first["text"] == "Your 10 second timer is done." and not first["late"]
    assert first["t"] - transcripts[0]["t"] == pytest.approx(10.0, abs=0.2), "10 s of audio after the request"
    assert run.rms(first["t"], first["t"] + 1.0) > 0.02, "the ring is in the output"
    assert "Your 10 second timer is done." in spoken_after(run, first["t"])
    assert len(run.of("wake")) == 1, "no wake word before 'stop'"
    stop = [t for t in transcripts if sounds_like(t["text"], "stop", errors=0)]
    assert stop, transcripts
    assert stop[0]["t"] > first["t"]
    assert [r for r in rings if r["t"] > stop[0]["t"]] == [], "nothing rings after stop"
    assert run.rms(stop[0]["t"] + 0.5, len(run.output) / 16000) == 0.0, "silent after stop"
    assert chats(ollama) == []
    assert "listening" in run.states() and run.states()[-1] == "idle"


def test_a_timer_survives_a_restart(test_config: Path, ollama: Any, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    ask = concat(
        first / "in.wav",
        speak("hey jarvis, set a timer for ten seconds", first / "ask.wav", voice="en", speed=140),
        silence(first / "s2.wav", 2),
    )
    one = run_assistant(test_config, ask, first, f"llm.host={ollama.url}", "llm.warm_on_wake=false")
    assert one.returncode == 0, one.stderr
    assert spoken_after(one, 0)[:1] == ["Timer set for 10 seconds."], one.of("sentence")
    assert one.of("ringing") == [], "the first run ends before the timer"
    assert (tmp_path / "state" / "skills.json").exists()
    # The second run hears nothing but silence; the timer is due within it (or fell due in between).
    quiet = silence(second / "in.wav", 14)
    two = run_assistant(test_config, quiet, second, f"llm.host={ollama.url}", "skills.ring_timeout_s=0")
    assert two.returncode == 0, two.stderr
    rings = two.of("ringing")
    assert len(rings) == 1 and rings[0]["kind"] == "timer", rings
    assert "10 second timer" in rings[0]["text"]
    assert rings[0]["t"] <= 10.1
    assert two.rms(rings[0]["t"], rings[0]["t"] + 1.0) > 0.02, "announced aloud"
    assert rings[0]["text"] in spoken_after(two, rings[0]["t"])
    assert two.of("wake") == [] and chats(ollama) == []


def test_a_free_phrasing_sets_a_timer_through_the_llms_tool_call(
    test_config: Path, ollama: Any, tmp_path: Path
) -> None:
    # No intent of the device's says "needs ten more seconds": the LLM gets it, with the device's tools.
    ollama.script(
        Behaviour(tool_calls=[{"name": "start_timer", "arguments": {"duration_s": 10, "name": "pasta"}}]),
        Behaviour(reply="I will tell you when the pasta is done."),
    )
    wav = concat(
        tmp_path / "in.wav",
        speak("hey jarvis, the pasta needs ten more seconds", tmp_path / "ask.wav", voice="en", speed=140),
        # The timer rings 10 s after the tool call, which comes 5-8 s into the file on this machine.
        silence(tmp_path / "s20.wav", 20),
    )
    run = run_assistant(
        test_config, wav, tmp_path, f"llm.host={ollama.url}", "llm.warm_on_wake=false", "skills.ring_timeout_s=0"
    )
    assert run.returncode == 0, run.stderr
    transcripts = run.of("transcript")
    assert sounds_like(transcripts[0]["text"], "the pasta needs ten more seconds"), transcripts
    asked, answered = chats(ollama)
    assert "start_timer" in [tool["function"]["name"] for tool in asked["tools"]]
    result = {"role": "tool", "content": "Pasta timer set for 10 seconds.", "tool_name": "start_timer"}
    assert answered["messages"][-1] == result, "the tool's result went back to the LLM"
    (called,) = run.of("tool_call")
    assert (called["name"], called["arguments"], called["result"]) == (
        "start_timer",
        {"duration_s": 10, "name": "pasta"},
        result["content"],
    )
    assert spoken_after(run, 0)[0] == "I will tell you when the pasta is done.", run.of("sentence")
    assert run.of("llm_done")[0]["text"] == "I will tell you when the pasta is done."
    (ring,) = run.of("ringing")
    assert ring["kind"] == "timer" and ring["text"] == "Your pasta timer is done."
    assert ring["t"] - called["t"] == pytest.approx(10.0, abs=0.2), "the timer the tool set rang on the audio clock"
    assert run.rms(ring["t"], ring["t"] + 1.0) > 0.02, "the ring is in the output"
    assert "Your pasta timer is done." in spoken_after(run, ring["t"])
    assert (tmp_path / "state" / "skills.json").exists()


def test_the_next_request_sees_the_device_call_the_llm_made(test_config: Path, ollama: Any, tmp_path: Path) -> None:
    # The request after a timer the LLM set: its prompt shows the call and its result.
    ollama.script(
        Behaviour(tool_calls=[{"name": "start_timer", "arguments": {"duration_s": 600, "name": "pasta"}}]),
        Behaviour(reply="I will tell you when the pasta is done."),
        Behaviour(reply="About ten minutes."),
    )
    wav = concat(
        tmp_path / "in.wav",
        speak("hey jarvis, the pasta needs ten more minutes", tmp_path / "ask.wav", voice="en", speed=140),
        silence(tmp_path / "s14.wav", 14),  # the first answer is heard whole before the next wake word
        speak("hey jarvis, what is the capital of France", tmp_path / "ask2.wav"),
        silence(tmp_path / "s8b.wav", 8),
    )
    run = run_assistant(test_config, wav, tmp_path, f"llm.host={ollama.url}", "llm.warm_on_wake=false")
    assert run.returncode == 0, run.stderr
    asked, _, second = chats(ollama)
    first_request = asked["messages"][-1]
    assert first_request["role"] == "user" and sounds_like(first_request["content"], "the pasta needs ten more minutes")
    history = second["messages"][second["messages"].index(first_request) + 1 :]
    assert [m["role"] for m in history] == ["assistant", "tool", "assistant", "user"], history
    assert [c["function"]["name"] for c in history[0]["tool_calls"]] == ["start_timer"]
    assert history[0]["tool_calls"][0]["function"]["arguments"] == {"duration_s": 600, "name": "pasta"}
    assert history[1] == {"role": "tool", "content": "Pasta timer set for 10 minutes.", "tool_name": "start_timer"}
    assert history[2]["content"] == "I will tell you when the pasta is done."
    assert sounds_like(history[3]["content"], "what is the capital of France")
