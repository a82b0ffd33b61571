"""Timers and alarms that ring: polled on the audio clock, announced through the reply path.

The loop calls `poll` once per microphone block. What falls due is published
at once (a `ringing` event, for LEDs and metrics) and announced -- the ring
sound, then its text -- as soon as no turn is using the speaker; one
announcement plays at a time, and a repeat of one still waiting is not queued
twice. `silence` ("stop", the wake word) drops what waits and cuts what plays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable

from assistant.core.ports import Audio, LocalSkills, Ring
from assistant.core.turn import Turn
from assistant.events import EventBus, Ringing

logger = logging.getLogger(__name__)


class Ringer:
    """Owns the announcements of what rings: a queue and at most one task."""

    def __init__(
        self, skills: LocalSkills, turn: Turn, bus: EventBus, sound: Callable[[], Audio | None] = lambda: None
    ) -> None:
        self.skills, self.turn, self.bus = skills, turn, bus
        self.sound = sound
        """The ring before the words, looked up when it rings (sounds are attached after the loop is built)."""
        self._waiting: deque[Ring] = deque()
        self._task: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        """An announcement is playing."""
        return self._task is not None and not self._task.done()

    def poll(self, now: float, *, speaker_free: bool) -> None:
        """Take what is due at audio time `now`; start the next announcement if the speaker is free."""
        for ring in self.skills.due(now):
            logger.info("ringing: %s %d %r%s", ring.kind, ring.id, ring.text, " (late)" if ring.late else "")
            self.bus.publish(Ringing(now, ring.kind, ring.id, ring.text, ring.late))
            if all(waiting.id != ring.id for waiting in self._waiting):
                self._waiting.append(ring)
        if self._waiting and speaker_free and not self.busy:
            ring = self._waiting.popleft()
            self._task = asyncio.create_task(self.turn.announce(ring.text, self.sound()), name=f"ring-{ring.id}")
            self._task.add_done_callback(_log_failure)

    def silence(self) -> bool:
        """Stop ringing: nothing more rings or waits, and the announcement playing is cancelled."""
        stopped = self.skills.stop_ringing()
        stopped = stopped or bool(self._waiting) or self.busy
        self._waiting.clear()
        if self._task is not None:
            self._task.cancel()
        return stopped

    async def aclose(self) -> None:
        """Cancel the announcement playing, if any, and wait for it to end."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        logger.error("announcing what rings failed: %s", exc, exc_info=exc)
