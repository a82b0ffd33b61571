"""sd_notify over a real AF_UNIX datagram socket, as systemd listens for it."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.device.notify import SystemdNotifier


def _receiver(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2.0)
    return sock


@pytest.fixture
def path_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    # A short directory: AF_UNIX paths are limited to 107 bytes.
    with tempfile.TemporaryDirectory(prefix="notify-") as tmp:
        path = str(Path(tmp) / "notify.sock")
        sock = _receiver(path)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        try:
            yield sock
        finally:
            sock.close()


@pytest.fixture
def abstract_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    name = f"assistant-test-{uuid.uuid4().hex}"
    sock = _receiver(b"\0" + name.encode())
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    try:
        yield sock
    finally:
        sock.close()


@pytest.mark.parametrize("fixture", ["path_socket", "abstract_socket"])
def test_messages_arrive(fixture: str, request: pytest.FixtureRequest) -> None:
    sock: socket.socket = request.getfixturevalue(fixture)
    notifier = SystemdNotifier()
    assert notifier.enabled
    try:
        assert notifier.ready()
        assert sock.recv(4096) == b"READY=1"
        assert notifier.status("listening for hey jarvis")
        assert sock.recv(4096) == b"STATUS=listening for hey jarvis"
        assert notifier.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
        assert notifier.stopping()
        assert sock.recv(4096) == b"STOPPING=1"
    finally:
        notifier.close()


def test_status_stays_on_one_line(path_socket: socket.socket) -> None:
    notifier = SystemdNotifier()
    notifier.status("error:\nmodel missing")
    assert path_socket.recv(4096) == b"STATUS=error: model missing"
    notifier.close()


def test_several_assignments_in_one_datagram(path_socket: socket.socket) -> None:
    notifier = SystemdNotifier()
    assert notifier.notify("READY=1", "STATUS=ready")
    assert path_socket.recv(4096) == b"READY=1\nSTATUS=ready"
    notifier.close()


def test_no_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    with caplog.at_level(logging.DEBUG, logger="assistant.device.notify"):
        notifier = SystemdNotifier()
        assert not notifier.enabled
        assert not notifier.ready()
        assert not notifier.status("x")
        assert not notifier.watchdog()
        assert not notifier.stopping()
    assert len(caplog.records) == 1
    assert caplog.records[0].levelno == logging.DEBUG


def test_unsupported_address_is_a_no_op() -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not notifier.enabled
    assert not notifier.ready()


def test_send_error_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    with tempfile.TemporaryDirectory(prefix="notify-") as tmp:
        notifier = SystemdNotifier({"NOTIFY_SOCKET": str(Path(tmp) / "gone.sock")})
        with caplog.at_level(logging.DEBUG, logger="assistant.device.notify"):
            assert not notifier.ready()
            assert not notifier.watchdog()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # the second failure only logs at DEBUG
    notifier.close()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "500000"}, 0.5),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "{pid}"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "{other}"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "me"}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    pid = os.getpid()
    filled = {k: v.format(pid=pid, other=pid + 1) for k, v in env.items()}
    assert SystemdNotifier(filled).watchdog_interval() == expected


def test_watchdog_interval_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert SystemdNotifier().watchdog_interval() == 30.0
