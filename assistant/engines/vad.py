"""Voice activity with the Silero VAD v6 ONNX model on onnxruntime (no torch)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from assistant import models as catalogue
from assistant.config import VadConfig
from assistant.core.errors import ModelError
from assistant.core.ports import SAMPLE_RATE, Audio, Health
from assistant.engines import accel
from assistant.engines.modelfile import locate

logger = logging.getLogger(__name__)

WINDOW = 512
"""Samples per model call at 16 kHz (32 ms)."""

CONTEXT = 64
"""Samples of the previous window prepended to each call, as silero-vad's own wrapper does."""

STATE_SHAPE = (2, 1, 128)


class SileroVad:
    """Speech probability per block: the max over the 512-sample windows it completes."""

    def __init__(self, model_path: Path, *, threads: int = 1, fix: str = "") -> None:
        import onnxruntime

        fix = fix or f"run: {catalogue.download_command(['silero_vad'])}"
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            # A model this small gains nothing from a GPU round trip: always the CPU.
            self._session: Any = onnxruntime.InferenceSession(
                str(model_path), sess_options=options, providers=[accel.CPU]
            )
        except Exception as exc:
            raise ModelError(
                f"cannot load the Silero VAD model {model_path} ({exc}); the file is corrupt "
                f"or not an ONNX model: {fix}"
            ) from exc
        names = {i.name for i in self._session.get_inputs()}
        if not {"input", "state", "sr"} <= names:
            raise ModelError(f"{model_path} is not a Silero VAD v5/v6 model (inputs {sorted(names)}); {fix}")
        self.model_path = model_path
        self.device: accel.Device = accel.session_device(self._session)
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)
        self._state = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        logger.info("vad: Silero %s on %s (%d thread(s))", model_path.name, self.device, threads)

    def _window(self, window: Audio) -> float:
        frame = np.concatenate((self._context, window))[None, :]
        output, self._state = self._session.run(None, {"input": frame, "state": self._state, "sr": self._sr})
        self._context = frame[0, -CONTEXT:]
        return float(output[0, 0])

    window_s = WINDOW / SAMPLE_RATE
    """Each probability from `windows` covers this much audio (32 ms)."""

    def windows(self, block: Audio) -> list[float]:
        """Speech probability of each 512-sample window this block completes, in order."""
        samples = np.concatenate((self._pending, np.asarray(block, dtype=np.float32)))
        whole = len(samples) - len(samples) % WINDOW
        self._pending = samples[whole:]
        return [self._window(samples[start : start + WINDOW]) for start in range(0, whole, WINDOW)]

    def process(self, block: Audio) -> float:
        """Speech probability for one block: the most of its windows (0.0 when none)."""
        return max(self.windows(block), default=0.0)

    def reset(self) -> None:
        """Start afresh: clear the recurrent state, context and partial window."""
        self._state = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def health(self) -> list[Health]:
        """One row for `assistant check`."""
        return [Health("vad", True, f"Silero {self.model_path.name} on {self.device}")]

    def fresh(self) -> SileroVad:
        """Another Silero on the same file, with its own state (one thread: sessions run beside the loop)."""
        return SileroVad(self.model_path, threads=1)


def load_vad(cfg: VadConfig, models_dir: Path) -> SileroVad:
    """Build Silero VAD from config; ModelError names a missing or corrupt file and its fix."""
    models_dir = Path(models_dir).expanduser()
    path = locate(models_dir, "vad", cfg.model, "vad.model", "a path to an .onnx file")
    fix = f"run: {catalogue.download_command(['silero_vad'], models_dir)}"
    if cfg.model != "silero_vad" and catalogue.fetch_command(path) is None:
        fix = f"check vad.model, or use the bundled model ({fix})"
    if not path.is_file():
        raise ModelError(f"Silero VAD model missing: {path}; {fix}")
    return SileroVad(path, threads=cfg.threads, fix=fix)
