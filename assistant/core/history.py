"""Conversation history: bounded by turns, forgotten after an idle time."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from assistant.core.ports import Message, ToolCall
from assistant.core.reply import prompt


@dataclass(frozen=True)
class Exchange:
    """One user request and what the user actually heard of the answer."""

    user: str
    assistant: str
    ended_at: float
    calls: tuple[tuple[ToolCall, str], ...] = ()
    """The device calls made for the answer and their results, in order."""

    def messages(self) -> list[Message]:
        """The exchange as the LLM saw it: the request, its tool calls and their results, the answer heard."""
        out = [Message("user", self.user)] if self.user.strip() else []
        if self.calls:
            out.append(Message("assistant", "", tool_calls=tuple(call for call, _ in self.calls)))
            out += [Message("tool", result, tool_name=call.name) for call, result in self.calls]
        if self.assistant.strip():
            out.append(Message("assistant", self.assistant))
        return out


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
        out = prompt(self.system_prompt, [])
        for exchange in self._exchanges:
            out += exchange.messages()
        return out + (prompt("", [("user", user_text)]) if user_text is not None else [])

    def add(self, user: str, assistant: str, now: float, *, calls: tuple[tuple[ToolCall, str], ...] = ()) -> None:
        """Record an exchange; `assistant` is only what was actually spoken, `calls` what the device did."""
        if self._max_turns == 0:
            return
        self._exchanges.append(Exchange(user, assistant, now, calls))
