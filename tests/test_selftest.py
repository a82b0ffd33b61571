"""`assistant check --audio`: the chirp analysis, then the whole self-test through a PulseAudio null sink."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from assistant.core.ports import SAMPLE_RATE
from assistant.selftest import HEARD_MATCH, chirp, find_chirp, level_stats, loop_rows
from tests.conftest import ROOT
from tests.test_audio_devices import pulse

__all__ = ["pulse"]


def test_find_chirp_in_noise_and_its_offset() -> None:
    rng = np.random.default_rng(7)
    reference = chirp()
    recording = (0.01 * rng.standard_normal(SAMPLE_RATE * 2)).astype(np.float32)
    at = 12_345
    recording[at : at + len(reference)] += 0.1 * reference  # 20 dB quieter than played, like a room
    match, offset = find_chirp(recording, reference)
    assert offset == at and match > 0.9
    noise_only, _ = find_chirp((0.01 * rng.standard_normal(SAMPLE_RATE * 2)).astype(np.float32), reference)
    assert noise_only < HEARD_MATCH / 2


def test_rows_name_the_fix() -> None:
    silent = level_stats(np.zeros(SAMPLE_RATE, np.float32))
    rows = {r.part: r for r in loop_rows(silent, np.zeros(SAMPLE_RATE, np.float32), 0.05, 0, 0.0)}
    assert not rows["speaker → microphone"].ok
    assert "exact zeros" in rows["speaker → microphone"].fix and "set-sink-mute" in rows["speaker → microphone"].fix
    loud = np.clip(np.sin(np.arange(SAMPLE_RATE) / 3.0) * 1.5, -1, 1).astype(np.float32)
    rows = {r.part: r for r in loop_rows(level_stats(loud), loud, 0.05, 0, 0.0)}
    assert not rows["noise floor"].ok and "gain" in rows["noise floor"].fix
    assert not rows["clipping"].ok and "lower the microphone gain" in rows["clipping"].fix


@pytest.fixture
def check_config(models_dir: Path, tmp_path: Path) -> Path:
    path = tmp_path / "check.yaml"
    path.write_text(
        f"models_dir: {models_dir}\nstate_dir: {tmp_path / 'state'}\n"
        "audio: {input_device: pulse, output_device: pulse}\nwake: {models: [hey_jarvis]}\n",
        encoding="utf-8",
    )
    return path


def _check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assistant", "check", "--audio", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _row(output: str, part: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(part))


@pytest.fixture
def muted(pulse: str) -> Iterator[None]:
    def mute(on: str) -> None:
        subprocess.run(
            ["pactl", f"--server={pulse}", "set-sink-mute", "assistant_test", on],
            check=True,
            capture_output=True,
            timeout=10,
        )

    mute("1")
    try:
        yield
    finally:
        mute("0")


def test_check_audio_hears_the_chirp_and_the_wake_word(pulse: str, check_config: Path) -> None:
    done = _check(check_config)
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    loop = _row(done.stdout, "speaker → microphone")
    assert " OK " in loop and "chirp heard at" in loop and "loop delay" in loop
    assert " OK " in _row(done.stdout, "wake word (sample)") and "hey_jarvis scored" in done.stdout
    assert " OK " in _row(done.stdout, "noise floor") and " OK " in _row(done.stdout, "clipping")
    assert "Traceback" not in done.stderr


def test_check_audio_fails_with_its_fix_when_the_sink_is_muted(pulse: str, check_config: Path, muted: None) -> None:
    done = _check(check_config)
    print(done.stdout)
    assert done.returncode == 1, done.stdout + done.stderr
    assert " FAIL " in _row(done.stdout, "speaker → microphone") and "chirp not heard" in done.stdout
    assert "fix: " in done.stdout and "set-sink-mute @DEFAULT_SINK@ 0" in done.stdout
    assert " FAIL " in _row(done.stdout, "wake word (sample)")
    assert "Traceback" not in done.stderr
