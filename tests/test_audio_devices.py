"""The pyaudio microphone and speaker, for real, through a PulseAudio null sink.

A private PulseAudio daemon (its own runtime dir, a null sink whose monitor is
the default source) runs for this module; PortAudio reaches it through ALSA's
pulse plugin (libasound2-plugins).  The speaker plays into the sink while the
microphone records the sink's monitor, both in real time.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest

from assistant.audio.clock import SampleClock
from assistant.audio.devices import (
    AudioDeviceError,
    DropOldestQueue,
    PyAudioMicrophone,
    PyAudioSpeaker,
    find_device,
    list_devices,
)
from assistant.core.errors import FatalError
from assistant.core.ports import BLOCK_SAMPLES, SAMPLE_RATE, Audio
from tests.conftest import missing

PULSE_CONFIG = """\
load-module module-native-protocol-unix auth-anonymous=1 socket={socket}
load-module module-null-sink sink_name=assistant_test rate=48000
set-default-sink assistant_test
set-default-source assistant_test.monitor
"""
ASOUNDRC = "pcm.!default { type pulse }\nctl.!default { type pulse }\n"


def _pid_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped by init) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _discard(stream: IO[bytes]) -> None:
    while stream.read(65536):
        pass


@pytest.fixture(scope="module")
def pulse() -> Iterator[str]:
    """Start a private PulseAudio daemon with a null sink; yield its server address."""
    exe, parec, pactl = shutil.which("pulseaudio"), shutil.which("parec"), shutil.which("pactl")
    if exe is None or parec is None or pactl is None:
        missing("no pulseaudio/pactl/parec: install Debian's pulseaudio and pulseaudio-utils")
    assert exe is not None and parec is not None and pactl is not None  # `missing` does not return
    if not glob.glob("/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so"):
        missing("no ALSA pulse plugin: install Debian's libasound2-plugins")
    root = Path(tempfile.mkdtemp(prefix="pulse-"))
    socket = root / "native"
    (root / "default.pa").write_text(PULSE_CONFIG.format(socket=socket))
    (root / "asound.conf").write_text(ASOUNDRC)
    env = {
        **os.environ,
        "HOME": str(root),
        "XDG_CONFIG_HOME": str(root / "config"),
        "PULSE_RUNTIME_PATH": str(root / "run"),
        "PULSE_STATE_PATH": str(root / "state"),
    }
    server = f"unix:{socket}"
    # --daemonize returns once the daemon is ready; as root --system=false keeps it a user daemon.
    started = subprocess.run(
        [
            exe,
            "-n",
            "-F",
            str(root / "default.pa"),
            "--daemonize=yes",
            "--system=false",
            "--exit-idle-time=-1",
            "--use-pid-file=yes",
            f"--log-target=file:{root / 'pulse.log'}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if started.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        missing(f"pulseaudio did not start: {started.stderr.strip()[-500:]}")
    pid = int((root / "run" / "pid").read_text())
    (root / "client.conf").write_text("autospawn = no\n")
    patch = pytest.MonkeyPatch()  # what this process's PulseAudio clients (the ALSA plugin) read
    keeper: subprocess.Popen[bytes] | None = None
    try:
        for var, value in {
            "PULSE_SERVER": server,
            "PULSE_CLIENTCONFIG": str(root / "client.conf"),
            "PULSE_COOKIE": str(root / "cookie"),
            "PULSE_RUNTIME_PATH": env["PULSE_RUNTIME_PATH"],
            "ALSA_CONFIG_PATH": f"/usr/share/alsa/alsa.conf:{root / 'asound.conf'}",
        }.items():
            patch.setenv(var, value)
        # A null sink idles with 2 s timer blocks and only takes a stream's low
        # latency at its next wake-up: a low-latency recorder held open for the
        # whole module keeps it responsive.  Its first bytes say the sink is live.
        keeper = subprocess.Popen(
            [parec, f"--server={server}", "--latency-msec=20", "-d", "assistant_test.monitor"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert keeper.stdout is not None
        for suspend in ("1", "0"):  # a resumed sink restarts its timer at the low latency
            subprocess.run(
                [pactl, f"--server={server}", "suspend-sink", "assistant_test", suspend],
                check=True,
                capture_output=True,
                timeout=10,
            )
        ready, _, _ = select.select([keeper.stdout], [], [], 10)
        assert ready, "the null sink's monitor gave no audio within 10 s"
        threading.Thread(target=_discard, args=(keeper.stdout,), daemon=True).start()
        yield server
    finally:
        if keeper is not None:
            keeper.terminate()
            keeper.wait(timeout=10)
        patch.undo()
        if _pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(root, ignore_errors=True)


def _tone(freq: float, seconds: float, amplitude: float = 0.5) -> Audio:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_list_devices_shows_pulse_with_rates(pulse: str) -> None:
    devices = {d.name: d for d in list_devices()}
    assert "pulse" in devices, devices
    dev = devices["pulse"]
    assert dev.max_input_channels > 0 and dev.max_output_channels > 0
    assert {16000, 48000} <= set(dev.input_rates) and {16000, 48000} <= set(dev.output_rates)
    default = find_device(None, "output")
    assert default.output_rates
    assert find_device("PULSE", "input").name == "pulse"  # a substring, any case


def test_find_device_error_lists_the_devices(pulse: str) -> None:
    with pytest.raises(AudioDeviceError) as caught:
        find_device("no such microphone", "input")
    assert isinstance(caught.value, FatalError)
    assert caught.value.code == "audio_device"
    assert "no such microphone" in str(caught.value) and "'pulse'" in str(caught.value)


def test_find_device_error_when_there_are_no_devices() -> None:
    class NoDevices:
        def get_device_count(self) -> int:
            return 0

        def get_default_input_device_info(self) -> Any:
            raise OSError("No Default Input Device Available")

    with pytest.raises(AudioDeviceError, match="PortAudio sees no devices"):
        find_device(None, "input", pa=NoDevices())


async def test_tone_played_is_heard_on_the_monitor(pulse: str) -> None:
    clock = SampleClock()
    mic = PyAudioMicrophone("pulse", 48000, clock)  # 48 kHz: exercises the streaming resampler
    speaker = PyAudioSpeaker("pulse", 22050, clock)  # 22.05 kHz: exercises output resampling
    blocks: list[Audio] = []
    first = asyncio.Event()

    async def record() -> None:
        async for block in mic.blocks():
            blocks.append(block)
            first.set()

    recorder = asyncio.create_task(record())
    try:
        await asyncio.wait_for(first.wait(), 10)
        started = await asyncio.wait_for(speaker.play(_tone(440.0, 1.0)), 10)
        assert speaker.queued_until() == pytest.approx(started + 1.0)
        drained = await asyncio.wait_for(speaker.drain(), 10)
        await asyncio.wait_for(clock.wait_until(drained + 0.3), 10)
    finally:
        recorder.cancel()
        await asyncio.gather(recorder, return_exceptions=True)
        mic.close()
        speaker.close()
    assert not mic.exhausted
    assert all(b.shape == (BLOCK_SAMPLES,) and b.dtype == np.float32 for b in blocks)
    audio = np.concatenate(blocks)
    loud = np.flatnonzero(np.abs(audio) > 0.25)
    assert len(loud), f"no tone recorded (peak {np.abs(audio).max():.3f})"
    onset, end = loud[0] / SAMPLE_RATE, loud[-1] / SAMPLE_RATE
    assert end - onset == pytest.approx(1.0, abs=0.05)
    tone = audio[loud[0] : loud[-1]]
    spectrum = np.abs(np.fft.rfft(tone * np.hanning(len(tone))))
    peak_hz = np.fft.rfftfreq(len(tone), 1 / SAMPLE_RATE)[int(np.argmax(spectrum))]
    assert peak_hz == pytest.approx(440.0, abs=3.0)
    assert np.abs(tone).max() == pytest.approx(0.5, abs=0.05)
    # play() estimates when the first sample sounds, in microphone time.
    assert onset == pytest.approx(started, abs=0.3), (onset, started, drained)
    assert drained == pytest.approx(started + 1.0, abs=0.01)
    assert drained == pytest.approx(end, abs=0.1)


async def test_stop_ends_writing_within_a_block(pulse: str) -> None:
    five_written = threading.Event()
    speaker = PyAudioSpeaker(
        "pulse", None, SampleClock(), block_ms=40, on_block=lambda n: five_written.set() if n >= 5 else None
    )
    try:
        assert speaker.rate == SAMPLE_RATE  # 16 kHz is supported: no resampling
        playing = asyncio.create_task(speaker.play(_tone(440.0, 10.0)))
        assert await asyncio.to_thread(five_written.wait, 10)
        stopped_at = speaker.stop()
        at_stop = speaker.blocks_written  # read after stop(): only the block in flight may follow
        assert stopped_at >= speaker.clock.now() and speaker.queued_until() == stopped_at
        await asyncio.wait_for(playing, 5)
        assert speaker.blocks_written - at_stop <= 1
        assert speaker.blocks_written < 10.0 / 0.04 / 2
        again = speaker.blocks_written
        await asyncio.wait_for(speaker.play(_tone(440.0, 0.2)), 5)  # still usable after a stop
        assert speaker.blocks_written - again == 5
        await asyncio.wait_for(speaker.drain(), 5)
    finally:
        speaker.close()


async def test_drop_oldest_queue_counts_drops(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    q: DropOldestQueue[int] = DropOldestQueue(3, warn_every=2, name="test", clock=lambda: now[0])
    with caplog.at_level(logging.WARNING):
        for i in range(8):
            q.put(i)
        assert len([r for r in caplog.records if "dropped" in r.message]) == 1  # the first drop only
        now[0] = 10.0  # a flood is reported again at most every 10 s (and every warn_every drops)
        q.put(8)
        q.put(9)
        assert len([r for r in caplog.records if "dropped" in r.message]) == 2
    assert q.drops == 7 and len(q) == 3
    assert [await q.get(), await q.get(), await q.get()] == [7, 8, 9]
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not waiter.done()
    q.put(42)
    assert await asyncio.wait_for(waiter, 1) == 42
