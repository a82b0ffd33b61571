"""End-of-turn detection with Smart Turn v3.2 (ONNX) on onnxruntime."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from assistant import models as catalogue
from assistant.config import TurnConfig
from assistant.core.errors import ModelError
from assistant.core.ports import SAMPLE_RATE, Audio, Health
from assistant.engines import accel
from assistant.engines.logmel import N_MELS, log_mel
from assistant.engines.modelfile import locate

logger = logging.getLogger(__name__)

WINDOW_S = 8
"""Smart Turn hears the last 8 s of the request."""

WINDOW = WINDOW_S * SAMPLE_RATE
FRAMES = WINDOW // 160


def model_input(audio: Audio) -> np.ndarray:
    """The model's `input_features` [1, 80, 800] for a request (its last 8 s, zeros in front)."""
    samples = np.asarray(audio, dtype=np.float32)[-WINDOW:]
    if len(samples) < WINDOW:
        samples = np.concatenate((np.zeros(WINDOW - len(samples), np.float32), samples))
    return log_mel(samples)[None, :, :]


class SmartTurn:
    """`finished(audio)` is Smart Turn's probability that the speaker has finished."""

    def __init__(
        self, model_path: Path, *, threads: int = 1, accelerator: accel.Requested = "auto", fix: str = ""
    ) -> None:
        import onnxruntime

        fix = fix or f"run: {catalogue.download_command(['smart-turn-v3.2'])}"
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session: Any = onnxruntime.InferenceSession(
                str(model_path), sess_options=options, providers=accel.onnx_providers(accelerator, "turn")
            )
        except Exception as exc:
            raise ModelError(
                f"cannot load the Smart Turn model {model_path} ({exc}); "
                f"the file is corrupt or not an ONNX model: {fix}"
            ) from exc
        inputs = {i.name: i.shape for i in self._session.get_inputs()}
        shape = inputs.get("input_features")
        if shape is None or list(shape)[1:] != [N_MELS, FRAMES]:
            raise ModelError(f"{model_path} is not a Smart Turn v3 model (inputs {inputs}); {fix}")
        self.model_path = model_path
        self.device: accel.Device = accel.session_device(self._session)
        self._lock = threading.Lock()  # one session, possibly several callers (realtime sessions)
        logger.info("turn: Smart Turn %s on %s (%d thread(s))", model_path.name, self.device, threads)

    def finished(self, audio: Audio) -> float:
        """Probability (0-1) that the request in `audio` (16 kHz) is complete."""
        features = model_input(audio)
        with self._lock:
            (output,) = self._session.run(["logits"], {"input_features": features})
        return float(np.asarray(output).reshape(-1)[0])

    def warm(self) -> None:
        """One call on silence, so the first real one pays no start-up cost."""
        self.finished(np.zeros(SAMPLE_RATE, np.float32))

    def health(self) -> list[Health]:
        """One row for `assistant check`."""
        return [Health("end of turn", True, f"Smart Turn {self.model_path.name} on {self.device}")]


def load_turn(cfg: TurnConfig, models_dir: Path) -> SmartTurn:
    """Build Smart Turn from config; ModelError names a missing or corrupt file and its fix."""
    models_dir = Path(models_dir).expanduser()
    path = locate(models_dir, "turn", cfg.model, "turn.model", "a path to an .onnx file")
    command = catalogue.fetch_command(path)
    fix = f"run: {command}" if command else "check turn.model, or use the bundled model smart-turn-v3.2"
    fix += " (or set turn.mode: silence to end turns on silence alone)"
    if not path.is_file():
        raise ModelError(f"Smart Turn model missing: {path}; {fix}")
    return SmartTurn(path, threads=cfg.threads, accelerator=cfg.accelerator, fix=fix)
