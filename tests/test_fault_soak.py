"""The fault soak: its plan, its reckoning, its unpluggable devices through the real `AudioLink`, and one
short `scripts/bench --soak --faults` run checked for its outcome (never for its speed)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.audio.clock import SampleClock
from assistant.audio.recovery import AudioLink
from assistant.bench.faultdevices import Plug, PluggedSpeaker, Tape, openers
from assistant.bench.faultplan import (
    Fault,
    Outage,
    Recovery,
    TurnOutcome,
    account_turns,
    plan_faults,
    recoveries,
    slots,
)
from assistant.bench.faultreport import render, summarise
from assistant.bench.script import Cue
from assistant.core.errors import AudioDeviceLost
from assistant.core.ports import BLOCK_SAMPLES, SAMPLE_RATE
from assistant.events import (
    AudioStarted,
    DeviceLost,
    DeviceRestored,
    Error,
    Event,
    EventBus,
    LlmDone,
    LlmHostDown,
    LlmHostUp,
    TurnLatency,
)
from tests.conftest import ROOT, missing

CYCLE_S = 28.0
REPLY = "The capital of France is Paris, a city on the Seine. It is very old. Millions visit it every year."


def cues(n: int) -> list[Cue]:
    """`n` scripted turns a cycle apart: wake word at 3 s into each, speech over 3 s later."""
    out = []
    for i in range(n):
        wake = round((i * CYCLE_S + 3.0) * SAMPLE_RATE)
        out.append(Cue("turn", wake, wake + SAMPLE_RATE, wake + 3 * SAMPLE_RATE))
    return out


def test_plan_pulls_the_device_twice_and_kills_the_server_every_interval_each_at_its_own_turn() -> None:
    plan = plan_faults(cues(14), every_s=56.0, server_down_s=10.0, device_away_s=8.0)
    assert slots(14) == [1, 3, 5, 7, 9, 11]  # every other turn: each fault's turn is followed by a clean one
    device = [f for f in plan if f.kind == "device"]
    server = [f for f in plan if f.kind == "server"]
    assert [f.cue for f in device] == [5, 9]  # the slots nearest a third and two thirds of the way
    # Targets at 28, 84, 140, 196, 252, 308 s: the free slot nearest each, none within 28 s of 140 or 252.
    assert [f.cue for f in server] == [1, 3, 7, 11]
    assert [f.cue for f in plan] == sorted(f.cue for f in plan)
    assert [f.trigger for f in server] == ["before_wake", "mid_reply", "before_wake", "mid_reply"]
    assert [f.trigger for f in device] == ["mid_reply", "before_wake"]
    first = server[0]
    assert first.at_s == pytest.approx(CYCLE_S + 3.0 - 1.0) and first.out_s == 10.0
    assert device[0].at_s == pytest.approx(5 * CYCLE_S + 6.0) and device[0].out_s == 8.0


@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, []), (2, []), (3, [("device", 1)]), (5, [("device", 1), ("device", 3)]), (7, [("device", 3), ("device", 5)])],
)
def test_plan_on_few_turns_keeps_the_first_and_last_clean(n: int, expected: list[tuple[str, int]]) -> None:
    plan = plan_faults(cues(n), every_s=600.0, server_down_s=5.0, device_away_s=5.0)
    assert [(f.kind, f.cue) for f in plan] == expected


def outage(kind: str, start: float, back: float) -> Outage:
    """Perf and clock seconds taken equal, for reading."""
    return Outage(Fault(kind, 1, "before_wake", start, back - start), start, start, back, back)


def test_recoveries_from_the_events_of_each_outage() -> None:
    outages = [outage("device", 10, 20), outage("server", 40, 50), outage("server", 70, 80), outage("device", 90, 95)]
    events: list[tuple[float, Event]] = [
        (10.1, DeviceLost(10.1, "speaker", "usb", "gone", 1.0)),
        (10.2, DeviceLost(10.2, "microphone", "usb", "gone", 1.0)),
        (21.0, DeviceRestored(21.0, "microphone", "usb", 10.8)),
        (23.5, DeviceRestored(23.5, "speaker", "usb", 13.3)),
        (41.0, LlmHostDown(41.0, "h", "m", "llm_unreachable", True)),
        (56.0, LlmHostUp(56.0, "h", "m", True)),
        # 70-80: the server was down while nobody asked: nothing noticed.
        (90.5, DeviceLost(90.5, "microphone", "usb", "gone", 1.0)),  # never restored
    ]
    found = recoveries(outages, events)
    assert [r.noticed for r in found] == [("microphone", "speaker"), ("llm",), (), ("microphone",)]
    assert [r.recovered for r in found] == [True, True, True, False]
    assert found[0].recovery_s == pytest.approx(3.5) and found[0].window == (10, 23.5)
    assert found[1].recovery_s == pytest.approx(6.0) and found[1].window == (40, 56.0)
    assert found[2].recovery_s == 0.0 and found[2].window == (70, 80)
    assert found[3].recovery_s is None and found[3].window[1] == float("inf")


def answered(t: float) -> list[Event]:
    return [LlmDone(t + 4, "Paris."), AudioStarted(t + 4.2), TurnLatency(t + 8, end_of_speech_to_first_audio_ms=900)]


def test_turns_answered_lost_in_a_window_and_lost_outside() -> None:
    script = cues(4)
    wake = [c.wake_start / SAMPLE_RATE for c in script]
    events: list[Event] = [
        *answered(wake[0]),
        Error(wake[1] + 4, "llm_unreachable", "cannot reach Ollama"),  # the server fault's turn
        TurnLatency(wake[1] + 6, end_of_speech_to_first_audio_ms=800),  # the apology
        *answered(wake[2])[:1],  # the reply came but never played, and no fault near it
        *answered(wake[3] + CYCLE_S),  # the last turn, slow: it ends after the input has
    ]
    windows = [(wake[1] - 1, wake[1] + 12)]
    turns = account_turns(script, events, windows, reply_window_s=15.0)
    assert [(t.completed, t.in_window) for t in turns] == [(True, False), (False, True), (False, False), (True, False)]
    assert turns[1].why.startswith("llm_unreachable") and turns[2].why == "no turn"


def test_a_turn_that_runs_past_its_slot_meets_a_window_there() -> None:
    script = cues(2)
    wake0 = script[0].wake_start / SAMPLE_RATE
    slow = [
        Error(wake0 + 20, "audio_device_lost", "speaker"),
        TurnLatency(wake0 + 24, end_of_speech_to_first_audio_ms=1),
    ]
    turns = account_turns(script, slow, [(wake0 + 20, wake0 + 26)], reply_window_s=15.0)  # its slot ends at 21
    assert (turns[0].completed, turns[0].in_window) == (False, True)


def test_a_window_after_the_reply_slot_does_not_excuse_the_turn_before() -> None:
    script = cues(2)
    wake1 = script[1].wake_start / SAMPLE_RATE
    turns = account_turns(script, [], [(wake1 - 1.0, wake1 + 5.0)], reply_window_s=15.0)
    assert [t.in_window for t in turns] == [False, True]


async def test_unplugged_devices_go_through_the_link_and_the_input_stays_on_the_clock() -> None:
    clock, bus = SampleClock(), EventBus()
    seen: list[Event] = []
    bus.subscribe(seen.append)
    plug = Plug("soak-usb")
    tape = Tape(np.linspace(0.01, 1.0, SAMPLE_RATE * 60, dtype=np.float32), fast=True)
    link = AudioLink(openers(plug, tape)(clock), {}, clock, bus, initial_s=0.02, max_s=0.1)
    link.open()
    blocks: list[tuple[int, float]] = []  # (clock samples before the block, its first sample)
    async with asyncio.timeout(20):
        async for block in link.mic.blocks():
            blocks.append((clock.samples - BLOCK_SAMPLES, float(block[0])))
            if len(blocks) == 3:
                plug.pull()
            elif plug.present is False and len(blocks) >= 10:
                plug.insert()
            back = any(isinstance(e, DeviceRestored) and e.device == "microphone" for e in seen)
            if back and block[0] > 0 and len([b for b in blocks if b[1] > 0]) >= 6:
                break
    await link.aclose()
    types = [(e.type, getattr(e, "device", "")) for e in seen]
    assert ("device_lost", "microphone") in types and ("device_restored", "microphone") in types
    # The mic's retry closed the live speaker for a fresh enumeration, found it gone too, and got it back.
    assert ("device_lost", "speaker") in types and ("device_restored", "speaker") in types
    away = [at for at, first in blocks if first == 0.0]
    assert len(away) >= 7  # silence while away, the clock going on
    for at, first in blocks:
        if first > 0:  # every live block is the tape at the clock's position: what was said meanwhile is missed
            assert first == pytest.approx(float(tape.audio[at]))


async def test_a_speaker_pulled_mid_write_fails_like_pyaudios_and_stays_dead_after_the_replug() -> None:
    clock, plug = SampleClock(), Plug("soak-usb")
    speaker = PluggedSpeaker(plug, clock, block_ms=40)

    async def ticks() -> None:
        for n in range(200):
            await asyncio.sleep(0)
            clock.advance(BLOCK_SAMPLES)
            if n == 3:
                plug.pull()

    ticking = asyncio.create_task(ticks())
    start = await speaker.play(np.zeros(SAMPLE_RATE * 2, np.float32))
    assert start == 0.0 and isinstance(speaker.failure, OSError) and "-9999" in str(speaker.failure)
    assert 0 < speaker.samples_played < SAMPLE_RATE * 2  # it stopped writing at the pull
    plug.insert()
    with pytest.raises(AudioDeviceLost):
        await speaker.play(np.zeros(100, np.float32))  # an old handle: the link must open a new one
    assert PluggedSpeaker(plug, clock).failure is None
    await ticking


@pytest.fixture(scope="module")
def fault_soak(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        missing("espeak-ng and sox are needed (scripts/setup --test installs them)")
    out = tmp_path_factory.mktemp("faults") / "faults.json"
    command = [
        sys.executable, str(ROOT / "scripts" / "bench"),
        "--soak", "2.5", "--faults", "--reply", REPLY,
        "--fault-every-min", "0.5", "--server-down-s", "3", "--device-away-s", "3",
        "--models", str(models_dir),
        "--json", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-4000:]
    return {"json": json.loads(out.read_text(encoding="utf-8"))["soak"], "stdout": done.stdout}


@pytest.mark.timeout(420)
def test_the_fault_soak_recovers_every_fault_in_one_process(fault_soak: dict[str, Any]) -> None:
    soak = fault_soak["json"]
    assert soak["process_restarts"] == 0, soak["crash"]
    kinds = [f["kind"] for f in soak["faults"]]
    assert kinds.count("device") == 2 and "server" in kinds
    for fault in soak["faults"]:
        assert fault["recovered"], fault
        if fault["kind"] == "device":
            assert "microphone" in fault["noticed"], fault
    assert soak["turns_lost_outside_fault_windows"] == 0, soak["lost_outside"]
    assert soak["turns_completed"] + soak["turns_lost_in_fault_windows"] == soak["turns_expected"]
    assert soak["turns_completed"] >= 2
    assert soak["fds_end"] <= soak["fds_after_warmup"]
    assert soak["rss_growth_mb"] == pytest.approx(soak["rss_end_mb"] - soak["rss_after_warmup_mb"], abs=0.11)
    assert "fault soak:" in fault_soak["stdout"] and ("PASS" in fault_soak["stdout"] or "MISS" in fault_soak["stdout"])


def test_plan_puts_a_server_fault_at_the_slot_nearest_its_time_even_just_before_it() -> None:
    plan = plan_faults(cues(7), every_s=60.0, server_down_s=5.0, device_away_s=5.0)
    assert [(f.kind, f.cue) for f in plan] == [("server", 1), ("device", 3), ("device", 5)]  # turn 1 at 31 s


def test_summary_goals_and_the_growth_after_the_first_faults() -> None:
    turns = [
        TurnOutcome(0, 3.0, True, False, ""),
        TurnOutcome(1, 31.0, False, True, "llm_unreachable: refused"),
        TurnOutcome(2, 59.0, True, False, ""),
        TurnOutcome(3, 87.0, False, True, "audio_device_lost: gone"),
        TurnOutcome(4, 115.0, True, False, ""),
    ]
    found = [
        Recovery("server", 1, "before_wake", 10.0, ("llm",), True, 2.5, (30.0, 45.0)),
        Recovery("device", 3, "mid_reply", 10.0, ("microphone", "speaker"), True, 11.0, (90.0, 105.0)),
    ]

    def sample(t: float, rss: float, fds: int = 13) -> dict[str, float]:
        return {"t": t, "rss_mb": rss, "fds": fds, "threads": 9}

    samples = {
        "warm": sample(25, 600.0),
        "turns": [sample(25, 600.0), sample(50, 604.0), sample(80, 606.0), sample(110, 607.0, 14)],
        "end": sample(140, 607.5),
    }
    out = summarise({"process_restarts": 0}, turns, found, samples, sample(0, 607.0))
    assert (out["turns_completed"], out["turns_lost_in_fault_windows"], out["turns_lost_outside_fault_windows"]) == (
        3,
        2,
        0,
    )
    assert out["rss_growth_mb"] == 7.5 and out["rss_after_first_faults_mb"] == 607.0  # the first turn after 105 s
    assert out["rss_growth_after_first_faults_mb"] == 0.5 and out["fds_max"] == 14
    assert out["recovery_s_max"] == {"server": 2.5, "device": 11.0}
    met = {g["goal"]: g["met"] for g in out["goals"]}
    assert met == {
        "0 process restarts for device and server faults": True,
        "every fault recovered within 10 s of coming back": False,  # the device took 11 s
        "0 turns lost outside the fault windows": True,
        "RSS growth <= 5 MB after warm-up": False,
        "flat file-descriptor count": True,
    }
    printed = render({"minutes": 2, "input_s": 140, "wall_s": 100, "false_wakes": 0, **out})
    assert "MISS  every fault recovered" in printed and "device turn   3" in printed
