"""The device calls one request has made, so that a host asked again does not make them twice.

A tool call has an effect ("start a 10 minute timer"). When the LLM host that
made it fails before its answer's first words and the fallback chain asks the
next host the same request, that host will likely make the same call: the
ledger answers it with the first call's result instead of running it again.
Each earlier call is replayed at most once, so two equal calls in one reply
("two 5 minute timers") stay two.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from assistant.core.ports import ToolCall

logger = logging.getLogger(__name__)

CallTool = Callable[[ToolCall], Awaitable[str | None]]


def _key(call: ToolCall) -> str:
    return json.dumps([call.name, call.arguments], sort_keys=True, default=str)


class ToolLedger:
    """Wraps one request's `call_tool`; `next_host()` before each host, `failed()` when one fails."""

    def __init__(self, call_tool: CallTool) -> None:
        self._call_tool = call_tool
        self._made: list[tuple[str, str | None]] = []  # by the hosts that failed: (call, its result)
        self._pending: list[tuple[str, str | None]] = []  # of those, not yet replayed to this host
        self._ran: list[tuple[str, str | None]] = []  # for this host, run or replayed

    def next_host(self) -> None:
        self._pending, self._ran = list(self._made), []

    def failed(self) -> None:
        """The host failed before it answered: what it called stays made."""
        self._made = list(self._ran)

    async def call(self, call: ToolCall) -> str | None:
        key = _key(call)
        for index, (made, result) in enumerate(self._pending):
            if made == key:
                del self._pending[index]
                self._ran.append((key, result))
                logger.info("llm: %s was already run for this request by a host that failed; not run again", call.name)
                return result
        result = await self._call_tool(call)
        self._ran.append((key, result))
        return result
