"""A loopback stand-in for an Ollama server, for tests and benchmarks.

It speaks the parts of Ollama's HTTP API the assistant uses, with Ollama's own
shapes and error wording: ``GET /``, ``GET /api/version``, ``GET /api/tags``,
``POST /api/show``, ``GET /api/ps``, ``POST /api/chat`` and
``POST /api/generate`` (NDJSON streaming by default over chunked transfer
encoding, one JSON object with ``"stream": false``; an empty ``messages`` /
``prompt`` is the load-the-model request and answers ``done_reason: "load"``),
and ``POST /api/pull``, which "downloads" a model of the server's `library`
(only the progress numbers travel) as Ollama streams a pull: ``pulling
manifest``, ``pulling <digest>`` lines with ``total`` and ``completed`` per
layer, ``verifying sha256 digest``, ``writing manifest``, ``success``; a name
the library lacks gets Ollama's ``pull model manifest: file does not exist``.

Replies are streamed as word-ish tokens (``"Hello"``, ``","``, ``" world"``)
after a configurable time-to-first-token and at a configurable token rate.

Tool calling is Ollama's: a chat request may offer ``tools``; a scripted
`Behaviour.tool_calls` is then the model calling them, as
``message.tool_calls: [{"function": {"index": 0, "name": ..., "arguments": {...}}}]``
in one chunk after the text and before the done chunk (or in the one object
of a non-streamed answer).  The arguments go out as scripted, fitting the
function's schema or not, as a model's may not.  The results come back as
``{"role": "tool", "content": ..., "tool_name": ...}`` messages, which the
records keep.  A model named in `no_tools` answers any request that offers
tools with Ollama's HTTP 400 ``registry.ollama.ai/library/<model> does not
support tools``.
Tests script per-request behaviours (errors, cuts, hangs, stalls, the server
stopping mid-answer) with `OllamaTestServer.script`, and inspect
`OllamaTestServer.requests`, whose records also say when each response
finished and how many tokens went out (`time.monotonic`, comparable across
processes on Linux).  A server can be stopped and started again on the same
port (`stop`, `start`, `restart`), as Ollama restarting does; a restarted
server has no model loaded, and `load_ms` is what loading one costs.
`Blackhole` is a port where connections are never accepted, as with a host
that has gone off the network.

Run standalone (for benchmarks)::

    python -m assistant.testing.ollama_server --port 11434 --ttft-ms 150 --tokens-per-s 40

A standalone server also answers ``GET /_test/requests`` (the records as JSON)
and ``POST /_test/script`` (a `Behaviour` as JSON); neither is recorded.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import re
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

__all__ = ["Behaviour", "Blackhole", "OllamaTestServer", "RecordedRequest", "main", "split_tokens"]

DEFAULT_REPLY = (
    "The sky looks blue because air scatters blue sunlight much more than red. "
    "That scattered light reaches your eyes from every direction."
)
DEFAULT_MODELS = ("llama3.2:1b",)
VERSION = "0.12.6"
_POLL_S = 0.05
_GENERATION_PATHS = ("/api/chat", "/api/generate")
_TOKEN_RE = re.compile(r"\s*(?:\w+|[^\w\s])|\s+$")


def split_tokens(text: str) -> list[str]:
    """Split text into word-ish pieces with leading spaces, as LLMs stream.

    ``"".join(split_tokens(t)) == t`` for every string.
    """
    return _TOKEN_RE.findall(text)


def normalise_model(name: str) -> str:
    """Ollama's default tag: ``llama3.2`` means ``llama3.2:latest``."""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


@dataclass
class Behaviour:
    """How the server answers one request (unset fields use the defaults).

    By default a behaviour applies to the next ``/api/chat`` or
    ``/api/generate`` request that is not a load request; set `path` to aim
    it at another endpoint (only `status`, `error` and `hang` apply there,
    and on ``/api/pull`` `stream_error`, sent halfway through the model's layer).
    """

    reply: str | None = None
    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    status: int = 200
    """Non-200: answer ``{"error": error}`` with this status at once."""
    error: str | None = None
    cut_after_tokens: int | None = None
    """Close the TCP connection after this many tokens, without the done chunk."""
    omit_done: bool = False
    """End the body cleanly after the tokens but never send the done chunk."""
    stream_error: str | None = None
    """Send ``{"error": ...}`` as an NDJSON line (status 200) after the tokens."""
    stall_after_tokens: int | None = None
    """Stop sending after this many tokens until the client leaves or the server stops."""
    hang: bool = False
    """Read the request and never answer until the client leaves or the server stops."""
    stop_server_after_tokens: int | None = None
    """Stop the whole server after this many tokens: every connection drops and the port refuses
    connections until `OllamaTestServer.start` is called again (Ollama killed mid-answer)."""
    tool_calls: list[dict[str, Any]] | None = None
    """The model calls these functions, each ``{"name": ..., "arguments": ...}``, if the request offers
    tools (else it answers `reply` in text); `reply` then defaults to no text before the calls."""
    path: str | None = None

    def matches(self, path: str) -> bool:
        if self.path is None:
            return path in _GENERATION_PATHS
        return self.path == path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Behaviour:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown Behaviour fields: {sorted(unknown)}")
        return cls(**data)


@dataclass
class RecordedRequest:
    """One request as the server saw it, and how its answer went."""

    method: str
    path: str
    body: Any
    """The parsed JSON body (None when there was none or it was not JSON)."""
    headers: dict[str, str]
    """Header names lower-cased."""
    received_at: float
    """`time.monotonic` when the request had been read."""
    first_token_at: float | None = None
    finished_at: float | None = None
    """`time.monotonic` when the answer ended (any outcome): just before its last bytes were written,
    so the record is final by the time a client has read the whole answer."""
    tokens_sent: int = 0
    outcome: str = "pending"
    """pending, done, load, error, cut, no_done, stream_error, client_gone, stopped."""
    done_sent: bool = False
    finished: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def wait_finished(self, timeout: float = 5.0) -> bool:
        """Block until the answer ended; False on timeout."""
        return self.finished.wait(timeout)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "finished"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: OllamaTestServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (a cancelled warm-up, a barge-in) is normal: no traceback for it."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "ollama-test-server"
    sys_version = ""

    # --- connection bookkeeping -------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.owner._register(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.owner._unregister(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # --- dispatch -----------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        raw = self._read_body()
        if path.startswith("/_test/"):
            self._control(method, path, raw)
            return
        body: Any = None
        bad_json: str | None = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError as exc:
                bad_json = f"invalid JSON: {exc}"
        rec = RecordedRequest(
            method=method,
            path=path,
            body=body,
            headers={k.lower(): v for k, v in self.headers.items()},
            received_at=time.monotonic(),
        )
        owner._record(rec)
        try:
            self._route(rec, raw, bad_json)
        except OSError:  # a write failed: whatever the record said, the client did not get it
            self.close_connection = True
            owner._finish(rec, "stopped" if owner._stopping.is_set() else "client_gone", force=True)
        finally:
            if not rec.finished.is_set():
                owner._finish(rec, "stopped" if owner._stopping.is_set() else "error")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _route(self, rec: RecordedRequest, raw: bytes, bad_json: str | None) -> None:
        owner = self.server.owner
        method, path = rec.method, rec.path
        routes = {
            ("GET", "/"),
            ("HEAD", "/"),
            ("GET", "/api/version"),
            ("GET", "/api/tags"),
            ("GET", "/api/ps"),
            ("POST", "/api/show"),
            ("POST", "/api/chat"),
            ("POST", "/api/generate"),
            ("POST", "/api/pull"),
        }
        if (method, path) not in routes:
            self._send_text(rec, 404, "404 page not found")
            return
        refused = owner._refuses_tools(path, rec.body)
        if refused is not None:
            self._send_json(rec, 400, {"error": refused}, outcome="error")
            return
        behaviour = owner._take_behaviour(path, rec.body)
        if behaviour is not None and behaviour.hang:
            self._pause(math.inf, rec)
            return
        if behaviour is not None and behaviour.status != 200:
            error = behaviour.error or f"scripted HTTP {behaviour.status}"
            self._send_json(rec, behaviour.status, {"error": error}, outcome="error")
            return
        if path == "/":
            self._send_text(rec, 200, "Ollama is running", head_only=method == "HEAD")
        elif path == "/api/version":
            self._send_json(rec, 200, {"version": VERSION})
        elif path == "/api/tags":
            self._send_json(rec, 200, {"models": [owner._model_entry(m) for m in owner.models]})
        elif path == "/api/ps":
            self._send_json(rec, 200, {"models": owner._running_entries()})
        elif bad_json is not None:
            self._send_json(rec, 400, {"error": bad_json}, outcome="error")
        elif not raw:
            self._send_json(rec, 400, {"error": "missing request body"}, outcome="error")
        elif not isinstance(rec.body, dict):
            self._send_json(rec, 400, {"error": "request body must be a JSON object"}, outcome="error")
        elif path == "/api/show":
            self._show(rec)
        elif path == "/api/pull":
            self._pull(rec, behaviour)
        else:
            self._generate(rec, behaviour)

    def _control(self, method: str, path: str, raw: bytes) -> None:
        owner = self.server.owner
        probe = RecordedRequest(method, path, None, {}, time.monotonic())
        if method == "GET" and path == "/_test/requests":
            self._send_json(probe, 200, [r.as_dict() for r in owner.requests])
        elif method == "POST" and path == "/_test/script":
            try:
                owner.script(Behaviour.from_dict(json.loads(raw)))
            except (ValueError, TypeError) as exc:
                self._send_json(probe, 400, {"error": str(exc)})
                return
            self._send_json(probe, 200, {"queued": True})
        else:
            self._send_text(probe, 404, "404 page not found")

    # --- endpoints ------------------------------------------------------------------

    def _show(self, rec: RecordedRequest) -> None:
        owner = self.server.owner
        name = rec.body.get("model") or rec.body.get("name") or ""
        if not name:
            self._send_json(rec, 400, {"error": "model is required"}, outcome="error")
            return
        if not owner.has_model(name):
            self._send_json(rec, 404, {"error": f"model '{name}' not found"}, outcome="error")
            return
        name = normalise_model(name)
        entry = owner._model_entry(name)
        self._send_json(
            rec,
            200,
            {
                "license": "",
                "modelfile": f'# Modelfile generated by "ollama show"\nFROM {name}\n',
                "parameters": 'stop                           "<|eot_id|>"',
                "template": "{{ .Prompt }}",
                "details": entry["details"],
                "model_info": {"general.architecture": "llama", "llama.context_length": 131072},
                "capabilities": ["completion"] if name in owner.no_tools else ["completion", "tools"],
                "modified_at": entry["modified_at"],
            },
        )

    def _pull(self, rec: RecordedRequest, behaviour: Behaviour | None) -> None:
        """Ollama's PullHandler: progress lines (or one answer with ``"stream": false``), then the model is there."""
        owner = self.server.owner
        name = rec.body.get("model") or rec.body.get("name") or ""
        if not isinstance(name, str) or not name.strip():
            self._send_json(rec, 400, {"error": "invalid model name"}, outcome="error")
            return
        stream = rec.body.get("stream") is not False
        lines: list[dict[str, Any]] = [{"status": "pulling manifest"}]
        error: str | None = None
        layers = owner._layers(name)
        if layers is None:
            error = "pull model manifest: file does not exist"
        else:
            for index, (digest, total) in enumerate(layers):
                status = f"pulling {digest[7:19]}"
                steps = owner.pull_steps if index == 0 else 1
                lines.append({"status": status, "digest": digest, "total": total})  # completed 0: omitted
                for step in range(1, steps + 1):
                    if index == 0 and behaviour is not None and behaviour.stream_error and step > steps // 2:
                        error = behaviour.stream_error
                        break
                    done = total * step // steps
                    lines.append({"status": status, "digest": digest, "total": total, "completed": done})
                if error is not None:
                    break
            else:
                lines += [{"status": "verifying sha256 digest"}, {"status": "writing manifest"}, {"status": "success"}]
        interval = owner.pull_ms / 1000.0
        start = rec.received_at
        if not stream:
            if not self._pause(start + interval * len(lines), rec):
                return
            if error is None:
                owner._add_model(name)
                self._send_json(rec, 200, lines[-1])
            else:
                self._send_json(rec, 500, {"error": error}, outcome="error")
            return
        self._start_stream()
        for i, line in enumerate(lines):
            if not self._pause(start + interval * i, rec):
                return
            rec.tokens_sent += 1
            self._write_chunk(_dumps(line) + "\n")
        if error is not None:
            owner._finish(rec, "stream_error")
            self._write_chunk(_dumps({"error": error}) + "\n")
        else:
            owner._add_model(name)
            owner._finish(rec, "done")
        self._end_stream()

    def _generate(self, rec: RecordedRequest, behaviour: Behaviour | None) -> None:
        owner = self.server.owner
        body: dict[str, Any] = rec.body
        is_chat = rec.path == "/api/chat"
        model = body.get("model") or ""
        if not model:
            self._send_json(rec, 400, {"error": "model is required"}, outcome="error")
            return
        if not owner.has_model(model):
            self._send_json(
                rec,
                404,
                {"error": f"model {_dumps(model)} not found, try pulling it first"},
                outcome="error",
            )
            return
        keep_alive = body.get("keep_alive")
        unload = keep_alive in (0, 0.0, "0", "0s", "0m")
        load_s = 0.0 if unload or owner.is_loaded(model) else owner.load_ms / 1000.0
        owner._touch_model(model, unload=unload)
        empty = not body.get("messages") if is_chat else not body.get("prompt")
        if empty:
            if not self._pause(rec.received_at + load_s, rec):
                return
            reason = "unload" if unload else "load"
            chunk = self._chunk(model, "", is_chat)
            chunk.update(done=True, done_reason=reason)
            self._send_json(rec, 200, chunk, outcome="load")
            return

        b = behaviour or Behaviour()
        calls = _tool_calls(b.tool_calls) if b.tool_calls and is_chat and body.get("tools") else []
        reply = b.reply if b.reply is not None else ("" if calls else owner.reply)
        ttft_s = (b.ttft_ms if b.ttft_ms is not None else owner.ttft_ms) / 1000.0 + load_s
        rate = b.tokens_per_s if b.tokens_per_s is not None else owner.tokens_per_s
        interval = 1.0 / rate if rate and rate > 0 else 0.0
        tokens = split_tokens(reply)
        done_reason = "stop"
        options = body.get("options") or {}
        num_predict = options.get("num_predict") if isinstance(options, dict) else None
        if isinstance(num_predict, int) and 0 < num_predict < len(tokens):
            tokens, done_reason = tokens[:num_predict], "length"
        stop_at = len(tokens)
        for limit in (b.cut_after_tokens, b.stall_after_tokens, b.stop_server_after_tokens):
            if limit is not None:
                stop_at = min(stop_at, limit)
        prompt_tokens = self._prompt_tokens(body, is_chat)
        start = rec.received_at

        if body.get("stream") is False:
            if b.cut_after_tokens is not None:
                self._pause(start + ttft_s + interval * stop_at, rec)
                self._cut(rec)
                return
            if b.stall_after_tokens is not None:
                self._pause(math.inf, rec)
                return
            if not self._pause(start + ttft_s + interval * max(len(tokens) - 1, 0), rec):
                return
            chunk = self._chunk(model, "".join(tokens), is_chat)
            if calls:
                chunk["message"]["tool_calls"] = calls
            chunk.update(self._stats(start, ttft_s, prompt_tokens, len(tokens) + _call_tokens(calls), done_reason))
            rec.tokens_sent = len(tokens)
            rec.first_token_at = time.monotonic()
            rec.done_sent = True
            self._send_json(rec, 200, chunk, outcome="done")
            return

        headers_sent = False
        for i, token in enumerate(tokens[:stop_at]):
            if not self._pause(start + ttft_s + interval * i, rec):
                return
            if not headers_sent:
                self._start_stream()
                headers_sent = True
            self._write_chunk(_dumps(self._chunk(model, token, is_chat)) + "\n")
            rec.tokens_sent += 1
            if rec.first_token_at is None:
                rec.first_token_at = time.monotonic()
        if b.cut_after_tokens is not None:
            if not headers_sent:
                self._pause(start + ttft_s, rec)
                if not rec.finished.is_set():
                    self._start_stream()
            self._cut(rec)
            return
        if b.stall_after_tokens is not None:
            self._pause(math.inf, rec)
            return
        if b.stop_server_after_tokens is not None:
            # stop() joins the handler threads, this one included: run it from another thread.
            threading.Thread(target=owner.stop, name="ollama-test-server-stop", daemon=True).start()
            self._pause(math.inf, rec)
            return
        if not headers_sent:
            if not self._pause(start + ttft_s, rec):
                return
            self._start_stream()
        if calls:  # Ollama sends the parsed calls in one chunk of their own, before the done chunk
            chunk = self._chunk(model, "", is_chat)
            chunk["message"]["tool_calls"] = calls
            self._write_chunk(_dumps(chunk) + "\n")
        if b.stream_error is not None:
            owner._finish(rec, "stream_error")
            self._write_chunk(_dumps({"error": b.stream_error}) + "\n")
            self._end_stream()
            return
        if b.omit_done:
            owner._finish(rec, "no_done")
            self._end_stream()
            return
        final = self._chunk(model, "", is_chat)
        final.update(self._stats(start, ttft_s, prompt_tokens, len(tokens) + _call_tokens(calls), done_reason))
        if not is_chat:
            final["context"] = list(range(1, prompt_tokens + len(tokens) + 1))
        rec.done_sent = True
        owner._finish(rec, "done")
        self._write_chunk(_dumps(final) + "\n")
        self._end_stream()

    # --- helpers --------------------------------------------------------------------

    @staticmethod
    def _chunk(model: str, text: str, is_chat: bool) -> dict[str, Any]:
        chunk: dict[str, Any] = {"model": model, "created_at": _now_iso()}
        if is_chat:
            chunk["message"] = {"role": "assistant", "content": text}
        else:
            chunk["response"] = text
        chunk["done"] = False
        return chunk

    @staticmethod
    def _prompt_tokens(body: dict[str, Any], is_chat: bool) -> int:
        if is_chat:
            text = " ".join(str(m.get("content", "")) for m in body.get("messages") or [] if isinstance(m, dict))
        else:
            text = f"{body.get('system') or ''} {body.get('prompt') or ''}"
        return max(1, len(split_tokens(text)))

    @staticmethod
    def _stats(start: float, ttft_s: float, prompt_tokens: int, count: int, reason: str) -> dict[str, Any]:
        total = time.monotonic() - start
        prompt_s = min(ttft_s, total)
        return {
            "done": True,
            "done_reason": reason,
            "total_duration": int(total * 1e9),
            "load_duration": int(min(prompt_s, 0.001) * 1e9),
            "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": int(prompt_s * 1e9),
            "eval_count": count,
            "eval_duration": int(max(total - prompt_s, 0.0) * 1e9),
        }

    def _pause(self, until: float, rec: RecordedRequest) -> bool:
        """Wait until `until` (monotonic); False once the client left or the server stops."""
        owner = self.server.owner
        sock = self.connection
        while True:
            remaining = until - time.monotonic()
            if remaining <= 0:
                return True
            if owner._stopping.is_set():
                self.close_connection = True
                owner._finish(rec, "stopped")
                return False
            step = min(remaining, _POLL_S)
            try:
                readable, _, _ = select.select([sock], [], [], step)
                gone = bool(readable) and not sock.recv(1, socket.MSG_PEEK)
            except (OSError, ValueError):
                gone = True
            if gone:
                self.close_connection = True
                owner._finish(rec, "stopped" if owner._stopping.is_set() else "client_gone")
                return False
            if readable:  # the client sent more bytes; do not spin on them
                owner._stopping.wait(step)

    def _send_json(self, rec: RecordedRequest, status: int, payload: Any, *, outcome: str = "done") -> None:
        data = _dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.server.owner._finish(rec, outcome)  # final before the client can see the end
        self.wfile.write(data)

    def _send_text(self, rec: RecordedRequest, status: int, text: str, *, head_only: bool = False) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.server.owner._finish(rec, "done" if status == 200 else "error")
        if not head_only:
            self.wfile.write(data)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _write_chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def _cut(self, rec: RecordedRequest) -> None:
        self.close_connection = True
        if not rec.finished.is_set():
            self.server.owner._finish(rec, "cut")
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def _tool_calls(scripted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Scripted calls as Ollama sends them (the arguments as given, fitting the schema or not)."""
    calls = []
    for index, call in enumerate(scripted):
        function = {"index": index, "name": call["name"], "arguments": call.get("arguments", {})}
        calls.append({"function": function})
    return calls


def _call_tokens(calls: list[dict[str, Any]]) -> int:
    return len(split_tokens(_dumps(calls))) if calls else 0


def _full_name(model: str) -> str:
    """The name Ollama's errors give a model: ``registry.ollama.ai/library/llama3.2:1b``."""
    name = normalise_model(model)
    parts = name.split("/")
    if len(parts) == 1:
        parts = ["library", *parts]
    if len(parts) == 2:
        parts = ["registry.ollama.ai", *parts]
    return "/".join(parts)


def _dumps(payload: Any) -> str:
    """Compact JSON, as Go's encoder writes it."""
    return json.dumps(payload, separators=(",", ":"))


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class OllamaTestServer:
    """An Ollama look-alike on 127.0.0.1, served from a background thread.

    Use as a context manager (or `start` / `stop`)::

        with OllamaTestServer(models=["llama3.2:1b"], reply="Hi there.") as srv:
            client = ollama.Client(host=srv.url)
    """

    def __init__(
        self,
        *,
        models: Iterable[str] = DEFAULT_MODELS,
        reply: str = DEFAULT_REPLY,
        ttft_ms: float = 0.0,
        tokens_per_s: float = 0.0,
        load_ms: float = 0.0,
        no_tools: Iterable[str] = (),
        port: int = 0,
        host: str = "127.0.0.1",
        library: Iterable[str] = (),
        pull_size: int = 1_321_098_329,
        pull_steps: int = 8,
        pull_ms: float = 0.0,
    ) -> None:
        self.models: list[str] = [normalise_model(m) for m in models]
        self.library: list[str] = [normalise_model(m) for m in library]
        """Models ``/api/pull`` can fetch (besides those already in `models`)."""
        self.pull_size, self.pull_steps, self.pull_ms = pull_size, max(1, pull_steps), pull_ms
        """The model layer's size in bytes, its progress lines, and the time each pull line takes."""
        self.no_tools: set[str] = {normalise_model(m) for m in no_tools}
        """Models without tool support: a chat request offering them tools gets HTTP 400, as from Ollama."""
        self.reply = reply
        self.ttft_ms = ttft_ms
        self.tokens_per_s = tokens_per_s
        """Tokens per second; 0 sends them all at once."""
        self.load_ms = load_ms
        """Added to the first request for a model that is not loaded (after a start, or an unload)."""
        self._host = host
        self._port = port
        self._cond = threading.Condition()
        self._records: list[RecordedRequest] = []
        self._behaviours: list[Behaviour] = []
        self._running: dict[str, float] = {}
        self._stopping = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._httpd: _Server | None = None
        self._serve_thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()
        self._stopped = threading.Event()
        self._stopped.set()

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> Self:
        with self._lifecycle:
            return self._start()

    def _start(self) -> Self:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._stopped.clear()
        httpd = _Server((self._host, self._port), _Handler)
        httpd.owner = self
        self._port = int(httpd.server_address[1])  # a later start() comes back on the same port
        with self._cond:
            self._running.clear()  # a (re)started Ollama has no model loaded
        self._httpd = httpd
        self._serve_thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": _POLL_S}, name="ollama-test-server", daemon=True
        )
        self._serve_thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving; ends hung and streaming answers; never blocks past `timeout`."""
        with self._lifecycle:
            self._stop(timeout)

    def _stop(self, timeout: float) -> None:
        httpd = self._httpd
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()  # refuse new connections before the open ones drop, as a killed server does
        with self._cond:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._serve_thread is not None:
            self._serve_thread.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            for rec in self._records:
                if not rec.finished.is_set():
                    self._finish_locked(rec, "stopped")
        self._httpd = None
        self._stopped.set()

    def restart(self) -> Self:
        """Stop (dropping every connection) and start again on the same port."""
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def wait_stopped(self, timeout: float = 5.0) -> bool:
        """Block until the server has stopped (e.g. by `Behaviour.stop_server_after_tokens`)."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port, also while stopped once it has been started (it comes back there)."""
        if self._httpd is None and not self._port:
            raise RuntimeError("server not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    # --- control from tests -----------------------------------------------------------------

    def script(self, *behaviours: Behaviour) -> None:
        """Queue behaviours; each applies to the next matching request, in order."""
        with self._cond:
            self._behaviours.extend(behaviours)

    @property
    def pending_behaviours(self) -> list[Behaviour]:
        with self._cond:
            return list(self._behaviours)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far (a snapshot list; records keep updating)."""
        with self._cond:
            return list(self._records)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._cond:
            return [r for r in self._records if r.path == path]

    def wait_for_request(self, path: str, timeout: float = 5.0, *, index: int = 0) -> RecordedRequest:
        """Block until the `index`-th request (0-based) to `path` arrived, and return it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                matching = [r for r in self._records if r.path == path]
                if len(matching) > index:
                    return matching[index]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [r.path for r in self._records]
                    raise TimeoutError(f"no request #{index} to {path} within {timeout} s; saw {seen}")
                self._cond.wait(remaining)

    def has_model(self, name: str) -> bool:
        return normalise_model(name) in self.models

    def is_loaded(self, name: str) -> bool:
        with self._cond:
            return normalise_model(name) in self._running

    # --- internals used by the handler ---------------------------------------------------------

    def _register(self, sock: socket.socket) -> None:
        with self._cond:
            self._sockets.add(sock)
            self._threads.add(threading.current_thread())

    def _unregister(self, sock: socket.socket) -> None:
        with self._cond:
            self._sockets.discard(sock)
            self._threads.discard(threading.current_thread())

    def _record(self, rec: RecordedRequest) -> None:
        with self._cond:
            self._records.append(rec)
            self._cond.notify_all()

    def _finish(self, rec: RecordedRequest, outcome: str, *, force: bool = False) -> None:
        with self._cond:
            self._finish_locked(rec, outcome, force=force)

    def _finish_locked(self, rec: RecordedRequest, outcome: str, *, force: bool = False) -> None:
        if rec.finished.is_set() and not force:
            return
        rec.outcome = outcome
        rec.finished_at = time.monotonic()
        rec.finished.set()
        self._cond.notify_all()

    def _refuses_tools(self, path: str, body: Any) -> str | None:
        """Ollama's error for tools offered to a model without tool support (checked before generating)."""
        if path != "/api/chat" or not isinstance(body, dict) or not body.get("tools"):
            return None
        model = str(body.get("model") or "")
        if not model or not self.has_model(model) or normalise_model(model) not in self.no_tools:
            return None
        return f"{_full_name(model)} does not support tools"

    def _take_behaviour(self, path: str, body: Any) -> Behaviour | None:
        if path in _GENERATION_PATHS and isinstance(body, dict):
            key = "messages" if path == "/api/chat" else "prompt"
            if not body.get(key):
                return None  # load requests take no scripted behaviour
        with self._cond:
            for i, behaviour in enumerate(self._behaviours):
                if behaviour.matches(path):
                    return self._behaviours.pop(i)
        return None

    def _layers(self, name: str) -> list[tuple[str, int]] | None:
        """A model's layers as (digest, size), as its manifest lists them; None when there is no such model."""
        key = normalise_model(name)
        if key not in self.library and key not in self.models:
            return None
        sizes = (("model", self.pull_size), ("template", 1_429), ("license", 7_711), ("params", 485))
        return [("sha256:" + hashlib.sha256(f"{key}/{part}".encode()).hexdigest(), size) for part, size in sizes]

    def _add_model(self, name: str) -> None:
        with self._cond:
            if normalise_model(name) not in self.models:
                self.models.append(normalise_model(name))

    def _touch_model(self, name: str, *, unload: bool) -> None:
        with self._cond:
            if unload:
                self._running.pop(normalise_model(name), None)
            else:
                self._running[normalise_model(name)] = time.time() + 300.0

    def _running_entries(self) -> list[dict[str, Any]]:
        with self._cond:
            running = dict(self._running)
        entries = []
        for name, expires in running.items():
            entry = self._model_entry(name)
            entry.pop("modified_at")
            entry["expires_at"] = datetime.fromtimestamp(expires, UTC).isoformat()
            entry["size_vram"] = entry["size"]
            entry["context_length"] = 4096
            entries.append(entry)
        return entries

    @staticmethod
    def _model_entry(name: str) -> dict[str, Any]:
        digest = hashlib.sha256(name.encode()).hexdigest()
        family = re.split(r"[^a-z]", name.lower(), maxsplit=1)[0] or "llama"
        return {
            "name": name,
            "model": name,
            "modified_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
            "size": 1_321_098_329,
            "digest": digest,
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": family,
                "families": [family],
                "parameter_size": "1.2B",
                "quantization_level": "Q8_0",
            },
        }


class Blackhole:
    """A loopback port where TCP connections are never accepted: connecting times out.

    Linux drops further SYNs once a listening socket's accept queue is full;
    with a backlog of 0 one connection fills it.  This is how a host that has
    gone off the network looks to a client (no refusal, just no answer).
    """

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self._filler = socket.create_connection(self._listener.getsockname(), timeout=1.0)
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._filler.close()
        self._listener.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until killed (SIGTERM / SIGINT)."""
    parser = argparse.ArgumentParser(
        prog="python -m assistant.testing.ollama_server", description="A loopback Ollama look-alike."
    )
    parser.add_argument("--port", type=int, default=11434, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ttft-ms", type=float, default=150.0)
    parser.add_argument("--tokens-per-s", type=float, default=40.0)
    parser.add_argument("--reply", default=DEFAULT_REPLY)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated")
    parser.add_argument("--no-tools", default="", help="comma-separated models without tool support")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    no_tools = [m.strip() for m in args.no_tools.split(",") if m.strip()]
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = OllamaTestServer(
        models=models,
        reply=args.reply,
        ttft_ms=args.ttft_ms,
        tokens_per_s=args.tokens_per_s,
        no_tools=no_tools,
        port=args.port,
        host=args.host,
    )
    with server:
        print(f"listening on {server.url}", flush=True)
        while not stop.wait(1.0):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
