"""Text to speech with Piper voices on onnxruntime, resampled to the internal rate."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from assistant.config import TtsConfig
from assistant.core.errors import ConfigError, ModelError, TextToSpeechFailed
from assistant.core.ports import SAMPLE_RATE, Audio, Health
from assistant.engines import accel
from assistant.engines.modelfile import fix_for, locate

logger = logging.getLogger(__name__)

# What piper's own loader passes to the CUDA provider (faster start-up than exhaustive search).
CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC"}


def _empty() -> Audio:
    return np.zeros(0, dtype=np.float32)


class PiperTts:
    """Synthesises text with one Piper voice; `synthesize` returns 16 kHz float32 mono."""

    def __init__(
        self,
        model_path: Path,
        config_path: Path | None = None,
        *,
        speaker_id: int | None = None,
        speed: float = 1.0,
        threads: int = 1,
        accelerator: accel.Requested = "auto",
        fix: str = "",
    ) -> None:
        import onnxruntime
        from piper.config import PiperConfig, SynthesisConfig
        from piper.voice import PiperVoice

        fix = fix or "check tts.voice"
        config_path = config_path or model_path.with_name(model_path.name + ".json")
        for path in (model_path, config_path):
            if not path.is_file():
                raise ModelError(f"Piper voice file missing: {path}; {fix}")
        try:
            config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"Piper voice config {config_path} is unreadable ({exc!r}); {fix}") from exc
        if speaker_id is not None and speaker_id >= max(config.num_speakers, 1):
            raise ConfigError(
                f"tts.speaker_id = {speaker_id}: voice {model_path.name} has "
                f"{config.num_speakers} speaker(s) (ids 0..{max(config.num_speakers - 1, 0)})"
            )
        # PiperVoice.load builds its session with default options (onnxruntime then
        # uses every core); build it here with our thread count and providers and
        # hand it to the PiperVoice dataclass, which is what load() itself does.
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # onnxruntime's CPU arena keeps the high-water mark of every input length for good:
        # measured with this voice, one 600-character sentence took the process from 0.26 to
        # 1.38 GB, never given back; without the arena it stays under 0.4 GB, at the same speed
        # (short sentences 225-301 ms against 238-240 ms, 2 shared cores).
        options.enable_cpu_mem_arena = False
        providers: list[Any] = [
            (name, CUDA_OPTIONS) if name == accel.CUDA else name for name in accel.onnx_providers(accelerator, "tts")
        ]
        try:
            session = onnxruntime.InferenceSession(str(model_path), sess_options=options, providers=providers)
        except Exception as exc:
            raise ModelError(f"cannot load the Piper voice {model_path} ({exc}); {fix}") from exc
        self._voice = PiperVoice(session=session, config=config)
        self._syn_config = SynthesisConfig(speaker_id=speaker_id, length_scale=1.0 / speed)
        self.model_path = model_path
        self.sample_rate: int = config.sample_rate
        self.device: accel.Device = accel.session_device(session)
        logger.info(
            "tts: Piper %s on %s (%d Hz, %d thread(s))",
            model_path.name,
            self.device,
            self.sample_rate,
            threads,
        )

    def synthesize_native(self, text: str) -> tuple[Audio, int]:
        """Audio for `text` at the voice's own rate, with that rate."""
        if not text.strip():
            return _empty(), self.sample_rate
        try:
            chunks = [
                np.asarray(chunk.audio_float_array, dtype=np.float32).reshape(-1)
                for chunk in self._voice.synthesize(text, self._syn_config)
            ]
        except Exception as exc:
            raise TextToSpeechFailed(f"Piper failed on {text[:40]!r}: {exc}") from exc
        audio = np.concatenate(chunks) if chunks else _empty()
        return audio, self.sample_rate

    def synthesize(self, text: str) -> Audio:
        """Audio for `text` at the internal rate (16 kHz)."""
        audio, rate = self.synthesize_native(text)
        if rate == SAMPLE_RATE or not len(audio):
            return audio
        import soxr

        resampled = soxr.resample(audio, rate, SAMPLE_RATE)
        return np.asarray(resampled, dtype=np.float32)

    def warm(self) -> None:
        """Synthesise one short phrase so the first real reply pays no set-up cost."""
        self.synthesize_native("Ready.")

    def health(self) -> list[Health]:
        """One row for `assistant check`."""
        detail = f"Piper {self.model_path.name} on {self.device}, {self.sample_rate} Hz"
        return [Health("text to speech", True, detail)]


def load_tts(cfg: TtsConfig, models_dir: Path) -> PiperTts:
    """Build the Piper voice from config; ModelError names a missing or bad file and its fix."""
    path = locate(models_dir, "tts", cfg.voice, "tts.voice", "a path to a voice .onnx")
    fix = fix_for(path, "tts.voice", " (the .onnx needs its .onnx.json beside it)")
    return PiperTts(
        path,
        speaker_id=cfg.speaker_id,
        speed=cfg.speed,
        threads=cfg.threads,
        accelerator=cfg.accelerator,
        fix=fix,
    )
