"""One realtime connection: its settings, input audio buffer, server VAD and conversation.

`RealtimeSession.handle` takes each client message in order; bad input becomes
an ``error`` event and never ends the session.  Replies run as one task each
(`assistant.realtime.response.ResponseRun`), so barge-in and
``response.cancel`` are one `Task.cancel`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import numpy as np
import soxr

from assistant.core.endpointing import Endpoint, Endpointer, EndpointSettings
from assistant.core.errors import ModelError, TurnError
from assistant.core.fairness import TooManyPending
from assistant.core.ports import SAMPLE_RATE, Audio, TurnDetector, VoiceActivity
from assistant.realtime import protocol as p
from assistant.realtime.access import DEFAULT_MODELS
from assistant.realtime.items import Conversation, Item, parse_item, response_input
from assistant.realtime.response import ResponseOptions, ResponseRun
from assistant.realtime.settings import (
    Capabilities,
    SessionSettings,
    TurnDetection,
    apply_session_update,
    session_object,
)
from assistant.realtime.shared import SessionEngines, resample
from assistant.realtime.tools import check_choice

logger = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], None]
MIN_COMMIT_MS = 100.0
PRE_SPEECH_KEEP_MS = 1000.0
"""Audio kept before speech starts beyond the prefix padding (the VAD needs a few windows to decide)."""
TURN_AUDIO_S = 8.0
"""semantic_vad: the end-of-turn model hears the last 8 s of the speech."""
EAGERNESS: dict[str, tuple[float, float, float]] = {
    # eagerness: (silence before the first check s, "finished" probability, longest wait s).
    # The longest waits are OpenAI's documented ones (low 8 s, medium 4 s, high 2 s).
    "low": (0.3, 0.7, 8.0),
    "medium": (0.2, 0.5, 4.0),
    "high": (0.2, 0.3, 2.0),
}


class RealtimeSession:
    """The state of one connection; `handle` each message, `close` at the end."""

    def __init__(
        self, shared: SessionEngines, *, dialect: p.Dialect, model: str, send: Send, llm_model: str | None = None
    ) -> None:
        self.shared = shared
        self.dialect = dialect
        self.model = model or "default"
        self.id = p.new_id("sess")
        self._send = send
        config = shared.config
        llm_model = llm_model or config.llm.model
        same_model = {self.model, llm_model}
        if llm_model == config.llm.model:
            same_model.update(DEFAULT_MODELS)
        device_tools = frozenset(tool["function"]["name"] for tool in shared.device_tools())
        self.capabilities = Capabilities(
            voices=shared.voices.names,
            language=config.stt.language,
            models=frozenset(same_model),
            device_tools=device_tools,
        )
        self.settings = SessionSettings(instructions=config.llm.system_prompt, voice=self.capabilities.voices[0])
        self.conversation = Conversation()
        self.llm_model = llm_model
        self.response: ResponseRun | None = None
        self.spoken_voice: str | None = None
        """The voice file this session's replies have spoken in: once set, the voice is fixed, as OpenAI does."""
        self._response_task: asyncio.Task[None] | None = None
        self._buffer: list[Audio] = []
        self._buffer_samples = 0
        self._received_samples = 0
        self._vad: VoiceActivity | None = None
        self._resampler: Any = None
        self._vad_ms = 0.0
        self._endpointer: Endpointer | None = None
        self._endpointer_origin_ms = 0.0
        self._speech_item_id: str | None = None
        self._turn: TurnDetector | None = None
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            "session.update": self._session_update,
            "input_audio_buffer.append": self._append,
            "input_audio_buffer.commit": self._commit_event,
            "input_audio_buffer.clear": self._clear,
            "conversation.item.create": self._item_create,
            "conversation.item.truncate": self._item_truncate,
            "conversation.item.delete": self._item_delete,
            "conversation.item.retrieve": self._item_retrieve,
            "response.create": self._response_create,
            "response.cancel": self._response_cancel,
        }

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Load the session's VAD and announce the session."""
        await self._ensure_vad()
        self.emit("session.created", session=self._session_wire())

    async def close(self) -> None:
        """Cancel the reply and transcriptions in flight."""
        await self.cancel_response("client_gone")
        self.conversation.cancel_pending()
        self.shared.forget(self.id)

    def emit(self, ga_type: str, **fields: Any) -> None:
        """Send a server event by its GA name (renamed or dropped for beta clients)."""
        name = p.event_name(ga_type, self.dialect)
        if name is not None:
            self._send({"type": name, "event_id": p.new_id("event"), **fields})

    def error(
        self,
        code: str,
        message: str,
        *,
        event_id: str | None = None,
        param: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        """Send an ``error`` event naming the client event that caused it."""
        self.emit("error", error={"type": kind, "code": code, "message": message, "param": param, "event_id": event_id})

    async def handle(self, message: str | bytes) -> None:
        """Process one client message; every problem becomes an ``error`` event."""
        event_id: str | None = None
        try:
            if isinstance(message, bytes):
                raise p.ProtocolError("invalid_event", "binary frames are not supported: send JSON text events")
            try:
                event = json.loads(message)
            except (ValueError, RecursionError):
                raise p.ProtocolError("invalid_json", "the message is not valid JSON") from None
            if not isinstance(event, dict):
                raise p.ProtocolError("invalid_event", "an event must be a JSON object")
            raw_id = event.get("event_id")
            event_id = raw_id if isinstance(raw_id, str) else None
            kind = p.get_str(event, "type")
            handler = self._handlers.get(kind or "")
            if handler is None:
                raise p.ProtocolError("unknown_event", f"unknown event type {kind!r}", param="type")
            p.check_known(event, p.CLIENT_EVENTS[kind or ""])
            await handler(event)
        except p.ProtocolError as exc:
            logger.debug("session %s: client error %s: %s", self.id, exc.code, exc)
            self.error(exc.code, str(exc), event_id=event_id, param=exc.param, kind=exc.kind)
        except Exception as exc:  # a bug must cost one event, not the session
            logger.exception("session %s: failed to handle an event", self.id)
            self.error("server_error", f"internal error: {exc!r}", event_id=event_id, kind="server_error")

    # --- session ----------------------------------------------------------------------

    def _session_wire(self) -> dict[str, Any]:
        return session_object(self.settings, self.dialect, self.id, self.model)

    async def _session_update(self, event: dict[str, Any]) -> None:
        session = p.get_dict(event, "session")
        if session is None:
            raise p.ProtocolError("missing_required_parameter", "missing required parameter 'session'", param="session")
        old_turn = self.settings.turn_detection
        settings = apply_session_update(self.settings, session, self.capabilities)
        if settings.turn_detection is not None and settings.turn_detection.type == "semantic_vad":
            self._turn = await self.shared.turn_detector()
        if settings.voice != self.settings.voice:
            await self.use_voice(
                settings.voice, "session.voice" if self.dialect is p.Dialect.BETA else "session.audio.output.voice"
            )
        self.settings = settings
        if self.settings.turn_detection != old_turn:
            await self._ensure_vad()
            self._reset_vad()
        self.emit("session.updated", session=self._session_wire())

    async def use_voice(self, name: str, param: str) -> None:
        """Check that this session may speak in voice `name` now, and load it (ProtocolError if not)."""
        voices = self.shared.voices
        if self.spoken_voice is not None and voices.spec(name) != self.spoken_voice:
            raise p.ProtocolError(
                "cannot_update_voice",
                "Cannot update a conversation's voice if assistant audio is present.",
                param=param,
            )
        try:
            await voices.get(name)
        except ModelError as exc:
            logger.warning("session %s: voice %r cannot be loaded: %s", self.id, name, exc)
            raise p.ProtocolError(
                "voice_unavailable",
                f"voice {name!r} cannot be loaded on this server: {exc}",
                param=param,
                kind="server_error",
            ) from None

    def spoke(self, voice: str) -> None:
        """A reply sent audio in `voice`: the session keeps that voice from now on."""
        if self.spoken_voice is None:
            self.spoken_voice = self.shared.voices.spec(voice)
            if self.settings.voice != voice:
                self.settings = replace(self.settings, voice=voice)

    def _queue_transcription(self, audio: Audio) -> asyncio.Future[str]:
        """Queue `audio` on the shared STT worker; ProtocolError when this session has too much pending."""
        try:
            return self.shared.start_transcription(self.id, audio)
        except TooManyPending as exc:
            raise p.ProtocolError(
                "rate_limit_exceeded",
                f"this session already has {exc.pending} transcriptions pending (server.max_pending_per_session "
                f"= {exc.limit}); wait for one to complete, then try again",
            ) from None

    # --- input audio buffer -----------------------------------------------------------

    @property
    def buffer_ms(self) -> float:
        """Milliseconds of audio in the input buffer."""
        return self._buffer_samples * 1000 / p.WIRE_RATE

    async def _append(self, event: dict[str, Any]) -> None:
        if "audio" not in event:
            raise p.ProtocolError("missing_required_parameter", "missing required parameter 'audio'", param="audio")
        audio = p.decode_audio(event["audio"])
        limit_s = self.shared.config.server.max_buffer_s
        if (self._buffer_samples + len(audio)) / p.WIRE_RATE > limit_s:
            raise p.ProtocolError(
                "input_audio_buffer_full",
                f"the input audio buffer holds at most {limit_s:g} s (server.max_buffer_s); commit or clear it",
                param="audio",
            )
        self._buffer.append(audio)
        self._buffer_samples += len(audio)
        self._received_samples += len(audio)
        if self.settings.turn_detection is not None and self._vad is not None:
            await self._detect(audio)

    async def _commit_event(self, event: dict[str, Any]) -> None:
        self.commit()

    async def _clear(self, event: dict[str, Any]) -> None:
        self._drop_buffer()
        self._reset_vad()
        self.emit("input_audio_buffer.cleared")

    def _drop_buffer(self, keep_ms: float = 0.0) -> None:
        keep = int(keep_ms * p.WIRE_RATE / 1000)
        if keep <= 0:
            self._buffer, self._buffer_samples = [], 0
            return
        if keep < self._buffer_samples:
            tail = np.concatenate(self._buffer)[-keep:]
            self._buffer, self._buffer_samples = [tail], len(tail)

    def commit(self) -> Item:
        """Turn the input buffer into a user item, transcribed in the background."""
        if self.buffer_ms < MIN_COMMIT_MS:
            raise p.ProtocolError(
                "input_audio_buffer_commit_empty",
                f"buffer too small: {self.buffer_ms:.0f} ms of audio; commit needs at least {MIN_COMMIT_MS:.0f} ms",
            )
        audio = np.concatenate(self._buffer)
        pending = self._queue_transcription(audio)  # refused here, the buffer is kept
        self._buffer, self._buffer_samples = [], 0
        item_id, self._speech_item_id = self._speech_item_id or p.new_id("item"), None
        item = Item(item_id, "user", "audio", audio_ms=len(audio) * 1000 / p.WIRE_RATE)
        previous = self.conversation.add(item)
        self.emit("input_audio_buffer.committed", previous_item_id=previous, item_id=item.id)
        self.emit("conversation.item.added", previous_item_id=previous, item=item.wire(self.dialect))
        self._track(item, pending, audio)
        return item

    def _track(self, item: Item, pending: asyncio.Future[str], audio: Audio) -> None:
        """Transcribe in the background; however the task ends, the queued job goes with it."""
        item.transcription = asyncio.create_task(self._transcribe(item, pending, audio), name=f"transcribe {item.id}")
        item.transcription.add_done_callback(lambda _: pending.cancel())

    async def _transcribe(self, item: Item, pending: asyncio.Future[str], audio: Audio) -> str:
        try:
            item.text = (await pending).strip()
        except TurnError as exc:
            logger.warning("session %s: transcription failed: %s", self.id, exc)
            if self.settings.transcription:
                error = {"type": "server_error", "code": exc.code, "message": str(exc)}
                self.emit(
                    "conversation.item.input_audio_transcription.failed", item_id=item.id, content_index=0, error=error
                )
            return ""
        if self.settings.transcription:
            # whisper.cpp decodes the whole clip at once: one delta with all of it, as OpenAI does for whisper-1.
            self.emit(
                "conversation.item.input_audio_transcription.delta", item_id=item.id, content_index=0, delta=item.text
            )
            usage = {"type": "duration", "seconds": round(len(audio) / p.WIRE_RATE, 3)}
            self.emit(
                "conversation.item.input_audio_transcription.completed",
                item_id=item.id,
                content_index=0,
                transcript=item.text,
                usage=usage,
            )
        self.emit("conversation.item.done", item=item.wire(self.dialect))
        return item.text

    # --- server VAD -------------------------------------------------------------------

    async def _ensure_vad(self) -> None:
        if self.settings.turn_detection is not None and self._vad is None:
            self._vad = await self.shared.make_vad()

    def _reset_vad(self) -> None:
        if self._vad is not None:
            self._vad.reset()
        self._resampler = None
        self._endpointer = None
        self._speech_item_id = None

    def _new_endpointer(self) -> Endpointer:
        turn = self.settings.turn_detection or TurnDetection()
        vad = self.shared.config.vad
        settings = EndpointSettings(
            threshold=turn.threshold,
            silence_s=turn.silence_duration_ms / 1000,
            min_speech_s=vad.min_speech_ms / 1000,
            no_speech_timeout_s=math.inf,
            max_utterance_s=self.shared.config.server.max_buffer_s * 0.9,
        )
        if turn.type == "semantic_vad":
            check_s, threshold, longest_s = EAGERNESS.get(turn.eagerness, EAGERNESS["medium"])
            settings = replace(
                settings,
                threshold=vad.threshold,
                turn_check_s=check_s,
                turn_recheck_s=max(self.shared.config.turn.recheck_ms / 1000, 0.1),
                turn_threshold=threshold,
                turn_max_silence_s=longest_s,
            )
        self._endpointer_origin_ms = self._vad_ms
        return Endpointer(settings)

    async def _detect(self, audio: Audio) -> None:
        """Feed 24 kHz input to the VAD in 32 ms windows; act on speech start and end."""
        assert self._vad is not None and self.settings.turn_detection is not None
        turn = self.settings.turn_detection
        if self._resampler is None:
            self._resampler = soxr.ResampleStream(p.WIRE_RATE, SAMPLE_RATE, 1, dtype="float32")
        window_s = self._vad.window_s  # the VAD keeps the partial window for the next chunk
        for probability in self._vad.windows(self._resampler.resample_chunk(audio)):
            if self._endpointer is None:  # its time 0 is the start of this window
                self._endpointer = self._new_endpointer()
            self._vad_ms += window_s * 1000
            result = self._endpointer.process(window_s, probability)
            if result is None and self._turn is not None and self._endpointer.turn_check_due():
                await self._check_turn(self._endpointer, self._turn)
            if result is Endpoint.SPEECH_STARTED:
                await self._speech_started(turn)
            elif result in (Endpoint.SPEECH_ENDED, Endpoint.TOO_LONG):
                await self._speech_stopped(turn)
        if self._endpointer is None or not self._endpointer.in_speech:
            self._drop_buffer(keep_ms=turn.prefix_padding_ms + PRE_SPEECH_KEEP_MS)

    async def _check_turn(self, endpointer: Endpointer, detector: TurnDetector) -> None:
        """semantic_vad: ask the end-of-turn model about this pause (on a worker thread)."""
        key = endpointer.turn_check_started()
        tail = np.concatenate(self._buffer)[-int(TURN_AUDIO_S * p.WIRE_RATE) :] if self._buffer else None
        if tail is None or not len(tail):
            return
        audio = resample(tail, p.WIRE_RATE, SAMPLE_RATE)
        try:
            probability = await asyncio.to_thread(detector.finished, audio)
        except Exception:
            logger.warning("session %s: the end-of-turn model failed; waiting for silence", self.id, exc_info=True)
            return
        logger.debug("session %s: end of turn %.3f after %.0f ms", self.id, probability, endpointer.silence_s * 1000)
        endpointer.turn_verdict(key, probability)

    async def _speech_started(self, turn: TurnDetection) -> None:
        assert self._endpointer is not None and self._endpointer.speech_started_at is not None
        start_ms = self._endpointer_origin_ms + self._endpointer.speech_started_at * 1000
        self._speech_item_id = p.new_id("item")
        # Keep the prefix padding before the speech, drop what came earlier.
        lag_ms = self._received_samples * 1000 / p.WIRE_RATE - start_ms
        self._drop_buffer(keep_ms=lag_ms + turn.prefix_padding_ms)
        # OpenAI's audio_start_ms is where the committed audio begins: the speech less the prefix padding.
        audio_start_ms = max(0, round(start_ms - turn.prefix_padding_ms))
        self.emit("input_audio_buffer.speech_started", audio_start_ms=audio_start_ms, item_id=self._speech_item_id)
        if turn.interrupt_response and self.response is not None:
            logger.info("session %s: barge-in cancels %s", self.id, self.response.id)
            await self.cancel_response("turn_detected")

    async def _speech_stopped(self, turn: TurnDetection) -> None:
        assert self._endpointer is not None
        end_ms = self._endpointer_origin_ms + (self._endpointer.last_voice_end or self._endpointer.elapsed_s) * 1000
        item_id = self._speech_item_id
        self._endpointer = None
        # OpenAI's audio_end_ms includes the silence that ended the turn (silence_duration_ms).
        audio_end_ms = round(end_ms + turn.silence_duration_ms)
        self.emit("input_audio_buffer.speech_stopped", audio_end_ms=audio_end_ms, item_id=item_id)
        try:
            self.commit()
        except p.ProtocolError as exc:
            self.error(exc.code, str(exc))
            return
        if turn.create_response:
            if self.response is None:
                self.start_response(ResponseOptions())
            else:
                logger.debug("session %s: a response is active; no automatic response", self.id)

    # --- conversation -----------------------------------------------------------------

    async def _item_create(self, event: dict[str, Any]) -> None:
        data = p.get_dict(event, "item")
        if data is None:
            raise p.ProtocolError("missing_required_parameter", "missing required parameter 'item'", param="item")
        item, audio = parse_item(data)
        if item.type == "function_call_output" and item.call_id not in self.conversation.call_names():
            raise p.ProtocolError(
                "invalid_value",
                f"'item.call_id' {item.call_id!r}: no function_call item with that call_id in this conversation",
                param="item.call_id",
            )
        previous = self.conversation.add(item, p.get_str(event, "previous_item_id", required=False))
        if audio is not None:
            try:
                pending = self._queue_transcription(audio)
            except p.ProtocolError:
                self.conversation.delete(item.id)  # refused: as if it had never been sent
                raise
        self.emit("conversation.item.added", previous_item_id=previous, item=item.wire(self.dialect))
        if audio is not None:
            self._track(item, pending, audio)
        else:
            self.emit("conversation.item.done", item=item.wire(self.dialect))

    async def _item_truncate(self, event: dict[str, Any]) -> None:
        item = self.conversation.get(p.get_str(event, "item_id") or "")
        end_ms = event.get("audio_end_ms")
        if isinstance(end_ms, bool) or not isinstance(end_ms, int) or end_ms < 0:
            message = "'audio_end_ms' must be a non-negative integer"
            raise p.ProtocolError("invalid_value", message, param="audio_end_ms")
        if event.get("content_index", 0) != 0:
            raise p.ProtocolError("invalid_value", "'content_index' must be 0", param="content_index")
        if item.role != "assistant" or item.kind != "audio":
            raise p.ProtocolError("invalid_value", "only assistant audio items can be truncated", param="item_id")
        if self.response is not None and self.response.item is item:
            await self.cancel_response("client_cancelled")
        if end_ms > item.audio_ms + 1:
            raise p.ProtocolError(
                "invalid_value",
                f"'audio_end_ms' {end_ms} is past the audio's end ({item.audio_ms:.0f} ms)",
                param="audio_end_ms",
            )
        item.truncate(end_ms)
        logger.debug("session %s: %s truncated at %d ms to %r", self.id, item.id, end_ms, item.text)
        self.emit("conversation.item.truncated", item_id=item.id, content_index=0, audio_end_ms=end_ms)

    async def _item_delete(self, event: dict[str, Any]) -> None:
        item = self.conversation.get(p.get_str(event, "item_id") or "")
        if self.response is not None and self.response.item is item:
            await self.cancel_response("client_cancelled")
        self.conversation.delete(item.id)
        self.emit("conversation.item.deleted", item_id=item.id)

    async def _item_retrieve(self, event: dict[str, Any]) -> None:
        item = self.conversation.get(p.get_str(event, "item_id") or "")
        self.emit("conversation.item.retrieved", item=item.wire(self.dialect))

    # --- responses --------------------------------------------------------------------

    async def _response_create(self, event: dict[str, Any]) -> None:
        data = p.get_dict(event, "response") or {}
        options = ResponseOptions.parse(data, self.capabilities.voices)
        tools = self.settings.tools if options.tools is None else options.tools
        choice = options.tool_choice or self.settings.tool_choice
        check_choice(choice, tools, self.capabilities.device_tools, "response.tool_choice")
        if options.voice is not None:
            await self.use_voice(options.voice, "response.voice")
        if "input" in data:
            options = replace(options, input=response_input(data["input"], self.conversation))
        if self.response is not None:
            raise p.ProtocolError(
                "conversation_already_has_active_response",
                f"response {self.response.id} is still in progress; cancel it first",
            )
        self.start_response(options)

    async def _response_cancel(self, event: dict[str, Any]) -> None:
        wanted = p.get_str(event, "response_id", required=False)
        if self.response is None or (wanted is not None and wanted != self.response.id):
            raise p.ProtocolError("response_cancel_not_active", "there is no active response to cancel")
        await self.cancel_response("client_cancelled")

    def start_response(self, options: ResponseOptions) -> ResponseRun:
        """Start a reply task over the conversation so far."""
        run = ResponseRun(self, options)
        self.response = run
        self._response_task = asyncio.create_task(self._run(run), name=f"response {run.id}")
        return run

    async def _run(self, run: ResponseRun) -> None:
        self.shared.hurry(self.id)  # someone waits for this reply: its work goes first until it speaks
        try:
            await run.run()
        finally:
            self.shared.relax(self.id)
            if self.response is run:
                self.response = None

    async def cancel_response(self, reason: str) -> bool:
        """Cancel the active reply (LLM stream and TTS) and wait for it to end."""
        task, run = self._response_task, self.response
        if task is None or run is None or task.done():
            return False
        run.cancel_reason = reason
        task.cancel()
        await asyncio.wait([task])
        return True
