"""One reply: LLM tokens -> sentence chunks -> TTS -> audio and transcript deltas.

A `ResponseRun` is one task.  Cancelling it (``response.cancel``, barge-in by
server VAD, a truncate of its item) stops the LLM stream and the TTS at once;
the item keeps only the chunks that were sent, and a later
``conversation.item.truncate`` cuts it to what was heard.  When the LLM stream
fails mid-answer, what had arrived is still spoken before the response ends
as ``failed``.

The LLM is offered the client's functions beside the device's.  A call of the
device's runs on the device and its result goes back to the LLM within the
reply; a call of the client's ends the reply with a ``function_call`` output
item (after the message, if the LLM said something first), for the client to
answer with a ``function_call_output`` item and a new ``response.create``.
The message item is announced with the reply's first text, so a reply that
only calls a function has no message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from assistant.core.errors import TurnError
from assistant.core.ports import Audio, LlmOptions, Message, TokenUsage, ToolCall
from assistant.core.reply import Hooks, Segment, speak
from assistant.realtime import protocol as p
from assistant.realtime.items import Item
from assistant.realtime.tools import FunctionTool, ToolChoice, offered, parse_tool_choice, parse_tools

if TYPE_CHECKING:
    from assistant.realtime.session import RealtimeSession

logger = logging.getLogger(__name__)

DELTA_SAMPLES = p.WIRE_RATE // 5
"""Samples per audio delta (200 ms)."""
_RESPONSE_KEYS = (
    "instructions",
    "temperature",
    "max_output_tokens",
    "max_response_output_tokens",
    "output_modalities",
    "modalities",
    "conversation",
    "input",
    "metadata",
    "audio",
    "voice",
    "output_audio_format",
    "tools",
    "tool_choice",
    "prompt",
)


@dataclass(frozen=True)
class ResponseOptions:
    """Per-response overrides from ``response.create``."""

    instructions: str | None = None
    temperature: float | None = None
    max_output_tokens: int | None = None
    has_max_tokens: bool = False
    modalities: tuple[str, ...] | None = None
    in_conversation: bool = True
    metadata: dict[str, str] | None = None
    input: tuple[Message, ...] | None = field(default=None)
    """The reply's own context (``response.input``) instead of the conversation."""
    voice: str | None = None
    """The voice for this reply (``response.voice``); None: the session's."""
    tools: tuple[FunctionTool, ...] | None = None
    """The client's functions for this reply (``response.tools``); None: the session's."""
    tool_choice: ToolChoice | None = None

    @classmethod
    def parse(cls, data: dict[str, Any], voices: tuple[str, ...] = ("default",)) -> ResponseOptions:
        """Read the ``response`` object of ``response.create`` (``input`` is resolved by the session)."""
        where = "response."
        p.check_known(data, _RESPONSE_KEYS, where)
        p.refuse_unless(data, "prompt", (None,), "stored prompts are an OpenAI platform feature", where)
        voice = None
        if "voice" in data:
            voice = p.check_voice(data["voice"], voices, "response.voice")
        if "output_audio_format" in data:
            p.check_format(data["output_audio_format"], "response.output_audio_format")
        audio = p.get_dict(data, "audio", where=where) or {}
        p.check_known(audio, ("output",), "response.audio.")
        audio_out = p.get_dict(audio, "output", where="response.audio.") or {}
        p.check_known(audio_out, ("format", "voice"), "response.audio.output.")
        if "voice" in audio_out:
            voice = p.check_voice(audio_out["voice"], voices, "response.audio.output.voice")
        p.check_format(audio_out.get("format"), "response.audio.output.format")
        metadata = p.parse_metadata(data.get("metadata"), "response.metadata")
        instructions = p.get_str(data, "instructions", where=where, required=False)
        temperature = p.get_number(data, "temperature", 0.0, 2.0, where=where)
        limit: int | None = None
        has_limit = False
        for key in ("max_output_tokens", "max_response_output_tokens"):
            if key in data:
                limit, has_limit = p.max_tokens(data[key], where + key), True
        modalities = None
        for key in ("output_modalities", "modalities"):
            if key in data:
                modalities = p.parse_modalities(data[key], where + key)
        conversation = data.get("conversation", "auto")
        if conversation not in ("auto", "none"):
            raise p.ProtocolError(
                "invalid_value", "'response.conversation' must be 'auto' or 'none'", param="response.conversation"
            )
        tools = None if data.get("tools") is None else parse_tools(data["tools"], "response.tools")
        choice = data.get("tool_choice")
        tool_choice = None if choice is None else parse_tool_choice(choice, "response.tool_choice")
        return cls(
            instructions,
            temperature,
            limit,
            has_limit,
            modalities,
            conversation == "auto",
            metadata,
            voice=voice,
            tools=tools,
            tool_choice=tool_choice,
        )


class ResponseRun:
    """One reply to the conversation so far; `run` is the task's body."""

    def __init__(self, session: RealtimeSession, options: ResponseOptions) -> None:
        self.session = session
        self.options = options
        self.id = p.new_id("resp")
        settings = session.settings
        self.modalities = options.modalities or settings.modalities
        self.kind = "audio" if "audio" in self.modalities else "text"
        self.item = Item(p.new_id("item"), "assistant", self.kind, status="in_progress")  # type: ignore[arg-type]
        self.cancel_reason = "client_cancelled"
        self.voice = options.voice or settings.voice
        self._started = False
        self.usage: dict[str, Any] | None = None
        self.tool_choice = options.tool_choice or settings.tool_choice
        device = session.shared.device_tools()
        tools = settings.tools if options.tools is None else options.tools
        self.tools, self._client_tools = offered(self.tool_choice, tools, device)
        self.calls: list[Item] = []
        """The client's function calls this reply makes (output items after the message)."""
        self._device_calls: list[tuple[ToolCall, str]] = []

    def emit(self, ga_type: str, **fields: Any) -> None:
        """Send a response event with this response's ids."""
        self.session.emit(ga_type, response_id=self.id, item_id=self.item.id, output_index=0, content_index=0, **fields)

    def wire(self, status: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
        """The response object as ``response.created`` / ``response.done`` carry it."""
        settings = self.session.settings
        limit = self.options.max_output_tokens if self.options.has_max_tokens else settings.max_output_tokens
        data: dict[str, Any] = {
            "id": self.id,
            "object": "realtime.response",
            "status": status,
            "status_details": details,
            "output": [item.wire(self.session.dialect) for item in self._outputs()],
            "conversation_id": self.session.id if self.options.in_conversation else None,
            "usage": self.usage,
            "metadata": self.options.metadata,
            "max_output_tokens": "inf" if limit is None else limit,
        }
        key = "modalities" if self.session.dialect is p.Dialect.BETA else "output_modalities"
        data[key] = list(self.modalities)
        return data

    async def run(self) -> None:
        """Stream the reply; emit the closing events however it ends."""
        session = self.session
        session.emit("response.created", response=self.wire("in_progress"))
        # No quotas here; the one limit is a single active response per connection, which this one now holds.
        session.emit(
            "rate_limits.updated", rate_limits=[{"name": "requests", "limit": 1, "remaining": 0, "reset_seconds": 0.0}]
        )
        try:
            system = self.options.instructions
            instructions = session.settings.instructions if system is None else system
            if self.tools and self.tool_choice.hint():
                instructions = f"{instructions}\n\n{self.tool_choice.hint()}".strip()
            if self.options.input is not None:
                messages = ([Message("system", instructions)] if instructions else []) + list(self.options.input)
            else:
                messages = await session.conversation.messages(instructions)
            if self.kind == "audio":
                await self._speak(messages)
            else:
                await self._write(messages)
        except asyncio.CancelledError:
            logger.info("response %s cancelled (%s)", self.id, self.cancel_reason)
            self._finish("cancelled", {"type": "cancelled", "reason": self.cancel_reason})
            raise
        except TurnError as exc:
            logger.warning("response %s failed: %s", self.id, exc)
            error = {"type": "server_error", "code": exc.code, "message": str(exc)}
            session.error(exc.code, str(exc), kind="server_error")
            self._finish("failed", {"type": "failed", "error": error})
            return
        self._finish("completed", None)

    def _count_usage(self, counts: TokenUsage) -> None:
        """Ollama's token counts for this reply (the prompt and the reply are text tokens)."""
        self.usage = {
            "total_tokens": counts.input_tokens + counts.output_tokens,
            "input_tokens": counts.input_tokens,
            "output_tokens": counts.output_tokens,
            "input_token_details": {"text_tokens": counts.input_tokens, "audio_tokens": 0, "cached_tokens": 0},
            "output_token_details": {"text_tokens": counts.output_tokens, "audio_tokens": 0},
        }

    def _llm_options(self) -> LlmOptions:
        """The session's model and this response's temperature and token limit, sent with the request."""
        settings = self.session.settings
        temperature = self.options.temperature if self.options.temperature is not None else settings.temperature
        limit = self.options.max_output_tokens if self.options.has_max_tokens else settings.max_output_tokens
        return LlmOptions(
            model=self.session.llm_model,
            temperature=temperature,
            max_tokens=limit,
            on_usage=self._count_usage,
            tools=self.tools,
            call_tool=self._call_tool if self.tools else None,
        )

    async def _call_tool(self, call: ToolCall) -> str | None:
        """A device function runs now; a client's is handed to the client (None ends the reply)."""
        names = {definition["function"]["name"] for definition in self.tools}
        if call.name in self._client_tools:
            arguments = json.dumps(call.arguments, separators=(",", ":"))
            item = Item(p.new_id("item"), "assistant", "text", type="function_call", status="in_progress")
            item.call_id, item.name, item.arguments = p.new_id("call"), call.name, arguments
            self.calls.append(item)
            logger.info("response %s: %s(%s) goes to the client as %s", self.id, call.name, arguments, item.call_id)
            return None
        if call.name not in names:
            return f"error: unknown function {call.name!r}; the functions are: {', '.join(sorted(names))}"
        result = self.session.shared.call_device_tool(call)
        self._device_calls.append((call, result))
        return result

    def _outputs(self) -> list[Item]:
        return ([self.item] if self._started else []) + self.calls

    def _start(self) -> None:
        if self._started:
            return
        session = self.session
        previous = session.conversation.add(self.item) if self.options.in_conversation else None
        self._started = True
        item = self.item.wire(session.dialect)
        session.emit("response.output_item.added", response_id=self.id, output_index=0, item=item)
        if self.options.in_conversation:
            session.emit("conversation.item.added", previous_item_id=previous, item=item)
        self.emit("response.content_part.added", part=self._part())

    def _part(self) -> dict[str, Any]:
        # Content parts are typed "audio"/"text" in both dialects (items say output_audio/output_text in GA).
        content: dict[str, Any] = self.item.wire(p.Dialect.BETA)["content"][0]
        return content

    def _stream(self, messages: Sequence[Message]) -> AsyncGenerator[str, None]:
        return self.session.shared.engines.llm.stream(messages, self._llm_options())

    async def _speak(self, messages: Sequence[Message]) -> None:
        session = self.session
        await speak(
            self._stream(messages),
            synthesize=lambda text: session.shared.synthesize(session.id, text, self.voice),
            sink=WireSink(self),
            first_chunk_min_chars=session.shared.config.tts.first_chunk_min_chars,
            hooks=Hooks(first_token=self._start),
        )

    async def _write(self, messages: Sequence[Message]) -> None:
        async with contextlib.aclosing(self._stream(messages)) as stream:
            async for piece in stream:
                self._start()
                self.item.text += piece
                self.emit("response.output_text.delta", delta=piece)

    def _finish(self, status: str, details: dict[str, Any] | None) -> None:
        session = self.session
        if status != "completed":
            self.calls = []  # a reply cut short calls nothing
        elif not self._started and not self.calls:
            self._start()  # a reply with nothing to say still has its message
        if self._started:
            self.item.status = "completed" if status == "completed" else "incomplete"
            if self.kind == "audio":
                self.emit("response.output_audio.done")
                self.emit("response.output_audio_transcript.done", transcript=self.item.text)
            else:
                self.emit("response.output_text.done", text=self.item.text)
            self.emit("response.content_part.done", part=self._part())
            item = self.item.wire(session.dialect)
            session.emit("response.output_item.done", response_id=self.id, output_index=0, item=item)
            if self.options.in_conversation:
                session.emit("conversation.item.done", item=item)
        if self.calls:  # the device's calls of this reply reach the next prompt with the client's
            self.calls[0].device_calls = tuple(self._device_calls)
        for index, call in enumerate(self.calls, start=int(self._started)):
            self._emit_call(index, call)
        session.emit("response.done", response=self.wire(status, details))

    def _emit_call(self, index: int, call: Item) -> None:
        """One function call as an output item: added, its arguments (all in one delta), done."""
        session = self.session
        ids = {"response_id": self.id, "item_id": call.id, "output_index": index, "call_id": call.call_id}
        session.emit(
            "response.output_item.added", response_id=self.id, output_index=index, item=call.wire(session.dialect)
        )
        if self.options.in_conversation:
            previous = session.conversation.add(call)
            session.emit("conversation.item.added", previous_item_id=previous, item=call.wire(session.dialect))
        session.emit("response.function_call_arguments.delta", **ids, delta=call.arguments)
        named = {"name": call.name} if session.dialect is p.Dialect.GA else {}
        session.emit("response.function_call_arguments.done", **ids, arguments=call.arguments, **named)
        call.status = "completed"
        item = call.wire(session.dialect)
        session.emit("response.output_item.done", response_id=self.id, output_index=index, item=item)
        if self.options.in_conversation:
            session.emit("conversation.item.done", item=item)


class WireSink:
    """A realtime response's sink: transcript and audio deltas on the session's wire."""

    def __init__(self, run: ResponseRun) -> None:
        self.run = run

    async def play(self, text: str, audio: Audio) -> Segment:
        item = self.run.item
        self.run.emit("response.output_audio_transcript.delta", delta=text if not item.segments else " " + text)
        for start in range(0, len(audio), DELTA_SAMPLES):
            self.run.emit("response.output_audio.delta", delta=p.encode_audio(audio[start : start + DELTA_SAMPLES]))
        begin = item.audio_ms / 1000
        segment = Segment(text, begin, begin + len(audio) / p.WIRE_RATE)
        item.add_segment(segment)
        if len(audio):
            self.run.session.spoke(self.run.voice)  # the voice is fixed once audio has been sent
            self.run.session.shared.relax(self.run.session.id)  # first audio: other sessions' work may start
        return segment
