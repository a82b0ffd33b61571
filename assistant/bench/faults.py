"""The soak with faults: `scripts/bench --soak MINUTES --faults`.

The long `--fast` soak session (cycles of room noise, a turn and speech without the wake word) runs
through `assistant.app.build` on one process while, now and then, the Ollama test server is killed
and restarted on the same port (every ``--fault-every-min`` minutes of input) and the sound device (a
USB microphone-and-speaker, assistant/bench/faultdevices.py) is pulled out and put back twice.  The
devices go through the real `AudioLink` recovery and the LLM through the real `LlmChain`.

Each fault is armed at a scripted turn: the server dies a second before the wake word or at the
reply's first token, the device while the reply plays or a second before the wake word.  A fault's
window runs from the fault to its recovery (`DeviceRestored` for every device it took,
`LlmHostUp`); a scripted turn whose span meets a window may be lost, any other must be answered.

Reported: turns completed and lost (inside and outside the windows), each recovery time after the
device or server came back, RSS after warm-up and at the end, open file descriptors and threads.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from assistant.app import Runtime, build
from assistant.audio.wav import read_wav
from assistant.bench import report, script
from assistant.bench.faultdevices import Plug, Tape, openers
from assistant.bench.faultplan import (
    Fault,
    Outage,
    account_turns,
    plan_faults,
    recoveries,
)
from assistant.bench.faultreport import render, summarise
from assistant.bench.probe import TimedStt, TimedTts, monotonic_to_perf, read_status
from assistant.bench.runner import ROOT, Bench, make_config, progress
from assistant.bench.script import Phrases, ReplyPlan
from assistant.core.ports import SAMPLE_RATE
from assistant.engines.bundle import load_engines
from assistant.events import DeviceLost, DeviceRestored, Event, EventBus, LlmHostDown, LlmHostUp

logger = logging.getLogger(__name__)
DEVICE = "soak-usb"
MODEL = "bench-model"  # the model make_config asks for
TRIGGER_TIMEOUT_S = 30.0  # a trigger event that does not come: inject the fault anyway
RECOVERY_WAIT_S = 60.0  # the next fault waits this long at most for the last one to be recovered


def open_fds() -> int:
    """File descriptors this process holds now (/proc/self/fd); 0 where unavailable."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def threads() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            return next((int(line.split()[1]) for line in status if line.startswith("Threads:")), 0)
    except OSError:
        return 0


def resources(t: float, *, collect: bool = False) -> dict[str, float]:
    if collect:
        gc.collect()
    return {"t": round(t, 1), "rss_mb": round(read_status("VmRSS"), 1), "fds": open_fds(), "threads": threads()}


async def next_event(bus: EventBus, kind: str, timeout_s: float) -> Event | None:
    """The next event of `kind` on `bus`, or None after `timeout_s`."""
    future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()

    def listen(event: Event) -> None:
        if event.type == kind and not future.done():
            future.set_result(event)

    unsubscribe = bus.subscribe(listen)
    try:
        return await asyncio.wait_for(future, timeout_s)
    except TimeoutError:
        return None
    finally:
        unsubscribe()


class Recorder:
    """Keeps the events the reckoning needs, with `perf_counter` stamps (no per-block data: an hour's
    soak should not grow the RSS it measures)."""

    KEPT = frozenset(
        {"wake", "turn", "llm_done", "audio_started", "error", "device_lost", "device_restored"}
        | {"llm_host_down", "llm_host_up", "llm_first_token"}
    )

    def __init__(self, on_event: Callable[[Event], None]) -> None:
        self.events: list[tuple[float, Event]] = []
        self.down: set[str] = set()  # devices lost and "llm" while the primary host is down
        self.settled = asyncio.Event()
        self.settled.set()
        self._on_event = on_event

    def __call__(self, event: Event) -> None:
        if event.type in self.KEPT:
            self.events.append((time.perf_counter(), event))
        if isinstance(event, DeviceLost):
            self.down.add(event.device)
        elif isinstance(event, DeviceRestored):
            self.down.discard(event.device)
        elif isinstance(event, LlmHostDown) and event.primary:
            self.down.add("llm")
        elif isinstance(event, LlmHostUp) and event.primary:
            self.down.discard("llm")
        if self.down:
            self.settled.clear()
        else:
            self.settled.set()
        self._on_event(event)


class ServerProcess:
    """The Ollama test server in a process of its own, killed (SIGKILL) and started again on its port.

    Apart, so that what the soak measures (RSS, descriptors, threads) is the assistant's alone, and a
    kill is a real one: connections reset, the port refuses until the new process listens.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        with socket.socket() as probe:  # a free port, kept across restarts
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        server = "assistant.testing.ollama_server"
        self._argv = [sys.executable, "-m", server, "--port", str(self.port), "--models", MODEL]
        self._argv += ["--ttft-ms", str(args.ttft_ms), "--tokens-per-s", str(args.tokens_per_s), "--reply", args.reply]
        self._process: subprocess.Popen[str] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None

    def start(self) -> None:
        """Start it and return once it listens."""
        if self._process is not None:
            return
        process = subprocess.Popen(self._argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert process.stdout is not None
        line = process.stdout.readline()  # "listening on URL" once the port is bound
        if not line.startswith("listening"):
            process.kill()
            process.wait()
            process.stdout.close()
            raise RuntimeError(f"the Ollama test server did not start: {' '.join(self._argv)}")
        self._process = process

    def kill(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()


class Injector:
    """Takes the server or the device away at each planned fault and gives it back after `out_s`."""

    def __init__(self, runtime: Runtime, server: ServerProcess, plug: Plug, recorder: Recorder) -> None:
        self.runtime, self.server, self.plug, self.recorder = runtime, server, plug, recorder
        self.outages: list[Outage] = []

    async def run(self, faults: Sequence[Fault]) -> None:
        clock = self.runtime.clock
        for fault in faults:
            await clock.wait_until(fault.at_s)
            if fault.trigger == "mid_reply":
                kind = "llm_first_token" if fault.kind == "server" else "audio_started"
                if await next_event(self.runtime.bus, kind, TRIGGER_TIMEOUT_S) is None:
                    logger.warning("fault soak: no %s for the %s fault at turn %d", kind, fault.kind, fault.cue)
            started_at, started_t = time.perf_counter(), clock.now()
            progress(f"fault: {fault.kind} away for {fault.out_s:.0f} s ({fault.trigger}, turn {fault.cue})")
            try:
                if fault.kind == "server":
                    self.server.kill()
                else:
                    self.plug.pull()
                await asyncio.sleep(fault.out_s)
            finally:
                if fault.kind == "server":
                    await asyncio.to_thread(self.server.start)  # the same port, no model loaded
                else:
                    self.plug.insert()
            self.outages.append(Outage(fault, started_at, started_t, time.perf_counter(), clock.now()))
            try:  # one fault at a time: the next is armed once this one is recovered
                await asyncio.wait_for(self.recorder.settled.wait(), RECOVERY_WAIT_S)
            except TimeoutError:
                logger.warning("fault soak: still down %.0f s after the %s came back: %s", RECOVERY_WAIT_S,
                            fault.kind, ", ".join(sorted(self.recorder.down)))  # fmt: skip


async def run_soak(bench: Bench, config: Any, minutes: float, args: argparse.Namespace) -> dict[str, Any]:
    layout = script.soak_layout(bench.phrases, minutes, bench.reply_s, bench.reply_delay_s)
    reply_window_s = bench.reply_delay_s + bench.reply_s + 1.0  # how the layout spaces a turn from the next
    tape = Tape(read_wav(layout.write(bench.folder / "soak-faults.wav", noise_rms=0.003)), fast=True)
    faults = plan_faults(layout.cues, args.fault_every_min * 60, args.server_down_s, args.device_away_s)
    progress(f"fault soak: {layout.seconds:.0f} s of input (fast), {len(layout.cues)} turns, {len(faults)} faults")
    plug = Plug(DEVICE)
    samples: dict[str, Any] = {"turns": []}

    def on_event(event: Event) -> None:
        if event.type != "turn":
            return
        if "warm" not in samples and getattr(event, "end_of_speech_to_first_audio_ms", None) is not None:
            samples["warm"] = resources(event.t, collect=True)
        samples["turns"].append(resources(event.t))

    recorder = Recorder(on_event)
    started, crashed = time.perf_counter(), ""
    with build(
        config, fast=True, engines=bench.engines, devices=openers(plug, tape, config.audio.output_block_ms)
    ) as rt:
        tape.busy = lambda: rt.assistant.busy
        rt.bus.subscribe(recorder)
        injector = Injector(rt, bench.server, plug, recorder)

        async def drive() -> None:
            await injector.run(faults)
            await rt.clock.wait_until(tape.seconds)
            samples["end"] = resources(rt.clock.now(), collect=True)
            rt.mic.exhausted = True  # the input is over: the loop finishes the turn in hand and returns

        driver = asyncio.create_task(drive(), name="fault-soak-driver")
        try:
            await rt.assistant.run()
        except Exception as exc:  # a soak reports a crash (a restart of the process) rather than dying with it
            crashed = repr(exc)
            logger.exception("fault soak: the assistant crashed")
        finally:
            driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await driver
            plug.insert()
    await bench.engines.llm.aclose()
    after_close = resources(0.0, collect=True)
    if args.keep is not None:  # the events kept, with their wall times, beside the WAV
        with (bench.folder / "soak-faults-events.jsonl").open("w", encoding="utf-8") as out:
            for at, event in recorder.events:
                out.write(json.dumps({"perf": round(at, 4), **event.to_dict()}) + "\n")
    events = [e for _, e in recorder.events]
    found = recoveries(injector.outages, recorder.events)
    turns = account_turns(layout.cues, events, [r.window for r in found], reply_window_s)
    wakes = sum(1 for e in events if e.type == "wake")
    return summarise(
        {
            "minutes": minutes,
            "input_s": round(layout.seconds, 1),
            "wall_s": round(time.perf_counter() - started, 1),
            "process_restarts": 1 if crashed else 0,
            "crash": crashed or None,
            "false_wakes": max(0, wakes - layout.wakes),
            "settings": {
                "fault_every_min": args.fault_every_min,
                "server_down_s": args.server_down_s,
                "device_away_s": args.device_away_s,
                "llm_recheck_s": config.llm.recheck_s,
                "reconnect_initial_s": config.audio.reconnect_initial_s,
                "reconnect_max_s": config.audio.reconnect_max_s,
            },
        },
        turns,
        found,
        samples,
        after_close,
    )


async def fault_soak(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    progress("making speech with espeak-ng")
    phrases = Phrases.make()
    results: dict[str, Any] = {"machine": report.machine()}
    server = ServerProcess(args)
    await asyncio.to_thread(server.start)
    try:
        overrides = [f"audio.input_device={DEVICE}", f"audio.output_device={DEVICE}"]
        config = make_config(args, server.url, overrides)
        plan = ReplyPlan.of(args.reply, config.tts.first_chunk_min_chars)
        progress("loading and warming every model")
        engines = load_engines(config)
        reply_s = float(sum(len(engines.tts.synthesize(chunk)) for chunk in plan.chunks)) / SAMPLE_RATE
        stt, tts = TimedStt(engines.stt), TimedTts(engines.tts)
        engines = replace(engines, stt=stt, tts=tts)
        bench = Bench(args, folder, server, engines, stt, tts, plan, phrases, reply_s, monotonic_to_perf())
        results["soak"] = await run_soak(bench, config, args.soak, args)
    finally:
        server.kill()
    return results


def main(args: argparse.Namespace) -> int:
    """`scripts/bench --soak MINUTES --faults`: the fault soak alone; prints it, and writes --json."""
    started = time.perf_counter()
    try:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            results = asyncio.run(fault_soak(args, args.keep))
        else:
            with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
                results = asyncio.run(fault_soak(args, Path(tmp)))
    except script.ToolMissing as exc:
        progress(str(exc))
        return 2
    results["bench_wall_s"] = round(time.perf_counter() - started, 1)
    print(render(results["soak"]))
    if args.json is not None:
        report.write_json(results, args.json)
        progress(f"wrote {args.json}")
    return 0
