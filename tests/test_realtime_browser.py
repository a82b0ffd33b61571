"""The browser page in real headless Chromium against a real server, with a fake microphone WAV.

Chromium is driven over the DevTools protocol with `websockets` (no extra
package).  Debian's `chromium` package provides the browser; the test installs
it with apt-get when it is missing and it can, and otherwise skips (fails in CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import websockets

from assistant.realtime.server import RealtimeServer
from assistant.testing.ollama_server import Behaviour, OllamaTestServer
from tests.conftest import concat, missing
from tests.test_realtime_support import (
    EVENT_TIMEOUT_S,
    REPLY,
    event_audit,
    ollama,
    rt_engines,
    server,
    sounds_like,
    start_server,
)

__all__ = ["event_audit", "ollama", "rt_engines", "server", "start_server"]

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "chromium"], capture_output=True, timeout=600
        )
        if path := shutil.which("chromium"):
            return path
    missing("chromium is needed for the browser test (apt-get install chromium)")
    raise AssertionError("unreachable")


class DevTools:
    """A minimal Chrome DevTools protocol client on one page target."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self.ids)
        await self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        async with asyncio.timeout(EVENT_TIMEOUT_S):
            while True:
                message = json.loads(await self.ws.recv())
                if "method" in message:
                    self.events.append(message)
                elif message.get("id") == call_id:
                    if "error" in message:
                        raise AssertionError(f"{method}: {message['error']}")
                    result: dict[str, Any] = message["result"]
                    return result

    async def wait_event(self, method: str) -> dict[str, Any]:
        """The first event named `method` (received now or later)."""
        async with asyncio.timeout(EVENT_TIMEOUT_S):
            while True:
                for event in self.events:
                    if event["method"] == method:
                        self.events.remove(event)
                        return event
                self.events.append(json.loads(await self.ws.recv()))

    async def evaluate(self, expression: str, *, gesture: bool = False) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True, userGesture=gesture
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression[:60]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, condition: str) -> Any:
        """Resolve once `condition` (JS over `s = window.realtimeStats`) is true; returns the stats."""
        script = f"""new Promise((resolve) => {{
            const check = () => {{
                const s = window.realtimeStats;
                if (s && ({condition})) resolve(JSON.parse(JSON.stringify(s))); else setTimeout(check, 50);
            }};
            check();
        }})"""
        async with asyncio.timeout(EVENT_TIMEOUT_S):
            return await self.evaluate(script)


@contextlib.asynccontextmanager
async def browser(url: str, wav: Path, profile: Path, *extra_flags: str) -> AsyncIterator[DevTools]:
    process = await asyncio.create_subprocess_exec(
        chromium(),
        *FLAGS,
        *extra_flags,
        f"--user-data-dir={profile}",
        f"--use-file-for-fake-audio-capture={wav}%noloop",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        async with asyncio.timeout(EVENT_TIMEOUT_S):
            match = None
            while match is None:
                line = (await process.stderr.readline()).decode()
                if not line:
                    raise AssertionError("chromium exited before DevTools was listening")
                match = re.search(r"DevTools listening on ws://([^/]+)/", line)
            async with httpx.AsyncClient(trust_env=False) as http:
                while True:
                    targets = (await http.get(f"http://{match.group(1)}/json/list")).json()
                    pages = [t for t in targets if t["type"] == "page"]
                    if pages:
                        break
                    await asyncio.sleep(0.05)
        async with websockets.connect(pages[0]["webSocketDebuggerUrl"], max_size=None) as ws:
            devtools = DevTools(ws)
            await devtools.call("Page.enable")
            await devtools.call("Page.navigate", url=url)
            await devtools.wait_event("Page.loadEventFired")
            yield devtools
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def test_page_talks_with_the_server(
    server: RealtimeServer, speech: dict[str, Path], tmp_path: Path, ollama: OllamaTestServer
) -> None:
    long_reply = " ".join([REPLY] * 6)
    ollama.script(Behaviour(reply=long_reply))
    wav = concat(tmp_path / "mic.wav", speech["silence_1"], speech["question"], speech["silence_4"])
    url = f"http://127.0.0.1:{server.port}/"
    async with browser(url, wav, tmp_path / "profile") as page:
        assert await page.evaluate("document.title") == "Assistant — realtime"
        await page.evaluate("document.getElementById('start').click()", gesture=True)
        await page.wait_for("s.status === 'connected'")
        stats = await page.wait_for(
            "s.userTranscripts.length > 0 && s.assistantTranscripts.length > 0 && s.playedSamples >= 24000"
        )
        assert sounds_like(stats["userTranscripts"][0]), stats["userTranscripts"]
        assert stats["assistantTranscripts"][0] == long_reply
        assert stats["receivedSamples"] > 24000 and stats["sentSamples"] > 0
        text = await page.evaluate("document.getElementById('log').innerText")
        assert stats["userTranscripts"][0] in text and "Paris" in text
        assert stats["errors"] == []
        # The Interrupt button stops playback and truncates the reply at what was played.
        assert stats["playedSamples"] < stats["receivedSamples"], "the reply is still playing"
        await page.evaluate("document.getElementById('interrupt').click()", gesture=True)
        stats = await page.wait_for("s.truncations.length > 0 && document.querySelector('.line.assistant.cancelled')")
        assert 1000 <= stats["truncations"][0] <= stats["playedSamples"] * 1000 // 24000
        item = next(iter(server.sessions)).conversation.items[-1]
        assert item.role == "assistant" and item.text and long_reply.startswith(item.text)
        assert len(item.text) < len(long_reply)
