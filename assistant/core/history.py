"""Conversation history: bounded by turns, forgotten after an idle time."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from assistant.core.ports import Message


@dataclass(frozen=True)
class Exchange:
    """One user request and what the user actually heard of the answer."""

    user: str
    assistant: str
    ended_at: float


class History:
    """The last `max_turns` exchanges; empty again after `forget_after_s` idle."""

    def __init__(self, system_prompt: str, max_turns: int, forget_after_s: float) -> None:
        self.system_prompt = system_prompt
        self.forget_after_s = forget_after_s
        self._exchanges: deque[Exchange] = deque(maxlen=max_turns or None)
        self._max_turns = max_turns

    def __len__(self) -> int:
        return len(self._exchanges)

    def expire(self, now: float) -> None:
        """Forget everything when the last exchange ended too long ago."""
        stale = self._exchanges and now - self._exchanges[-1].ended_at > self.forget_after_s
        if stale and self.forget_after_s > 0:
            self._exchanges.clear()

    def messages(self, user_text: str | None, now: float) -> list[Message]:
        """The prompt for a new request (`None` gives just the prefix, for warming)."""
        self.expire(now)
        out = [Message("system", self.system_prompt)] if self.system_prompt else []
        for exchange in self._exchanges:
            out.append(Message("user", exchange.user))
            if exchange.assistant:
                out.append(Message("assistant", exchange.assistant))
        if user_text is not None:
            out.append(Message("user", user_text))
        return out

    def add(self, user: str, assistant: str, now: float) -> None:
        """Record an exchange; `assistant` is only what was actually spoken."""
        if self._max_turns == 0:
            return
        self._exchanges.append(Exchange(user, assistant, now))
