"""Speech to text with whisper.cpp through pywhispercpp, sized for short spoken commands."""

from __future__ import annotations

import atexit
import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from assistant.config import SttConfig
from assistant.core.errors import ModelError, SpeechToTextCancelled, SpeechToTextFailed
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

Window = Literal["full", "fitted"]

# What Whisper writes for silence, a cough or room noise, measured here on tiny.en: "you" at
# p = 0.25-0.53. Said for real, these come with a higher mean token probability.
HALLUCINATIONS = frozenset({"you", "thank you", "thanks for watching", "bye", "so"})
CONFIDENT = 0.7

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


_aborting = threading.local()  # set on the worker thread while a decode is being abandoned on purpose


def _on_native_log(level: int, text: str) -> None:
    if _log_capture is not None:
        _log_capture.append((level, text))
    aborted = getattr(_aborting, "now", False) and "failed to" in text  # "failed to encode": our own abort
    native_logger.log(logging.DEBUG if aborted else _LEVELS.get(level, logging.DEBUG), "%s", text.rstrip())


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


def audio_ctx_for(samples: int, minimum: int, margin: int = CTX_MARGIN) -> int:
    """Encoder frames to run for `samples` of audio: the utterance plus a margin."""
    frames = math.ceil(samples / SAMPLE_RATE * FRAMES_PER_S) + margin
    return min(MAX_AUDIO_CTX, max(minimum, frames))


def is_hallucination(text: str, probability: float) -> bool:
    """Whether `text` is what Whisper writes for silence or noise ("you"), said without confidence."""
    words = " ".join(re.findall(r"[\w']+", text.lower()))
    return words in HALLUCINATIONS and not probability >= CONFIDENT


def token_budget(samples: int, per_s: float) -> int:
    """Most tokens a decode of `samples` may write: a fast talker's rate, with room for punctuation."""
    return math.ceil(samples / SAMPLE_RATE * per_s) + 8


def repeats_itself(text: str) -> bool:
    """Whether Whisper looped: a phrase of 2+ words said 3 times, or of 4+ words twice, back to back."""
    words = re.findall(r"[\w']+", text.lower())
    for size in range(2, len(words) // 2 + 1):
        for start in range(len(words) - 2 * size + 1):
            phrase = words[start : start + size]
            times = 1
            while words[start + times * size : start + (times + 1) * size] == phrase:
                times += 1
            if times >= 3 or (times >= 2 and size >= 4):
                return True
    return False


@dataclass(frozen=True)
class Decode:
    """One whisper.cpp pass: its text, and whether it ran away (looped or used up its budget)."""

    text: str
    tokens: int
    exhausted: bool  # hit the token budget or the time limit
    loops: bool  # repeats a phrase

    @property
    def runaway(self) -> bool:
        return self.exhausted or self.loops


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
    """Transcribes one utterance at a time with whisper.cpp (blocking, thread-safe).

    Every decode is bounded: at most `max_tokens_per_s` tokens per second of
    audio and `timeout_s` of wall-clock time. A decode that loops or uses up its
    budget is tried once more on the full window without temperature fallback
    (the fallback re-decodes up to five times); a second runaway fails the turn.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        threads: int = 2,
        language: str = "en",
        window: Window = "full",
        min_audio_ctx: int = 128,
        context_margin_ms: int = 320,
        max_tokens_per_s: float = 8.0,
        timeout_s: float = 20.0,
        accelerator: accel.Requested = "auto",
        prompt: str = "",
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
        # The initial prompt is a decoder setting that stays for every later call.
        prompted: dict[str, Any] = {"initial_prompt": prompt} if prompt else {}
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
                    temperature_inc=0.0,  # no hidden re-decodes: the retry below is ours and bounded
                    **prompted,
                )
            finally:
                _log_capture = None
        # The log callback is process-wide: another instance's transcription aborted meanwhile (a
        # preempted or abandoned call) logs "whisper_full_with_state: failed to encode" here too.
        problems = [t.strip() for level, t in captured if level == 4 and "whisper_full" not in t]
        problems += [t.strip() for level, t in captured if level == 3 and "no tensors" in t]
        if problems:
            raise ModelError(f"whisper.cpp cannot load {model_path}: {'; '.join(problems)}; {fix}")
        native = " ".join(t for _, t in captured)
        self._pw = pw
        self.device: accel.Device = "cuda" if use_gpu and "no GPU found" not in native else "cpu"
        self.model_path = model_path
        self.language = language
        self.window: Window = window
        self.min_audio_ctx = min_audio_ctx
        self.margin_frames = math.ceil(context_margin_ms / 1000 * FRAMES_PER_S)
        self.max_tokens_per_s = max_tokens_per_s
        self.timeout_s = timeout_s
        self.threads = threads
        self.prompt = prompt
        self.runaways = 0  # decodes that looped or hit a bound (each was retried)
        self._lock = threading.Lock()
        logger.info(
            "stt: whisper.cpp %s on %s (%d thread(s), %s window, CUDA build: %s)",
            model_path.name,
            self.device,
            threads,
            window,
            accel.whisper_has_cuda(),
        )

    def audio_ctx(self, samples: int) -> int:
        """The encoder window for `samples` of audio: 0 (the full 30 s) unless fitted."""
        if self.window == "full":
            return 0
        return audio_ctx_for(samples, self.min_audio_ctx, self.margin_frames)

    def transcribe(self, audio: Audio, *, cancel: threading.Event | None = None, audio_ctx: int | None = None) -> str:
        """Text of one utterance; `cancel` aborts it (raises SpeechToTextCancelled).

        `audio_ctx` overrides the configured encoder window (0 = full).
        """
        samples = np.asarray(audio, dtype=np.float32)
        if len(samples) < MIN_SAMPLES:
            samples = np.concatenate((samples, np.zeros(MIN_SAMPLES - len(samples), np.float32)))
        ctx = self.audio_ctx(len(samples)) if audio_ctx is None else audio_ctx
        deadline = time.monotonic() + self.timeout_s
        first = self._decode(samples, ctx, cancel, deadline)
        if not first.runaway:
            return first.text
        self.runaways += 1
        logger.warning("stt: decode ran away at audio_ctx %d (%d tokens): %r; retrying", ctx, first.tokens, first.text)
        second = self._decode(samples, 0, cancel, time.monotonic() + self.timeout_s, temperature=0.0 if ctx else 0.4)
        if second.exhausted:
            self.runaways += 1
            raise SpeechToTextFailed(f"whisper.cpp ran away twice on {len(audio) / SAMPLE_RATE:.1f} s of audio")
        return second.text  # a repeat on the full window is taken as said: people do repeat themselves

    def _decode(
        self,
        samples: Audio,
        ctx: int,
        cancel: threading.Event | None,
        deadline: float,
        *,
        temperature: float = 0.0,
    ) -> Decode:
        budget = token_budget(len(samples), self.max_tokens_per_s)
        timed_out = False

        def abort() -> bool:
            nonlocal timed_out
            timed_out = time.monotonic() > deadline
            _aborting.now = timed_out or (cancel is not None and cancel.is_set())
            return bool(_aborting.now)

        with self._lock:
            _aborting.now = False
            if cancel is not None and cancel.is_set():
                raise SpeechToTextCancelled("transcription abandoned before it started")
            try:
                segments = self._model.transcribe(
                    samples,
                    no_timestamps=True,
                    language=self.language,
                    audio_ctx=ctx,
                    max_tokens=budget,
                    temperature=temperature,
                    abort_callback=abort,
                    extract_probability=True,
                )
                ctx_handle = self._model._ctx  # type: ignore[attr-defined]  # pywhispercpp keeps it private
                tokens = sum(
                    self._pw.whisper_full_n_tokens(ctx_handle, i)
                    for i in range(self._pw.whisper_full_n_segments(ctx_handle))
                )
            except Exception as exc:
                raise SpeechToTextFailed(f"whisper.cpp failed: {exc}") from exc
        if cancel is not None and cancel.is_set():
            raise SpeechToTextCancelled("transcription abandoned for a newer request")
        raw = " ".join(segment.text for segment in segments)
        text = clean_text(raw)
        probability = min((segment.probability for segment in segments), default=1.0)
        if is_hallucination(text, probability):
            logger.debug("stt: %r at p=%.2f is what Whisper writes for non-speech; dropped", text, probability)
            text = ""
        # The decoder counts special tokens too; a full budget means it never reached the end.
        logger.debug(
            "stt: %.2f s, audio_ctx %d, %d/%d tokens -> %r", len(samples) / SAMPLE_RATE, ctx, tokens, budget, text
        )
        return Decode(text, tokens, exhausted=timed_out or tokens >= budget, loops=repeats_itself(text))

    def warm(self) -> None:
        """Run one short transcription so the first real one pays no set-up cost (a failure is only logged)."""
        try:
            self.transcribe(np.zeros(2 * SAMPLE_RATE, dtype=np.float32))
        except SpeechToTextFailed as exc:
            logger.warning("stt: the warm-up transcription failed (%s); the first request pays the set-up", exc)

    def health(self) -> list[Health]:
        """One row for `assistant check`."""
        detail = f"whisper.cpp {self.model_path.name} on {self.device}, {self.threads} thread(s), {self.window} window"
        return [Health("speech to text", True, detail)]


def load_stt(cfg: SttConfig, models_dir: Path) -> WhisperCpp:
    """Build whisper.cpp from config; ModelError names a missing or bad file and its fix."""
    path = locate(models_dir, "stt", cfg.model, "stt.model", "a path to a ggml .bin")
    fix = fix_for(path, "stt.model")
    return WhisperCpp(
        path,
        threads=cfg.threads,
        language=cfg.language,
        window=cfg.window,
        min_audio_ctx=cfg.min_audio_ctx,
        context_margin_ms=cfg.context_margin_ms,
        max_tokens_per_s=cfg.max_tokens_per_s,
        timeout_s=cfg.timeout_s,
        accelerator=cfg.accelerator,
        prompt=cfg.prompt,
        fix=fix,
    )
