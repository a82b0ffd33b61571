"""`assistant run` with `server.enabled`: the realtime API beside the microphone loop."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import websockets

from assistant.testing.ollama_server import OllamaTestServer
from tests.conftest import ROOT, silence


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def text_turn(url: str) -> list[str]:
    """Send a text request and collect event types until the response is done."""
    seen: list[str] = []
    async with asyncio.timeout(60):
        while True:  # the process is still loading its models: retry until it serves
            try:
                ws = await websockets.connect(url)
                break
            except OSError:
                await asyncio.sleep(0.2)
        async with ws:
            item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello?"}]}
            await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
            await ws.send(json.dumps({"type": "response.create"}))
            while (event := json.loads(await ws.recv()))["type"] != "response.done":
                seen.append(event["type"])
            seen.append(event["type"])
    return seen


def test_run_serves_the_realtime_api_beside_the_microphone(test_config: Path, tmp_path: Path) -> None:
    port = free_port()
    wav = silence(tmp_path / "quiet.wav", 60)
    with OllamaTestServer(models=["test-model"], reply="Hello from the speaker.") as ollama:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "assistant",
                "run",
                "--config",
                str(test_config),
                "--input",
                str(wav),
                "--output",
                str(tmp_path / "out.wav"),
                "--set",
                f"llm.host={ollama.url}",
                "--set",
                "server.enabled=true",
                "--set",
                f"server.port={port}",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            seen = asyncio.run(text_turn(f"ws://127.0.0.1:{port}/v1/realtime"))
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
    assert "response.output_audio.delta" in seen and seen[-1] == "response.done"
    (asked,) = [r.body for r in ollama.requests_to("/api/chat") if r.body.get("messages")]
    assert "start_timer" in [t["function"]["name"] for t in asked["tools"]], "the device's functions, offered"
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
