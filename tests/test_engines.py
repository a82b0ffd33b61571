"""The real engine adapters on the real models and fixtures in ../shared/models."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import sys
import threading
import wave
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnxruntime
import pytest

from assistant.bench.wer import edit_distance, normalise
from assistant.config import SttConfig, TtsConfig, VadConfig, WakeConfig
from assistant.core.errors import ModelError, SpeechToTextCancelled
from assistant.core.ports import BLOCK_SAMPLES, SAMPLE_RATE, Audio
from assistant.engines import accel
from assistant.engines.stt import WhisperCpp, audio_ctx_for, clean_text, load_stt, repeats_itself, token_budget
from assistant.engines.tts import PiperTts, load_tts
from assistant.engines.vad import SileroVad, load_vad
from assistant.engines.wake import OpenWakeWord, load_wake
from tests.conftest import speak

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
ROOT = Path(__file__).resolve().parents[1]


def read_wav(path: Path, pad_s: float = 0.0) -> Audio:
    """A 16 kHz mono 16-bit WAV as float32, with `pad_s` of silence on each side."""
    with wave.open(str(path)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (SAMPLE_RATE, 1, 2)
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    silence = np.zeros(int(pad_s * SAMPLE_RATE), np.float32)
    return np.concatenate((silence, data.astype(np.float32) / 32768.0, silence)).astype(np.float32)


def blocks(audio: Audio) -> Iterator[Audio]:
    for start in range(0, len(audio) - BLOCK_SAMPLES + 1, BLOCK_SAMPLES):
        yield audio[start : start + BLOCK_SAMPLES]


def hits(detector: OpenWakeWord, audio: Audio) -> list[str]:
    """The model name of every hit while feeding `audio` block by block."""
    return [hit.model for hit in map(detector.process, blocks(audio)) if hit is not None]


def jarvis(models_dir: Path, **settings: Any) -> OpenWakeWord:
    return load_wake(WakeConfig(models=("hey_jarvis",), **settings), models_dir)


@pytest.fixture(scope="module")
def jarvis_audio(tmp_path_factory: pytest.TempPathFactory) -> Audio:
    return read_wav(speak("hey jarvis", tmp_path_factory.mktemp("wake") / "hey_jarvis.wav"), pad_s=1.0)


@pytest.fixture
def no_warned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accel, "_warned", set())


# --------------------------------------------------------------------------- wake word


@pytest.mark.parametrize(
    ("model", "clip", "expected"),
    [
        ("alexa", "alexa_test.wav", ["alexa"]),
        ("hey_jarvis", "alexa_test.wav", []),
        ("hey_jarvis", "hey_jane.wav", []),  # the near miss
        ("hey_jarvis", "jfk.wav", []),
    ],
)
def test_wake_words_on_recordings(models_dir: Path, audio_dir: Path, model: str, clip: str, expected: object) -> None:
    detector = load_wake(WakeConfig(models=(model,)), models_dir)
    assert hits(detector, read_wav(audio_dir / clip, pad_s=1.0)) == expected


def test_hey_jarvis_fires_once_on_espeak_offline_with_threads(
    models_dir: Path, jarvis_audio: Audio, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    detector = jarvis(models_dir, threads=2)
    assert hits(detector, jarvis_audio) == ["hey_jarvis"]
    assert detector._model.preprocessor.melspec_model.get_session_options().intra_op_num_threads == 2
    [row] = detector.health()
    assert detector.device == "cpu" and row.ok and "ms per 80 ms block" in row.detail


def test_refractory_period_counts_audio_not_wall_clock(models_dir: Path, jarvis_audio: Audio) -> None:
    detector = jarvis(models_dir, refractory_s=0.0)
    above = [b for b in blocks(jarvis_audio) if detector.scores(b)["hey_jarvis"] >= 0.5]
    assert len(above) > 1, "one utterance scores over the threshold on several blocks"
    assert len(hits(jarvis(models_dir, refractory_s=0.0), jarvis_audio)) == len(above)
    assert hits(jarvis(models_dir, refractory_s=2.0), jarvis_audio) == ["hey_jarvis"]
    twice = np.concatenate((jarvis_audio, np.zeros(2 * SAMPLE_RATE, np.float32), jarvis_audio))
    assert len(hits(jarvis(models_dir, refractory_s=2.0), twice)) == 2
    assert len(hits(jarvis(models_dir, refractory_s=10.0), twice)) == 1


def test_reset_clears_features_so_the_word_does_not_fire_again(models_dir: Path, jarvis_audio: Audio) -> None:
    detector = jarvis(models_dir, refractory_s=0.0)  # without reset it fires on several blocks
    fired = 0
    for block in blocks(jarvis_audio):
        if detector.process(block) is not None:
            fired += 1
            detector.reset()
    assert fired == 1
    assert hits(detector, jarvis_audio), "still detects a new wake word after reset"


def test_wake_model_by_path_and_missing_or_corrupt_files(models_dir: Path, tmp_path: Path, jarvis_audio: Audio) -> None:
    with pytest.raises(ModelError) as bundled:
        load_wake(WakeConfig(models=("hey_jarvis",)), tmp_path)
    for part in ("hey_jarvis_v0.1.onnx", "melspectrogram.onnx", "assistant models download hey_jarvis"):
        assert part in str(bundled.value)
    assert bundled.value.exit_status == 78
    mine = tmp_path / "mine.onnx"
    shutil.copy(models_dir / "openwakeword" / "hey_jarvis_v0.1.onnx", mine)
    with pytest.raises(ModelError, match=r"embedding_model\.onnx.*check wake\.models"):
        load_wake(WakeConfig(models=(str(mine),)), tmp_path)
    with pytest.raises(ModelError, match="no bundled wake model named 'hey_nobody'"):
        load_wake(WakeConfig(models=("hey_nobody",)), models_dir)
    for name in ("melspectrogram.onnx", "embedding_model.onnx"):  # found beside the wake-word file
        shutil.copy(models_dir / "openwakeword" / name, tmp_path / name)
    assert hits(load_wake(WakeConfig(models=(str(mine),)), tmp_path / "elsewhere"), jarvis_audio) == ["mine"]
    (tmp_path / "broken.onnx").write_bytes(b"not an onnx model" * 100)
    with pytest.raises(ModelError, match=r"broken\.onnx"):
        load_wake(WakeConfig(models=(str(tmp_path / "broken.onnx"),)), tmp_path)


# --------------------------------------------------------------------------- VAD


@pytest.fixture(scope="module")
def vad(models_dir: Path) -> SileroVad:
    return load_vad(VadConfig(threads=2), models_dir)


def probabilities(vad: SileroVad, audio: Audio) -> list[float]:
    vad.reset()
    return [vad.process(block) for block in blocks(audio)]


def test_silero_finds_speech_in_jfk_and_reset_restarts(vad: SileroVad, audio_dir: Path) -> None:
    speech = read_wav(audio_dir / "jfk.wav")
    probs = probabilities(vad, speech)
    assert max(probs) > 0.9 and np.mean(np.array(probs) > 0.5) > 0.4
    vad.process(np.zeros(100, np.float32))  # leave state, context and a partial window behind
    assert probabilities(vad, speech) == pytest.approx(probs)
    assert vad.device == "cpu" and vad._session.get_session_options().intra_op_num_threads == 2


@pytest.mark.parametrize("level", [0.0, 0.01, 0.05])
def test_silero_finds_no_speech_in_silence_or_low_noise(vad: SileroVad, level: float) -> None:
    noise = (np.random.default_rng(1).standard_normal(3 * SAMPLE_RATE) * level).astype(np.float32)
    assert max(probabilities(vad, noise)) < 0.3


def test_silero_runs_512_windows_and_keeps_the_remainder(vad: SileroVad, monkeypatch: pytest.MonkeyPatch) -> None:
    vad.reset()
    calls: list[int] = []
    real = vad._window

    def spy(window: Audio) -> float:
        calls.append(len(window))
        return real(window)

    monkeypatch.setattr(vad, "_window", spy)
    assert vad.process(np.zeros(256, np.float32)) == 0.0 and calls == []
    for _ in range(5):
        vad.process(np.zeros(BLOCK_SAMPLES, np.float32))
    assert calls == [512] * ((256 + 5 * BLOCK_SAMPLES) // 512)


def test_silero_missing_or_corrupt_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"silero_vad\.onnx.*assistant models download silero_vad"):
        load_vad(VadConfig(), tmp_path)
    (tmp_path / "vad").mkdir()
    (tmp_path / "vad" / "silero_vad.onnx").write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(ModelError, match=r"silero_vad\.onnx.*assistant models download silero_vad"):
        load_vad(VadConfig(), tmp_path)


# --------------------------------------------------------------------------- speech to text


REAL_WHISPER = "whisper/ggml-tiny.en-real.bin"


@pytest.fixture(scope="module")
def whisper(models_dir: Path) -> WhisperCpp:
    stt = load_stt(SttConfig(model=REAL_WHISPER, threads=2), models_dir)
    stt.warm()
    return stt


def padded(audio: np.ndarray, before_s: float = 0.3, after_s: float = 0.3) -> np.ndarray:
    """Speech with the quiet around it that the endpointer leaves."""
    return np.concatenate(
        [np.zeros(int(before_s * SAMPLE_RATE), np.float32), audio, np.zeros(int(after_s * SAMPLE_RATE), np.float32)]
    )


def words(text: str) -> list[str]:
    return normalise(text)


def test_real_whisper_hears_real_speech(whisper: WhisperCpp, audio_dir: Path, tmp_path: Path) -> None:
    jfk = whisper.transcribe(read_wav(audio_dir / "jfk.wav"))
    expected = (
        "and so my fellow americans ask not what your country can do for you ask what you can do for your country"
    )
    assert edit_distance(words(expected), words(jfk)) <= 1, jfk
    question = whisper.transcribe(padded(read_wav(speak("what is the capital of France", tmp_path / "q.wav"))))
    assert words(question) == words("what is the capital of France"), question
    assert whisper.transcribe(np.zeros(2 * SAMPLE_RATE, np.float32)) == "", "silence is no words ([BLANK_AUDIO])"
    [row] = whisper.health()
    assert whisper.device == "cpu" and row.ok and "ggml-tiny.en-real.bin" in row.detail and "full window" in row.detail


def test_a_looping_decode_is_retried_on_the_full_window(models_dir: Path, tmp_path: Path) -> None:
    # Measured: tiny.en on this request with a window fitted to it writes "What time is it?" five times over.
    fitted = load_stt(SttConfig(model=REAL_WHISPER, threads=2, window="fitted", context_margin_ms=0), models_dir)
    audio = padded(read_wav(speak("what time is it", tmp_path / "t.wav")))
    text = fitted.transcribe(audio)
    assert not repeats_itself(text), text
    assert words(text) == ["what", "time", "is", "it"], text
    assert fitted.runaways == 1, "the first decode looped and was retried once"


def test_a_cancelled_transcription_stops(whisper: WhisperCpp, audio_dir: Path) -> None:
    jfk = read_wav(audio_dir / "jfk.wav")
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(SpeechToTextCancelled):
        whisper.transcribe(jfk, cancel=cancel)
    # Cancelled while it decodes (from another thread, as a barge-in does): it raises rather than answer.
    cancel = threading.Event()
    timer = threading.Timer(0.05, cancel.set)
    timer.start()
    with pytest.raises(SpeechToTextCancelled):
        whisper.transcribe(jfk, cancel=cancel)
    timer.join()
    assert whisper.transcribe(padded(jfk[: 3 * SAMPLE_RATE])), "the engine works on after a cancel"


@pytest.mark.parametrize(
    ("text", "loops"),
    [
        ("What time is it? What time is it? What time is it?", True),
        ("Set a timer for 10 minutes. Set a timer for 10 minutes.", True),
        ("Turn it up, turn it up, turn it up.", True),
        ("What is? What is? What is?", True),
        ("What time is it?", False),
        ("No, no, I said ten.", False),
        ("Turn it up, turn it up.", False),
        ("", False),
    ],
)
def test_repeats_itself(text: str, loops: bool) -> None:
    assert repeats_itself(text) is loops


def test_token_budget_grows_with_the_audio() -> None:
    assert token_budget(SAMPLE_RATE, 8.0) == 16
    assert token_budget(10 * SAMPLE_RATE, 8.0) == 88


@pytest.mark.parametrize(
    ("seconds", "minimum", "expected"),
    [(0.5, 128, 128), (3.0, 128, 166), (3.0, 32, 166), (10.0, 128, 516), (29.9, 128, 1500), (60.0, 128, 1500)],
)
def test_fitted_audio_ctx_follows_the_utterance(seconds: float, minimum: int, expected: int) -> None:
    assert audio_ctx_for(int(seconds * SAMPLE_RATE), minimum) == expected


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (" What time is it? ", "What time is it?"),
        ("[BLANK_AUDIO]", ""),
        ("(music) turn on  the lights [Music]", "turn on the lights"),
    ],
)
def test_clean_text_drops_non_speech_markers(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


def test_missing_or_bad_whisper_models_raise_before_whisper_cpp(models_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"ggml-tiny\.en\.bin.*assistant models download tiny\.en"):
        load_stt(SttConfig(model="tiny.en"), tmp_path)
    (tmp_path / "whisper").mkdir()
    (tmp_path / "whisper" / "ggml-base.en.bin").write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(ModelError, match=r"ggml-base\.en\.bin is not a whisper\.cpp ggml model.*download base\.en"):
        load_stt(SttConfig(model="base.en"), tmp_path)
    with pytest.raises(ModelError, match="vocab-only"):
        load_stt(SttConfig(model="whisper/for-tests-ggml-tiny.en.bin"), models_dir)


def run_python(*lines: str) -> subprocess.CompletedProcess[str]:
    """Run code in a child process: a whisper.cpp crash fails the test, not the test run."""
    code = "\n".join(("import sys", "from pathlib import Path", "import numpy as np", *lines))
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_truncated_whisper_model_is_a_model_error_not_a_segfault(models_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "whisper").mkdir()
    with (models_dir / REAL_WHISPER).open("rb") as source:
        (tmp_path / "whisper" / "ggml-tiny.en.bin").write_bytes(source.read(20_000_000))
    result = run_python(
        "from assistant.config import SttConfig",
        "from assistant.core.errors import ModelError",
        "from assistant.engines.stt import load_stt",
        "try:",
        f"    load_stt(SttConfig(model='tiny.en'), Path({str(tmp_path)!r})).transcribe(np.zeros(16000, np.float32))",
        "except ModelError as exc:",
        "    print(exc)",
        "    sys.exit(exc.exit_status)",
    )
    assert result.returncode == 78, result.stderr
    for part in ("ggml-tiny.en.bin", "not all tensors loaded", "assistant models download tiny.en"):
        assert part in result.stdout


def test_whisper_keeps_stdout_clean_and_exits_cleanly(models_dir: Path) -> None:
    result = run_python(
        "from assistant.engines.stt import WhisperCpp",
        f"stt = WhisperCpp(Path({str(models_dir / REAL_WHISPER)!r}), accelerator='cpu')",
        "stt.warm()",
        "assert stt.transcribe(np.zeros(32000, np.float32)) == ''",
    )
    assert result.returncode == 0, result.stderr  # no abort from whisper.cpp's log callback at exit
    assert result.stdout == "" and "whisper_" not in result.stderr


# --------------------------------------------------------------------------- text to speech


def tone_voice(models_dir: Path, **settings: Any) -> PiperTts:
    """The tone stand-in: these tests are about the Piper adapter's plumbing (lengths, rates, files), not speech.

    What the real voice says is tested by transcribing it back (test_cli, test_scenarios).
    """
    return load_tts(TtsConfig(voice="fixtures/tone-voice.onnx", accelerator="cpu", **settings), models_dir)


def test_piper_tone_voice_length_grows_with_text_and_speed(models_dir: Path) -> None:
    voice = tone_voice(models_dir, threads=2)
    voice.warm()
    texts = ("Hi.", "Hello there, how are you today?", "Hello there, how are you today? I am a small speaker.")
    short, longer, longest = (voice.synthesize(text) for text in texts)
    for audio in (short, longer, longest):
        assert audio.dtype == np.float32 and audio.ndim == 1 and 0.0 < float(np.abs(audio).max()) <= 1.0
    assert 0 < len(short) < len(longer) < len(longest)
    native, rate = voice.synthesize_native("Hi.")
    assert rate == SAMPLE_RATE and len(native) == len(short)
    assert len(voice.synthesize("   ")) == 0
    assert len(tone_voice(models_dir, speed=2.0).synthesize(texts[1])) < 0.6 * len(longer)
    assert voice._voice.session.get_session_options().intra_op_num_threads == 2
    assert voice.device == "cpu" and voice.health()[0].ok


LONG_SENTENCE_PROBE = """
import sys
from pathlib import Path
from assistant.config import TtsConfig
from assistant.engines.tts import load_tts

def rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS"))

voice = load_tts(TtsConfig(voice="piper/en_US-joe-medium.onnx", accelerator="cpu"), Path(sys.argv[1]))
voice.synthesize("The capital of France is Paris.")
before = rss_mb()
long = " ".join(["The capital of France is Paris, a city on the Seine with many old bridges"] * 4)
for _ in range(2):
    assert len(voice.synthesize(long)) > 0
print(round(rss_mb() - before, 1))
"""


def test_a_long_sentence_does_not_keep_the_real_voice_large(models_dir: Path) -> None:
    """Piper's memory after one long sentence: onnxruntime's CPU arena would keep ~0.5 GB more for good."""
    done = subprocess.run(
        [sys.executable, "-c", LONG_SENTENCE_PROBE, str(models_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    growth_mb = float(done.stdout.split()[-1])
    assert growth_mb < 250, f"RSS grew {growth_mb} MB after a 300-character sentence"


def test_piper_resamples_other_voice_rates_to_16k(models_dir: Path, tmp_path: Path) -> None:
    shutil.copy(models_dir / "fixtures" / "tone-voice.onnx", tmp_path / "v22.onnx")
    config = json.loads((models_dir / "fixtures" / "tone-voice.onnx.json").read_text())
    config["audio"]["sample_rate"] = 22050  # as en_US-lessac-medium
    (tmp_path / "v22.onnx.json").write_text(json.dumps(config))
    voice = load_tts(TtsConfig(voice=str(tmp_path / "v22.onnx"), accelerator="cpu"), tmp_path)
    native, rate = voice.synthesize_native("Hello there, how are you today?")
    assert rate == 22050
    resampled = voice.synthesize("Hello there, how are you today?")
    assert len(resampled) == pytest.approx(len(native) * SAMPLE_RATE / 22050, abs=2)


def test_piper_missing_or_corrupt_voice(models_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"en_US-lessac-medium\.onnx.*download en_US-lessac-medium"):
        load_tts(TtsConfig(), tmp_path)
    shutil.copy(models_dir / "fixtures" / "tone-voice.onnx", tmp_path / "lonely.onnx")
    with pytest.raises(ModelError, match=r"lonely\.onnx\.json"):
        load_tts(TtsConfig(voice=str(tmp_path / "lonely.onnx")), tmp_path)
    (tmp_path / "broken.onnx").write_bytes(b"garbage" * 100)
    shutil.copy(models_dir / "fixtures" / "tone-voice.onnx.json", tmp_path / "broken.onnx.json")
    with pytest.raises(ModelError, match=r"broken\.onnx"):
        load_tts(TtsConfig(voice=str(tmp_path / "broken.onnx")), tmp_path)


# --------------------------------------------------------------------------- accelerators


def test_onnx_providers_fall_back_to_cpu_with_one_warning_per_engine(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, no_warned: None
) -> None:
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CPU])
    with caplog.at_level(logging.WARNING, logger="assistant.engines.accel"):
        assert accel.onnx_providers("cpu", "tts") == [CPU] and caplog.records == []
        assert accel.onnx_providers("auto", "tts") == accel.onnx_providers("auto", "tts") == [CPU]
        assert len(caplog.records) == 1
        assert accel.onnx_providers("auto", "wake") == [CPU] and len(caplog.records) == 2
        caplog.clear()
        assert accel.onnx_providers("cuda", "tts") == [CPU]
    [record] = caplog.records
    assert "onnxruntime-gpu" in record.getMessage() and "deploy/jetson" in record.getMessage()
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CUDA, CPU])
    assert accel.onnx_providers("auto", "tts") == accel.onnx_providers("cuda", "tts") == [CUDA, CPU]
    assert accel.onnx_providers("cpu", "tts") == [CPU]


def test_session_device_reports_the_provider_in_use(models_dir: Path) -> None:
    session = onnxruntime.InferenceSession(str(models_dir / "vad" / "silero_vad.onnx"), providers=[CPU])
    assert accel.session_device(session) == "cpu"

    assert accel.session_device(SimpleNamespace(get_providers=lambda: [CUDA, CPU])) == "cuda"


def test_whisper_cuda_detection_and_fallback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, no_warned: None
) -> None:
    real = accel.whisper_system_info()
    assert "CPU" in real and accel.whisper_has_cuda() == ("CUDA" in real.upper())
    monkeypatch.setattr(accel, "whisper_system_info", lambda: "WHISPER : COREML = 0 | CPU : AVX = 1 |")
    assert accel.whisper_use_gpu("cpu") is False
    with caplog.at_level(logging.WARNING, logger="assistant.engines.accel"):
        assert accel.whisper_use_gpu("cuda") is False
    assert "GGML_CUDA=1" in caplog.text
    monkeypatch.setattr(accel, "whisper_system_info", lambda: "CUDA : ARCHS = 870 | CPU : NEON = 1 |")
    assert accel.whisper_has_cuda() and accel.whisper_use_gpu("auto")


def test_is_jetson_reads_the_tegra_marker(tmp_path: Path) -> None:
    assert not accel.is_jetson(tmp_path / "nv_tegra_release")
    (tmp_path / "nv_tegra_release").write_text("# R36 (release), REVISION: 4.3\n")
    assert accel.is_jetson(tmp_path / "nv_tegra_release")
