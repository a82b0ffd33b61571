"""The ReSpeaker 2-mic (3 LEDs) / 4-mic array (12 LEDs) HAT pixel ring: APA102 LEDs on SPI.

The frame format is written here (no pixel-ring library): a start frame of
32 zero bits, then per LED one byte 0b111 + 5-bit global brightness followed
by blue, green and red, then an end frame.  The bytes go through an injectable
`SpiTransport`, so tests capture them; on a device it is spidev where installed,
else gpiozero's SPI interface (hardware SPI with the lgpio pin factory).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from assistant.config import LedsConfig
from assistant.device.patterns import OFF, RGB, LedDriver, Pattern, animation_text, level_at, scale

SPI_HZ = 8_000_000


def apa102_frame(colors: Sequence[RGB], brightness: float) -> bytes:
    """One frame for `colors` (0..1 each) at a global `brightness` (0..1, sent as 5 bits).

    The end frame gives the n/2 extra clock edges a chain needs to pass data on
    to its last LEDs: 32 zero bits per 64 LEDs (zeros also latch SK9822 clones).
    """
    head = 0xE0 | round(min(1.0, max(0.0, brightness)) * 31)
    body = b"".join(bytes((head, round(b * 255), round(g * 255), round(r * 255))) for r, g, b in colors)
    return bytes(4) + body + bytes(4 * ((len(colors) - 1) // 64 + 1))


@dataclass
class SpiTransport:
    """Where the frames go: injectable, so tests capture the bytes."""

    write: Callable[[bytes], object]
    close: Callable[[], object] = lambda: None


def open_spi(bus: int = 0, device: int = 0) -> SpiTransport:
    """SPI `bus`.`device` (0.0 is the HAT's ring): spidev where installed, else gpiozero's SPI interface."""
    mock = os.environ.get("GPIOZERO_PIN_FACTORY", "").lower() == "mock"
    if not mock and os.path.exists(f"/dev/spidev{bus}.{device}") and importlib.util.find_spec("spidev"):
        spi = importlib.import_module("spidev").SpiDev()
        spi.open(bus, device)
        spi.max_speed_hz = SPI_HZ
        return SpiTransport(spi.writebytes2, spi.close)
    from gpiozero import Device

    Device.ensure_pin_factory()
    interface = Device.pin_factory.spi(port=bus, device=device)
    return SpiTransport(lambda data: interface.write(list(data)), interface.close)


class Apa102Driver(LedDriver):
    """Shows a pattern on every pixel of the ring; pulse and blink are animated on a thread."""

    def __init__(self, spi: SpiTransport, pixels: int, brightness: float, power: Any = None) -> None:
        super().__init__("apa102")
        self._spi, self._pixels, self._brightness, self._power = spi, pixels, brightness, power
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._color, self._animated = OFF, ""

    @classmethod
    def open(cls, cfg: LedsConfig, spi: SpiTransport | None = None) -> Apa102Driver:
        """Switch on the ring's power pin and open SPI 0.0 (or use `spi` as given, with no power pin).

        The 4-mic array (12 pixels) powers its LEDs from GPIO5; `leds.pins.power` names another pin.
        """
        if spi is not None:
            return cls(spi, cfg.pixels, cfg.brightness)
        from gpiozero import LED

        power_pin = cfg.pins.get("power", 5 if cfg.pixels == 12 else None)
        power = LED(power_pin, initial_value=True) if power_pin is not None else None
        try:
            return cls(open_spi(), cfg.pixels, cfg.brightness, power)
        except Exception:
            if power is not None:
                power.close()
            raise

    def _write(self, color: RGB) -> None:
        self._spi.write(apa102_frame([color] * self._pixels, self._brightness))

    def show(self, state: str, pattern: Pattern, color: RGB) -> None:
        self._halt()
        self._color, self._animated = scale(color, pattern.level), ""
        if pattern.mode in ("pulse", "blink"):  # about 30 frames a second
            self._animated, self._stop = animation_text(pattern), threading.Event()
            self._thread = threading.Thread(
                target=self._animate, args=(pattern, color, self._stop), name="leds-apa102", daemon=True
            )
            self._thread.start()
        else:
            self._write(scale(color, level_at(pattern, 0.0)))

    def _animate(self, pattern: Pattern, color: RGB, stop: threading.Event) -> None:
        start = time.monotonic()
        while not stop.is_set():
            self._write(scale(color, level_at(pattern, time.monotonic() - start)))
            stop.wait(1 / 30)

    def _halt(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def describe(self) -> str:
        """The colour sent to every pixel (and the animation), e.g. `#0066ff x3, brightness 16/31`."""
        hexa = "#" + "".join(f"{round(c * 255):02x}" for c in self._color)
        head = round(min(1.0, max(0.0, self._brightness)) * 31)
        return f"{self._animated + ' of ' if self._animated else ''}{hexa} x{self._pixels}, brightness {head}/31"

    def close(self) -> None:
        self._halt()
        try:
            self._write(OFF)
            self._spi.close()
        finally:
            if self._power is not None:
                self._power.close()
