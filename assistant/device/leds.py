"""Status LEDs: one pattern per state, shown on whatever LED hardware is configured.

`PATTERNS` (in `assistant.device.patterns`) is the pure table (state → steady/pulse/blink, level,
colour); a driver only shows one pattern.  `Leds` follows the bus: the turn state, the mute switch,
an error held `ERROR_HOLD_S`, and "degraded" in place of idle while the primary LLM host is down
(a fallback answers, or none does).  With no GPIO (a laptop, a container, a board gpiozero does not
know) they stay dark after one log line.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from assistant.config import LedsConfig
from assistant.device.patterns import (
    DARK,
    OFF,
    PATTERNS,
    RGB,
    STATES,
    LedDriver,
    Pattern,
    animation_text,
    level_at,
    scale,
)
from assistant.events import (
    DeviceLost,
    DeviceRestored,
    Error,
    Event,
    EventBus,
    LlmHostDown,
    LlmHostUp,
    Muted,
    StateChanged,
)

if TYPE_CHECKING:
    from assistant.device.apa102 import SpiTransport

logger = logging.getLogger(__name__)

ERROR_HOLD_S = 1.5


def _pins(numbers: Sequence[int], values: Sequence[float], animated: str = "") -> str:
    """`pin 17=1.0 pin 27=0.0`, or `pin 17/27/22=pulse(0.8s) ...` while animated."""
    if animated:
        return f"pin {'/'.join(map(str, numbers))}={animated}"
    return " ".join(f"pin {n}={round(float(v), 3)}" for n, v in zip(numbers, values, strict=True))


class PerStateDriver(LedDriver):
    """One plain LED per state (`leds.pins` keyed by state name); a pulse becomes a blink."""

    def __init__(self, pins: Mapping[str, int]) -> None:
        from gpiozero import LED

        if set(pins) - set(STATES):
            logger.warning("leds.pins: %s ignored (per_state names states)", ", ".join(sorted(set(pins) - set(STATES))))
        self._leds: dict[str, Any] = {}
        try:
            self._leds.update((state, LED(pins[state])) for state in STATES if state in pins)
        except Exception:
            self.close()
            raise
        if not self._leds:
            raise ValueError(f"leds.pins names no state; per_state needs some of: {', '.join(STATES)}")
        self._pins, self._lit, self._animated = dict(pins), "", ""

    def show(self, state: str, pattern: Pattern, color: RGB) -> None:
        if state == "degraded" and state not in self._leds:
            state = "idle"  # no LED of its own: the idle LED blinks
        self._lit, self._animated = state, ""
        for name, led in self._leds.items():
            if name != state or pattern.mode == "off" or pattern.level <= 0:
                led.off()
            elif pattern.mode == "steady":
                led.on()
            else:
                led.blink(on_time=pattern.period_s / 2, off_time=pattern.period_s / 2)
                self._animated = animation_text(Pattern("blink", period_s=pattern.period_s))

    def describe(self) -> str:
        return " ".join(
            _pins([self._pins[name]], [led.value], self._animated if name == self._lit else "")
            for name, led in self._leds.items()
        )

    def close(self) -> None:
        for led in self._leds.values():
            led.close()


class DimmableDriver(LedDriver):
    """One PWM LED (`pins.led`) or one RGB LED (`pins` red/green/blue), with gpiozero's pulse()/blink()."""

    def __init__(self, pins: Mapping[str, int], brightness: float, *, rgb: bool) -> None:
        from gpiozero import PWMLED, RGBLED

        names = ("red", "green", "blue") if rgb else ("led",)
        if missing := [name for name in names if name not in pins]:
            raise ValueError(f"leds.pins needs {', '.join(missing)} for kind {'rgb' if rgb else 'pwm'}")
        self._device = RGBLED(*(pins[n] for n in names)) if rgb else PWMLED(pins["led"])
        self._pins = [pins[n] for n in names]
        self._rgb, self._brightness, self._animated = rgb, brightness, ""

    def show(self, state: str, pattern: Pattern, color: RGB) -> None:
        on = scale(color, pattern.level * self._brightness)
        # One plain LED fades up to full duty: gpiozero's pulse()/blink() have no maximum level.
        colour = {"on_color": on} if self._rgb else {}
        half, self._animated = pattern.period_s / 2, ""
        if pattern.mode == "pulse":
            self._device.pulse(fade_in_time=half, fade_out_time=half, **colour)
        elif pattern.mode == "blink":
            self._device.blink(on_time=half, off_time=half, **colour)
        else:
            level = level_at(pattern, 0.0) * self._brightness
            self._device.value = scale(color, level) if self._rgb else min(1.0, level)
            return
        self._animated = animation_text(pattern) + (f" of {tuple(round(c, 3) for c in on)}" if self._rgb else "")

    def describe(self) -> str:
        return _pins(self._pins, self._device.value if self._rgb else [self._device.value], self._animated)

    def close(self) -> None:
        self._device.close()


def build_driver(cfg: LedsConfig, *, spi: SpiTransport | None = None) -> LedDriver:
    """The driver for `leds.kind`, or one that shows nothing (after one log line) when the hardware is not there."""
    if cfg.kind == "none":
        return LedDriver()
    from gpiozero import Device

    reason = "no GPIO on this machine (no /dev/gpiochip*)"
    if spi is not None or os.environ.get("GPIOZERO_PIN_FACTORY") or Device.pin_factory or glob.glob("/dev/gpiochip*"):
        try:
            with warnings.catch_warnings():  # gpiozero warns for each pin factory it falls back from
                warnings.simplefilter("ignore")
                if cfg.kind == "per_state":
                    return PerStateDriver(cfg.pins)
                if cfg.kind in ("pwm", "rgb"):
                    return DimmableDriver(cfg.pins, cfg.brightness, rgb=cfg.kind == "rgb")
                from assistant.device.apa102 import Apa102Driver

                return Apa102Driver.open(cfg, spi)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
    logger.warning("LEDs off (leds.kind %s): %s", cfg.kind, reason)
    return LedDriver(reason)


Timer = Callable[[float, Callable[[], None]], Callable[[], None]]  # (delay, callback) -> cancel


def _default_timer(delay: float, callback: Callable[[], None]) -> Callable[[], None]:
    try:
        return asyncio.get_running_loop().call_later(delay, callback).cancel
    except RuntimeError:  # no event loop in this thread
        timer = threading.Timer(delay, callback)
        timer.daemon = True
        timer.start()
        return timer.cancel


class Leds:
    """Follows state, error and muted events (on `bus` until `close()`) and shows the matching pattern."""

    def __init__(
        self,
        driver: LedDriver,
        colors: Mapping[str, RGB] | None = None,
        *,
        bus: EventBus | None = None,
        error_hold_s: float = ERROR_HOLD_S,
        timer: Timer = _default_timer,
    ) -> None:
        self.driver, self.colors = driver, dict(colors or {})
        self.state, self.muted, self.showing = "idle", False, ""
        self.degraded = False
        self.faults: set[str] = set()  # devices that are away: the error pattern stays until they are back
        self._error_hold_s, self._timer = error_hold_s, timer
        self._cancel_error: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._refresh()
        self._unsubscribe = bus.subscribe(self) if bus is not None else None

    def __call__(self, event: Event) -> None:
        """The bus subscriber."""
        if isinstance(event, StateChanged):
            self.state = event.state
        elif isinstance(event, Muted):
            self.muted = event.muted
        elif isinstance(event, (LlmHostDown, LlmHostUp)):
            if not event.primary:
                return
            self.degraded = isinstance(event, LlmHostDown)
        elif isinstance(event, DeviceLost):
            self.faults.add(event.device)
        elif isinstance(event, DeviceRestored):
            self.faults.discard(event.device)
        elif isinstance(event, Error):
            if self._cancel_error is not None:
                self._cancel_error()
            self._cancel_error = self._timer(self._error_hold_s, self._error_over)
        else:
            return
        self._refresh()

    def _error_over(self) -> None:
        self._cancel_error = None
        self._refresh()

    def current(self) -> str:
        """The pattern to show: an error or a lost device, else muted, else the turn state (idle shown as degraded)."""
        if self._cancel_error is not None or self.faults:
            return "error"
        if self.muted:
            return "muted"
        return "degraded" if self.degraded and self.state == "idle" else self.state

    def _refresh(self) -> None:
        with self._lock:
            name = self.current()
            if name != self.showing:
                pattern = PATTERNS.get(name, PATTERNS["idle"])
                logger.debug("leds: %s", name)
                self.driver.show(name, pattern, self.colors.get(name, pattern.color))
                self.showing = name

    def close(self) -> None:
        """Stop following the bus, turn the LEDs off and release the pins."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._cancel_error is not None:
            self._cancel_error()
        self._unsubscribe = self._cancel_error = None
        with self._lock:
            try:
                self.driver.show("off", DARK, OFF)
            finally:
                self.driver.close()


def build_leds(cfg: LedsConfig, bus: EventBus | None = None, *, spi: SpiTransport | None = None) -> Leds:
    """LEDs as configured, following `bus`: dark, after one log line, where there is no GPIO."""
    return Leds(build_driver(cfg, spi=spi), cfg.colors, bus=bus)


def run_test(cfg: LedsConfig, *, hold_s: float = 1.0, out: Callable[[str], None] = print) -> int:
    """`assistant leds test`: show each state's pattern in turn and print what the outputs were set to."""
    driver = build_driver(cfg)
    if type(driver) is LedDriver:
        out(f"no LEDs to test: {driver.reason}")
        return 1
    out(f"leds.kind {cfg.kind}, brightness {cfg.brightness:g}")
    try:
        for state, pattern in (*PATTERNS.items(), ("off", DARK)):
            driver.show(state, pattern, cfg.colors.get(state, pattern.color))
            out(f"{state:<10} {driver.describe()}")
            time.sleep(hold_s if pattern is not DARK else 0.0)
    finally:
        driver.close()
    return 0
