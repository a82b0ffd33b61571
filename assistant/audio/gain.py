"""The speaker's software volume: a Speaker that scales what it plays by a gain read at play time.

The skills own the level ("louder", "set the volume to 30 percent", mute) and
persist it; this wrapper asks for it on every `play`, so a change applies
from the next chunk on and a restart starts at the saved level.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from assistant.core.ports import Audio, Speaker

logger = logging.getLogger(__name__)


class GainSpeaker:
    """Plays through `inner` at `gain()` (0.0 silent, 1.0 as synthesised); timing is the inner speaker's."""

    def __init__(self, inner: Speaker, gain: Callable[[], float]) -> None:
        self.inner = inner
        self.gain = gain

    async def play(self, audio: Audio) -> float:
        gain = min(max(float(self.gain()), 0.0), 1.0)
        if gain != 1.0:
            audio = (audio * np.float32(gain)).astype(np.float32)  # muted: silence of the same length
        return await self.inner.play(audio)

    def queued_until(self) -> float:
        return self.inner.queued_until()

    async def drain(self) -> float:
        return await self.inner.drain()

    def stop(self) -> float:
        return self.inner.stop()
