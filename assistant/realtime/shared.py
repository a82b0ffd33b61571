"""What every realtime session shares: the config, the models and the worker threads.

Whisper and Piper instances are not re-entrant, so each runs on one worker
thread: a `FairExecutor` each, or the one given by the caller when the
microphone loop of `assistant run` shares the same engines.  Either way the
worker serves its clients round-robin, the microphone first, and each
session may have at most `server.max_pending_per_session` transcriptions
pending, so one session that queues a lot cannot hold the others up.  A
session that has asked for a reply and heard nothing yet goes first on both
workers, and on the server's own transcription worker it holds other
sessions' transcriptions back until its first audio (at most
`core.fairness.HOLD_S`): they would take the cores from its synthesis.  Each
session gets its own VAD (Silero is stateful); the language model is the
shared one, and each response passes its own model, temperature and token
limit with the request.  Voices are loaded by name on first use
(`assistant.realtime.voices`).  Inside `assistant run` the device's own
functions (its skills, on the device's audio clock) are offered to each
response's LLM beside a client's; a server on its own offers none, since
nothing there would ring a timer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import soxr

from assistant.config import Config
from assistant.core.fairness import FairExecutor
from assistant.core.ports import SAMPLE_RATE, Audio, DeviceTools, ToolCall, TurnDetector, VoiceActivity
from assistant.core.work import start_abortable
from assistant.engines.bundle import Engines
from assistant.realtime.protocol import WIRE_RATE
from assistant.realtime.voices import Voices

logger = logging.getLogger(__name__)


def resample(audio: Audio, source: int, target: int) -> Audio:
    """Resample mono float32 audio with soxr."""
    if source == target or not len(audio):
        return np.asarray(audio, dtype=np.float32)
    return np.asarray(soxr.resample(audio, source, target), dtype=np.float32)


class SessionEngines:
    """The config, the engines, the voices and the worker threads that all sessions use."""

    def __init__(
        self,
        config: Config,
        engines: Engines,
        *,
        executor: FairExecutor | None = None,
        vad_factory: Callable[[], VoiceActivity] | None = None,
        voices: Voices | None = None,
        tools: DeviceTools | None = None,
        clock: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.config = config
        self.engines = engines
        self.tools = tools if config.llm.tools else None
        """The device's functions (None: only a client's are offered)."""
        self.clock = clock
        """The device's audio time, for its timers."""
        self._owned: list[FairExecutor] = []
        if executor is None:
            # On its own the server keeps STT and TTS apart: one session's synthesis need not wait for
            # another's transcription.
            self.stt_pool = FairExecutor("realtime-stt", hold=True)
            self.tts_pool = FairExecutor("realtime-tts")
            self._owned = [self.stt_pool, self.tts_pool]
        else:
            self.stt_pool = self.tts_pool = executor
        self.voices = voices or Voices(config, engines.tts)
        self._vad_factory = vad_factory or self._silero
        self._turn: TurnDetector | None = engines.turn

    def device_tools(self) -> Sequence[Mapping[str, Any]]:
        """The device's function definitions for the LLM (none on a server of its own)."""
        return self.tools.tools() if self.tools is not None else []

    def call_device_tool(self, call: ToolCall) -> str:
        """Run one of the device's functions; bad arguments come back as an error text."""
        if self.tools is None:
            return f"error: unknown function {call.name!r}"
        result = self.tools.call_tool(call.name, call.arguments, self.clock())
        logger.info("realtime: device function %s(%s) -> %r", call.name, call.arguments, result)
        return result

    def close(self) -> None:
        """Stop the worker threads this object started (work in flight is abandoned)."""
        for pool in self._owned:
            pool.shutdown(wait=False, cancel_futures=True)

    def forget(self, client: str) -> None:
        """A session has closed: the workers need not remember when they last served it."""
        self.stt_pool.forget(client)
        self.tts_pool.forget(client)

    def hurry(self, client: str) -> None:
        """`client` waits for a reply's first audio: its work goes first (see `core.fairness`)."""
        for pool in {id(self.stt_pool): self.stt_pool, id(self.tts_pool): self.tts_pool}.values():
            pool.hurry(client)

    def relax(self, client: str) -> None:
        """`client` has its first audio, or its response ended."""
        for pool in {id(self.stt_pool): self.stt_pool, id(self.tts_pool): self.tts_pool}.values():
            pool.relax(client)

    def start_transcription(self, client: str, audio: Audio) -> asyncio.Future[str]:
        """Queue 24 kHz audio for transcription as `client`; await the text.

        Raises `TooManyPending` at once when the client already has
        `server.max_pending_per_session` transcriptions pending.
        """
        internal = resample(audio, WIRE_RATE, SAMPLE_RATE)
        lane = self.stt_pool.lane(client, self.config.server.max_pending_per_session)
        return start_abortable(lane, self.engines.stt.transcribe, internal)

    async def synthesize(self, client: str, text: str, voice: str | None = None) -> Audio:
        """Speak `text` as `client` in the named voice (default: `tts.voice`); 24 kHz audio."""
        tts = self.engines.tts if voice is None else await self.voices.get(voice)
        loop = asyncio.get_running_loop()
        lane = self.tts_pool.lane(client)  # a session has one reply at a time: one synthesis pending at most
        audio, rate = await loop.run_in_executor(lane, tts.synthesize_native, text)
        return resample(np.asarray(audio, dtype=np.float32), int(rate), WIRE_RATE)

    async def make_vad(self) -> VoiceActivity:
        """A fresh VAD for one session (loaded on a thread: it reads a model file)."""
        return await asyncio.to_thread(self._vad_factory)

    async def turn_detector(self) -> TurnDetector:
        """The end-of-turn model for ``semantic_vad``: the loaded one, else loaded now (once)."""
        if self._turn is None:
            from assistant.core.errors import ModelError
            from assistant.engines.smart_turn import load_turn
            from assistant.realtime.protocol import ProtocolError

            try:
                self._turn = await asyncio.to_thread(load_turn, self.config.turn, self.config.models_path)
            except ModelError as exc:
                raise ProtocolError(
                    "turn_detection_unavailable",
                    f"semantic_vad needs the end-of-turn model: {exc}",
                    param="turn_detection.type",
                    kind="server_error",
                ) from None
        turn: TurnDetector = self._turn
        return turn

    def _silero(self) -> VoiceActivity:
        return self.engines.vad.fresh()
