"""Shared fixtures: the real models, speech made with espeak-ng, the Ollama test server."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from assistant.config import SkillsConfig
from assistant.skills.matcher import IntentMatcher

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def _models_dir() -> Path | None:
    for candidate in (os.environ.get("ASSISTANT_TEST_MODELS"), SHARED / "models"):
        if candidate and (Path(candidate) / "openwakeword").is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session", autouse=True)
def _own_state_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Runs that name no state_dir (the benchmark, one-shot commands) keep their timers out of ~/.local."""
    previous = os.environ.get("STATE_DIRECTORY")
    os.environ["STATE_DIRECTORY"] = str(tmp_path_factory.mktemp("state"))
    yield
    if previous is None:
        os.environ.pop("STATE_DIRECTORY", None)
    else:
        os.environ["STATE_DIRECTORY"] = previous


def missing(reason: str) -> None:
    """Skip a test that needs models or tools; in CI that is a failure instead."""
    if os.environ.get("CI"):
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def models_dir() -> Path:
    found = _models_dir()
    if found is None:
        missing(
            "test models not found: place the shared models at ../shared/models beside the "
            "project or set ASSISTANT_TEST_MODELS (scripts/download-models fetches the real ones)"
        )
    assert found is not None
    return found


@pytest.fixture(scope="session")
def audio_dir() -> Path:
    path = SHARED / "audio"
    if not path.is_dir():
        missing("../shared/audio (real speech recordings) not found beside the project")
    return path


def speak(text: str, path: Path, *, voice: str = "en-us", speed: int = 150) -> Path:
    """Make a 16 kHz mono WAV of `text` with espeak-ng."""
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        missing("espeak-ng and sox are needed (scripts/setup --test installs them)")
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(path)], check=True)
    raw.unlink()
    return path


def sounds_like(heard: str, said: str, *, errors: int = 1) -> bool:
    """Whether a real transcript is what was said, allowing `errors` words of Whisper's own error."""
    from assistant.bench.wer import edit_distance, normalise

    return edit_distance(normalise(said), normalise(heard)) <= errors


# How the device says the time on a 12-hour clock: "7 AM", "7 oh 5 AM", "7:30 PM".
SPOKEN_TIME = r"It's \d{1,2}(:\d\d| oh \d)? [AP]M\."


def spoken_hour_minute(moment: datetime) -> str:
    """The hour and minute of `moment` as they begin the spoken time: "7 ", "7 oh 5", "7:30"."""
    hour = f"{moment.hour % 12 or 12}"
    if not moment.minute:
        return f"{hour} "
    return f"{hour} oh {moment.minute}" if moment.minute < 10 else f"{hour}:{moment.minute:02d}"


def silence(path: Path, seconds: float) -> Path:
    subprocess.run(
        ["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(path), "trim", "0", str(seconds)], check=True
    )
    return path


def concat(path: Path, *parts: Path) -> Path:
    """Join WAV files (all 16 kHz mono) into one."""
    subprocess.run(["sox", *map(str, parts), str(path)], check=True)
    return path


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """espeak-ng phrases used across tests, made once per session."""
    folder = tmp_path_factory.mktemp("speech")
    phrases = {
        "hey_jarvis": "hey jarvis",
        "question": "what is the capital of France",
        "wake_and_question": "hey jarvis what is the capital of France",
        "other": "the weather is nice today and the birds are singing",
    }
    made = {name: speak(text, folder / f"{name}.wav") for name, text in phrases.items()}
    for seconds in (0.5, 1, 2, 4, 8):
        made[f"silence_{seconds}"] = silence(folder / f"silence_{seconds}.wav", seconds)
    yield made


@pytest.fixture
def test_config(models_dir: Path, tmp_path: Path) -> Path:
    """A config on the real shared models: Whisper tiny.en and the Piper joe-medium voice."""
    path = tmp_path / "test.yaml"
    path.write_text(
        f"""
models_dir: {models_dir}
state_dir: {tmp_path / "state"}
wake:
  models: [hey_jarvis]
stt:
  model: whisper/ggml-tiny.en-real.bin
  threads: 2
tts:
  voice: piper/en_US-joe-medium.onnx
llm:
  model: test-model
  timeout_s: 5
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="session")
def matcher() -> IntentMatcher:
    """The device's intent matcher as the default config builds it (it keeps no state between matches)."""
    settings = SkillsConfig()
    return IntentMatcher(settings.strip_words, max_timer_s=settings.max_timer_s)
