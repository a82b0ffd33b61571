"""How each state looks on the status LEDs, and the driver interface every kind of LED hardware meets.

`PATTERNS` is the pure table (state → steady/pulse/blink, level, colour); a
driver (`LedDriver`) shows one pattern at a time.  The GPIO drivers live in
`assistant.device.leds`, the APA102 pixel ring in `assistant.device.apa102`:
both build on this module, and only `leds` (which picks the driver) imports `apa102`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

RGB = tuple[float, float, float]
OFF: RGB = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Pattern:
    """How one state looks: `level` is 0..1 of `leds.brightness`, `color` the default for rgb/apa102."""

    mode: Literal["off", "steady", "pulse", "blink"]
    level: float = 1.0
    period_s: float = 1.0
    """pulse: one fade in and out; blink: on for half of it, off for the other half."""
    color: RGB = OFF


PATTERNS: dict[str, Pattern] = {
    "idle": Pattern("steady", 0.05, color=(1.0, 1.0, 1.0)),  # a faint glow: powered and waiting
    "listening": Pattern("steady", 1.0, color=(0.0, 0.4, 1.0)),
    "thinking": Pattern("pulse", 1.0, 0.8, color=(0.6, 0.0, 1.0)),
    "speaking": Pattern("pulse", 1.0, 2.0, color=(0.0, 1.0, 0.3)),
    "error": Pattern("blink", 1.0, 0.3, color=(1.0, 0.0, 0.0)),
    "muted": Pattern("steady", 0.4, color=(1.0, 0.1, 0.0)),
    "degraded": Pattern("blink", 0.3, 2.0, color=(1.0, 0.5, 0.0)),  # idle, but the primary LLM host is down
}
STATES = tuple(PATTERNS)
DARK = Pattern("off")


def level_at(pattern: Pattern, t: float) -> float:
    """The pattern's level `t` seconds into it (what an animated driver shows)."""
    if pattern.mode == "pulse":
        return pattern.level * (0.5 - 0.5 * math.cos(2 * math.pi * t / pattern.period_s))
    if pattern.mode == "blink":
        return pattern.level if (t % pattern.period_s) < pattern.period_s / 2 else 0.0
    return pattern.level if pattern.mode == "steady" else 0.0


def scale(color: RGB, factor: float) -> RGB:
    """`color` times `factor`, each channel clamped to 0..1."""
    r, g, b = (min(1.0, max(0.0, c * factor)) for c in color)
    return (r, g, b)


def animation_text(pattern: Pattern) -> str:
    """How `leds test` names a pulse or blink."""
    half = pattern.period_s / 2
    return f"pulse({pattern.period_s:g}s)" if pattern.mode == "pulse" else f"blink({half:g}s/{half:g}s)"


class LedDriver:
    """Shows one pattern at a time on some LED hardware; this base shows nothing (no LEDs)."""

    def __init__(self, reason: str = "leds.kind is none") -> None:
        self.reason = reason

    def show(self, state: str, pattern: Pattern, color: RGB) -> None:
        """Show `pattern` (in `color` where the hardware has colour) until the next call."""

    def describe(self) -> str:
        """What the outputs were set to, for `assistant leds test`."""
        return f"off ({self.reason})"

    def close(self) -> None:
        """Release the pins."""
