"""LEDs per state on every driver, the mute button and saved mute, sounds (gpiozero's mock pins, per test)."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import Mock

import numpy as np
import pytest

from assistant import config as config_module
from assistant.app import build
from assistant.audio.wav import write_wav
from assistant.config import LedsConfig, SoundsConfig
from assistant.core.ports import BLOCK_SAMPLES, SAMPLE_RATE
from assistant.device.apa102 import SpiTransport, apa102_frame
from assistant.device.button import MuteState, build_button
from assistant.device.leds import PATTERNS, Leds, Pattern, build_driver, build_leds, level_at
from assistant.device.sounds import NAMES, load_sounds, synthesize
from assistant.device.wiring import attach_device
from assistant.engines.bundle import Engines
from assistant.engines.llm_chain import build_llm
from assistant.events import Error, EventBus, LlmHostDown, LlmHostUp, Muted, StateChanged
from tests.conftest import ROOT, concat

PINS = {"idle": 5, "listening": 6, "thinking": 13, "speaking": 19, "error": 26, "muted": 21}
PER_STATE = LedsConfig(kind="per_state", pins=PINS)
MOCK_ENV = {"GPIOZERO_PIN_FACTORY": "mock", "GPIOZERO_MOCK_PIN_CLASS": "mockpwmpin"}


@pytest.fixture
def pin(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], Any]]:
    """gpiozero's mock pin factory for this test; yields `pin(n)`, the mock pin n."""
    from gpiozero import Device

    for key, value in MOCK_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(Device, "pin_factory", None)
    Device.ensure_pin_factory()
    factory = Device.pin_factory
    yield factory.pin
    factory.reset()


def wait_for(check: Callable[[], bool], timeout: float = 2.0) -> bool:
    """Poll `check` (a gpiozero thread is changing pins) until it holds or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def test_pattern_table_is_pure() -> None:
    assert set(PATTERNS) == {"idle", "listening", "thinking", "speaking", "error", "muted", "degraded"}
    pulse, blink = Pattern("pulse", 0.8, 2.0), Pattern("blink", 1.0, 0.4)
    assert level_at(pulse, 0.0) == 0.0 and level_at(pulse, 1.0) == pytest.approx(0.8)
    assert level_at(blink, 0.1) == 1.0 and level_at(blink, 0.3) == 0.0
    assert level_at(Pattern("steady", 0.3), 12.0) == 0.3 and level_at(Pattern("off"), 0.0) == 0.0


def test_per_state_leds_follow_state_error_and_mute(pin: Callable[[int], Any]) -> None:
    pending: list[Callable[[], None]] = []  # the error hold, fired by hand: no waiting on the wall clock

    def timer(delay: float, callback: Callable[[], None]) -> Callable[[], None]:
        pending.append(callback)
        return pending.clear

    bus = EventBus()
    leds = Leds(build_driver(PER_STATE), bus=bus, timer=timer)
    lit: Callable[[], set[str]] = lambda: {s for s, n in PINS.items() if pin(n).state}  # noqa: E731
    assert lit() == {"idle"}
    bus.publish(StateChanged(0.0, "listening", "idle"))
    assert lit() == {"listening"}
    bus.publish(StateChanged(1.0, "thinking", "listening"))  # pulse → blink on a plain LED
    assert wait_for(lambda: lit() == {"thinking"}) and wait_for(lambda: lit() == set())
    bus.publish(Error(2.0, "llm_unreachable", "down"))
    assert leds.showing == "error" and wait_for(lambda: lit() == {"error"})
    bus.publish(StateChanged(2.5, "speaking", "thinking"))
    assert leds.showing == "error", "the error is held for a moment"
    pending[0]()
    assert leds.showing == "speaking" and wait_for(lambda: lit() == {"speaking"})
    bus.publish(Muted(3.0, True))
    assert lit() == {"muted"}
    bus.publish(Muted(3.5, False))
    bus.publish(StateChanged(4.0, "idle", "speaking"))
    assert lit() == {"idle"}
    leds.close()
    bus.publish(StateChanged(5.0, "listening", "idle"))  # no longer subscribed
    assert lit() == set()


def test_degraded_pattern_while_the_primary_llm_host_is_down(pin: Callable[[int], Any]) -> None:
    bus = EventBus()
    leds = Leds(build_driver(PER_STATE), bus=bus)
    lit: Callable[[], set[str]] = lambda: {s for s, n in PINS.items() if pin(n).state}  # noqa: E731
    bus.publish(LlmHostDown(0.0, "http://fallback:11434", "llama3.2:1b", "llm_unreachable", primary=False))
    assert leds.showing == "idle", "a fallback host going down is not degraded service"
    bus.publish(LlmHostDown(0.5, "http://server:11434", "llama3.1:8b", "llm_unreachable", primary=True))
    assert leds.showing == "degraded"
    assert wait_for(lambda: lit() == {"idle"}) and wait_for(lambda: lit() == set()), "the idle LED blinks"
    bus.publish(StateChanged(1.0, "listening", "idle"))
    assert leds.showing == "listening" and lit() == {"listening"}, "a turn shows its own states"
    bus.publish(StateChanged(2.0, "idle", "listening"))
    assert leds.showing == "degraded"
    bus.publish(LlmHostUp(3.0, "http://server:11434", "llama3.1:8b", primary=True))
    assert leds.showing == "idle" and lit() == {"idle"}
    leds.close()


def test_pwm_led_levels_pulse_and_blink(pin: Callable[[int], Any]) -> None:
    leds = build_leds(LedsConfig(kind="pwm", pins={"led": 18}, brightness=0.5))
    led = pin(18)
    assert led.state == pytest.approx(0.025)  # idle: a faint glow
    leds(StateChanged(0.0, "listening", "idle"))
    assert led.state == pytest.approx(0.5) and led.frequency is not None
    leds(StateChanged(0.0, "thinking", "listening"))
    assert wait_for(lambda: 0.1 < led.state < 0.9), "pulse() fades through intermediate levels"
    leds(Muted(0.0, True))
    assert led.state == pytest.approx(0.2)
    leds.close()
    assert led.state == 0.0 and led.frequency is None


def test_rgb_led_colour_per_state_with_overrides(pin: Callable[[int], Any]) -> None:
    cfg = LedsConfig(kind="rgb", pins={"red": 17, "green": 27, "blue": 22}, brightness=1.0,
                     colors={"muted": (1.0, 0.0, 1.0)})  # fmt: skip
    leds = build_leds(cfg)
    rgb: Callable[[], tuple[float, ...]] = lambda: tuple(round(pin(n).state, 3) for n in (17, 27, 22))  # noqa: E731
    leds(StateChanged(0.0, "listening", "idle"))
    assert rgb() == (0.0, 0.4, 1.0)
    leds(Muted(0.0, True))
    assert rgb() == (0.4, 0.0, 0.4)  # the configured colour at the muted level
    leds(Error(0.0, "x", "y"))
    assert wait_for(lambda: rgb() == (1.0, 0.0, 0.0)) and wait_for(lambda: rgb() == (0.0, 0.0, 0.0))
    leds.close()


def test_apa102_frames_are_the_bytes_on_the_wire(pin: Callable[[int], Any]) -> None:
    frames: list[bytes] = []
    leds = build_leds(LedsConfig(kind="apa102", pixels=3, brightness=0.5), spi=SpiTransport(frames.append))
    leds(StateChanged(0.0, "listening", "idle"))
    pixel = bytes((0xE0 | 16, 0xFF, 0x66, 0x00))  # 0b111 + brightness 16/31, then B, G, R
    assert frames[-1] == bytes(4) + pixel * 3 + bytes(4)
    leds(StateChanged(0.0, "thinking", "listening"))  # animated: frames keep coming, levels change
    assert wait_for(lambda: len({f[5:8] for f in frames[2:]}) >= 3)
    leds.close()
    assert frames[-1] == bytes(4) + bytes((0xE0 | 16, 0, 0, 0)) * 3 + bytes(4)
    assert len(apa102_frame([(1.0, 1.0, 1.0)] * 100, 1.0)) == 4 + 400 + 8  # n/2 end clocks past 64 LEDs
    assert apa102_frame([(1.0, 0.0, 0.0)], 0.0)[4:8] == bytes((0xE0, 0, 0, 0xFF))
    leds = build_leds(LedsConfig(kind="apa102", pixels=12))  # the 4-mic array, on gpiozero's (mock) SPI
    assert pin(5).state, "GPIO5 switches the 4-mic array's LEDs on"
    leds(StateChanged(0.0, "listening", "idle"))
    assert "#0066ff x12" in leds.driver.describe()
    leds.close()
    assert not pin(5).state


def test_no_gpio_means_dark_leds_and_one_log_line(monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    from gpiozero import Device
    from gpiozero.exc import BadPinFactory

    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.setattr("glob.glob", lambda pattern: ["/dev/gpiochip0"])  # claim a chip...

    def no_factory() -> None:
        raise BadPinFactory("Unable to load any default pin factory!")

    monkeypatch.setattr(Device, "_default_pin_factory", staticmethod(no_factory))  # ...that none can drive
    pins = {"per_state": PINS, "pwm": {"led": 18}, "rgb": {"red": 17, "green": 27, "blue": 22}, "apa102": {}}
    for kind, kind_pins in pins.items():
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            leds = build_leds(LedsConfig(kind=kind, pins=kind_pins))  # type: ignore[arg-type]
            leds(StateChanged(0.0, "listening", "idle"))
            leds(Error(0.0, "x", "y"))
            leds.close()
        records = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(records) == 1 and "BadPinFactory" in records[0].getMessage(), kind
    monkeypatch.setattr("glob.glob", lambda pattern: [])
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        build_leds(PER_STATE).close()
        assert build_button(config_module.ButtonConfig(pin=17), lambda: None) is None
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "LEDs off (leds.kind per_state)", "mute button disabled (button.pin 17)"]  # fmt: skip


def test_leds_test_command_prints_each_state_and_its_pins(tmp_path: Path) -> None:
    def leds_test(*sets: str, mock: bool = True) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPIOZERO_")} | (MOCK_ENV if mock else {})
        command = [sys.executable, "-m", "assistant", "leds", "test", "--hold", "0"]
        command += [arg for item in sets for arg in ("--set", item)]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    done = leds_test("leds.kind=per_state", "leds.pins={listening: 17, thinking: 27}")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1:3] == ["idle       pin 17=0.0 pin 27=0.0", "listening  pin 17=1.0 pin 27=0.0"]
    assert lines[3] == "thinking   pin 17=0.0 pin 27=blink(0.4s/0.4s)"
    assert [line.split()[0] for line in lines[1:]] == [*PATTERNS, "off"]
    done = leds_test("leds.kind=apa102", "leds.pixels=3")
    assert "listening  #0066ff x3, brightness 16/31" in done.stdout, done.stderr
    if not any(Path("/dev").glob("gpiochip*")):
        done = leds_test("leds.kind=pwm", "leds.pins={led: 18}", mock=False)
        assert done.returncode == 1 and "no LEDs to test" in done.stdout and "Traceback" not in done.stderr


async def test_led_patterns_over_a_scenario_run(
    pin: Callable[[int], Any], test_config: Path, speech: dict[str, Path], tmp_path: Path
) -> None:
    """The real engines on a WAV (the LLM down: an error, then the spoken apology), LEDs on mock pins."""
    wav = concat(tmp_path / "in.wav", speech["wake_and_question"], speech["silence_4"])
    config = config_module.load([test_config], ["llm.host=http://127.0.0.1:9"])
    seen: list[tuple[str, set[str], bool]] = []
    with build(config, input_wav=wav, output_wav=tmp_path / "out.wav", fast=True) as runtime:
        loop = asyncio.get_running_loop()  # the error shows until the loop's next turn: later states are seen too
        leds = Leds(build_driver(PER_STATE), bus=runtime.bus, timer=lambda _, cb: loop.call_soon(cb).cancel)

        def snapshot(event: Any) -> None:
            if event.type in ("state", "error", "muted"):
                showing, others = leds.showing, {s for s in PINS if s != leds.showing}
                lit = wait_for(lambda: bool(pin(PINS[showing]).state), 0.5)  # blinks start lit
                seen.append((showing, {s for s in others if pin(PINS[s]).state}, lit))

        runtime.bus.subscribe(snapshot)
        await runtime.assistant.run()
        leds.close()
    assert {name for name, _, _ in seen} == {"idle", "listening", "thinking", "speaking", "error"}
    assert all(lit and not others for _, others, lit in seen), seen


async def run_once(config: config_module.Config, wav: Path, out: Path, press: Callable[[], None] | None = None) -> Any:
    """Build the assistant on fakes, attach the devices, maybe press the button, run the WAV through."""
    wake = Mock(**{"process.return_value": None})  # a wake-word engine that never fires: counts its blocks
    engines = Engines(wake=wake, vad=Mock(), stt=None, llm=build_llm(config.llm), tts=None)
    with build(config, input_wav=wav, output_wav=out, fast=True, engines=engines) as runtime:
        with attach_device(runtime.assistant, runtime.bus, config) as device:
            muted_at_start = runtime.assistant.muted
            if press is not None:
                toggled = asyncio.Event()
                runtime.bus.subscribe(lambda event: toggled.set() if event.type == "muted" else None)
                await asyncio.to_thread(press)  # as gpiozero would: from another thread
                await asyncio.wait_for(toggled.wait(), 2.0)
            muted_led = bool(device.leds.driver.describe().endswith("pin 21=1.0"))
            await runtime.assistant.run()
        return muted_at_start, runtime.assistant.muted, wake.process.call_count, muted_led


async def test_button_mutes_the_microphone_and_the_mute_survives_a_restart(
    pin: Callable[[int], Any], tmp_path: Path, caplog: Any
) -> None:
    wav = tmp_path / "in.wav"
    write_wav(wav, np.zeros(SAMPLE_RATE * 2, np.float32))
    config = config_module.load(overrides=[
        f"state_dir={tmp_path / 'state'}", "button.pin=17", "button.bounce_ms=0", "leds.kind=per_state",
        "turn.mode=silence",  # fake engines: no end-of-turn model
        "leds.pins={idle: 5, muted: 21}"])  # fmt: skip
    button = pin(17)

    def press() -> None:
        button.drive_low()  # pull-up: pressed pulls the pin low
        button.drive_high()

    start, muted, blocks, led = await run_once(config, wav, tmp_path / "1.wav", press)
    assert (start, muted, blocks, led) == (False, True, 0, True), "muted: the wake-word engine hears nothing"
    assert (tmp_path / "state" / "muted").read_text() == "1\n"
    start, muted, blocks, led = await run_once(config, wav, tmp_path / "2.wav")  # a restart
    assert (start, muted, blocks, led) == (True, True, 0, True), "the mute survives a restart"
    start, muted, blocks, _ = await run_once(config, wav, tmp_path / "3.wav", press)  # unmute
    assert (start, muted) == (True, False) and blocks > 0
    assert (tmp_path / "state" / "muted").read_text() == "0\n"
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["muted"], "no temporary files left"
    (tmp_path / "state" / "muted").write_text("maybe")
    assert MuteState(tmp_path / "state").load() is False
    MuteState(tmp_path / "state" / "muted").save(True)  # its parent is a file: logged, not raised
    assert "will not survive a restart" in caplog.text


def test_sounds_enabled_by_config() -> None:
    assert set(load_sounds(SoundsConfig())) == {"error", "mute_on", "mute_off", "ring"}
    assert "wake" in load_sounds(SoundsConfig(), wake_chime=True)
    assert set(load_sounds(SoundsConfig(wake=True, end_of_listening=True))) == set(NAMES)
    assert load_sounds(SoundsConfig(error=False, mute_on=False, mute_off=False, ring=False)) == {}
    for name in NAMES:
        sound = synthesize(name, 0.3)
        longest_s = 1.5 if name == "ring" else 0.35  # a ring is meant to be noticed; feedback is brief
        assert sound.dtype == np.float32 and 0.1 <= len(sound) / SAMPLE_RATE <= longest_s, name
        assert np.max(np.abs(sound)) == pytest.approx(0.3, abs=1e-3) and abs(sound[0]) + abs(sound[-1]) < 1e-3


@pytest.mark.parametrize("name", NAMES)
def test_sounds_are_not_speech_to_the_vad(name: str, models_dir: Path) -> None:
    from assistant.engines.vad import SileroVad

    vad = SileroVad(models_dir / "vad" / "silero_vad.onnx")
    rng = np.random.default_rng(7)
    for volume, noise_rms, lead in [(0.5, 0.0, 8000), (1.0, 0.0, 8640), (0.5, 0.01, 8000), (1.0, 0.03, 8320)]:
        sound = synthesize(name, volume)
        signal = np.concatenate([np.zeros(lead, np.float32), sound, np.zeros(8000, np.float32)])
        if noise_rms:  # played into a room with a little fan or street noise: pink noise
            spectrum = np.fft.rfft(rng.standard_normal(len(signal)))
            noise = np.fft.irfft(spectrum / np.sqrt(np.maximum(np.arange(len(spectrum)), 1)), len(signal))
            signal = signal + (noise / np.sqrt(np.mean(noise**2)) * noise_rms).astype(np.float32)
        vad.reset()
        blocks = range(0, len(signal) - BLOCK_SAMPLES + 1, BLOCK_SAMPLES)
        worst = max(vad.process(signal[i : i + BLOCK_SAMPLES]) for i in blocks)
        assert worst < 0.5, f"{name} at volume {volume}, noise {noise_rms}: speech probability {worst:.2f}"
