"""The ``assistant serve`` and ``assistant realtime`` commands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)


def register(sub: Any) -> None:
    """Add ``serve`` and ``realtime`` to the command line."""
    from assistant.cmdline import add_config_args

    serve = sub.add_parser("serve", help="serve the OpenAI Realtime-compatible API and the browser page")
    add_config_args(serve)
    serve.add_argument("--host", help="address to bind (default: server.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: server.port, 8765)")
    serve.set_defaults(func=cmd_serve)

    talk = sub.add_parser("realtime", help="talk to a realtime server from the terminal")
    talk.add_argument("model", nargs="?", default="default", help="Ollama model (default: the server's)")
    talk.add_argument(
        "--voice",
        default=None,
        help="the server's voice to speak in (a name from its tts.voices, an OpenAI name, or default)",
    )
    talk.add_argument("--url", default="ws://127.0.0.1:8765", help="server (default: ws://127.0.0.1:8765)")
    talk.add_argument("--token", default=None, help="the server's token, when it needs one")
    talk.add_argument("--instructions", default=None, help="system instructions for the session")
    talk.add_argument("--input", type=Path, metavar="IN.wav", help="send this WAV as one turn, not the microphone")
    talk.add_argument("--output", type=Path, metavar="OUT.wav", help="write the replies' audio here (24 kHz)")
    talk.set_defaults(func=cmd_realtime)


def cmd_serve(args: argparse.Namespace) -> int:
    """Load the engines once and serve until interrupted."""
    from assistant.cmdline import load_config, setup_logging
    from assistant.config import check_bind
    from assistant.engines.bundle import load_engines
    from assistant.realtime.server import serve

    config = load_config(args)
    setup_logging(config.log_level)
    check_bind(args.host or config.server.host, config.server.token)
    engines = load_engines(config)
    asyncio.run(serve(config, engines, host=args.host, port=args.port))
    return 0


class Printer:
    """Live transcripts on the terminal: the user's line, then the reply as it is spoken."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.open = False

    def delta(self, text: str, speaker: str) -> None:
        if not self.open:
            self.out.write("assistant: ")
            self.open = True
        self.out.write(text)
        self.out.flush()

    def done(self, text: str, speaker: str) -> None:
        if speaker == "user":
            self.out.write(f"you: {text}\n")
        elif self.open:
            self.out.write("\n")
            self.open = False
        self.out.flush()


def cmd_realtime(args: argparse.Namespace) -> int:
    """A spoken conversation with a realtime server (or one turn from a WAV file)."""
    from assistant.cmdline import setup_logging

    setup_logging("warning")
    return asyncio.run(talk(args))


async def talk(args: argparse.Namespace) -> int:
    """Run ``assistant realtime``; returns the exit status."""
    import numpy as np

    from assistant.audio.wav import read_wav, write_wav
    from assistant.realtime.client import AsyncRealtimeSession, RealtimeError, SessionRefused
    from assistant.realtime.protocol import WIRE_RATE

    printer = Printer(sys.stdout)
    replies: list[np.ndarray] = []
    session = AsyncRealtimeSession(
        args.url,
        model=args.model,
        voice=args.voice,
        instructions=args.instructions,
        token=args.token,
        server_vad=args.input is None,
    )
    try:
        await session.connect()
    except SessionRefused as exc:
        print(f"assistant: the server refused the session: {exc}", file=sys.stderr)
        return 1
    except (OSError, TimeoutError, RealtimeError) as exc:
        print(
            f"assistant: cannot reach the realtime server at {args.url}: {exc} (start one with `assistant serve`)",
            file=sys.stderr,
        )
        return 1
    except Exception as exc:  # websockets' handshake errors (401, 503) carry the server's reason
        body = getattr(getattr(exc, "response", None), "body", b"") or b""
        print(
            f"assistant: {args.url} refused the connection: {exc} {body.decode(errors='replace')}".rstrip(),
            file=sys.stderr,
        )
        return 1
    session.on_transcript = printer.done
    session.on_transcript_delta = printer.delta
    try:
        if args.input is not None:
            session.on_audio_delta = replies.append
            await session.send_audio(read_wav(args.input, WIRE_RATE), commit=True)
            await session.wait_response()
        else:
            if args.output is not None:
                session.on_event = lambda event: _keep_audio(event, replies)
            print("listening (Ctrl-C to stop)", file=sys.stderr)
            await session.start()
    except RealtimeError as exc:
        print(f"assistant: {exc}", file=sys.stderr)
        return 1
    finally:
        await session.close()
        if args.output is not None:
            write_wav(args.output, np.concatenate(replies) if replies else np.zeros(0, np.float32), WIRE_RATE)
    for error in session.errors:
        print(f"assistant: server error {error.get('code')}: {error.get('message')}", file=sys.stderr)
    return 1 if session.errors else 0


def _keep_audio(event: dict[str, Any], replies: list[np.ndarray]) -> None:
    if event.get("type") == "response.output_audio.delta":
        import base64

        import numpy as np

        replies.append(np.frombuffer(base64.b64decode(event["delta"]), "<i2").astype(np.float32) / 32768.0)
