"""Attaches the appliance's own devices to a built assistant: sounds, LEDs, mute button, saved mute."""

from __future__ import annotations

import contextlib
import logging

from assistant.config import Config
from assistant.core.loop import Loop
from assistant.device.button import MuteButton, MuteState, build_button
from assistant.device.leds import Leds, build_leds
from assistant.device.sounds import load_sounds
from assistant.events import EventBus

logger = logging.getLogger(__name__)


class AttachedDevice(contextlib.ExitStack):
    """The attached devices; closing it (or leaving its `with`) releases them, the LEDs left dark."""

    leds: Leds
    mute: MuteState
    button: MuteButton | None = None


def attach_device(assistant: Loop, bus: EventBus, config: Config, *, sounds: bool = True) -> AttachedDevice:
    """Wire the devices to `assistant` and `bus`; closing the returned stack releases them.

    Call it on the running event loop, before `assistant.run()`: the button
    hands its presses to this loop, and a mute saved before a restart is
    applied at once (so the LEDs show it and the microphone stays muted).
    With `sounds`, the configured feedback sounds are added to
    `assistant.sounds` (ones the caller passed to `build` are kept).
    """
    stack = AttachedDevice()
    try:
        if sounds:
            for name, audio in load_sounds(config.sounds, wake_chime=config.conversation.wake_chime).items():
                assistant.sounds.setdefault(name, audio)
        stack.leds = build_leds(config.leds, bus)
        stack.callback(stack.leds.close)
        stack.mute = MuteState(config.state_path)
        if stack.mute.load():
            logger.info("microphone muted, as it was before the restart (%s)", stack.mute.path)
            assistant.set_muted(True)
        stack.callback(bus.subscribe(stack.mute))
        stack.button = build_button(config.button, lambda: assistant.set_muted(not assistant.muted))
        if stack.button is not None:
            stack.callback(stack.button.close)
    except BaseException:
        stack.close()
        raise
    return stack
