"""Wake-word detection with openWakeWord (ONNX models only, never downloading)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from assistant import models as catalogue
from assistant.config import WakeConfig
from assistant.core.errors import ModelError
from assistant.core.ports import SAMPLE_RATE, Audio, Health, WakeHit
from assistant.engines import accel
from assistant.engines.modelfile import locate

logger = logging.getLogger(__name__)

MELSPEC_FILE = "melspectrogram.onnx"
EMBEDDING_FILE = "embedding_model.onnx"


def looks_like_path(name: str) -> bool:
    """A config value meant as a file path rather than a bundled model name."""
    return "/" in name or os.sep in name or name.endswith((".onnx", ".tflite", ".bin"))


def _to_int16(block: Audio) -> np.ndarray:
    """openWakeWord's feature model expects 16-bit PCM sample values."""
    scaled = np.clip(np.asarray(block, dtype=np.float32), -1.0, 1.0) * 32767.0
    return scaled.astype(np.int16)


class OpenWakeWord:
    """Scores 80 ms blocks with one or more openWakeWord models; one hit per utterance."""

    def __init__(
        self,
        wake_models: Sequence[tuple[str, Path]],
        melspec_model: Path,
        embedding_model: Path,
        *,
        threshold: float = 0.5,
        refractory_s: float = 2.0,
        threads: int = 1,
        accelerator: accel.Requested = "cpu",
        fix: str = "",
    ) -> None:
        from openwakeword.model import Model  # type: ignore[import-untyped,unused-ignore]

        self.names = [name for name, _ in wake_models]
        fix = fix or "check wake.models"
        self.threshold = threshold
        self.refractory_samples = round(refractory_s * SAMPLE_RATE)
        gpu = accel.CUDA in accel.onnx_providers(accelerator, "wake")
        try:
            # Existing paths make the library skip its pretrained-name lookup
            # (and so any download); "onnx" avoids its tflite import. `ncpu` sets
            # intra- and inter-op threads of the two feature models, which do
            # nearly all the work; the library pins each wake-word model's own
            # session to one thread on the CPU, which is right for models this small.
            self._model = Model(
                wakeword_models=[str(path) for _, path in wake_models],
                inference_framework="onnx",
                melspec_model_path=str(melspec_model),
                embedding_model_path=str(embedding_model),
                ncpu=threads,
                device="gpu" if gpu else "cpu",
            )
        except Exception as exc:
            files = ", ".join(str(p) for p in (*(p for _, p in wake_models), melspec_model, embedding_model))
            raise ModelError(
                f"openWakeWord could not load its models ({files}): {exc}. A file may be "
                f"corrupt or not an openWakeWord ONNX model; {fix}"
            ) from exc
        # The library keys models by file stem ("hey_jarvis_v0.1"); report config names.
        self._label = {Path(path).stem: name for name, path in wake_models}
        self.device: accel.Device = accel.session_device(self._model.preprocessor.melspec_model)
        self._samples = 0
        self._quiet_until = 0
        self._blocks = 0
        self._busy_s = 0.0
        logger.info(
            "wake: %s on %s (threshold %.2f, refractory %.1f s, %d thread(s))",
            ", ".join(self.names),
            self.device,
            threshold,
            refractory_s,
            threads,
        )

    def scores(self, block: Audio) -> dict[str, float]:
        """Feed one block; return each model's (or class's) score for it."""
        start = time.perf_counter()
        raw = self._model.predict(_to_int16(block))
        self._busy_s += time.perf_counter() - start
        self._blocks += 1
        self._samples += len(block)
        return {self._label.get(key, key): float(value) for key, value in raw.items()}

    def process(self, block: Audio) -> WakeHit | None:
        """Score one block; a hit when a model crosses the threshold outside the refractory period."""
        scores = self.scores(block)
        name, score = max(scores.items(), key=lambda item: item[1], default=("", 0.0))
        if score < self.threshold:
            return None
        if self._samples < self._quiet_until:
            logger.debug("wake: %s %.3f inside the refractory period", name, score)
            return None
        # Refractory period in audio time: counted in samples fed, not the wall clock.
        self._quiet_until = self._samples + self.refractory_samples
        logger.info("wake: %s fired (%.3f)", name, score)
        return WakeHit(model=name, score=score)

    def reset(self) -> None:
        """Forget buffered audio features and recent scores (e.g. after the device spoke)."""
        self._model.reset()

    @property
    def ms_per_block(self) -> float:
        """Mean processing time per block so far, in milliseconds."""
        return 1000.0 * self._busy_s / self._blocks if self._blocks else 0.0

    def health(self) -> list[Health]:
        """One row for `assistant check`."""
        detail = f"{', '.join(self.names)} on {self.device}, threshold {self.threshold:.2f}"
        if self._blocks:
            detail += f", {self.ms_per_block:.1f} ms per 80 ms block"
        return [Health("wake word", True, detail)]


def _resolve(kind: str, name: str, models_dir: Path, key: str) -> Path:
    return locate(models_dir, kind, name, key, "the path to an openWakeWord .onnx file")


def _feature_path(setting: str | None, beside: Path, default_file: str, models_dir: Path, key: str) -> Path:
    if setting is None:
        return beside / default_file
    return _resolve("features", setting, models_dir, key)


def load_wake(cfg: WakeConfig, models_dir: Path) -> OpenWakeWord:
    """Build the wake-word detector from config; ModelError names any missing file and its fix."""
    models_dir = Path(models_dir).expanduser()
    wake_models = [
        (Path(n).stem if looks_like_path(n) else n, _resolve("wake", n, models_dir, "wake.models")) for n in cfg.models
    ]
    beside = wake_models[0][1].parent
    melspec = _feature_path(cfg.melspectrogram_model, beside, MELSPEC_FILE, models_dir, "wake.melspectrogram_model")
    embedding = _feature_path(cfg.embedding_model, beside, EMBEDDING_FILE, models_dir, "wake.embedding_model")
    for _, path in wake_models:
        if path.suffix != ".onnx":
            raise ModelError(f"wake.models: {path} is not an .onnx model (only ONNX is supported)")
    bundled = [n for n in cfg.models if not looks_like_path(n)]
    if bundled:  # downloading a wake word also fetches the feature models it requires
        fix = f"run: {catalogue.download_command(bundled, models_dir)}"
    else:
        fix = "check wake.models (and wake.melspectrogram_model / wake.embedding_model)"
    missing = [p for p in (*(p for _, p in wake_models), melspec, embedding) if not p.is_file()]
    if missing:
        raise ModelError(f"wake-word model file(s) missing: {', '.join(str(p) for p in missing)}; {fix}")
    return OpenWakeWord(
        wake_models,
        melspec,
        embedding,
        threshold=cfg.threshold,
        refractory_s=cfg.refractory_s,
        threads=cfg.threads,
        accelerator=cfg.accelerator,
        fix=fix,
    )
