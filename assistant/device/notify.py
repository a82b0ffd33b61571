"""systemd's notify protocol (sd_notify) over $NOTIFY_SOCKET, in plain stdlib.

The unit runs the assistant with `Type=notify` and `WatchdogSec=`: systemd
starts the next unit only after READY=1 (sent once models are loaded and audio
is open), shows STATUS= in `systemctl status`, and kills and restarts the
process when WATCHDOG=1 pings stop arriving.  Outside systemd (a developer's
shell, tests) there is no $NOTIFY_SOCKET and every call is a cheap no-op.

Sending never raises: a lost notification must not take the assistant down
(systemd itself will notice a missing READY or watchdog ping and act on it).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

logger = logging.getLogger(__name__)


def _socket_address(value: str) -> str | bytes | None:
    """The sendto() address for a NOTIFY_SOCKET value, or None if unsupported."""
    if value.startswith("@"):
        # Abstract namespace: a leading NUL byte instead of '@'.
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    # e.g. "vsock:CID:PORT" (systemd >= 254 inside VMs): not needed on a device.
    return None


class SystemdNotifier:
    """Sends READY/STATUS/WATCHDOG/STOPPING to systemd; no-op when not under it."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._env = dict(env)
        self._address: str | bytes | None = None
        self._socket: socket.socket | None = None
        self._warned = False
        raw = self._env.get("NOTIFY_SOCKET", "")
        if not raw:
            logger.debug("no NOTIFY_SOCKET (not under systemd): notifications are off")
            return
        self._address = _socket_address(raw)
        if self._address is None:
            logger.debug("unsupported NOTIFY_SOCKET %r: notifications are off", raw)

    @property
    def enabled(self) -> bool:
        """True when there is a socket to notify."""
        return self._address is not None

    def ready(self) -> bool:
        """Tell systemd start-up is complete (models loaded, audio open)."""
        return self.notify("READY=1")

    def status(self, text: str) -> bool:
        """Set the one-line status `systemctl status` shows."""
        # A newline would start a new assignment: keep the status on one line.
        return self.notify("STATUS=" + " ".join(text.splitlines()))

    def watchdog(self) -> bool:
        """Ping the watchdog: the main loop is alive."""
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        """Tell systemd a clean shutdown has begun."""
        return self.notify("STOPPING=1")

    def watchdog_interval(self) -> float | None:
        """The watchdog timeout in seconds, or None when none applies to us.

        Ping at half this interval or more often.  systemd sets WATCHDOG_PID
        too; when it names another process the watchdog is not ours.
        """
        usec = self._env.get("WATCHDOG_USEC", "")
        try:
            value = int(usec)
        except ValueError:
            if usec:
                logger.warning("ignoring malformed WATCHDOG_USEC=%r", usec)
            return None
        if value <= 0:
            return None
        pid = self._env.get("WATCHDOG_PID", "")
        if pid:
            try:
                if int(pid) != os.getpid():
                    return None
            except ValueError:
                logger.warning("ignoring malformed WATCHDOG_PID=%r", pid)
                return None
        return value / 1_000_000

    def notify(self, *assignments: str) -> bool:
        """Send raw `KEY=value` assignments in one datagram; True when sent."""
        if self._address is None or not assignments:
            return False
        message = "\n".join(assignments).encode()
        try:
            if self._socket is None:
                kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                sock = socket.socket(socket.AF_UNIX, kind)
                # Never block the event loop on a full receive queue.
                sock.setblocking(False)
                self._socket = sock
            self._socket.sendto(message, self._address)
        except OSError as exc:
            # Warn once; after that only at DEBUG so a gone socket cannot flood
            # the journal every watchdog tick.
            level = logging.DEBUG if self._warned else logging.WARNING
            self._warned = True
            logger.log(level, "sd_notify %s failed: %s", assignments[0].split("=")[0], exc)
            return False
        return True

    def close(self) -> None:
        """Close the socket (it reopens on the next send)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
