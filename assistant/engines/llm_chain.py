"""The LLM the assistant talks to: the configured Ollama host, then its fallbacks.

`build_llm` is the one place a language model is made from config (the
microphone loop, the realtime server and ``assistant check`` all use it).  It
returns an `LlmChain` over one `OllamaLanguageModel` per host: ``llm.host``
first, then each of ``llm.fallbacks`` in order.

A request goes to the first host that is not known to be down.  A host that
fails before the first piece of a reply (refused, no connection within its
``connect_timeout_s``, HTTP 5xx, no such model, no first piece within
``timeout_s``) is marked down and the same request moves on to the next host,
so the user still gets an answer; device calls it made before it failed
(a timer set) are not made again by the next host (`ToolLedger`: the next
host's equal call gets the first one's result).  A host that fails after pieces went out is
marked down too, but that reply fails (its first half is already spoken); the
next request goes elsewhere.  Hosts marked down are skipped until a background
check (every ``llm.recheck_s``) finds them listing their model again; when
every host is down they are all tried anyway, in order, and the last error is
what the turn reports.

Listeners (see `subscribe`) get `LlmHostDown`, `LlmHostUp` and `LlmFallback`
events; the composition root puts them on the bus, where the LEDs show a
degraded pattern while the primary is down and logs and metrics count them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from assistant.config import LlmConfig
from assistant.core.errors import LlmFailed, TurnError
from assistant.core.ledger import ToolLedger
from assistant.core.ports import Health, LlmOptions, Message
from assistant.engines.llm import OllamaLanguageModel
from assistant.events import Event, LlmFallback, LlmHostDown, LlmHostUp

__all__ = ["LlmChain", "build_llm", "llm_health"]

logger = logging.getLogger(__name__)

Listener = Callable[[Event], None]
Sleep = Callable[[float], Awaitable[None]]


def build_llm(config: LlmConfig, *, timeout_s: float | None = None) -> LlmChain:
    """The language model for `config`: its host, then its fallbacks (`timeout_s` overrides llm.timeout_s)."""
    timeout = timeout_s if timeout_s is not None else config.timeout_s

    def client(host: str, model: str, connect_timeout_s: float) -> OllamaLanguageModel:
        return OllamaLanguageModel(
            host=host,
            model=model,
            options=dict(config.options),
            keep_alive=config.keep_alive,
            timeout_s=timeout,
            connect_timeout_s=connect_timeout_s,
        )

    hosts = [client(config.host, config.model, config.connect_timeout_s)]
    for fallback in config.fallbacks:
        hosts.append(
            client(
                fallback.host or config.host,
                fallback.model or config.model,
                fallback.connect_timeout_s or config.connect_timeout_s,
            )
        )
    return LlmChain(hosts, recheck_s=config.recheck_s)


async def llm_health(config: LlmConfig, *, timeout_s: float = 5.0) -> list[Health]:
    """The rows `assistant check` shows for `config`'s hosts, each wait at most `timeout_s`."""
    llm = build_llm(config, timeout_s=min(config.timeout_s, timeout_s))
    try:
        return await llm.health()
    finally:
        await llm.aclose()


@dataclass
class _Down:
    """A host (with one model) known to be down, and the task that checks it again."""

    error: TurnError
    recheck: asyncio.Task[None] | None = None


class LlmChain:
    """Meets `LanguageModel` over several Ollama hosts tried in order (see the module docstring).

    The first host is the primary: a per-request `LlmOptions.model` applies to
    it alone (the fallbacks are other hosts' own models).  `sleep` paces the
    background checks (injected in tests).
    """

    def __init__(
        self, hosts: Sequence[OllamaLanguageModel], *, recheck_s: float = 10.0, sleep: Sleep = asyncio.sleep
    ) -> None:
        if not hosts:
            raise ValueError("an LlmChain needs at least one host")
        self.hosts = list(hosts)
        self.recheck_s = recheck_s
        self._sleep = sleep
        self._down: dict[tuple[int, str], _Down] = {}
        self._listeners: list[tuple[Listener, Callable[[], float]]] = []

    def __repr__(self) -> str:
        return f"LlmChain({', '.join(f'{h.host} {h.model}' for h in self.hosts)})"

    @property
    def primary(self) -> OllamaLanguageModel:
        return self.hosts[0]

    def subscribe(self, listener: Listener, clock: Callable[[], float]) -> Callable[[], None]:
        """Send host events to `listener`, stamped with `clock()`; returns a function that stops it."""
        entry = (listener, clock)
        self._listeners.append(entry)
        return lambda: self._listeners.remove(entry)

    def is_down(self, index: int, model: str | None = None) -> bool:
        """Whether host `index` (with `model`, default its own) is known to be down."""
        return (index, model or self.hosts[index].model) in self._down

    # --- LanguageModel -------------------------------------------------------------------

    async def stream(self, messages: Sequence[Message], options: LlmOptions | None = None) -> AsyncGenerator[str, None]:
        """Yield the reply from the first host that answers; raise the last `TurnError` if none does."""
        last: TurnError | None = None
        skipped: list[str] = []
        # A host that ran device calls and then failed: the next one must not run them again.
        ledger = ToolLedger(options.call_tool) if options is not None and options.call_tool is not None else None
        for index in self._order(options):
            host, host_options = self.hosts[index], self._options_for(index, options)
            if ledger is not None and host_options is not None:
                ledger.next_host()
                host_options = replace(host_options, call_tool=ledger.call)
            model = (host_options.model if host_options else None) or host.model
            async with contextlib.aclosing(host.stream(messages, host_options)) as pieces:
                try:
                    first = await anext(pieces, None)
                except TurnError as exc:
                    if ledger is not None:
                        ledger.failed()
                    self._mark_down(index, model, exc)
                    skipped.append(f"{host.host} {model}: {exc.code}")
                    last = exc
                    continue
                self._answered(index, model, last, skipped)
                if first is None:
                    return  # an empty reply, done cleanly
                yield first
                try:
                    async for piece in pieces:
                        yield piece
                except TurnError as exc:
                    self._mark_down(index, model, exc)
                    raise
                return
        raise last if last is not None else LlmFailed("no LLM host to ask")

    async def warm(self, messages: Sequence[Message], options: LlmOptions | None = None) -> None:
        """Warm the first host that takes it (one found down is marked so, and the next is tried); never raises."""
        for index in self._order(options):
            host, host_options = self.hosts[index], self._options_for(index, options)
            model = (host_options.model if host_options else None) or host.model
            try:
                await host.try_warm(messages, host_options)
            except TurnError as exc:
                known = self.is_down(index, model)  # said once, when it was marked down: not on every wake word
                level = logging.DEBUG if exc.code == "llm_timeout" or known else logging.WARNING
                logger.log(level, "llm warm-up of %s %s failed (%s): %s", host.host, model, exc.code, exc)
                if exc.code == "llm_timeout":
                    return  # slow, not gone: a cold model load can take longer than a warm-up waits
                self._mark_down(index, model, exc)
                continue
            if self.is_down(index, model):
                self._mark_up(index, model)
            return

    async def health(self) -> list[Health]:
        """Each host's rows, then which host answers now (``llm.answering``)."""
        rows: list[Health] = []
        answering: str | None = None
        for index, host in enumerate(self.hosts):
            prefix = "llm" if index == 0 else f"llm.fallbacks[{index - 1}]"
            host_rows = [replace(row, part=row.part.replace("llm", prefix, 1)) for row in await host.health()]
            rows += host_rows
            if answering is None and all(row.ok for row in host_rows):
                which = "the primary" if index == 0 else f"fallback {index} (degraded: the primary is down)"
                answering = f"{host.host} {host.model}, {which}"
        if answering is not None:
            rows.append(Health("llm.answering", True, answering))
        else:
            rows.append(
                Health(
                    "llm.answering",
                    False,
                    "no LLM host answers: general questions get an apology, the device's own intents still answer",
                    "see llm.server above" if len(self.hosts) == 1 else "start Ollama on one of the hosts (see above)",
                )
            )
        return rows

    async def aclose(self) -> None:
        """Stop the background checks and close every host's connections."""
        tasks = [down.recheck for down in self._down.values() if down.recheck is not None]
        for down in self._down.values():
            down.recheck = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._down.clear()
        for host in self.hosts:
            await host.aclose()

    # --- the chain -------------------------------------------------------------------------

    def _options_for(self, index: int, options: LlmOptions | None) -> LlmOptions | None:
        if index == 0 or options is None or options.model is None:
            return options
        return replace(options, model=None)  # a fallback keeps its own model

    def _order(self, options: LlmOptions | None) -> list[int]:
        """Hosts up first, in chain order; then, as a last resort, those known to be down."""
        indexes = range(len(self.hosts))

        def down(i: int) -> bool:
            given = self._options_for(i, options)
            return self.is_down(i, given.model if given else None)

        return [i for i in indexes if not down(i)] + [i for i in indexes if down(i)]

    def _answered(self, index: int, model: str, error: TurnError | None, skipped: list[str]) -> None:
        if self.is_down(index, model):
            self._mark_up(index, model)
        if index > 0:
            host = self.hosts[index]
            reason = error.code if error is not None else "down"
            logger.info(
                "llm fallback: %s %s answered (skipped %s)", host.host, model, "; ".join(skipped) or "down hosts"
            )
            self._emit(lambda t: LlmFallback(t, host.host, model, reason))

    def _mark_down(self, index: int, model: str, error: TurnError) -> None:
        key = (index, model)
        if key in self._down:
            self._down[key].error = error
            return
        host = self.hosts[index]
        logger.warning("llm host down: %s %s (%s): %s", host.host, model, error.code, error)
        down = self._down[key] = _Down(error)
        down.recheck = asyncio.get_running_loop().create_task(
            self._recheck(index, model), name=f"llm-recheck {host.host} {model}"
        )
        primary = self._is_primary(index, model)
        self._emit(lambda t: LlmHostDown(t, host.host, model, error.code, primary))

    def _mark_up(self, index: int, model: str) -> None:
        down = self._down.pop((index, model), None)
        if down is None:
            return
        if down.recheck is not None and down.recheck is not asyncio.current_task():
            down.recheck.cancel()
        host = self.hosts[index]
        logger.info("llm host up again: %s %s", host.host, model)
        primary = self._is_primary(index, model)
        self._emit(lambda t: LlmHostUp(t, host.host, model, primary))

    async def _recheck(self, index: int, model: str) -> None:
        host = self.hosts[index]
        while (index, model) in self._down:
            await self._sleep(self.recheck_s)
            try:
                await host.ready(model)
            except TurnError as exc:
                logger.debug("llm host %s %s still down (%s)", host.host, model, exc.code)
                continue
            self._mark_up(index, model)

    def _is_primary(self, index: int, model: str) -> bool:
        return index == 0 and model == self.primary.model

    def _emit(self, make: Callable[[float], Event]) -> None:
        for listener, clock in list(self._listeners):
            try:
                listener(make(clock()))
            except Exception:
                logger.exception("llm host listener %r failed", listener)
