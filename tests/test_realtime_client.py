"""The Python client (async and blocking), the benchmark helper and the two commands."""

from __future__ import annotations

import asyncio
import re
import sys
import wave
from pathlib import Path

import numpy as np

import assistant.realtime
from assistant.realtime.bench import measure_commit_to_first_delta
from assistant.realtime.client import AsyncRealtimeSession
from assistant.realtime.server import RealtimeServer
from assistant.testing.ollama_server import OllamaTestServer
from tests.conftest import ROOT
from tests.test_realtime_support import (
    EVENT_TIMEOUT_S,
    REPLY,
    chat_messages,
    event_audit,
    ollama,
    question_audio,
    raw_client,
    rt_engines,
    server,
    sounds_like,
    start_server,
)

__all__ = ["event_audit", "ollama", "question_audio", "rt_engines", "server", "start_server"]


async def test_async_client_text_and_audio(
    server: RealtimeServer, question_audio: np.ndarray, ollama: OllamaTestServer
) -> None:
    heard: list[tuple[str, str]] = []
    audio: list[np.ndarray] = []
    async with AsyncRealtimeSession(server.url, voice="default", instructions="Be kind.", server_vad=False) as session:
        session.on_transcript = lambda text, speaker: heard.append((speaker, text))
        session.on_audio_delta = audio.append
        await session.send_audio(question_audio, commit=True)
        async with asyncio.timeout(EVENT_TIMEOUT_S):
            response = await session.wait_response()
        assert response["status"] == "completed"
        await session.send_text("Thanks!")
        async with asyncio.timeout(EVENT_TIMEOUT_S):
            await session.wait_response()
    assert [speaker for speaker, _ in heard[:2]] == ["user", "assistant"]
    assert sounds_like(heard[0][1]) and heard[1][1] == REPLY, heard
    assert sum(len(a) for a in audio) > 24_000
    assert chat_messages(ollama)[-1][0] == {"role": "system", "content": "Be kind."}
    assert chat_messages(ollama)[-1][-1] == {"role": "user", "content": "Thanks!"}


async def test_blocking_client_through_the_package(server: RealtimeServer) -> None:
    def converse() -> tuple[list[tuple[str, str]], str]:
        heard: list[tuple[str, str]] = []
        with assistant.realtime.connect(url=server.url, model="default", voice="default") as session:
            session.on_transcript = lambda text, speaker: heard.append((speaker, text))
            session.send_text("Hello")
            response = session.wait_response(timeout=EVENT_TIMEOUT_S)
        return heard, response["status"]

    heard, status = await asyncio.to_thread(converse)
    assert status == "completed" and heard == [("assistant", REPLY)]


async def test_measure_commit_to_first_delta(server: RealtimeServer, speech: dict[str, Path]) -> None:
    timings = await measure_commit_to_first_delta(server.url, speech["question"], 2)
    assert len(timings) == 2 and all(t > 0 for t in timings)


async def test_realtime_command_with_wav_files(server: RealtimeServer, speech: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "reply.wav"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "assistant",
        "realtime",
        "--voice",
        "default",
        "--url",
        server.url,
        "--input",
        str(speech["question"]),
        "--output",
        str(out),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(EVENT_TIMEOUT_S * 2):
        stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    you, said = stdout.decode().splitlines()
    assert you.startswith("you: ") and sounds_like(you[5:]), you
    assert said == f"assistant: {REPLY}"
    with wave.open(str(out), "rb") as wav:
        assert wav.getframerate() == 24_000 and wav.getnframes() > 24_000


async def test_serve_command(test_config: Path, ollama: OllamaTestServer) -> None:
    refused = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "assistant",
        "serve",
        "--config",
        str(test_config),
        "--host",
        "0.0.0.0",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(EVENT_TIMEOUT_S * 2):
        _, stderr = await refused.communicate()
    assert refused.returncode == 78 and b"server.token" in stderr
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "assistant",
        "serve",
        "--config",
        str(test_config),
        "--set",
        f"llm.host={ollama.url}",
        "--port",
        "0",
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(EVENT_TIMEOUT_S * 2):
            match = None
            while match is None:
                line = (await process.stderr.readline()).decode()
                assert line, "assistant serve exited early"
                match = re.search(r"listening on (ws://[\d.]+:\d+)/v1/realtime", line)
            async with raw_client(match.group(1)) as client:
                await client.send(
                    {
                        "type": "conversation.item.create",
                        "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
                    }
                )
                await client.send({"type": "response.create"})
                events = await client.until("response.done")
        assert events[-1]["response"]["status"] == "completed"
    finally:
        process.terminate()
        await process.wait()
