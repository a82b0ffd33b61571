"""The mute button (a GPIO push button) and the mute flag that survives a restart.

gpiozero calls a button's handler on its own thread; `MuteButton` hops into
the asyncio loop with `call_soon_threadsafe`, so the toggle runs on the loop
like everything else that touches the assistant.  With no GPIO here the
button is disabled after one log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assistant.config import ButtonConfig
from assistant.events import Event, Muted
from assistant.files import write_atomically

logger = logging.getLogger(__name__)


class MuteState:
    """The mute flag in `<state_dir>/muted` ("1" or "0"), written atomically on every change."""

    def __init__(self, state_dir: Path | str) -> None:
        self.path = Path(state_dir).expanduser() / "muted"

    def load(self) -> bool:
        """The saved flag; False when none was saved or it cannot be read."""
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return False
        except OSError as exc:
            logger.warning("cannot read the mute flag %s (%s): starting unmuted", self.path, exc.strerror)
            return False
        if text not in ("0", "1"):
            logger.warning("ignoring the mute flag %s: %r is neither 0 nor 1", self.path, text[:20])
        return text == "1"

    def save(self, muted: bool) -> None:
        """Write the flag (temporary file, fsync, rename): a power cut leaves the old or the new one."""
        try:
            write_atomically(self.path, "1\n" if muted else "0\n")
        except OSError as exc:
            logger.warning("cannot save the mute flag to %s (%s): it will not survive a restart", self.path, exc)

    def __call__(self, event: Event) -> None:
        """Bus subscriber: save the flag on every `muted` event."""
        if isinstance(event, Muted):
            self.save(event.muted)


class MuteButton:
    """A push button on a GPIO pin; each press calls `on_toggle` on the event loop."""

    def __init__(
        self,
        pin: int,
        on_toggle: Callable[[], None],
        *,
        pull_up: bool = True,
        bounce_ms: int = 50,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        from gpiozero import Button

        self._loop = loop or asyncio.get_running_loop()
        self._on_toggle = on_toggle
        self.button: Any = Button(pin, pull_up=pull_up, bounce_time=bounce_ms / 1000 if bounce_ms else None)
        self.button.when_pressed = self._pressed

    def _pressed(self) -> None:
        # gpiozero's thread: hand the toggle to the loop, never run it here.
        logger.debug("mute button pressed")
        with contextlib.suppress(RuntimeError):  # the loop has closed: shutting down
            self._loop.call_soon_threadsafe(self._on_toggle)

    def close(self) -> None:
        """Release the pin."""
        self.button.close()


def build_button(
    cfg: ButtonConfig, on_toggle: Callable[[], None], *, loop: asyncio.AbstractEventLoop | None = None
) -> MuteButton | None:
    """The configured mute button, or None (after one log line) when there is none or no GPIO."""
    if cfg.pin is None:
        return None
    from gpiozero import Device

    reason = "no GPIO on this machine (no /dev/gpiochip*)"
    if os.environ.get("GPIOZERO_PIN_FACTORY") or Device.pin_factory or glob.glob("/dev/gpiochip*"):
        try:
            with warnings.catch_warnings():  # gpiozero warns for each pin factory it falls back from
                warnings.simplefilter("ignore")
                button = MuteButton(cfg.pin, on_toggle, pull_up=cfg.pull_up, bounce_ms=cfg.bounce_ms, loop=loop)
            logger.info("mute button on GPIO%d", cfg.pin)
            return button
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
    logger.warning("mute button disabled (button.pin %d): %s", cfg.pin, reason)
    return None
