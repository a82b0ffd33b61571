"""One connection's conversation: its items, their wire form, and the prompt they make."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from assistant.core.ports import Audio, Message, ToolCall
from assistant.core.reply import Segment, heard, heard_text
from assistant.realtime.protocol import (
    WIRE_RATE,
    Dialect,
    ProtocolError,
    check_known,
    content_type,
    decode_audio,
    get_str,
    new_id,
)

Role = Literal["user", "assistant", "system"]
ItemType = Literal["message", "function_call", "function_call_output"]


@dataclass
class Item:
    """A message (user audio or text, assistant reply, system note), a function call, or a call's output."""

    id: str
    role: Role
    kind: Literal["text", "audio"]
    text: str = ""
    """The text content, or the transcript of the audio (for an assistant: what was sent)."""
    audio_ms: float = 0.0
    status: Literal["completed", "incomplete", "in_progress"] = "completed"
    segments: list[Segment] = field(default_factory=list)
    """An assistant reply's chunks as the core's reply path placed them (seconds of the item's audio)."""
    transcription: asyncio.Task[str] | None = None
    type: ItemType = "message"
    call_id: str = ""
    name: str = ""
    """function_call: the function's name."""
    arguments: str = ""
    """function_call: the arguments as a JSON string."""
    output: str = ""
    """function_call_output: what the client's function returned."""
    device_calls: tuple[tuple[ToolCall, str], ...] = ()
    """function_call: the device's own calls of the same reply and their results (in the prompt, not on the wire)."""

    def add_segment(self, segment: Segment) -> None:
        """Record a chunk sent to the client."""
        self.segments.append(segment)
        self.audio_ms = segment.end * 1000
        self.text = heard_text(self.segments)

    def truncate(self, audio_end_ms: float) -> None:
        """Keep only what was heard up to `audio_end_ms` (the core's clipping: whole chunks, then a share)."""
        if not self.segments:
            return  # an item the client created: no audio was sent for it
        self.segments = heard(self.segments, audio_end_ms / 1000)
        self.text = heard_text(self.segments)
        self.audio_ms = min(self.audio_ms, audio_end_ms)

    def wire(self, dialect: Dialect) -> dict[str, Any]:
        """The item as events carry it."""
        head = {"id": self.id, "object": "realtime.item", "type": self.type, "status": self.status}
        if self.type == "function_call":
            return {**head, "name": self.name, "call_id": self.call_id, "arguments": self.arguments}
        if self.type == "function_call_output":
            return {**head, "call_id": self.call_id, "output": self.output}
        content: dict[str, Any]
        if self.role == "assistant":
            content = {"type": content_type(self.kind, dialect)}
            content["transcript" if self.kind == "audio" else "text"] = self.text
        elif self.kind == "audio":
            content = {"type": "input_audio", "transcript": self.text or None}
        else:
            content = {"type": "input_text", "text": self.text}
        return {
            "id": self.id,
            "object": "realtime.item",
            "type": "message",
            "role": self.role,
            "status": self.status,
            "content": [content],
        }


class Conversation:
    """The ordered items of one connection."""

    def __init__(self) -> None:
        self.items: list[Item] = []

    def get(self, item_id: str) -> Item:
        """The item with `item_id`; ProtocolError when there is none."""
        for item in self.items:
            if item.id == item_id:
                return item
        raise ProtocolError("item_not_found", f"no item with id {item_id!r} in this conversation", param="item_id")

    def previous_id(self, item: Item) -> str | None:
        """The id of the item before `item` (None for the first)."""
        index = self.items.index(item)
        return self.items[index - 1].id if index else None

    def add(self, item: Item, after: str | None = None) -> str | None:
        """Append `item` (or insert it after item `after`); returns the previous item's id."""
        if any(existing.id == item.id for existing in self.items):
            raise ProtocolError("item_id_taken", f"an item with id {item.id!r} already exists", param="item.id")
        if after is None:
            self.items.append(item)
        else:
            self.items.insert(self.items.index(self.get(after)) + 1, item)
        return self.previous_id(item)

    def delete(self, item_id: str) -> Item:
        """Remove an item; ProtocolError when there is none."""
        item = self.get(item_id)
        self.items.remove(item)
        if item.transcription is not None:
            item.transcription.cancel()
        return item

    async def messages(self, system: str) -> list[Message]:
        """The LLM prompt: `system`, then every item (waiting for pending transcriptions)."""
        for item in list(self.items):
            if item.transcription is not None and not item.transcription.done():
                await asyncio.wait([item.transcription])
        return ([Message("system", system)] if system else []) + to_messages(self.items, self.call_names())

    def call_names(self) -> dict[str, str]:
        """The function each call id in the conversation calls."""
        return {item.call_id: item.name for item in self.items if item.type == "function_call"}

    def cancel_pending(self) -> None:
        """Stop every transcription still running (the connection is closing)."""
        for item in self.items:
            if item.transcription is not None:
                item.transcription.cancel()


def to_messages(items: Sequence[Item], names: Mapping[str, str]) -> list[Message]:
    """The LLM's messages for `items`: texts, function calls (one assistant message a run) and their outputs."""
    out: list[Message] = []
    index = 0
    while index < len(items):
        item = items[index]
        index += 1
        if item.type == "function_call_output":
            out.append(Message("tool", item.output, tool_name=names.get(item.call_id)))
        elif item.type == "message":
            if item.text.strip():
                out.append(Message(item.role, item.text))
        else:
            group = [item]
            while index < len(items) and items[index].type == "function_call":
                group.append(items[index])
                index += 1
            device = [pair for one in group for pair in one.device_calls]
            calls = tuple(call for call, _ in device) + tuple(_call(one) for one in group)
            text = out.pop().content if out and out[-1].role == "assistant" and not out[-1].tool_calls else ""
            out.append(Message("assistant", text, tool_calls=calls))
            out += [Message("tool", result, tool_name=call.name) for call, result in device]
    return out


def _call(item: Item) -> ToolCall:
    arguments = json.loads(item.arguments) if item.arguments else {}
    return ToolCall(item.name, arguments if isinstance(arguments, dict) else {}, item.call_id)


ITEM_KEYS = ("id", "type", "object", "role", "status", "content")
PART_KEYS = ("type", "text", "audio", "transcript")
CALL_KEYS = ("id", "type", "object", "status", "name", "call_id", "arguments")
OUTPUT_KEYS = ("id", "type", "object", "status", "call_id", "output")


def parse_item(data: dict[str, Any], where: str = "item.") -> tuple[Item, Audio | None]:
    """A ``conversation.item.create`` item (a message with text or audio, a function call or its output)."""
    kind = data.get("type", "message")
    if kind in ("function_call", "function_call_output"):
        return _parse_function_item(data, kind, where), None
    if kind != "message":
        raise ProtocolError(
            "unsupported_item_type",
            f"item type {kind!r} is not supported; only 'message', 'function_call' and 'function_call_output'",
            param=f"{where}type",
        )
    check_known(data, ITEM_KEYS, where)
    role = get_str(data, "role", where=where)
    if role not in ("user", "assistant", "system"):
        raise ProtocolError("invalid_value", f"'{where}role' must be user, assistant or system", param=f"{where}role")
    content = data.get("content")
    if not isinstance(content, list) or not content or not all(isinstance(c, dict) for c in content):
        raise ProtocolError(
            "invalid_value", f"'{where}content' must be a non-empty list of parts", param=f"{where}content"
        )
    item_id = get_str(data, "id", where=where, required=False) or new_id("item")
    texts: list[str] = []
    audio: Audio | None = None
    for index, part in enumerate(content):
        kind = part.get("type")
        at = f"{where}content[{index}]."
        check_known(part, PART_KEYS, at)
        if kind in ("input_text", "text", "output_text"):
            texts.append(get_str(part, "text", where=at) or "")
        elif kind in ("input_audio", "audio", "output_audio") and "audio" in part:
            audio = decode_audio(part["audio"], f"{at}audio")
        elif kind in ("input_audio", "audio", "output_audio") and "transcript" in part:
            texts.append(get_str(part, "transcript", where=at) or "")
        else:
            raise ProtocolError("invalid_value", f"content part type {kind!r} is not supported", param=f"{at}type")
    kind = "audio" if audio is not None or role == "assistant" else "text"
    item = Item(item_id, role, kind, text=" ".join(t for t in texts if t))  # type: ignore[arg-type]
    if audio is not None:
        if texts:
            raise ProtocolError(
                "invalid_value", "an item holds either audio or text, not both", param=f"{where}content"
            )
        item.audio_ms = len(audio) * 1000 / WIRE_RATE
    return item, audio


def _parse_function_item(data: dict[str, Any], kind: str, where: str) -> Item:
    item_id = get_str(data, "id", where=where, required=False) or new_id("item")
    if kind == "function_call_output":
        check_known(data, OUTPUT_KEYS, where)
        call_id = get_str(data, "call_id", where=where) or ""
        output = data.get("output")
        if not isinstance(output, str):
            raise ProtocolError("invalid_type", f"'{where}output' must be a string", param=f"{where}output")
        return Item(item_id, "user", "text", type="function_call_output", call_id=call_id, output=output)
    check_known(data, CALL_KEYS, where)
    name = get_str(data, "name", where=where) or ""
    arguments = get_str(data, "arguments", where=where) or "{}"
    try:
        parsed = json.loads(arguments)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        message = f"'{where}arguments' must be a JSON object in a string, such as '{{\"city\": \"Oslo\"}}'"
        raise ProtocolError("invalid_value", message, param=f"{where}arguments")
    call_id = get_str(data, "call_id", where=where, required=False) or new_id("call")
    return Item(item_id, "assistant", "text", type="function_call", call_id=call_id, name=name, arguments=arguments)


def response_input(value: Any, conversation: Conversation) -> tuple[Message, ...]:
    """``response.input``: the reply's own context, text messages and references to existing items."""
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ProtocolError("invalid_type", "'response.input' must be a list of items", param="response.input")
    items: list[Item] = []
    for index, data in enumerate(value):
        where = f"response.input[{index}]."
        if data.get("type") == "item_reference":
            check_known(data, ("type", "id"), where)
            wanted = get_str(data, "id", where=where) or ""
            try:
                found = conversation.get(wanted)
            except ProtocolError as exc:
                raise ProtocolError(exc.code, str(exc), param=f"{where}id") from None
            if found.transcription is not None and not found.transcription.done():
                raise ProtocolError(
                    "invalid_value", f"'{where}id' {found.id!r} is still being transcribed", param=f"{where}id"
                )
            items.append(found)
            continue
        item, audio = parse_item(data, where)
        if audio is not None:
            raise ProtocolError(
                "unsupported_parameter",
                f"'{where}content': audio in response.input is not "
                "supported; add it to the conversation with conversation.item.create",
                param=f"{where}content",
            )
        items.append(item)
    names = conversation.call_names()
    names.update({item.call_id: item.name for item in items if item.type == "function_call"})
    return tuple(to_messages(items, names))
