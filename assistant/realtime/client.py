"""A Python client for the realtime server (or any OpenAI Realtime endpoint speaking the GA events).

Async::

    async with AsyncRealtimeSession(url="ws://127.0.0.1:8765", voice="default") as session:
        session.on_transcript = lambda text, speaker: print(f"{speaker}: {text}")
        await session.send_text("What is the capital of France?")
        await session.wait_response()

Blocking, through ``assistant.realtime.connect``::

    from assistant import realtime
    with realtime.connect(url="ws://127.0.0.1:8765", voice="default") as session:
        session.start()   # microphone in, replies out, until session.stop() or Ctrl-C

Audio given to and passed out of the session is mono float32 at 24 kHz (or
PCM16 bytes for `send_audio`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

import numpy as np
import soxr
import websockets
from websockets.asyncio.client import ClientConnection

from assistant.core.ports import SAMPLE_RATE, Audio
from assistant.realtime.protocol import WIRE_RATE, encode_audio

logger = logging.getLogger(__name__)

DEFAULT_URL = "ws://127.0.0.1:8765"
T = TypeVar("T")
AudioCallback = Callable[[Audio], None]
TranscriptCallback = Callable[[str, str], None]


class RealtimeError(Exception):
    """The server sent an ``error`` event, or a reply failed."""


class SessionRefused(RealtimeError):
    """The server refused the session's settings (e.g. a voice it does not have); the message says why."""


def endpoint(url: str, model: str) -> str:
    """``ws://HOST:PORT`` (or a full ``.../v1/realtime`` URL) plus ``?model=``."""
    url = url.rstrip("/")
    if not url.endswith("/realtime"):
        url += "/v1/realtime"
    return f"{url}?model={model}" if "?" not in url else url


class AsyncRealtimeSession:
    """One conversation with a realtime server (asyncio)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        model: str = "default",
        voice: str | None = None,
        instructions: str | None = None,
        token: str | None = None,
        server_vad: bool = True,
    ) -> None:
        self.url = endpoint(url, model)
        self.voice, self.instructions, self.token, self.server_vad = voice, instructions, token, server_vad
        self.on_audio_delta: AudioCallback | None = None
        """Called with each chunk of reply audio (float32, 24 kHz)."""
        self.on_transcript: TranscriptCallback | None = None
        """Called with (text, speaker) once an utterance is complete; speaker is "user" or "assistant"."""
        self.on_transcript_delta: TranscriptCallback | None = None
        """Called with (text, "assistant") for each piece of the reply transcript as it is spoken."""
        self.on_event: Callable[[dict[str, Any]], None] | None = None
        """Called with every server event (after the callbacks above)."""
        self.on_speech_started: Callable[[], None] | None = None
        self.errors: list[dict[str, Any]] = []
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._responses: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._ready = asyncio.Event()
        self._refused: dict[str, Any] | None = None
        self._active: str | None = None
        self._audio_item: str | None = None
        self.played_ms: Callable[[], int] | None = None
        """How much of the current reply has been heard (set by `start`; else all that arrived)."""
        self._received_ms = 0.0

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the connection and configure the session."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._ws = await websockets.connect(self.url, additional_headers=headers, max_size=None)
        self._reader = asyncio.create_task(self._read(), name="realtime reader")
        session: dict[str, Any] = {
            "type": "realtime",
            "audio": {"input": {"turn_detection": {"type": "server_vad"} if self.server_vad else None}},
        }
        if self.voice:
            session["audio"]["output"] = {"voice": self.voice}
        if self.instructions:
            session["instructions"] = self.instructions
        await self.send({"type": "session.update", "session": session})
        async with asyncio.timeout(30):
            await self._ready.wait()
        if self._refused is not None:
            await self.close()
            raise SessionRefused(str(self._refused.get("message") or self._refused))

    async def close(self) -> None:
        """Close the connection."""
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.wait([self._reader])

    async def send(self, event: dict[str, Any]) -> None:
        """Send one raw client event."""
        if self._ws is None:
            raise RealtimeError("not connected")
        await self._ws.send(json.dumps(event))

    async def send_text(self, text: str, *, respond: bool = True) -> None:
        """Add a user text message; ask for a reply unless `respond` is False."""
        await self.send(
            {
                "type": "conversation.item.create",
                "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]},
            }
        )
        if respond:
            await self.send({"type": "response.create"})

    async def send_audio(self, audio: Audio | bytes, *, commit: bool = False, respond: bool = True) -> None:
        """Append microphone audio (float32 or PCM16 bytes, 24 kHz); `commit` ends the turn by hand."""
        data = base64.b64encode(audio).decode() if isinstance(audio, bytes) else encode_audio(audio)
        step = 64_000  # 1 s of 24 kHz PCM16 in base64 per event (a multiple of 8 chars: whole samples)
        for start in range(0, len(data), step):
            await self.send({"type": "input_audio_buffer.append", "audio": data[start : start + step]})
        if commit:
            await self.send({"type": "input_audio_buffer.commit"})
            if respond:
                await self.send({"type": "response.create"})

    async def interrupt(self) -> None:
        """Cancel the reply in progress and tell the server how much of it was heard."""
        if self._active is not None:
            await self.send({"type": "response.cancel"})
        if self._audio_item is not None:
            heard = self.played_ms() if self.played_ms else int(self._received_ms)
            await self.send(
                {
                    "type": "conversation.item.truncate",
                    "item_id": self._audio_item,
                    "content_index": 0,
                    "audio_end_ms": max(0, min(heard, int(self._received_ms))),
                }
            )
            self._audio_item = None

    async def wait_response(self) -> dict[str, Any]:
        """The next ``response.done`` response object; RealtimeError when it failed."""
        response = await self._responses.get()
        if response.get("status") == "failed":
            raise RealtimeError(f"the reply failed: {response.get('status_details')}")
        return response

    async def _read(self) -> None:
        assert self._ws is not None
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in self._ws:
                try:
                    self._dispatch(json.loads(message))
                except Exception:  # a callback's bug must not stop the reader
                    logger.exception("realtime client: an event handler failed")

    def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "session.updated":
            self._ready.set()
        elif kind == "error":
            if not self._ready.is_set():  # the opening session.update was refused
                self._refused = event["error"]
                self._ready.set()
            self.errors.append(event["error"])
            logger.warning("realtime server error: %s", event["error"].get("message"))
        elif kind == "input_audio_buffer.speech_started" and self.on_speech_started:
            self.on_speech_started()
        elif kind == "conversation.item.input_audio_transcription.completed" and self.on_transcript:
            self.on_transcript(event["transcript"], "user")
        elif kind == "response.created":
            self._active = event["response"]["id"]
        elif kind in ("response.output_audio.delta", "response.audio.delta"):
            audio = np.frombuffer(base64.b64decode(event["delta"]), "<i2").astype(np.float32) / 32768.0
            if self._audio_item != event["item_id"]:
                self._audio_item, self._received_ms = event["item_id"], 0.0
            self._received_ms += len(audio) * 1000 / WIRE_RATE
            if self.on_audio_delta:
                self.on_audio_delta(audio)
        elif kind in ("response.output_audio_transcript.delta", "response.output_text.delta"):
            if self.on_transcript_delta:
                self.on_transcript_delta(event["delta"], "assistant")
        elif kind in ("response.output_audio_transcript.done", "response.output_text.done"):
            if self.on_transcript:
                self.on_transcript(event.get("transcript", event.get("text", "")), "assistant")
        elif kind == "response.done":
            self._active = None
            self._responses.put_nowait(event["response"])
        if self.on_event:
            self.on_event(event)

    async def start(
        self, *, input_device: str | None = None, output_device: str | None = None, stop: asyncio.Event | None = None
    ) -> None:
        """Stream the microphone and play replies (pyaudio) until `stop` is set or the task is cancelled."""
        from assistant.audio.clock import SampleClock
        from assistant.audio.devices import PyAudioMicrophone, PyAudioSpeaker

        clock = SampleClock()
        mic = PyAudioMicrophone(input_device, None, clock)
        speaker = PyAudioSpeaker(output_device, None, clock)
        replies: asyncio.Queue[Audio] = asyncio.Queue()
        started_at: list[float] = []
        self.on_audio_delta = lambda audio: replies.put_nowait(audio)
        self.played_ms = lambda: int((clock.now() - started_at[0]) * 1000) if started_at else 0

        def barge_in() -> None:  # the user spoke: stop playing at once; `interrupt` reports what was heard
            speaker.stop()
            while not replies.empty():
                replies.get_nowait()
            asyncio.get_running_loop().create_task(self.interrupt())
            started_at.clear()

        self.on_speech_started = barge_in

        async def play() -> None:
            item = None
            while True:
                audio = await replies.get()
                start = await speaker.play(np.asarray(soxr.resample(audio, WIRE_RATE, SAMPLE_RATE), np.float32))
                if item != self._audio_item or not started_at:
                    item, started_at[:] = self._audio_item, [start]

        async def capture() -> None:
            resampler = soxr.ResampleStream(SAMPLE_RATE, WIRE_RATE, 1, dtype="float32")
            async for block in mic.blocks():
                await self.send_audio(resampler.resample_chunk(block))

        stop = stop or asyncio.Event()
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(play(), name="realtime playback"),
                    group.create_task(capture(), name="realtime microphone"),
                ]
                await stop.wait()
                for task in tasks:
                    task.cancel()
        finally:
            mic.close()
            speaker.close()


class RealtimeSession:
    """The blocking face of `AsyncRealtimeSession`: its loop runs on a background thread."""

    def __init__(self, url: str = DEFAULT_URL, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="realtime client", daemon=True)
        self._thread.start()
        self.session = AsyncRealtimeSession(url, **options)
        self._stop: asyncio.Event | None = None

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def __enter__(self) -> Self:
        try:
            self._run(self.session.connect())
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @property
    def on_audio_delta(self) -> AudioCallback | None:
        """Called (on the client thread) with each chunk of reply audio, float32 at 24 kHz."""
        return self.session.on_audio_delta

    @on_audio_delta.setter
    def on_audio_delta(self, callback: AudioCallback | None) -> None:
        self.session.on_audio_delta = callback

    @property
    def on_transcript(self) -> TranscriptCallback | None:
        """Called (on the client thread) with (text, speaker) for each complete utterance."""
        return self.session.on_transcript

    @on_transcript.setter
    def on_transcript(self, callback: TranscriptCallback | None) -> None:
        self.session.on_transcript = callback

    def send_text(self, text: str, *, respond: bool = True) -> None:
        """Add a user text message (and ask for a reply)."""
        self._run(self.session.send_text(text, respond=respond))

    def send_audio(self, audio: Audio | bytes, *, commit: bool = False, respond: bool = True) -> None:
        """Append 24 kHz audio; `commit` ends the turn by hand."""
        self._run(self.session.send_audio(audio, commit=commit, respond=respond))

    def interrupt(self) -> None:
        """Cancel the reply in progress, keeping in the history only what was heard."""
        self._run(self.session.interrupt())

    def wait_response(self, timeout: float | None = None) -> dict[str, Any]:
        """Block until the next reply is done; returns the response object."""
        return asyncio.run_coroutine_threadsafe(self.session.wait_response(), self._loop).result(timeout)

    def start(self, **devices: str | None) -> None:
        """Talk through the microphone and speaker until `stop` (or Ctrl-C); blocks."""

        async def main() -> None:
            self._stop = asyncio.Event()
            await self.session.start(stop=self._stop, **devices)

        future = asyncio.run_coroutine_threadsafe(main(), self._loop)
        try:
            future.result()
        except KeyboardInterrupt:
            self.stop()
            future.result()

    def stop(self) -> None:
        """End `start` (from any thread)."""
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    def close(self) -> None:
        """Close the connection and the client thread."""
        if self._loop.is_running():
            self._run(self.session.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
