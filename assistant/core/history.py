"""Conversation history: bounded by turns, forgotten after an idle time."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from assistant.core.ports import Message
from assistant.core.reply import prompt


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
        turns = [(role, text) for e in self._exchanges for role, text in (("user", e.user), ("assistant", e.assistant))]
        if user_text is not None:
            turns.append(("user", user_text))
        return prompt(self.system_prompt, turns)

    def add(self, user: str, assistant: str, now: float) -> None:
        """Record an exchange; `assistant` is only what was actually spoken."""
        if self._max_turns == 0:
            return
        self._exchanges.append(Exchange(user, assistant, now))
