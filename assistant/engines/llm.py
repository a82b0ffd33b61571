"""The language model: Ollama's chat API through `ollama.AsyncClient`.

`OllamaLanguageModel` meets `assistant.core.ports.LanguageModel`: `stream`
yields the reply's text pieces as Ollama streams them, and `warm` sends the
conversation so far ahead of time so that Ollama loads the model and caches
the prompt prefix while the user is still speaking.  `health` backs
``assistant check``, and `ready` is the quick probe the fallback chain
(`assistant.engines.llm_chain`) uses to notice that a host is back.

Every failure leaves as one of the `TurnError` subclasses in
`assistant.core.errors`, so the core can apologise with a stable code:

* nothing listening at the host, a name that does not resolve, or no
  connection within ``connect_timeout_s`` -> `LlmUnreachable`;
* HTTP 404 from Ollama (the model was never pulled) -> `LlmModelMissing`;
* no first piece, or no next piece, within ``timeout_s`` -> `LlmTimeout`;
* the connection dropping mid-answer, or the stream ending without Ollama's
  final ``done`` chunk -> `LlmStreamCut`;
* any other HTTP error or malformed answer -> `LlmFailed`.

Cancellation is never swallowed, and closing the `stream` generator (break
out of it inside `contextlib.aclosing`, or cancel its task) closes the HTTP
response at once, which tells Ollama to stop generating.

Tool calling: `LlmOptions.tools` go out as Ollama's ``tools``; the calls a
reply makes (``message.tool_calls``, in a chunk before the done chunk) are run
through `LlmOptions.call_tool` once the reply is done, their results go back as
``tool`` messages, and the model is asked again, for at most `MAX_TOOL_ROUNDS`
rounds.  A model Ollama says does not support tools is asked again without
them, and is not sent them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
import ollama
import pydantic

from assistant.core.errors import (
    LlmFailed,
    LlmModelMissing,
    LlmStreamCut,
    LlmTimeout,
    LlmUnreachable,
    TurnError,
)
from assistant.core.ports import Health, LlmOptions, Message, TokenUsage, ToolCall

__all__ = ["DEFAULT_HOST", "MAX_TOOL_ROUNDS", "OllamaLanguageModel", "TokenUsage", "normalise_host"]

logger = logging.getLogger(__name__)

DEFAULT_HOST = "http://127.0.0.1:11434"
_DEFAULT_PORT = 11434

KeepAlive = str | int | float

MAX_TOOL_ROUNDS = 4
"""Rounds of tool results one reply may send back; a model still calling tools after them fails the reply."""


def normalise_host(host: str) -> str:
    """``localhost`` -> ``http://localhost:11434``; keeps a given scheme, port and path."""
    host = host.strip()
    if not host:
        return DEFAULT_HOST
    if "://" not in host:
        host = f"http://{host}"
    parts = urlsplit(host)
    netloc = parts.netloc
    if parts.port is None:
        default = {"http": _DEFAULT_PORT, "https": 443}.get(parts.scheme, _DEFAULT_PORT)
        netloc = f"{netloc}:{default}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


def _model_key(name: str) -> str:
    """Ollama's default tag: ``llama3.2`` names ``llama3.2:latest``."""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


class _ToolsRefused(Exception):
    """Ollama answered HTTP 400 "... does not support tools" for the model."""


def _refuses_tools(exc: BaseException) -> bool:
    return isinstance(exc, ollama.ResponseError) and exc.status_code == 400 and "does not support tools" in exc.error


@dataclass
class _Round:
    """One request of a reply: its text, the tool calls it made, its final chunk."""

    text: str = ""
    pieces: int = 0
    calls: list[ToolCall] = field(default_factory=list)
    done: ollama.ChatResponse | None = None


class OllamaLanguageModel:
    """Streams chat replies from an Ollama server.

    `options` are Ollama's model options (``temperature``, ``num_ctx``, ...)
    sent with every request; `keep_alive` is how long Ollama keeps the model
    loaded after a request (``"30m"``, seconds, ``-1`` for ever).
    `timeout_s` bounds each wait: for the first piece of a reply (which
    includes connecting and, on a cold server, loading the model), for each
    next piece, and for each whole call of `health`; `connect_timeout_s`
    bounds opening the TCP connection alone, so that a host that has gone
    away is given up on quickly.  `warm_timeout_s` bounds
    `warm` as a whole (default: the larger of `timeout_s` and 120 s, since a
    cold load can be slow and nothing waits on it).
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        model: str = "llama3.2:1b",
        *,
        options: Mapping[str, Any] | None = None,
        keep_alive: KeepAlive | None = "30m",
        timeout_s: float = 30.0,
        connect_timeout_s: float | None = None,
        warm_timeout_s: float | None = None,
    ) -> None:
        if timeout_s <= 0 or (connect_timeout_s is not None and connect_timeout_s <= 0):
            raise ValueError("timeout_s and connect_timeout_s must be positive")
        self.host = normalise_host(host)
        self.model = model
        self.options: dict[str, Any] = dict(options or {})
        self.keep_alive = keep_alive
        self.timeout_s = timeout_s
        self.connect_timeout_s = min(connect_timeout_s or timeout_s, timeout_s)
        self.warm_timeout_s = warm_timeout_s if warm_timeout_s is not None else max(timeout_s, 120.0)
        self._client: ollama.AsyncClient | None = None
        self._no_tools: set[str] = set()
        """Models Ollama said do not support tools: they are asked without them."""

    def __repr__(self) -> str:
        return f"OllamaLanguageModel(host={self.host!r}, model={self.model!r})"

    def _get_client(self) -> ollama.AsyncClient:
        # Created on first use, inside the running loop.  trust_env=False: the
        # server is local, and an HTTP(S)_PROXY in the environment must not
        # reroute loopback traffic.
        if self._client is None:
            self._client = ollama.AsyncClient(
                host=self.host, trust_env=False, timeout=self._http_timeout(), verify=self._verify()
            )
        return self._client

    def _verify(self) -> bool:
        # Loading the CA bundle costs ~90 ms per client on a small board, paid by the
        # first turn that falls back to a host; plain http never uses it.
        return self.host.startswith("https://")

    def _http_timeout(self) -> httpx.Timeout:
        # Reads are bounded by `timeout_s` around each wait (asyncio.timeout), not by httpx.
        return httpx.Timeout(None, connect=self.connect_timeout_s)

    def _request(self, options: LlmOptions | None) -> tuple[str, dict[str, Any]]:
        """The model and Ollama options for one request: the configured ones, with `options` over them."""
        merged = dict(self.options)
        if options is None:
            return self.model, merged
        if options.temperature is not None:
            merged["temperature"] = options.temperature
        if options.max_tokens is not None:
            merged["num_predict"] = options.max_tokens
        return options.model or self.model, merged

    async def aclose(self) -> None:
        """Close the HTTP connection pool (a later call opens a new one)."""
        client, self._client = self._client, None
        if client is not None:
            close = cast(Callable[[], Awaitable[None]], client.close)
            await close()

    # --- LanguageModel ------------------------------------------------------------

    async def stream(self, messages: Sequence[Message], options: LlmOptions | None = None) -> AsyncGenerator[str, None]:
        """Yield the reply to `messages` piece by piece, running its tool calls; raise `TurnError` subclasses."""
        wire: list[dict[str, Any]] = _to_wire(messages)
        model, ollama_options = self._request(options)
        call_tool = options.call_tool if options is not None else None
        started = time.monotonic()
        counts = [0, 0]
        rounds = 0
        while True:
            tools = self._tools(model, options)
            reply = _Round()
            try:
                async for text in self._chat(model, wire, ollama_options, tools, reply):
                    if reply.pieces == 1 and rounds == 0:
                        logger.debug("llm first piece after %.0f ms", (time.monotonic() - started) * 1000)
                    yield text
            except _ToolsRefused:
                self._refuse_tools(model)
                continue
            done = reply.done
            assert done is not None
            counts[0] += done.prompt_eval_count or 0
            counts[1] += done.eval_count or 0
            logger.debug(
                "llm done: reason=%s pieces=%d calls=%d eval_count=%s in %.0f ms",
                done.done_reason,
                reply.pieces,
                len(reply.calls),
                done.eval_count,
                (time.monotonic() - started) * 1000,
            )
            if reply.calls and call_tool is not None and tools:
                if rounds == MAX_TOOL_ROUNDS:
                    names = ", ".join(call.name for call in reply.calls)
                    logger.warning("llm: %s still calls tools (%s) after %d rounds: giving up", model, names, rounds)
                    raise LlmFailed(f"the model still called tools ({names}) after {rounds} rounds of tool results")
                rounds += 1
                results = [await _run_tool(call_tool, call) for call in reply.calls]
                if all(result is not None for result in results):
                    wire.append(_assistant_wire(reply.text, reply.calls))
                    for call, result in zip(reply.calls, results, strict=True):
                        wire.append({"role": "tool", "content": result, "tool_name": call.name})
                    continue
            if options is not None and options.on_usage is not None:
                options.on_usage(TokenUsage(counts[0], counts[1]))
            return

    async def _chat(
        self,
        model: str,
        wire: list[dict[str, Any]],
        ollama_options: dict[str, Any],
        tools: list[Mapping[str, Any]],
        reply: _Round,
    ) -> AsyncGenerator[str, None]:
        """One streamed request: yield its text, collect its tool calls and final chunk into `reply`."""
        client = self._get_client()
        logger.debug("llm request: host=%s model=%s messages=%d tools=%d", self.host, model, len(wire), len(tools))
        try:
            async with asyncio.timeout(self.timeout_s):
                parts = await client.chat(
                    model=model,
                    messages=wire,
                    stream=True,
                    options=ollama_options or None,
                    keep_alive=self.keep_alive,
                    tools=tools or None,
                )
            generator = cast(AsyncGenerator[ollama.ChatResponse, None], parts)
            async with contextlib.aclosing(generator) as chunks:
                while True:
                    try:
                        async with asyncio.timeout(self.timeout_s):
                            part = await anext(chunks)
                    except StopAsyncIteration:
                        raise LlmStreamCut(
                            f"Ollama ended the reply without its final chunk after {reply.pieces} pieces"
                        ) from None
                    text = part.message.content or ""
                    if text:
                        reply.pieces += 1
                        reply.text += text
                        yield text
                    for call in part.message.tool_calls or ():
                        reply.calls.append(ToolCall(call.function.name, dict(call.function.arguments or {})))
                    if part.done:
                        reply.done = part
                        return
        except TurnError:
            raise
        except Exception as exc:
            if tools and _refuses_tools(exc):
                raise _ToolsRefused(str(exc)) from exc
            raise self._map_error(exc, pieces=reply.pieces, model=model) from exc

    def _tools(self, model: str, options: LlmOptions | None) -> list[Mapping[str, Any]]:
        """The tools to send: the options', unless the model does not support them."""
        if options is None or not options.tools or _model_key(model) in self._no_tools:
            return []
        return list(options.tools)

    def _refuse_tools(self, model: str) -> None:
        self._no_tools.add(_model_key(model))
        logger.warning(
            "llm: Ollama says %s does not support tools; asking it without them from now on "
            "(the device's own requests still work by voice; a model with tool support does more)",
            model,
        )

    async def warm(self, messages: Sequence[Message], options: LlmOptions | None = None) -> None:
        """Load the model and cache the prompt prefix `messages`; never raises.

        Sends the messages with ``num_predict: 1`` and the same options as
        `stream` (other options would make Ollama reload the model), so Ollama
        evaluates the whole prefix and generates a single token.  No messages
        at all is Ollama's plain load-the-model request.
        """
        try:
            await self.try_warm(messages, options)
        except TurnError as error:  # a warm-up must never raise; it is only logged
            level = logging.DEBUG if isinstance(error, LlmTimeout) else logging.WARNING
            logger.log(level, "llm warm-up failed (%s): %s", error.code, error)

    async def try_warm(self, messages: Sequence[Message], options: LlmOptions | None = None) -> None:
        """`warm`, raising its failure as a `TurnError` (the fallback chain wants to know).

        The tools go too: Ollama renders them into the prompt, whose prefix is what is cached.
        """
        model, ollama_options = self._request(options)
        ollama_options["num_predict"] = 1
        started = time.monotonic()
        while True:
            tools = self._tools(model, options)
            try:
                async with asyncio.timeout(self.warm_timeout_s):
                    await self._get_client().chat(
                        model=model,
                        messages=_to_wire(messages),
                        stream=False,
                        options=ollama_options,
                        keep_alive=self.keep_alive,
                        tools=tools or None,
                    )
            except Exception as exc:
                if tools and _refuses_tools(exc):
                    self._refuse_tools(model)
                    continue
                raise self._map_error(exc, pieces=0, model=model) from exc
            break
        logger.debug("llm warm-up took %.0f ms", (time.monotonic() - started) * 1000)

    # --- assistant check ------------------------------------------------------------

    async def ready(self, model: str | None = None) -> None:
        """Quick probe: the server lists `model` (default: the configured one); raises `TurnError`."""
        model = model or self.model
        try:
            async with asyncio.timeout(self.timeout_s):
                listing = await self._get_client().list()
        except Exception as exc:
            raise self._map_error(exc, pieces=0, model=model) from exc
        have = {_model_key(m.model) for m in listing.models if m.model}
        if _model_key(model) not in have:
            raise LlmModelMissing(f"Ollama at {self.host} has no model {model!r}; run `ollama pull {model}`")

    async def health(self) -> list[Health]:
        """Rows for ``assistant check``: the server answers, and has the model."""
        from assistant.engines.ollama_setup import server_advice

        model_fix = f"ollama pull {self.model}"
        try:
            version = await self._version()
        except Exception as exc:  # check reports every failure as a row
            error = self._map_error(exc, pieces=0)
            why, server_fix = server_advice(self.host, error.code)
            reason = str(error).removeprefix(f"cannot reach Ollama at {self.host}: ")
            return [
                Health("llm.server", False, f"{self.host}: {why} ({reason})", server_fix),
                Health("llm.model", False, f"{self.model}: not checked, server unreachable", model_fix),
            ]
        rows = [Health("llm.server", True, f"Ollama {version} at {self.host}")]
        try:
            async with asyncio.timeout(self.timeout_s):
                listing = await self._get_client().list()
        except Exception as exc:  # check reports every failure as a row
            error = self._map_error(exc, pieces=0)
            rows.append(Health("llm.model", False, f"{self.model}: cannot list models: {error}", model_fix))
            return rows
        have = {_model_key(m.model) for m in listing.models if m.model}
        if _model_key(self.model) in have:
            rows.append(Health("llm.model", True, f"{self.model} is pulled"))
        else:
            known = ", ".join(sorted(have)) or "none"
            rows.append(Health("llm.model", False, f"{self.model} is not pulled (have: {known})", model_fix))
        return rows

    async def _version(self) -> str:
        async with (
            asyncio.timeout(self.timeout_s),
            httpx.AsyncClient(
                base_url=self.host, trust_env=False, timeout=self._http_timeout(), verify=self._verify()
            ) as http,
        ):
            response = await http.get("/api/version")
        if response.status_code != 200:
            raise LlmFailed(f"GET /api/version answered HTTP {response.status_code}; is this Ollama?")
        try:
            return str(response.json()["version"])
        except (ValueError, KeyError, TypeError) as exc:
            raise LlmFailed(f"GET /api/version answered {response.text[:80]!r}; is this Ollama?") from exc

    # --- errors ---------------------------------------------------------------------

    def _map_error(self, exc: BaseException, *, pieces: int, model: str | None = None) -> TurnError:
        model = model or self.model
        if isinstance(exc, TurnError):
            return exc
        if isinstance(exc, (TimeoutError, httpx.TimeoutException)):
            if isinstance(exc, httpx.ConnectTimeout):
                return LlmUnreachable(f"Ollama at {self.host} did not accept the connection in time")
            what = "the first piece" if pieces == 0 else "the next piece"
            return LlmTimeout(f"Ollama sent no {what} of the reply within {self.timeout_s:g} s")
        if isinstance(exc, ollama.ResponseError):
            if exc.status_code == 404:
                return LlmModelMissing(
                    f"Ollama at {self.host} has no model {model!r} ({exc.error}); run `ollama pull {model}`"
                )
            if exc.status_code == -1:
                return LlmFailed(f"Ollama failed mid-reply: {exc.error}")
            return LlmFailed(f"Ollama at {self.host} answered HTTP {exc.status_code}: {exc.error}")
        if isinstance(exc, (httpx.ConnectError, ConnectionError)):
            return LlmUnreachable(f"cannot reach Ollama at {self.host}: {exc}")
        if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
            return LlmStreamCut(f"the connection to Ollama dropped after {pieces} pieces: {exc}")
        if isinstance(exc, (json.JSONDecodeError, pydantic.ValidationError, httpx.DecodingError)):
            return LlmFailed(f"Ollama sent a malformed answer: {exc}")
        if isinstance(exc, httpx.HTTPError):
            return LlmFailed(f"talking to Ollama failed: {exc}")
        return LlmFailed(f"unexpected LLM failure: {exc!r}")


async def _run_tool(call_tool: Callable[[ToolCall], Awaitable[str | None]], call: ToolCall) -> str | None:
    """One call's result; a tool that raises is answered to the model as an error, not a failed reply."""
    try:
        return await call_tool(call)
    except Exception as exc:
        logger.exception("llm: tool %s failed", call.name)
        return f"error: {call.name} failed: {exc}"


def _call_wire(call: ToolCall) -> dict[str, Any]:
    return {"function": {"name": call.name, "arguments": call.arguments}}


def _assistant_wire(text: str, calls: Sequence[ToolCall]) -> dict[str, Any]:
    return {"role": "assistant", "content": text, "tool_calls": [_call_wire(call) for call in calls]}


def _to_wire(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Ollama's chat messages: assistant ``tool_calls`` and a tool result's ``tool_name`` where set."""
    wire: list[dict[str, Any]] = []
    for m in messages:
        entry: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            entry["tool_calls"] = [_call_wire(call) for call in m.tool_calls]
        if m.tool_name is not None:
            entry["tool_name"] = m.tool_name
        wire.append(entry)
    return wire
