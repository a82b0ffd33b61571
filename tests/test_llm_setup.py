"""Setting up the LLM: `assistant check` names the fix, `assistant llm pull` pulls the model with its progress.

Against the Ollama test server on loopback (its ``/api/pull`` streams as
Ollama does), a port nothing listens on, a name that does not resolve and a
web server that is not Ollama; ``ollama`` on PATH is a stand-in script or
absent, as the case needs.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import ollama
import pytest

from assistant import config as config_module
from assistant.core.ports import Health
from assistant.engines.llm_chain import llm_health
from assistant.engines.ollama_setup import INSTALL_COMMAND, PullFailed, is_loopback, offer_pull, pull
from assistant.testing.ollama_server import Behaviour, OllamaTestServer
from tests.conftest import ROOT

MODEL = "test-model"


def refused_url() -> str:
    """A loopback port where nothing listens (a server started, then stopped)."""
    server = OllamaTestServer().start()
    server.stop()
    return server.url


def rows_for(host: str, model: str = MODEL) -> dict[str, Health]:
    config = config_module.load(overrides=[f"llm.host={host}", f"llm.model={model}"])
    return {row.part: row for row in asyncio.run(llm_health(config.llm))}


@pytest.fixture
def no_ollama(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH without an `ollama` binary (only an empty folder)."""
    empty = tmp_path / "bin-empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return empty


@pytest.fixture
def fake_ollama(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH with an `ollama` binary (a stand-in script): Ollama is installed."""
    folder = tmp_path / "bin-ollama"
    folder.mkdir()
    binary = folder / "ollama"
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))
    return folder


@pytest.fixture
def library() -> Iterator[OllamaTestServer]:
    """Ollama with no model yet; `test-model` can be pulled (a 40 MB layer in 8 steps)."""
    with OllamaTestServer(models=[], library=[MODEL], pull_size=40_000_000, pull_steps=8, pull_ms=5) as server:
        yield server


class NotOllama(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html>router admin page</html>"
        self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


# --- check: the fix for each way the LLM is not there -----------------------------------------------


def test_not_installed_names_the_install_command_or_llm_host(no_ollama: Path) -> None:
    rows = rows_for(refused_url())
    server = rows["llm.server"]
    assert not server.ok
    assert "Ollama is not installed here" in server.detail and "nothing answers" in server.detail
    assert INSTALL_COMMAND in server.fix and "llm.host" in server.fix, server.fix
    answering = rows["llm.answering"]
    assert not answering.ok and "own intents still answer" in answering.detail


def test_installed_but_not_running_says_start_it(fake_ollama: Path) -> None:
    url = refused_url()
    server = rows_for(url)["llm.server"]
    assert not server.ok and "installed but not running" in server.detail
    assert "ollama serve" in server.fix and f"llm.host (now {url})" in server.fix
    assert INSTALL_COMMAND not in server.fix, "it is installed"


def test_model_not_pulled_says_ollama_pull(no_ollama: Path) -> None:
    with OllamaTestServer(models=["other:1b"]) as server:
        rows = rows_for(server.url)
    assert rows["llm.server"].ok
    assert not rows["llm.model"].ok and rows["llm.model"].fix == f"ollama pull {MODEL}"
    assert "not pulled (have: other:1b)" in rows["llm.model"].detail


def test_a_host_elsewhere_that_does_not_answer_says_llm_host(no_ollama: Path) -> None:
    host = "http://ollama-server.invalid:11434"
    server = rows_for(host)["llm.server"]
    assert not server.ok and "nothing answers there" in server.detail
    assert server.fix.startswith(f"set llm.host to a machine running Ollama (now {host})"), server.fix
    assert INSTALL_COMMAND in server.fix, "not installed here either: installing it here is the other way"


def test_a_host_that_is_not_ollama_says_llm_host(fake_ollama: Path) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), NotOllama)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        server = rows_for(url)["llm.server"]
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert not server.ok and "not as Ollama does" in server.detail and "is this Ollama?" in server.detail
    assert f"set llm.host to the Ollama server's address (now {url})" in server.fix


def test_loopback_hosts() -> None:
    assert all(map(is_loopback, ["localhost", "http://127.0.0.1:11434", "127.0.0.2", "[::1]:11434", "0.0.0.0"]))
    assert not any(map(is_loopback, ["server.lan", "http://192.168.1.5:11434", "ollama.example.com"]))


def test_check_shows_the_fix_in_its_table(test_config: Path, tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty)}
    command = [sys.executable, "-m", "assistant", "check", "--config", str(test_config)]
    done = subprocess.run(
        [*command, "--set", f"llm.host={refused_url()}"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120
    )
    lines = done.stdout.splitlines()
    (server,) = [i for i, line in enumerate(lines) if line.startswith("llm.server ")]
    row = r"llm\.server +FAIL +http://127\.0\.0\.1:\d+: nothing answers, and Ollama is not installed here"
    assert re.match(row, lines[server]), lines[server]
    assert lines[server + 1].split()[:3] == ["fix:", "install", "Ollama:"], lines[server + 1]
    assert INSTALL_COMMAND in lines[server + 1]
    assert done.returncode == 1, done.stdout


# --- pulling the model --------------------------------------------------------------------------------


def test_pull_streams_the_progress_and_the_model_is_there(library: OllamaTestServer) -> None:
    sets = ["--set", f"llm.host={library.url}", "--set", f"llm.model={MODEL}"]
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "llm", "pull", *sets],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert library.has_model(MODEL), "pulled"
    (request,) = library.requests_to("/api/pull")
    assert request.body == {"model": MODEL, "insecure": False, "stream": True}
    assert request.outcome == "done" and request.tokens_sent == 1 + (1 + 8) + 3 * 2 + 3, "every progress line went out"
    lines = done.stderr.splitlines()
    assert lines[0] == "pulling manifest"
    layers = [line for line in lines if re.match(r"pulling [0-9a-f]{12}: ok, ", line)]
    assert len(layers) == 4, lines
    assert layers[0].startswith(f"pulling {_digest(library)[7:19]}: ok, 38.1 MiB in "), layers
    assert lines[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    assert done.stdout.strip() == f"{MODEL} is pulled"


def _digest(server: OllamaTestServer) -> str:
    layers = server._layers(MODEL)
    assert layers is not None
    return layers[0][0]


def test_a_model_ollama_does_not_have_fails_with_its_error(library: OllamaTestServer) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "llm", "pull", "--set", f"llm.host={library.url}", "--model", "no-such"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "could not pull no-such: pull model manifest: file does not exist" in done.stderr
    assert not library.has_model("no-such")


def test_a_pull_that_breaks_off_is_a_failure_and_no_model(library: OllamaTestServer) -> None:
    library.script(Behaviour(path="/api/pull", stream_error="max retries exceeded: connection reset by peer"))
    with pytest.raises(PullFailed, match="could not pull test-model: max retries exceeded"):
        pull(library.url, MODEL, progress=False)
    assert not library.has_model(MODEL)
    assert library.requests_to("/api/pull")[0].outcome == "stream_error"


def test_pull_shows_a_progress_bar_on_a_terminal(
    library: OllamaTestServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Terminal:
        def __init__(self) -> None:
            self.text = ""

        def write(self, text: str) -> int:
            self.text += text
            return len(text)

        def flush(self) -> None:
            pass

        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    library.pull_ms = 60  # slower than tqdm redraws (10 times a second)
    pull(library.url, MODEL, out=terminal)  # type: ignore[arg-type]
    model_layer = _digest(library)[7:19]
    shown = [int(p) for p in re.findall(rf"pulling {model_layer}: +(\d+)%\|", terminal.text)]
    assert shown[0] == 0 and max(shown) >= 50 and shown == sorted(shown), terminal.text[:600]
    assert "/38.1M [" in terminal.text, "the layer's size, scaled as tqdm does"
    assert f"pulling {model_layer}: ok, 38.1 MiB in " in terminal.text, "the bar gives way to a summary line"
    assert library.has_model(MODEL)


# --- the offer scripts/run makes ------------------------------------------------------------------------


def test_offer_without_a_terminal_says_how_and_pulls_nothing(
    library: OllamaTestServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert offer_pull(library.url, MODEL, interactive=False) == 0
    said = capsys.readouterr().out
    assert f"has no model {MODEL}" in said and "assistant llm pull" in said and "scripts/run --yes" in said
    assert library.requests_to("/api/pull") == [] and not library.has_model(MODEL)


def test_offer_asks_on_a_terminal(library: OllamaTestServer, capsys: pytest.CaptureFixture[str]) -> None:
    asked: list[str] = []
    assert offer_pull(library.url, MODEL, interactive=True, ask=lambda q: asked.append(q) or "n") == 0
    assert asked == [f"Pull {MODEL} now? [Y/n] "] and not library.has_model(MODEL)
    assert "not pulled" in capsys.readouterr().out
    assert offer_pull(library.url, MODEL, interactive=True, ask=lambda q: "", progress=False) == 0, "Enter is yes"
    assert library.has_model(MODEL)


def test_offer_yes_pulls_without_asking(library: OllamaTestServer) -> None:
    def ask(question: str) -> str:
        raise AssertionError("asked")

    assert offer_pull(library.url, MODEL, yes=True, interactive=True, ask=ask, progress=False) == 0
    assert library.has_model(MODEL)


def test_offer_is_quiet_when_there_is_nothing_to_do(
    library: OllamaTestServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with OllamaTestServer(models=[MODEL]) as ready:
        assert offer_pull(ready.url, MODEL, yes=True) == 0
        assert ready.requests_to("/api/pull") == []
    assert offer_pull(refused_url(), MODEL, yes=True) == 0, "nothing answers: check says why"
    assert capsys.readouterr().out == ""


def test_offer_on_a_real_terminal_prompts_and_shows_the_bar(library: OllamaTestServer) -> None:
    """`assistant llm pull --offer` on a pseudo-terminal: the prompt, "y", then tqdm's bar."""
    command = [sys.executable, "-m", "assistant", "llm", "pull", "--offer", "--set", f"llm.host={library.url}"]
    command += ["--set", f"llm.model={MODEL}"]
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal 100 columns wide
    library.pull_ms = 60  # slower than tqdm redraws (10 times a second)
    proc = subprocess.Popen(command, cwd=ROOT, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    seen = b""
    answered = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # the other end closed: the command ended
                    break
                if not chunk:
                    break
                seen += chunk
            if not answered and b"[Y/n]" in seen:
                os.write(leader, b"y\n")
                answered = True
            if proc.poll() is not None and not ready:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        os.close(leader)
    text = seen.decode(errors="replace")
    assert answered, text
    assert proc.returncode == 0, text
    assert re.search(r"pulling [0-9a-f]{12}: +\d+%\|", text), text
    assert f"{MODEL} is pulled" in text and library.has_model(MODEL)


@pytest.mark.parametrize("accept", ["--yes", "ASSISTANT_YES=1", None])
def test_scripts_run_offers_the_pull_then_checks_and_runs(
    library: OllamaTestServer, tmp_path: Path, accept: str | None
) -> None:
    """scripts/run's own steps, with set-up stubbed: --yes (or ASSISTANT_YES=1) goes to the offer, not to run."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "run", tmp_path / "scripts" / "run")
    (tmp_path / "scripts" / "setup").write_text("#!/usr/bin/env bash\necho setup\n")
    (tmp_path / "scripts" / "setup").chmod(0o755)
    venv = tmp_path / ".venv" / "bin"
    venv.mkdir(parents=True)
    log = tmp_path / "calls.log"
    # `assistant llm ...` is the real one; the rest only say what they were asked.
    (venv / "assistant").write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> {log}\n'
        f'if [[ $1 == llm ]]; then exec {sys.executable} -m assistant "$@"; fi\n'
    )
    (venv / "assistant").chmod(0o755)
    args = ["--set", f"llm.host={library.url}", "--set", f"llm.model={MODEL}"]
    env = {k: v for k, v in os.environ.items() if k != "ASSISTANT_YES"}
    if accept == "ASSISTANT_YES=1":
        env["ASSISTANT_YES"] = "1"
    flag = ["--yes"] if accept == "--yes" else []
    done = subprocess.run(
        ["bash", str(tmp_path / "scripts" / "run"), *flag, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    joined = " ".join(args)
    yes = " --yes" if accept else ""
    assert calls == [
        "models download",
        f"llm pull --offer{yes} {joined}",
        f"check {joined}",
        f"run {joined}",
    ], calls
    if accept:
        assert library.has_model(MODEL) and "success" in done.stderr and f"{MODEL} is pulled" in done.stdout
    else:
        assert not library.has_model(MODEL), "not a terminal and not told yes: only says how"
        assert "to pull it: assistant llm pull" in done.stdout


def test_the_test_server_pulls_as_ollama_does_with_and_without_streaming(library: OllamaTestServer) -> None:
    client = ollama.Client(host=library.url)
    with pytest.raises(ollama.ResponseError) as missing:
        client.pull("no-such")  # "stream": false: one answer, Ollama's 500
    assert (missing.value.status_code, missing.value.error) == (500, "pull model manifest: file does not exist")
    parts = list(client.pull(MODEL, stream=True))
    assert parts[0].status == "pulling manifest"
    first = [p for p in parts if p.digest == _digest(library)]
    assert first[0].completed is None and first[0].total == 40_000_000, "Ollama omits a zero `completed`"
    assert [p.completed for p in first[1:]] == [5_000_000 * i for i in range(1, 9)]
    assert [p.status for p in parts[-3:]] == ["verifying sha256 digest", "writing manifest", "success"]
    assert f"{MODEL}:latest" in [m.model for m in client.list().models], "a pulled model is listed"
    assert client.pull(MODEL).status == "success", "pulling it again: already there, still success"


def test_pulling_from_a_host_where_nothing_answers_names_the_fix(no_ollama: Path) -> None:
    with pytest.raises(PullFailed, match="nothing answers, and Ollama is not installed here") as raised:
        pull(refused_url(), MODEL, progress=False)
    assert INSTALL_COMMAND in str(raised.value)
