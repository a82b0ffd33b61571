"""What every realtime session shares: the config and the models, behind worker threads.

Whisper and Piper instances are not re-entrant, so each runs on one worker
thread (a single-thread executor each, or one executor given by the caller
when the microphone loop shares the same engines).  Each session gets its own
VAD (Silero is stateful); the language model is the shared one, and each
response passes its own model, temperature and token limit with the request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor

import numpy as np
import soxr

from assistant.config import Config
from assistant.core.ports import SAMPLE_RATE, Audio, TurnDetector, VoiceActivity
from assistant.core.work import run_abortable
from assistant.engines.bundle import Engines
from assistant.realtime.protocol import WIRE_RATE

log = logging.getLogger(__name__)


def resample(audio: Audio, source: int, target: int) -> Audio:
    """Resample mono float32 audio with soxr."""
    if source == target or not len(audio):
        return np.asarray(audio, dtype=np.float32)
    return np.asarray(soxr.resample(audio, source, target), dtype=np.float32)


class Shared:
    """The config, the engines and the worker threads that all sessions use."""

    def __init__(
        self,
        config: Config,
        engines: Engines,
        *,
        executor: Executor | None = None,
        vad_factory: Callable[[], VoiceActivity] | None = None,
    ) -> None:
        self.config = config
        self.engines = engines
        self._owned: list[ThreadPoolExecutor] = []
        if executor is None:
            stt_pool = ThreadPoolExecutor(1, thread_name_prefix="realtime-stt")
            tts_pool = ThreadPoolExecutor(1, thread_name_prefix="realtime-tts")
            self._owned = [stt_pool, tts_pool]
            self.stt_pool: Executor = stt_pool
            self.tts_pool: Executor = tts_pool
        else:
            self.stt_pool = self.tts_pool = executor
        self._vad_factory = vad_factory or self._silero
        self._turn: TurnDetector | None = engines.turn

    def close(self) -> None:
        """Stop the worker threads this object started (work in flight is abandoned)."""
        for pool in self._owned:
            pool.shutdown(wait=False, cancel_futures=True)

    async def transcribe(self, audio: Audio) -> str:
        """Transcribe 24 kHz audio on the STT worker thread."""
        internal = resample(audio, WIRE_RATE, SAMPLE_RATE)
        text: str = await run_abortable(self.stt_pool, self.engines.stt.transcribe, internal)
        return text

    async def synthesize(self, text: str) -> Audio:
        """Speak `text` on the TTS worker thread; 24 kHz audio."""
        loop = asyncio.get_running_loop()
        tts = self.engines.tts
        if hasattr(tts, "synthesize_native"):
            audio, rate = await loop.run_in_executor(self.tts_pool, tts.synthesize_native, text)
        else:
            audio, rate = await loop.run_in_executor(self.tts_pool, tts.synthesize, text), SAMPLE_RATE
        return resample(np.asarray(audio, dtype=np.float32), int(rate), WIRE_RATE)

    async def make_vad(self) -> VoiceActivity:
        """A fresh VAD for one session (loaded on a thread: it reads a model file)."""
        return await asyncio.to_thread(self._vad_factory)

    async def turn_detector(self) -> TurnDetector:
        """The end-of-turn model for ``semantic_vad``: the loaded one, else loaded now (once)."""
        if self._turn is None:
            from assistant.core.errors import ModelError
            from assistant.engines.turn import load_turn
            from assistant.realtime.protocol import ProtocolError

            try:
                self._turn = await asyncio.to_thread(load_turn, self.config.turn, self.config.models_path)
            except ModelError as exc:
                raise ProtocolError("turn_detection_unavailable", f"semantic_vad needs the end-of-turn model: {exc}",
                                    param="turn_detection.type", kind="server_error") from None
        turn: TurnDetector = self._turn
        return turn

    def _silero(self) -> VoiceActivity:
        from assistant.engines.vad import SileroVad

        return SileroVad(self.engines.vad.model_path, threads=1)
