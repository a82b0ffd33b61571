"""Spoken requests through the real Whisper tiny.en reach the right skill (and questions do not)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from assistant.bench.skillset import Request, measure
from assistant.config import SkillsConfig, SttConfig
from assistant.core.ports import Audio
from assistant.engines.stt import load_stt
from assistant.skills.matcher import IntentMatcher
from tests.conftest import missing

REAL_TINY = "whisper/ggml-tiny.en-real.bin"

# A handful the real tiny.en hears reliably from espeak-ng's en-us voice.
REQUESTS = (
    Request("what time is it", "HassGetCurrentTime"),
    Request("set a timer for thirty seconds", "HassStartTimer", {"duration_s": 30}),
    Request("how much time is left on the pizza timer", "HassTimerStatus", {"name": "pizza"}),
    Request("turn the volume down", "HassSetVolumeRelative", {"direction": "down"}),
    Request("never mind", "HassNevermind"),
)


@pytest.fixture(scope="module")
def transcribe(models_dir: Path) -> Callable[[Audio], str]:
    if not (models_dir / REAL_TINY).is_file():
        pytest.skip(f"{REAL_TINY} not in {models_dir}")
    stt = load_stt(SttConfig(model=REAL_TINY, threads=2), models_dir)

    def run(audio: Audio) -> str:
        return stt.transcribe(audio, audio_ctx=0)

    return run


def test_real_whisper_requests_reach_their_intents(transcribe: Callable[[Audio], str]) -> None:
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        missing("espeak-ng and sox are needed (scripts/setup --test installs them)")
    settings = SkillsConfig()
    matcher = IntentMatcher(settings.strip_words, max_timer_s=settings.max_timer_s)
    report = measure(
        transcribe,
        matcher,
        REQUESTS,
        voices=("en-us",),
        not_ours=("what is the capital of france",),
    )
    assert report.misses == [], "\n".join(report.lines())
    assert report.false_takes == ()
