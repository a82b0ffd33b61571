"""A first run before any LLM is set up: `assistant run` on WAV files, real Whisper tiny.en and Piper.

Nothing listens at llm.host: the device answers its own intents, the first
question for the LLM is told (once) that general questions need the LLM
server, a second gets the short apology, and the start-up log says so once
with the fix, without the start waiting for the LLM.
"""

from __future__ import annotations

import itertools
import re
import shutil
from pathlib import Path

import pytest

from assistant import config as config_module
from assistant.engines.ollama_setup import INSTALL_COMMAND
from assistant.testing.ollama_server import Blackhole, OllamaTestServer
from tests.conftest import SPOKEN_TIME, concat, silence, sounds_like, speak
from tests.test_scenarios import Run, run_assistant

NOTICE = config_module.ConversationConfig().llm_unavailable
APOLOGY = config_module.ConversationConfig().apology


def refused_url() -> str:
    server = OllamaTestServer().start()
    server.stop()
    return server.url


def said_in_turns(run: Run) -> list[str]:
    """What was spoken after each transcript, up to the next one."""
    marks = [e["t"] for e in run.of("transcript")] + [float("inf")]
    sentences = run.of("sentence")
    return [" ".join(s["text"] for s in sentences if a <= s["t"] < b) for a, b in itertools.pairwise(marks)]


def llm_warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "general questions need the LLM server" in line]


def test_no_llm_local_intents_answer_the_llm_is_told_once(test_config: Path, tmp_path: Path) -> None:
    wav = concat(
        tmp_path / "in.wav",
        silence(tmp_path / "s1.wav", 1),
        speak("hey jarvis, what time is it", tmp_path / "time.wav"),
        # 8 s, as between the others: a wake word while the first turn is still transcribing would
        # cancel it (as on a device), and a slow machine's Whisper pass here has taken over 3.7 s.
        silence(tmp_path / "s8t.wav", 8),
        speak("hey jarvis, what is the capital of France", tmp_path / "ask.wav"),
        silence(tmp_path / "s8a.wav", 8),
        speak("hey jarvis, why is the sky blue", tmp_path / "ask2.wav"),
        silence(tmp_path / "s8b.wav", 8),
    )
    url = refused_url()
    run = run_assistant(test_config, wav, tmp_path, f"llm.host={url}")
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    transcripts = [t["text"] for t in run.of("transcript")]
    assert len(transcripts) == 3, (transcripts, run.states(), run.of("wake"))
    assert sounds_like(transcripts[0], "what time is it"), transcripts
    time_said, first, second = said_in_turns(run)
    assert re.match(SPOKEN_TIME, time_said), "the device's own intent answers without the LLM"
    assert first == NOTICE, "the first question for the LLM: general questions need the LLM server"
    assert second == APOLOGY, "the second, in the same outage: the short apology, not the notice again"
    assert [e["code"] for e in run.of("error")] == ["llm_unreachable", "llm_unreachable"]
    assert len(run.of("llm_request")) == 2, "only the two general questions went to the LLM"
    assert run.states()[-1] == "idle"
    (warning,) = llm_warnings(run.stderr)  # once, at start
    fix = INSTALL_COMMAND if shutil.which("ollama") is None else "ollama serve"
    assert f"llm.server {url}: nothing answers" in warning, warning
    assert fix in warning.split("fix: ", 1)[1], warning
    lines = run.stderr.splitlines()
    ready = next(i for i, line in enumerate(lines) if "ready: listening for" in line)
    assert lines.index(warning) > ready, "the start did not wait for the LLM"


def test_start_does_not_wait_for_a_host_that_never_answers(
    test_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host that accepts no connection (gone off the network): ready at once, the log says so later."""
    quiet = silence(tmp_path / "in.wav", 4)
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no `ollama` here: the subprocess inherits this PATH
    with Blackhole() as hole:
        run = run_assistant(test_config, quiet, tmp_path, f"llm.host={hole.url}", "llm.connect_timeout_s=2", fast=False)
    assert run.returncode == 0, run.stderr
    (warning,) = llm_warnings(run.stderr)
    assert "did not accept the connection in time" in warning and INSTALL_COMMAND in warning, warning
    lines = run.stderr.splitlines()
    ready = next(i for i, line in enumerate(lines) if "ready: listening for" in line)
    assert lines.index(warning) > ready, "ready first: the wake-word loop does not wait on the LLM's connect time-out"
    assert run.states() == ["idle"]
