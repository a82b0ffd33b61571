"""Tests for assistant.models: downloads are served from a loopback HTTP server."""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import os
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant import models
from assistant.models import Model, ModelFile

SHARED_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"


# --------------------------------------------------------------------------- loopback server


class Server:
    """A ThreadingHTTPServer on 127.0.0.1 serving ``root``, recording every request."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        self.truncate: set[str] = set()  # URL paths sent with half their body, then closed
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                if self.path in server.truncate:
                    body = (server.root / self.path.lstrip("/")).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                    return
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:
                pass

        handler = functools.partial(Handler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "www"
    root.mkdir()
    srv = Server(root)
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def dead_url() -> str:
    """An http URL on a loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --------------------------------------------------------------------------- fake catalogue

BLOBS = {
    "whisper/ggml-alpha.bin": os.urandom(300_000),
    "piper/beta.onnx": os.urandom(70_000),
    "piper/beta.onnx.json": b'{"audio": {"sample_rate": 22050}}\n',
    "openwakeword/feat.onnx": os.urandom(5_000),
    "openwakeword/gamma_v0.1.onnx": os.urandom(4_000),
}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fake_catalogue(upstream: str, bad_pin: str | None = None) -> dict[str, Model]:
    """Models whose official URLs are ``upstream/<basename>`` (not the models-dir layout)."""

    def file(path: str) -> ModelFile:
        data = BLOBS[path]
        pin = sha(b"something else") if path == bad_pin else sha(data)
        return ModelFile(path, f"{upstream}/{path.rsplit('/', 1)[1]}", pin, len(data), "MIT")

    return {
        "alpha": Model("alpha", "stt", "test stt", (file("whisper/ggml-alpha.bin"),)),
        "beta": Model(
            "beta",
            "tts",
            "test voice",
            (file("piper/beta.onnx"), file("piper/beta.onnx.json")),
        ),
        "feat": Model("feat", "features", "test features", (file("openwakeword/feat.onnx"),)),
        "gamma": Model(
            "gamma",
            "wake",
            "test wake word",
            (file("openwakeword/gamma_v0.1.onnx"),),
            requires=("feat",),
        ),
    }


def publish_upstream(root: Path) -> None:
    (root / "upstream").mkdir(exist_ok=True)
    for path, data in BLOBS.items():
        (root / "upstream" / path.rsplit("/", 1)[1]).write_bytes(data)


def publish_layout(root: Path) -> None:
    for path, data in BLOBS.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)


def use_catalogue(monkeypatch: pytest.MonkeyPatch, catalogue: dict[str, Model]) -> None:
    monkeypatch.setattr(models.catalogue, "CATALOGUE", catalogue)
    monkeypatch.setattr(models.catalogue, "DEFAULT_NAMES", ("alpha", "beta"))


def leftovers(models_dir: Path) -> list[str]:
    """Every file under models_dir whose name is not a catalogue file (temp files)."""
    if not models_dir.exists():
        return []
    return sorted(
        str(p.relative_to(models_dir))
        for p in models_dir.rglob("*")
        if p.is_file() and str(p.relative_to(models_dir)) not in BLOBS
    )


# --------------------------------------------------------------------------- download


def test_download_fetches_verifies_and_places_the_defaults(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_upstream(server.root)
    use_catalogue(monkeypatch, fake_catalogue(server.base + "/upstream"))
    dest = tmp_path / "models"

    report = models.download(None, dest, progress=False)

    assert report.ok and report.exit_code == 0, report.failure_message()
    assert [r.status for r in report.results] == ["downloaded"] * 3
    for path in ("whisper/ggml-alpha.bin", "piper/beta.onnx", "piper/beta.onnx.json"):
        assert (dest / path).read_bytes() == BLOBS[path]
    assert sorted(server.requests) == [
        "/upstream/beta.onnx",
        "/upstream/beta.onnx.json",
        "/upstream/ggml-alpha.bin",
    ]
    assert leftovers(dest) == []
    assert report.failure_message() == ""


def test_files_already_present_are_verified_and_not_requested_again(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_upstream(server.root)
    use_catalogue(monkeypatch, fake_catalogue(server.base + "/upstream"))
    dest = tmp_path / "models"
    assert models.download(["alpha"], dest, progress=False).ok
    count = len(server.requests)

    report = models.download(["alpha"], dest, progress=False)

    assert report.exit_code == 0
    assert [r.status for r in report.results] == ["present"]
    assert len(server.requests) == count


def test_a_present_file_with_the_wrong_sha256_is_fetched_again(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_upstream(server.root)
    use_catalogue(monkeypatch, fake_catalogue(server.base + "/upstream"))
    target = tmp_path / "models" / "whisper" / "ggml-alpha.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"stale")

    report = models.download(["alpha"], tmp_path / "models", progress=False)

    assert [r.status for r in report.results] == ["downloaded"]
    assert target.read_bytes() == BLOBS["whisper/ggml-alpha.bin"]


def test_checksum_mismatch_discards_the_download_and_says_expected_and_got(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_upstream(server.root)
    catalogue = fake_catalogue(server.base + "/upstream", bad_pin="whisper/ggml-alpha.bin")
    use_catalogue(monkeypatch, catalogue)
    dest = tmp_path / "models"

    report = models.download(["alpha"], dest, progress=False)

    assert report.exit_code != 0
    (result,) = report.failed
    expected = catalogue["alpha"].files[0].sha256
    got = sha(BLOBS["whisper/ggml-alpha.bin"])
    assert f"expected sha256 {expected}, got {got}" in result.error
    assert not (dest / "whisper" / "ggml-alpha.bin").exists()
    assert leftovers(dest) == []


def test_unreachable_server_names_the_file_url_reason_and_the_way_out(
    dead_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_catalogue(monkeypatch, fake_catalogue(dead_url + "/upstream"))
    dest = tmp_path / "models"

    report = models.download(["alpha"], dest, progress=False)

    assert report.exit_code == 1
    message = report.failure_message()
    host = dead_url.removeprefix("http://")
    assert f"whisper/ggml-alpha.bin from {dead_url}/upstream/ggml-alpha.bin" in message
    assert f"cannot reach {host}: [Errno" in message  # e.g. [Errno 111] Connection refused
    assert f"copy the files into {dest}" in message
    assert "--from MIRROR" in message
    assert f"assistant models download alpha --dir {dest}" in message
    assert not dest.exists() or leftovers(dest) == []


def test_a_transfer_that_breaks_off_leaves_no_partial_file(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_upstream(server.root)
    use_catalogue(monkeypatch, fake_catalogue(server.base + "/upstream"))
    server.truncate.add("/upstream/ggml-alpha.bin")
    dest = tmp_path / "models"
    old = dest / "whisper" / "ggml-alpha.bin"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"previous contents")

    report = models.download(["alpha"], dest, progress=False)

    (result,) = report.failed
    assert "connection closed early" in result.error
    assert old.read_bytes() == b"previous contents"  # replaced only by a verified file
    assert leftovers(dest) == []


def test_mirror_directory_replaces_the_official_urls(
    dead_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_catalogue(monkeypatch, fake_catalogue(dead_url + "/upstream"))
    mirror = tmp_path / "usb-stick"
    publish_layout(mirror)
    dest = tmp_path / "models"

    report = models.download(["beta", "gamma"], dest, source=mirror, progress=False)

    assert report.ok, report.failure_message()
    assert [r.file.path for r in report.results] == [
        "piper/beta.onnx",
        "piper/beta.onnx.json",
        "openwakeword/feat.onnx",
        "openwakeword/gamma_v0.1.onnx",
    ]
    for result in report.results:
        assert result.path.read_bytes() == BLOBS[result.file.path]
        assert result.url == str(mirror / result.file.path)


def test_mirror_directory_missing_a_file_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dead_url: str
) -> None:
    use_catalogue(monkeypatch, fake_catalogue(dead_url))
    mirror = tmp_path / "mirror"
    mirror.mkdir()

    report = models.download(["alpha"], tmp_path / "models", source=mirror, progress=False)

    (result,) = report.failed
    assert result.error == f"no such file in the mirror: {mirror / 'whisper/ggml-alpha.bin'}"


def test_mirror_url_replaces_the_official_urls_and_pins_still_apply(
    server: Server, dead_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_layout(server.root / "fleet")
    use_catalogue(monkeypatch, fake_catalogue(dead_url + "/upstream"))
    dest = tmp_path / "models"

    report = models.download(["alpha"], dest, source=server.base + "/fleet/", progress=False)

    assert report.ok, report.failure_message()
    assert server.requests == ["/fleet/whisper/ggml-alpha.bin"]
    assert (dest / "whisper/ggml-alpha.bin").read_bytes() == BLOBS["whisper/ggml-alpha.bin"]

    (server.root / "fleet/piper/beta.onnx").write_bytes(b"tampered")
    bad = models.download(["beta"], dest, source=server.base + "/fleet", progress=False)
    assert [r.status for r in bad.results] == ["failed", "downloaded"]
    assert "checksum mismatch" in bad.failed[0].error
    assert not (dest / "piper/beta.onnx").exists()


def test_mirror_url_answering_404_is_reported(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_catalogue(monkeypatch, fake_catalogue(server.base + "/upstream"))

    report = models.download(["alpha"], tmp_path / "models", source=server.base, progress=False)

    (result,) = report.failed
    assert result.url == server.base + "/whisper/ggml-alpha.bin"
    assert "answered HTTP 404" in result.error


def test_progress_prints_one_line_per_file_when_not_a_terminal(
    server: Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    publish_upstream(server.root)
    use_catalogue(monkeypatch, fake_catalogue(server.base + "/upstream"))

    models.download(["beta"], tmp_path / "models", progress=True)

    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("piper/beta.onnx: ok, 68.4 KiB in ")
    assert re.search(r"\(\S+ \S+/s\)$", lines[0])


def test_requirements_come_first_and_unknown_names_are_refused(monkeypatch: pytest.MonkeyPatch, dead_url: str) -> None:
    use_catalogue(monkeypatch, fake_catalogue(dead_url))
    assert [m.name for m in models.resolve_names(["gamma", "alpha", "feat"])] == [
        "feat",
        "gamma",
        "alpha",
    ]
    assert [m.name for m in models.resolve_names(None)] == ["alpha", "beta"]
    assert [m.name for m in models.resolve_names(["all"])] == [
        "alpha",
        "beta",
        "feat",
        "gamma",
    ]
    with pytest.raises(models.UnknownModel, match=r"'nope'.*known: alpha, beta"):
        models.download(["nope"], "/nonexistent", progress=False)


# --------------------------------------------------------------------------- CLI


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    models.add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_download_exit_status(
    server: Server,
    dead_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    publish_upstream(server.root)
    use_catalogue(monkeypatch, fake_catalogue(server.base + "/upstream"))
    dest = tmp_path / "models"

    assert models.run_cli(parse(["--dir", str(dest), "--no-progress"])) == 0
    assert models.run_cli(parse(["alpha", "--dir", str(dest)])) == 0  # all present
    assert "0 downloaded, 1 already present, 0 failed" in capsys.readouterr().out

    use_catalogue(monkeypatch, fake_catalogue(dead_url))
    assert models.run_cli(parse(["gamma", "--dir", str(dest), "--no-progress"])) == 1
    err = capsys.readouterr().err
    assert "openwakeword/feat.onnx from " + dead_url in err
    assert models.run_cli(parse(["--dir", str(dest), "bogus"])) == 2

    mirror = tmp_path / "mirror"
    publish_layout(mirror)
    assert models.run_cli(parse(["gamma", "--dir", str(dest), "--from", str(mirror)])) == 0


def test_cli_list_shows_name_file_size_licence_and_presence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(models.ENV_MODELS_DIR, str(tmp_path))
    (tmp_path / "whisper").mkdir()
    (tmp_path / "whisper/ggml-tiny.en.bin").write_bytes(b"short")

    assert models.run_cli(parse(["--list"])) == 0

    out = capsys.readouterr().out
    rows = {line.split()[1]: line for line in out.splitlines()[1:-2]}
    assert "CC-BY-NC-SA-4.0" in rows["openwakeword/hey_jarvis_v0.1.onnx"]
    assert rows["openwakeword/hey_jarvis_v0.1.onnx"].endswith("no")
    assert rows["whisper/ggml-tiny.en.bin"].startswith("tiny.en ")
    assert rows["whisper/ggml-tiny.en.bin"].endswith("wrong size")
    assert "74.1 MiB" in rows["whisper/ggml-tiny.en.bin"]
    assert rows["openwakeword/alexa_v0.1.onnx"].startswith("alexa ")
    assert out.splitlines()[-2].startswith("default set: openwakeword-features hey_jarvis")
    assert out.splitlines()[-1] == f"models dir: {tmp_path}"


# --------------------------------------------------------------------------- paths


def test_expected_path_resolves_bundled_names(tmp_path: Path) -> None:
    d = tmp_path
    assert models.expected_path(d, "wake", "hey_jarvis") == d / "openwakeword/hey_jarvis_v0.1.onnx"
    assert models.expected_path(d, "wake", "alexa") == d / "openwakeword/alexa_v0.1.onnx"
    assert models.expected_path(d, "wake", "hey_mycroft_v0.1") == (d / "openwakeword/hey_mycroft_v0.1.onnx")
    assert models.expected_path(d, "stt", "tiny.en") == d / "whisper/ggml-tiny.en.bin"
    assert models.expected_path(d, "stt", "ggml-base.en") == d / "whisper/ggml-base.en.bin"
    assert models.expected_path(d, "tts", "en_US-lessac-medium") == (d / "piper/en_US-lessac-medium.onnx")
    assert models.expected_path(d, "vad", "silero_vad") == d / "vad/silero_vad.onnx"
    assert models.expected_path(d, "features", "melspectrogram") == (d / "openwakeword/melspectrogram.onnx")
    assert models.expected_path(d, "wake", "/opt/my_word.onnx") == Path("/opt/my_word.onnx")
    assert models.expected_path(d, "wake", "custom/my_word.onnx") == d / "custom/my_word.onnx"
    assert models.expected_path(d, "wake", "my_word.onnx") == d / "my_word.onnx"
    assert models.expected_path(d, "stt", "ggml-tiny.en.bin") == d / "whisper/ggml-tiny.en.bin"
    assert models.model_paths(d, "en_US-lessac-medium") == [
        d / "piper/en_US-lessac-medium.onnx",
        d / "piper/en_US-lessac-medium.onnx.json",
    ]
    with pytest.raises(models.UnknownModel, match="known: hey_jarvis, alexa"):
        models.expected_path(d, "wake", "ok_google")
    with pytest.raises(models.UnknownModel):
        models.expected_path(d, "stt", "hey_jarvis")
    with pytest.raises(ValueError, match="unknown model kind"):
        models.expected_path(d, "asr", "tiny.en")


def test_default_models_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(models.ENV_MODELS_DIR, str(tmp_path / "m"))
    assert models.default_models_dir() == tmp_path / "m"
    monkeypatch.delenv(models.ENV_MODELS_DIR)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert models.default_models_dir() == tmp_path / ".local/share/assistant/models"


def test_fetch_command_names_the_model_and_the_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(models.ENV_MODELS_DIR, str(tmp_path / "default"))
    default = tmp_path / "default"
    assert models.fetch_command(default / "whisper/ggml-tiny.en.bin") == ("assistant models download tiny.en")
    assert models.fetch_command(default / "piper/en_US-lessac-medium.onnx.json") == (
        "assistant models download en_US-lessac-medium"
    )
    assert models.fetch_command(tmp_path / "my models/openwakeword/embedding_model.onnx") == (
        f"assistant models download openwakeword-features --dir '{tmp_path}/my models'"
    )
    assert models.fetch_command(default / "whisper/ggml-large.bin") is None


# --------------------------------------------------------------------------- the real catalogue


def test_real_catalogue_is_well_formed() -> None:
    assert set(models.DEFAULT_NAMES) <= set(models.CATALOGUE)
    paths = [f.path for m in models.CATALOGUE.values() for f in m.files]
    assert len(paths) == len(set(paths))
    for model in models.CATALOGUE.values():
        assert model.kind in models.KINDS
        assert set(model.requires) <= set(models.CATALOGUE)
        for file in model.files:
            assert re.fullmatch(r"[0-9a-f]{64}", file.sha256), file.path
            assert file.size > 0 and file.licence
            assert file.url.startswith(
                (
                    "https://github.com/dscripka/openWakeWord/releases/download/v0.5.1/",
                    "https://github.com/snakers4/silero-vad/raw/v6",
                    "https://huggingface.co/ggerganov/whisper.cpp/resolve/main/",
                    "https://huggingface.co/rhasspy/piper-voices/resolve/v1.0.0/en/en_US/lessac/",
                    "https://huggingface.co/pipecat-ai/smart-turn-v3/resolve/main/",
                    "https://huggingface.co/rhasspy/piper-voices/resolve/v1.0.0/en/en_US/joe/",
                )
            ), file.url
            assert file.url.endswith("/" + file.path.rsplit("/", 1)[1])


def test_real_pins_match_the_shared_model_files() -> None:
    if not SHARED_MODELS.is_dir():
        pytest.skip(f"no shared models at {SHARED_MODELS}")
    checked = []
    for model in models.CATALOGUE.values():
        for file in model.files:
            local = SHARED_MODELS / file.path
            if not local.is_file():
                continue
            data = local.read_bytes()
            if file.path.endswith(".json") and b"\r\n" in data:
                # The shared Piper config was stored with CRLF line endings; the
                # published file (and the pin) has LF endings.
                data = data.replace(b"\r\n", b"\n")
            assert sha(data) == file.sha256, file.path
            assert len(data) == file.size, file.path
            checked.append(file.path)
    assert "vad/silero_vad.onnx" in checked
    assert "turn/smart-turn-v3.2-cpu.onnx" in checked
    assert "openwakeword/hey_jarvis_v0.1.onnx" in checked
    assert {"piper/en_US-joe-medium.onnx", "piper/en_US-joe-medium.onnx.json"} <= set(checked)
