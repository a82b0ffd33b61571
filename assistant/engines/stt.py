"""Speech to text with whisper.cpp through pywhispercpp, sized for short spoken commands."""

from __future__ import annotations

import atexit
import logging
import math
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from assistant.config import SttConfig
from assistant.core.errors import ModelError, SpeechToTextFailed
from assistant.core.ports import SAMPLE_RATE, Audio, Health
from assistant.engines import accel
from assistant.engines.modelfile import fix_for, locate

logger = logging.getLogger(__name__)
native_logger = logging.getLogger(__name__ + ".whispercpp")

GGML_MAGIC = b"lmgg"  # 0x67676d6c little-endian, whisper.cpp's model file magic
MIN_MODEL_BYTES = 10_000_000  # the smallest real model (tiny, q5_1) is ~31 MB
FRAMES_PER_S = 50  # the encoder emits one frame per 20 ms of audio
CTX_MARGIN = 16  # frames of slack past the end of the utterance
MAX_AUDIO_CTX = 1500  # 30 s, the full window
MIN_SAMPLES = int(1.1 * SAMPLE_RATE)  # whisper.cpp skips input under 1 s

# Non-speech annotations Whisper writes instead of words: [BLANK_AUDIO], (music), *laughs*.
_NON_SPEECH = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|♪+")
_SPACES = re.compile(r"\s+")

# whisper.cpp logs through one process-wide callback: route it into logging, and let
# the loader see the errors of its own init (a truncated file loads "fine" otherwise
# and the first transcription segfaults).
_log_lock = threading.Lock()
_log_capture: list[tuple[int, str]] | None = None
_log_installed = False
_LEVELS = {3: logging.WARNING, 4: logging.ERROR}


def _on_native_log(level: int, text: str) -> None:
    if _log_capture is not None:
        _log_capture.append((level, text))
    native_logger.log(_LEVELS.get(level, logging.DEBUG), "%s", text.rstrip())


def _install_log_callback(pw: Any) -> None:
    global _log_installed
    if _log_installed:
        return
    pw.whisper_log_set(_on_native_log)
    # A Python callback still installed while the interpreter finalizes aborts the
    # process (whisper_free logs without the GIL): restore the C default first.
    atexit.register(pw.whisper_log_set, None)
    _log_installed = True


def clean_text(text: str) -> str:
    """Drop non-speech markers and surplus whitespace from Whisper output."""
    return _SPACES.sub(" ", _NON_SPEECH.sub(" ", text)).strip()


def audio_ctx_for(samples: int, minimum: int) -> int:
    """Encoder frames to run for `samples` of audio: the utterance plus a margin."""
    frames = math.ceil(samples / SAMPLE_RATE * FRAMES_PER_S) + CTX_MARGIN
    return min(MAX_AUDIO_CTX, max(minimum, frames))


def check_model_file(path: Path, fix: str) -> None:
    """Raise ModelError unless `path` looks like a complete whisper.cpp ggml model."""
    if not path.is_file():
        raise ModelError(f"Whisper model missing: {path}; {fix}")
    size = path.stat().st_size
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != GGML_MAGIC:
        raise ModelError(f"{path} is not a whisper.cpp ggml model (bad magic {magic!r}); {fix}")
    if size < MIN_MODEL_BYTES:
        raise ModelError(f"{path} is only {size} bytes: truncated, or a vocab-only test file; {fix}")


class WhisperCpp:
    """Transcribes one utterance at a time with whisper.cpp (blocking, thread-safe)."""

    def __init__(
        self,
        model_path: Path,
        *,
        threads: int = 2,
        language: str = "en",
        min_audio_ctx: int = 128,
        accelerator: accel.Requested = "auto",
        fix: str = "",
    ) -> None:
        global _log_capture
        import _pywhispercpp as pw  # type: ignore[import-not-found,unused-ignore]
        from pywhispercpp.model import Model

        fix = fix or "check stt.model"
        check_model_file(model_path, fix)
        _install_log_callback(pw)
        # pywhispercpp logs every call at INFO ("Transcribing ...", "Inference time").
        logging.getLogger("pywhispercpp").setLevel(logging.WARNING)
        use_gpu = accel.whisper_use_gpu(accelerator)
        captured: list[tuple[int, str]] = []
        with _log_lock:
            _log_capture = captured
            try:
                self._model = Model(
                    str(model_path),
                    redirect_whispercpp_logs_to=False,  # logs go through the callback
                    context_params={"use_gpu": use_gpu},
                    n_threads=threads,
                    print_progress=False,  # its default writes "Progress:" to stdout
                    print_realtime=False,
                    print_timestamps=False,
                    no_context=True,
                    single_segment=True,
                    suppress_nst=True,
                )
            finally:
                _log_capture = None
        problems = [t.strip() for level, t in captured if level == 4]
        problems += [t.strip() for level, t in captured if level == 3 and "no tensors" in t]
        if problems:
            raise ModelError(f"whisper.cpp cannot load {model_path}: {'; '.join(problems)}; {fix}")
        native = " ".join(t for _, t in captured)
        self.device: accel.Device = "cuda" if use_gpu and "no GPU found" not in native else "cpu"
        self.model_path = model_path
        self.language = language
        self.min_audio_ctx = min_audio_ctx
        self.threads = threads
        self._lock = threading.Lock()
        logger.info(
            "stt: whisper.cpp %s on %s (%d thread(s), CUDA build: %s)",
            model_path.name,
            self.device,
            threads,
            accel.whisper_has_cuda(),
        )

    def transcribe(self, audio: Audio, *, audio_ctx: int | None = None) -> str:
        """Text of one utterance; `audio_ctx` overrides the size-based encoder window (0 = full)."""
        samples = np.asarray(audio, dtype=np.float32)
        if len(samples) < MIN_SAMPLES:
            samples = np.concatenate((samples, np.zeros(MIN_SAMPLES - len(samples), np.float32)))
        ctx = audio_ctx_for(len(samples), self.min_audio_ctx) if audio_ctx is None else audio_ctx
        try:
            with self._lock:
                segments = self._model.transcribe(samples, no_timestamps=True, language=self.language, audio_ctx=ctx)
        except Exception as exc:
            raise SpeechToTextFailed(f"whisper.cpp failed: {exc}") from exc
        text = clean_text(" ".join(segment.text for segment in segments))
        logger.debug("stt: %.2f s, audio_ctx %d -> %r", len(audio) / SAMPLE_RATE, ctx, text)
        return text

    def warm(self) -> None:
        """Run one short transcription so the first real one pays no set-up cost."""
        self.transcribe(np.zeros(2 * SAMPLE_RATE, dtype=np.float32))

    def health(self) -> list[Health]:
        """One row for `assistant check`."""
        detail = f"whisper.cpp {self.model_path.name} on {self.device}, {self.threads} thread(s)"
        return [Health("speech to text", True, detail)]


def load_stt(cfg: SttConfig, models_dir: Path) -> WhisperCpp:
    """Build whisper.cpp from config; ModelError names a missing or bad file and its fix."""
    path = locate(models_dir, "stt", cfg.model, "stt.model", "a path to a ggml .bin")
    fix = fix_for(path, "stt.model")
    return WhisperCpp(
        path,
        threads=cfg.threads,
        language=cfg.language,
        min_audio_ctx=cfg.min_audio_ctx,
        accelerator=cfg.accelerator,
        fix=fix,
    )
