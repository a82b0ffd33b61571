"""The LLM server comes and goes under a running `assistant run --input ... --fast`.

The Ollama test servers run in this process and are really stopped and
started again on the same port while the assistant (a subprocess, the real
command line on the real tiny.en and Piper voice) keeps going; the test
follows its `--events` file as it is written and acts on what it sees.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from assistant import config as config_module
from assistant.core.errors import ConfigError
from assistant.testing.ollama_server import Behaviour, OllamaTestServer
from tests.conftest import ROOT, concat

REAL = ("stt.model=whisper/ggml-tiny.en-real.bin", "tts.voice=piper/en_US-joe-medium.onnx")
PRIMARY_REPLY = "Paris is the capital of France. It sits on the river Seine."
FALLBACK_REPLY = "The capital is Paris."
APOLOGY = "Sorry, I couldn't get an answer just now."
NOTICE = config_module.ConversationConfig().llm_unavailable

OnEvent = Callable[[dict[str, Any]], None]


def run_following(config: Path, wav: Path, tmp: Path, *sets: str, on_event: OnEvent, timeout: float = 180) -> Any:
    """Run `assistant run --fast` on `wav`, calling `on_event` for each event as it is written."""
    events_path = tmp / "events.jsonl"
    command = [sys.executable, "-m", "assistant", "run", "--config", str(config), "--input", str(wav)]
    command += ["--output", str(tmp / "out.wav"), "--events", str(events_path), "--fast"]
    for item in (*REAL, *sets):
        command += ["--set", item]
    events: list[dict[str, Any]] = []
    with subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True) as proc:
        stderr: list[str] = []
        assert proc.stderr is not None
        reader = threading.Thread(target=lambda: stderr.extend(proc.stderr or []), daemon=True)
        reader.start()
        buffered = ""
        try:
            while True:
                try:
                    returncode = proc.wait(timeout=0.02)
                except subprocess.TimeoutExpired:
                    returncode = None
                if events_path.exists():
                    with events_path.open(encoding="utf-8") as handle:
                        handle.seek(len(buffered.encode()))
                        buffered += handle.read()
                    lines = buffered.split("\n")
                    for line in lines[len(events) : len(lines) - 1]:
                        events.append(json.loads(line))
                        on_event(events[-1])
                if returncode is not None:
                    break
                if timeout <= 0:
                    raise TimeoutError("assistant run did not finish")
                timeout -= 0.02
        finally:
            if proc.poll() is None:
                proc.kill()
        reader.join(10)
    return returncode, "".join(stderr), events


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


def after(events: list[dict[str, Any]], kind: str, index: int) -> list[dict[str, Any]]:
    """The events after the `index`-th one of `kind`."""
    positions = [i for i, e in enumerate(events) if e["type"] == kind]
    return events[positions[index] + 1 :]


@pytest.fixture
def three_turns(speech: dict[str, Path], tmp_path: Path) -> Path:
    turn = (speech["wake_and_question"], speech["silence_8"])
    return concat(tmp_path / "in.wav", *turn, *turn, *turn)


def test_ollama_killed_mid_answer_then_refusing_then_back(test_config: Path, three_turns: Path, tmp_path: Path) -> None:
    with OllamaTestServer(models=["test-model"], reply=PRIMARY_REPLY) as server:
        # The warm-up on wake takes the first behaviour; the answer the second.
        server.script(Behaviour(), Behaviour(stop_server_after_tokens=4))

        def on_event(event: dict[str, Any]) -> None:
            if event["type"] == "error" and event["code"] == "llm_unreachable":
                assert server.wait_stopped()
                server.start()  # Ollama is back, on the same port, with no model loaded

        code, stderr, events = run_following(
            test_config, three_turns, tmp_path, f"llm.host={server.url}", on_event=on_event
        )
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert [e["code"] for e in of(events, "error")] == ["llm_stream_cut", "llm_unreachable"]
    assert len(of(events, "transcript")) == 3
    starts = [i for i, e in enumerate(events) if e["type"] == "transcript"]
    said = [" ".join(s["text"] for s in of(events[a:b], "sentence")) for a, b in itertools.pairwise(starts)]
    assert said[0].startswith("Paris") and said[0].endswith(APOLOGY), "cut: what arrived, then the apology"
    assert said[1] == NOTICE, "refused after it had answered: the outage is told about (once)"
    last_turn = after(events, "transcript", 2)
    assert [s["text"] for s in of(last_turn, "sentence")] == [
        "Paris is the capital of France.",
        "It sits on the river Seine.",
    ], "the third turn is answered with no restart of the assistant"
    assert of(last_turn, "llm_done") and not of(last_turn, "error")
    (down,) = of(events, "llm_host_down")
    assert (down["code"], down["primary"]) == ("llm_stream_cut", True)
    (up,) = of(events, "llm_host_up")
    assert up["host"] == server.url and up["t"] > of(events, "error")[1]["t"]


def test_fallback_answers_while_the_primary_is_down_and_the_primary_comes_back(
    test_config: Path, three_turns: Path, tmp_path: Path
) -> None:
    with (
        OllamaTestServer(models=["test-model"], reply=PRIMARY_REPLY) as primary,
        OllamaTestServer(models=["small-model"], reply=FALLBACK_REPLY) as fallback,
    ):
        primary.script(Behaviour(), Behaviour(stop_server_after_tokens=4))

        def on_event(event: dict[str, Any]) -> None:
            if event["type"] == "llm_fallback":
                assert primary.wait_stopped()
                primary.start()  # found by the background check while the fallback's reply plays

        code, stderr, events = run_following(
            test_config,
            three_turns,
            tmp_path,
            f"llm.host={primary.url}",
            f"llm.fallbacks=[{{host: '{fallback.url}', model: small-model}}]",
            "llm.connect_timeout_s=0.5",
            "llm.recheck_s=0.2",
            on_event=on_event,
        )
        fallback_asks = [r.body for r in fallback.requests_to("/api/chat") if r.body.get("messages")]
    assert code == 0, stderr
    assert [e["code"] for e in of(events, "error")] == ["llm_stream_cut"], "only the reply that was cut fails"
    (used,) = of(events, "llm_fallback")
    assert (used["host"], used["model"]) == (fallback.url, "small-model")
    second_turn = after(events, "transcript", 1)
    assert of(second_turn, "sentence")[0]["text"] == FALLBACK_REPLY, "no apology: the fallback answered"
    (up,) = of(events, "llm_host_up")
    # After the fallback was used (the bus's order: both can fall in one 80 ms block of audio time).
    assert up["primary"] is True and events.index(up) > events.index(used)
    third_turn = after(events, "transcript", 2)
    assert of(third_turn, "sentence")[0]["text"] == "Paris is the capital of France."
    assert not of(third_turn, "llm_fallback"), "the primary answers again"
    asked = [b for b in fallback_asks if b["messages"][-1]["role"] == "user"]
    assert len(asked) == 1 and asked[0]["model"] == "small-model"


def test_check_says_the_fallback_answers(test_config: Path) -> None:
    with OllamaTestServer(models=["small-model"]) as fallback:
        down = OllamaTestServer(models=["test-model"]).start()
        down.stop()  # a port that refuses
        command = [sys.executable, "-m", "assistant", "check", "--config", str(test_config)]
        for item in (
            f"llm.host={down.url}",
            f"llm.fallbacks=[{{host: '{fallback.url}', model: small-model}}]",
        ):
            command += ["--set", item]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[1:] if line and not line.startswith(" ")}
    assert "FAIL" in rows["llm.server"] and "OK" in rows["llm.fallbacks[0].server"], done.stdout
    assert "OK" in rows["llm.answering"] and fallback.url in rows["llm.answering"]
    assert "degraded" in rows["llm.answering"]
    assert done.returncode == 1, "the primary is down: check says so"


def test_fallback_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        config_module.load(overrides=["llm.fallbacks=[{host: 'http://a:11434'}, {connect_timeout_s: 1}]"])
    assert "llm.fallbacks.1" in str(info.value) and "needs a host, a model or both" in str(info.value)
    with pytest.raises(ConfigError) as info:
        config_module.load(overrides=["llm.fallbacks=[{hots: x}]"])
    assert "llm.fallbacks.0.hots: unknown key" in str(info.value)
    with pytest.raises(ConfigError) as info:
        config_module.load(overrides=["llm.connect_timeout_s=0"])
    assert "llm.connect_timeout_s = 0" in str(info.value)
