"""A running `assistant run` loses its sound devices and gets them back, for real, through PulseAudio.

The null sink (the speaker, and through its monitor the microphone) is unloaded
under the running process and loaded again; the wake word must work afterwards,
the watchdog must be fed meanwhile, systemd's STATUS must say what happened, and
the metrics must count the reconnect.  The speaker-side fakes test the link's
stand-ins without devices.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.audio.clock import SampleClock
from assistant.audio.devices import AudioDeviceError
from assistant.audio.recovery import AudioLink, Backoff
from assistant.core.errors import AudioDeviceLost, DeviceFault, FatalError
from assistant.core.ports import BLOCK_SAMPLES
from assistant.events import DeviceLost, DeviceRestored, Event, EventBus, StateChanged
from assistant.selftest import stored_wake_sample
from assistant.testing.ollama_server import OllamaTestServer
from tests.conftest import ROOT
from tests.test_audio_devices import pulse
from tests.test_metrics import samples, value
from tests.test_run_with_server import free_port

__all__ = ["pulse"]
TIMEOUT_S = 60.0


def test_runtime_faults_are_not_fatal() -> None:
    assert issubclass(AudioDeviceError, FatalError)  # at start-up, for one-shot commands: exit 78
    assert issubclass(AudioDeviceLost, DeviceFault) and not issubclass(AudioDeviceLost, FatalError)


def test_backoff_doubles_up_to_its_limit() -> None:
    backoff = Backoff(0.5, 3.0)
    assert [backoff.next() for _ in range(6)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next() == 0.5


class FakeMic:
    """A microphone that fails after `fail_after` blocks (a device that goes away)."""

    def __init__(self, clock: SampleClock, fail_after: int | None) -> None:
        self.clock, self.fail_after, self.closed = clock, fail_after, False

    async def blocks(self) -> Any:
        n = 0
        while True:
            if self.fail_after is not None and n >= self.fail_after:
                raise AudioDeviceLost("microphone 'fake' failed: [Errno -9999] Unanticipated host error")
            n += 1
            await asyncio.sleep(0)
            self.clock.advance(BLOCK_SAMPLES)
            yield np.full(BLOCK_SAMPLES, 0.25, np.float32)

    def close(self) -> None:
        self.closed = True


async def test_link_yields_silence_while_the_microphone_is_away_and_reconnects() -> None:
    clock, bus = SampleClock(), EventBus()
    seen: list[Event] = []
    bus.subscribe(seen.append)
    attempts: list[float] = []
    mics = iter([FakeMic(clock, 3), None, None, FakeMic(clock, None)])

    def open_mic() -> FakeMic:
        attempts.append(time.monotonic())
        mic = next(mics)
        if mic is None:
            raise AudioDeviceError("no input device matching 'fake'")
        return mic

    link = AudioLink({"microphone": open_mic}, {"microphone": "fake"}, clock, bus, initial_s=0.05, max_s=0.2)
    link.open()
    levels: list[float] = []
    async with asyncio.timeout(10):
        async for block in link.mic.blocks():
            levels.append(float(block[0]))
            if [e.type for e in seen][-1:] == ["device_restored"] and levels[-1] > 0:
                break
    link.close()
    assert [e.type for e in seen] == ["error", "device_lost", "device_restored"]
    assert levels[:3] == [0.25] * 3 and 0.0 in levels  # the device's blocks, then silence, then the device again
    assert clock.now() == pytest.approx(len(levels) * BLOCK_SAMPLES / 16000)
    gaps = np.diff(attempts[1:])  # retries after 0.05, 0.1, 0.2 s
    assert len(attempts) == 4 and gaps[1] > gaps[0]


def test_run_carries_on_after_the_sink_is_unloaded_and_reloaded(pulse: str, models_dir: Path, tmp_path: Path) -> None:
    sample = stored_wake_sample("hey_jarvis")
    assert sample is not None
    metrics_port = free_port()
    with tempfile.TemporaryDirectory(prefix="notify-") as short, OllamaTestServer(models=["test-model"]) as ollama:
        notify_path = str(Path(short) / "notify.sock")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        notify.settimeout(0.5)
        config = tmp_path / "run.yaml"
        config.write_text(
            json.dumps(
                {
                    "models_dir": str(models_dir),
                    "state_dir": str(tmp_path / "state"),
                    "audio": {
                        "input_device": "pulse",
                        "output_device": "pulse",
                        "reconnect_initial_s": 0.5,
                        "reconnect_max_s": 2.0,
                    },
                    "wake": {"models": ["hey_jarvis"]},
                    "vad": {"no_speech_timeout_s": 1.0},
                    "stt": {"model": str(models_dir / "whisper/ggml-tiny.en-real.bin")},
                    "tts": {"voice": str(models_dir / "piper/en_US-joe-medium.onnx")},
                    "llm": {"host": ollama.url, "model": "test-model", "timeout_s": 5},
                    "metrics": {"enabled": True, "port": metrics_port},
                }
            ),
            encoding="utf-8",
        )
        env = {**os.environ, "NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "1000000"}
        process = subprocess.Popen(
            [sys.executable, "-m", "assistant", "run", "--config", str(config), "--events", "-"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        events, notes = _lines(process), _datagrams(notify)
        keeper: subprocess.Popen[bytes] | None = None
        try:
            _wait(events, lambda e: e["type"] == "state")
            _play(pulse, sample)
            _wait(events, lambda e: e["type"] == "wake")
            _wait(events, lambda e: e["type"] == "state" and e["state"] == "idle")

            _pactl(pulse, "unload-module", _null_sink_module(pulse))
            lost = _wait(events, lambda e: e["type"] == "device_lost" and e["device"] == "microphone")
            assert lost["name"] == "pulse" and lost["retry_in_s"] == 0.5
            _wait(notes, lambda n: n.startswith("STATUS=degraded: microphone 'pulse' lost"))
            for _ in range(3):  # pinged every 0.5 s while the microphone is away
                _wait(notes, lambda n: n == "WATCHDOG=1", timeout=5)

            _pactl(pulse, "load-module", "module-null-sink", "sink_name=assistant_test", "rate=48000")
            _pactl(pulse, "set-default-source", "assistant_test.monitor")
            keeper = subprocess.Popen(
                ["parec", f"--server={pulse}", "--latency-msec=20", "-d", "assistant_test.monitor"],
                stdout=subprocess.DEVNULL,
            )
            back = _wait(events, lambda e: e["type"] == "device_restored" and e["device"] == "microphone")
            assert back["down_s"] > 0
            _wait(notes, lambda n: n.startswith("STATUS=state: microphone 'pulse' back"))
            _play(pulse, sample)
            wake = _wait(events, lambda e: e["type"] == "wake")
            assert wake["model"] == "hey_jarvis" and wake["score"] >= 0.5
            body = _scrape(metrics_port)
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
            print(stderr)  # shown when the test fails
            notify.close()
            if keeper is not None:
                keeper.terminate()
                keeper.wait(timeout=10)
    parsed = samples(body)
    assert value(parsed, "assistant_wakes_total", model="hey_jarvis") == 2
    assert value(parsed, "assistant_device_reconnects_total", device="microphone") >= 1
    assert value(parsed, "assistant_device_up", device="microphone") == 1
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "microphone 'pulse' lost" in stderr and "is back after" in stderr


def _lines(process: subprocess.Popen[str]) -> queue.Queue[dict[str, Any]]:
    out: queue.Queue[dict[str, Any]] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            out.put(json.loads(line))

    threading.Thread(target=read, daemon=True).start()
    return out


def _datagrams(sock: socket.socket) -> queue.Queue[str]:
    out: queue.Queue[str] = queue.Queue()

    def read() -> None:
        while True:
            try:
                data = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:  # closed at the end of the test
                return
            for line in data.decode().splitlines():
                out.put(line)

    threading.Thread(target=read, daemon=True).start()
    return out


def _wait(items: queue.Queue[Any], match: Callable[[Any], bool], timeout: float = TIMEOUT_S) -> Any:
    """The first item (consumed in order) that matches, within `timeout` seconds."""
    deadline, skipped = time.monotonic() + timeout, []
    while (left := deadline - time.monotonic()) > 0:
        try:
            item = items.get(timeout=left)
        except queue.Empty:
            break
        if match(item):
            return item
        skipped.append(item)
    raise AssertionError(f"nothing matched within {timeout} s; seen meanwhile: {skipped[-20:]}")


def _pactl(server: str, *args: str) -> str:
    done = subprocess.run(["pactl", f"--server={server}", *args], capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _null_sink_module(server: str) -> str:
    modules = _pactl(server, "list", "short", "modules").splitlines()
    return next(line.split()[0] for line in modules if "module-null-sink" in line)


def _play(server: str, wav: Path) -> None:
    subprocess.run(["paplay", f"--server={server}", "-d", "assistant_test", str(wav)], check=True, timeout=30)


def _scrape(port: int) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text: str = response.read().decode()
        return text


def test_leds_show_the_error_pattern_while_a_device_is_away() -> None:
    from assistant.device.leds import LedDriver, Leds, Pattern

    shown: list[str] = []

    class Recording(LedDriver):
        def show(self, state: str, pattern: Pattern, color: tuple[float, float, float]) -> None:
            shown.append(state)

    bus = EventBus()
    leds = Leds(Recording(), bus=bus)
    bus.publish(DeviceLost(1.0, "microphone", "pulse", "gone", 1.0))
    bus.publish(StateChanged(1.5, "listening", "idle"))  # a turn goes on: the fault still shows
    assert shown == ["idle", "error"]
    bus.publish(DeviceRestored(2.0, "microphone", "pulse", 1.0))
    assert shown == ["idle", "error", "listening"]
    leds.close()
