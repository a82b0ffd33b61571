"""Function calling on the realtime wire: a client's ``tools`` and ``tool_choice``, and what the LLM is offered.

A client's functions are OpenAI's flat ``{"type": "function", "name", "description",
"parameters"}``; the LLM gets them in the shape Ollama takes, beside the device's own
(a client's function of the same name takes its place). Ollama has no
``tool_choice``: ``none`` offers nothing, ``auto`` everything, ``required`` everything
with an instruction to call one, and a named function only that one, with an
instruction to call it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from assistant.realtime.protocol import Dialect, ProtocolError, check_known, get_str

MAX_TOOLS = 128
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TOOL_KEYS = ("type", "name", "description", "parameters")
CHOICES = ("auto", "none", "required")


@dataclass(frozen=True)
class FunctionTool:
    """One of a client's functions."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] | None = None

    def wire(self) -> dict[str, Any]:
        """As the session object lists it."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": dict(self.parameters or _EMPTY),
        }

    def definition(self) -> dict[str, Any]:
        """As Ollama's ``tools`` take it."""
        function = {"name": self.name, "description": self.description, "parameters": dict(self.parameters or _EMPTY)}
        return {"type": "function", "function": function}


_EMPTY: Mapping[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class ToolChoice:
    """``auto``, ``none``, ``required``, or one function by name."""

    mode: str = "auto"
    name: str | None = None

    def wire(self, dialect: Dialect) -> str | dict[str, Any]:
        if self.name is None:
            return self.mode
        # GA's ToolChoiceFunction; the beta session object holds a string: the function's name.
        return self.name if dialect is Dialect.BETA else {"type": "function", "name": self.name}

    def hint(self) -> str:
        """The instruction that stands in for a forced call (Ollama cannot force one)."""
        if self.name is not None:
            return f"Answer by calling the function {self.name}."
        return "Answer by calling one of the functions." if self.mode == "required" else ""


AUTO = ToolChoice()


def parse_tools(value: Any, param: str) -> tuple[FunctionTool, ...]:
    """``tools``: a list of function tools (MCP tools are refused)."""
    if not isinstance(value, list):
        raise ProtocolError("invalid_type", f"'{param}' must be a list of tools", param=param)
    if len(value) > MAX_TOOLS:
        raise ProtocolError("invalid_value", f"'{param}' holds at most {MAX_TOOLS} tools", param=param)
    tools: list[FunctionTool] = []
    for index, data in enumerate(value):
        at = f"{param}[{index}]"
        if not isinstance(data, dict):
            raise ProtocolError("invalid_type", f"'{at}' must be an object", param=at)
        kind = data.get("type", "function")
        if kind != "function":
            raise ProtocolError(
                "unsupported_parameter",
                f"'{at}.type' = {kind!r} is not supported: only function tools (the server reaches no MCP servers)",
                param=f"{at}.type",
            )
        check_known(data, _TOOL_KEYS, f"{at}.")
        name = get_str(data, "name", where=f"{at}.") or ""
        if not _NAME.match(name):
            message = f"'{at}.name' {name!r} must be 1-64 letters, digits, '_' or '-'"
            raise ProtocolError("invalid_value", message, param=f"{at}.name")
        if any(tool.name == name for tool in tools):
            raise ProtocolError("invalid_value", f"'{at}.name': {name!r} is given twice", param=f"{at}.name")
        description = get_str(data, "description", where=f"{at}.", required=False) or ""
        tools.append(FunctionTool(name, description, _parameters(data.get("parameters"), f"{at}.parameters")))
    return tuple(tools)


def _parameters(value: Any, param: str) -> dict[str, Any] | None:
    """A JSON Schema object, as Ollama takes one: ``type`` object, ``properties`` each an object."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ProtocolError("invalid_type", f"'{param}' must be a JSON Schema object", param=param)
    if value.get("type", "object") != "object":
        raise ProtocolError("invalid_value", f"'{param}.type' must be 'object'", param=f"{param}.type")
    properties = value.get("properties", {})
    if not isinstance(properties, dict) or not all(isinstance(p, dict) for p in properties.values()):
        message = f"'{param}.properties' must map each argument's name to its schema"
        raise ProtocolError("invalid_value", message, param=f"{param}.properties")
    required = value.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise ProtocolError("invalid_value", f"'{param}.required' must be a list of names", param=f"{param}.required")
    return dict(value)


def parse_tool_choice(value: Any, param: str) -> ToolChoice:
    """``tool_choice``: a mode, or ``{"type": "function", "name": ...}`` (beta also ``"function": {"name"}``)."""
    if isinstance(value, str) and value in CHOICES:
        return ToolChoice(value)
    if isinstance(value, dict) and value.get("type") == "function":
        function = value.get("function")
        name = function.get("name") if isinstance(function, dict) else value.get("name")
        if isinstance(name, str) and name:
            return ToolChoice("function", name)
    if isinstance(value, dict) and value.get("type") == "mcp":
        message = f"'{param}' cannot choose an MCP tool: the server reaches no MCP servers"
        raise ProtocolError("unsupported_parameter", message, param=param)
    message = f"'{param}' must be 'auto', 'none', 'required' or {{\"type\": \"function\", \"name\": ...}}"
    raise ProtocolError("invalid_value", message, param=param)


def check_choice(choice: ToolChoice, tools: Sequence[FunctionTool], device: frozenset[str], param: str) -> None:
    """A named choice must name a function the reply can call."""
    if choice.name is not None and choice.name not in device and all(t.name != choice.name for t in tools):
        message = f"'{param}' names {choice.name!r}, which is neither among the tools nor one of the device's"
        raise ProtocolError("invalid_value", message, param=param)


def offered(
    choice: ToolChoice, tools: Sequence[FunctionTool], device: Sequence[Mapping[str, Any]]
) -> tuple[list[Mapping[str, Any]], frozenset[str]]:
    """The definitions the LLM gets for a reply, and which of them are the client's."""
    if choice.mode == "none":
        return [], frozenset()
    own = {tool.name for tool in tools}
    definitions: list[Mapping[str, Any]] = [d for d in device if d["function"]["name"] not in own]
    definitions += [tool.definition() for tool in tools]
    if choice.name is not None:
        definitions = [d for d in definitions if d["function"]["name"] == choice.name]
    return definitions, frozenset(own)
