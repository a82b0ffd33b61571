"""Who may use the server: cross-site WebSocket hijacking, DNS rebinding, ?model=, tokens, paths, headers.

Each attack is made with real HTTP requests on loopback, and the two browser ones with headless
Chromium loading a page from another origin (and from a rebound name).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.server
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from assistant.realtime.access import Access, host_name, resolve_model
from assistant.realtime.server import RealtimeServer
from assistant.testing.ollama_server import OllamaTestServer
from tests.test_realtime_browser import browser
from tests.test_realtime_support import (
    EVENT_TIMEOUT_S,
    ServerFactory,
    chat_messages,
    event_audit,
    ollama,
    raw_client,
    rt_engines,
    server,
    start_server,
)

__all__ = ["event_audit", "ollama", "rt_engines", "server", "start_server"]

SERVER_LOG = "assistant.realtime.server"


async def handshake(
    port: int,
    *,
    path: str = "/v1/realtime?model=gpt-realtime",
    host: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """A raw WebSocket upgrade request with exactly these headers; the status, headers and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host or f'127.0.0.1:{port}'}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
        "Sec-WebSocket-Version: 13",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    try:
        async with asyncio.timeout(EVENT_TIMEOUT_S):
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            status_line, *header_lines = head.strip().split("\r\n")
            found = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
            body = await reader.read(int(found.get("content-length", 0))) if "content-length" in found else b""
    finally:
        writer.close()
    return int(status_line.split()[1]), found, body


# --- the pure rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:8765", "127.0.0.1"),
        ("LOCALHOST", "localhost"),
        ("[::1]:8765", "::1"),
        ("a.example.", "a.example"),
        ("", None),
        ("[::1", None),
        ("host:port", None),
        ("a/b", None),
        ("[nothex]:1", None),
    ],
)
def test_host_names(header: str, name: str | None) -> None:
    assert host_name(header) == name


def test_access_rules() -> None:
    loop = Access.build("127.0.0.1", ["assistant.lan"], ["https://app.example"], None)
    assert all(loop.host_allowed(h) for h in ("127.0.0.1:1", "localhost:1", "[::1]:1", "assistant.lan"))
    assert not any(loop.host_allowed(h) for h in ("attacker.test", "10.0.0.5", None, "127.0.0.1.nip.io"))
    wild = Access.build("0.0.0.0", [], [], "t")
    assert wild.host_allowed("192.168.1.20:8765") and not wild.host_allowed("attacker.test")
    own = "127.0.0.1:8765"
    assert loop.origin_allowed(None, own) and loop.origin_allowed("http://127.0.0.1:8765", own)
    assert loop.origin_allowed("https://app.example/", own)
    for origin in ("null", "https://evil.example", "http://127.0.0.1:9999", "file://", "chrome-extension://x"):
        assert not loop.origin_allowed(origin, own), origin
    token = Access.build("127.0.0.1", [], [], "s3cret")
    for header in ("Bearer s3cret", "bearer s3cret", "BEARER  s3cret "):
        assert token.authorized(header, []), header
    assert not token.authorized("Basic s3cret", []) and not token.authorized("Bearer s3cre", [])
    assert token.authorized(None, ["realtime, openai-insecure-api-key.s3cret"])
    assert resolve_model("gpt-realtime", "m", []) == "m" and resolve_model("", "m", []) == "m"
    assert resolve_model("other", "m", []) is None and resolve_model("other", "m", ["other"]) == "other"


# --- real requests ---------------------------------------------------------------------------------


async def test_cross_origin_handshakes_are_refused(server: RealtimeServer, caplog: pytest.LogCaptureFixture) -> None:
    port = server.port
    for origin in ("https://evil.example", "null", f"http://127.0.0.1:{port}.evil.example", "http://localhost:1"):
        with caplog.at_level(logging.WARNING, SERVER_LOG):
            status, _, body = await handshake(port, headers={"Origin": origin})
        assert status == 403 and b"server.allowed_origins" in body, (origin, status, body)
        assert any(repr(origin) in r.getMessage() for r in caplog.records), origin
        assert not server.sessions
    # The server's own page, and clients that send no Origin, get in.
    for headers in ({"Origin": f"http://127.0.0.1:{port}"}, {}):
        status, _, _ = await handshake(port, headers=headers)
        assert status == 101, (headers, status)


async def test_an_allowed_origin_gets_in(start_server: ServerFactory) -> None:
    async with start_server(allowed_origins=["https://app.example"]) as running:
        status, _, _ = await handshake(running.port, headers={"Origin": "https://app.example"})
        assert status == 101
        status, _, _ = await handshake(running.port, headers={"Origin": "https://evil.example"})
        assert status == 403


async def test_dns_rebinding_is_refused(start_server: ServerFactory, caplog: pytest.LogCaptureFixture) -> None:
    async with start_server(allowed_hosts=["assistant.lan"]) as running:
        port = running.port
        rebound = f"attacker.test:{port}"
        with caplog.at_level(logging.WARNING, SERVER_LOG):
            # The page's own origin matches its Host, so only the Host check stops it.
            status, _, body = await handshake(port, host=rebound, headers={"Origin": f"http://{rebound}"})
        assert status == 403 and b"server.allowed_hosts" in body
        assert any("attacker.test" in r.getMessage() for r in caplog.records)
        async with httpx.AsyncClient(trust_env=False) as client:
            page = await client.get(f"http://127.0.0.1:{port}/", headers={"Host": rebound})
            assert page.status_code == 403
            lan = await client.get(f"http://127.0.0.1:{port}/", headers={"Host": f"assistant.lan:{port}"})
            assert lan.status_code == 200
        status, _, _ = await handshake(
            port, host=f"assistant.lan:{port}", headers={"Origin": f"http://assistant.lan:{port}"}
        )
        assert status == 101


async def test_model_must_be_on_the_list(start_server: ServerFactory, ollama: OllamaTestServer) -> None:
    async with start_server() as running:
        status, _, body = await handshake(running.port, path="/v1/realtime?model=llama3.2:1b")
        assert status == 403 and b"server.allowed_models" in body and b"test-model" in body
        for name in ("test-model", "default", "gpt-realtime", ""):
            status, _, _ = await handshake(running.port, path=f"/v1/realtime?model={name}")
            assert status == 101, name
    async with (
        start_server(allowed_models=["other-model"]) as running,
        raw_client(running.url, path="/v1/realtime?model=other-model") as client,
    ):
        await client.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
        await client.until("response.done")
    assert [r.body["model"] for r in ollama.requests_to("/api/chat") if r.body.get("messages")][-1] == "other-model"
    assert chat_messages(ollama)


async def test_token_scheme_paths_and_headers(start_server: ServerFactory) -> None:
    async with start_server(token="s3cret") as running:
        port = running.port
        for header in ("bearer s3cret", "BEARER s3cret", "Bearer s3cret"):
            status, _, _ = await handshake(port, headers={"Authorization": header})
            assert status == 101, header
        status, _, _ = await handshake(port, headers={"Authorization": "bearer wrong"})
        assert status == 401
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as client:
            assert (await client.get("/" + "a" * 5000)).status_code == 414
            for odd in (
                "/%00",
                "/a/b.js",
                "/..%2fpyproject.toml",
                "/.hidden.js",
                "/app.js%00.js",
                "/%ff.js",
                "/" + "b" * 300 + ".js",
                "/index.html/",
                "/app.js;x",
            ):
                assert (await client.get(odd)).status_code == 404, odd
            page = await client.get("/")
        assert page.status_code == 200
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        assert "server" not in page.headers


# --- the browser ------------------------------------------------------------------------------------

ATTACK_PAGE = """<!doctype html><title>evil</title><script>
window.result = new Promise((resolve) => {
  const port = new URLSearchParams(location.search).get("port");
  const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/realtime?model=default`, ["realtime"]);
  ws.onmessage = (m) => { resolve("read: " + JSON.parse(m.data).type); ws.close(); };
  ws.onclose = (e) => resolve("closed " + e.code);
});
</script>"""


OPEN_OWN_SOCKET = """new Promise((resolve) => {
  const ws = new WebSocket(`ws://${location.host}/v1/realtime`, ["realtime"]);
  ws.onmessage = (m) => { resolve(JSON.parse(m.data).type); ws.close(); };
  ws.onclose = (e) => resolve("closed " + e.code);
})"""


@contextlib.contextmanager
def other_origin(folder: Path, page: str) -> Iterator[str]:
    """A page served by a plain HTTP server on another port: another origin."""
    (folder / "attack.html").write_text(page, encoding="utf-8")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, name="attack page", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/attack.html"
    finally:
        httpd.shutdown()
        httpd.server_close()


async def test_a_page_from_another_origin_cannot_open_a_session(
    start_server: ServerFactory, speech: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with other_origin(tmp_path, ATTACK_PAGE) as url:
        evil = url.rsplit("/", 1)[0]
        async with start_server() as running:
            with caplog.at_level(logging.WARNING, SERVER_LOG):
                async with browser(f"{url}?port={running.port}", speech["silence_1"], tmp_path / "p1") as page:
                    outcome = await page.evaluate("window.result")
            assert outcome == "closed 1006", outcome
            assert any(repr(evil) in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
            assert not running.sessions
        # The same page on an allowed origin does get a session: the refusal above is the Origin check.
        async with (
            start_server(allowed_origins=[evil]) as running,
            browser(f"{url}?port={running.port}", speech["silence_1"], tmp_path / "p2") as page,
        ):
            assert await page.evaluate("window.result") == "read: session.created"


async def test_dns_rebinding_in_the_browser(
    start_server: ServerFactory, speech: dict[str, Path], tmp_path: Path
) -> None:
    rules = "--host-resolver-rules=MAP attacker.test 127.0.0.1, MAP assistant.lan 127.0.0.1"
    async with start_server(allowed_hosts=["assistant.lan"]) as running:
        url = f"http://attacker.test:{running.port}/"
        async with browser(url, speech["silence_1"], tmp_path / "profile", rules) as page:
            text = await page.evaluate("document.body.innerText")
            assert "does not answer to that Host" in text, text
            assert await page.evaluate("document.title") != "Assistant — realtime"
            # The allowed name gets the page, and the page gets its session (no microphone off localhost
            # without TLS, so the page's own WebSocket is opened by hand).
            await page.call("Page.navigate", url=f"http://assistant.lan:{running.port}/")
            await page.wait_event("Page.loadEventFired")
            assert await page.evaluate("document.title") == "Assistant — realtime"
            opened = await page.evaluate(OPEN_OWN_SOCKET)
            assert opened == "session.created", opened
