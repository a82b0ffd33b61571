"""Drives the benchmark: the phases, each a real-time run of the assistant on a scripted WAV."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import gc
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from assistant import config as config_module
from assistant.app import Runtime, build
from assistant.bench import metrics, report, script, skillset, speech
from assistant.bench.probe import Probe, TimedStt, TimedTts, monotonic_to_perf, read_status
from assistant.bench.script import Layout, Phrases, ReplyPlan
from assistant.config import Config
from assistant.core.ports import SAMPLE_RATE
from assistant.engines.bundle import Engines, load_engines
from assistant.events import Event

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
DYNAMIC = ("vad.complete_silence_ms=300", "vad.trailing_silence_ms=1200")
THINKING_REPLY = "The capital of France is Paris. It lies on the river Seine."
TURN_IDLE_S = 20.0  # idle CPU per endpointing mode in the turn-taking phase (at most --idle-seconds)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description="End of speech -> first audio, measured: scripted turns in real time through the real "
        "engines against an in-process Ollama test server.",
    )
    parser.add_argument("--ttft-ms", type=float, default=150.0, help="the test server's time to first token")
    parser.add_argument("--tokens-per-s", type=float, default=40.0, help="the test server's token rate")
    parser.add_argument("--turns", type=int, default=5, help="steady turns (the cold first turn comes on top)")
    parser.add_argument("--barge-ins", type=int, default=3, help="replies interrupted by a second wake word")
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="room noise while waiting for the wake word")
    parser.add_argument("--stt-runs", type=int, default=3, help="runs of each STT window size")
    parser.add_argument("--reply", default=script.REPLY, help="the server's reply (3 sentences or more)")
    parser.add_argument(
        "--soak",
        type=float,
        default=None,
        metavar="MINUTES",
        help="also soak on this many minutes of input, run with fast=True (idle goes faster than real time)",
    )
    parser.add_argument(
        "--faults",
        action="store_true",
        help="with --soak: the soak alone, while the Ollama test server is killed and restarted and the sound "
        "device is pulled out and put back twice (assistant/bench/faults.py)",
    )
    parser.add_argument("--fault-every-min", type=float, default=3.0, help="--faults: kill the server this often")
    parser.add_argument("--server-down-s", type=float, default=10.0, help="--faults: the server stays down this long")
    parser.add_argument("--device-away-s", type=float, default=10.0, help="--faults: the device stays out this long")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the figures as JSON")
    parser.add_argument("--models", type=Path, default=ROOT.parent / "shared" / "models", metavar="DIR")
    parser.add_argument("--stt-model", default="whisper/ggml-tiny.en-real.bin")
    parser.add_argument(
        "--stt-prompt", default=None, help="Whisper's initial prompt (default: stt.prompt's default; '' for none)"
    )
    parser.add_argument("--voice", default="piper/en_US-joe-medium.onnx")
    parser.add_argument("--speech-voice", default="piper/en_US-joe-medium.onnx", help="Piper voice of the speech set")
    parser.add_argument("--speech-count", type=int, default=None, help="only the first N requests of the speech set")
    parser.add_argument("--speech-only", action="store_true", help="run the speech set alone (no latency phases)")
    parser.add_argument(
        "--turn-count",
        type=int,
        default=None,
        help="only the first N complete and N paused requests of the turn-taking set (0 skips it)",
    )
    parser.add_argument(
        "--turn-only", action="store_true", help="run the turn-taking set alone (no speech set, no latency phases)"
    )
    parser.add_argument(
        "--skills-count", type=int, default=None, help="only the first N requests of the skills set (0: skip it)"
    )
    parser.add_argument(
        "--skills-voices",
        choices=["all", "rotate"],
        default="all",
        help="the skills set in every voice (default), or one voice per request in turn (quicker)",
    )
    parser.add_argument(
        "--local-count",
        type=int,
        default=None,
        help="only the first N requests of the local-answer set, run with the skills set (0: skip it)",
    )
    parser.add_argument("--skills-only", action="store_true", help="run the skills set (and local answers) alone")
    parser.add_argument(
        "--stt-window",
        choices=["full", "fitted", "both"],
        default="both",
        help="the speech set on the full Whisper window, the fitted one, or both",
    )
    parser.add_argument("--stt-threads", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR", help="keep the WAVs made and written here")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.turns < 1 or args.barge_ins < 0 or args.idle_seconds <= 0 or args.stt_runs < 1:
        parser.error("--turns must be >= 1, --barge-ins >= 0, --idle-seconds > 0, --stt-runs >= 1")
    if min(args.skills_count or 0, args.local_count or 0) < 0:
        parser.error("--skills-count and --local-count must be >= 0")
    if args.speech_only + args.turn_only + args.skills_only > 1:
        parser.error("--speech-only, --turn-only and --skills-only each run one set alone: choose one")
    if args.skills_only and args.skills_count == 0:
        parser.error("--skills-only runs the skills set: not with --skills-count 0")
    if args.faults and (args.soak is None or args.soak <= 0):
        parser.error("--faults needs --soak MINUTES (> 0)")
    if min(args.fault_every_min, args.server_down_s, args.device_away_s) <= 0:
        parser.error("--fault-every-min, --server-down-s and --device-away-s must be > 0")
    return args


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def scratch_state_dir() -> str:
    """A state directory of the benchmark's own, removed at exit.

    The timers, alarms and volume that the speech set's requests set must neither reach the
    next phase nor the user's own device.
    """
    state = tempfile.mkdtemp(prefix="bench-state-")
    atexit.register(shutil.rmtree, state, ignore_errors=True)
    return state


def bench_config(
    models: Path,
    host: str,
    overrides: Sequence[str] = (),
    *,
    stt_model: str = "whisper/ggml-tiny.en-real.bin",
    stt_threads: int = 2,
    voice: str = "piper/en_US-joe-medium.onnx",
    stt_prompt: str | None = None,
) -> Config:
    """The benchmark's config: the real models, the test server at `host`, a scratch state directory.

    The turn ends on the fixed silence (`turn.mode: silence`) unless `overrides` say otherwise: the
    latency phases break a turn into its stages, which needs the silence as a known constant; the
    turn-taking phase runs each mode by name. `stt_prompt` None keeps `stt.prompt`'s default."""
    base: dict[str, Any] = {
        "models_dir": str(models),
        "state_dir": scratch_state_dir(),
        "log_level": "warning",
        "turn": {"mode": "silence"},
        "wake": {"models": ["hey_jarvis"]},
        "stt": {
            "model": stt_model,
            "threads": stt_threads,
            **({} if stt_prompt is None else {"prompt": stt_prompt}),
        },
        "tts": {"voice": voice},
        "llm": {"model": "bench-model", "host": host, "timeout_s": 10},
    }
    return config_module.load(overrides=overrides, base=base)


def make_config(args: argparse.Namespace, host: str, overrides: Sequence[str] = ()) -> Config:
    return bench_config(
        args.models,
        host,
        overrides,
        stt_model=args.stt_model,
        stt_threads=args.stt_threads,
        voice=args.voice,
        stt_prompt=args.stt_prompt,
    )


@dataclass
class Bench:
    args: argparse.Namespace
    folder: Path
    server: Any
    engines: Engines
    stt: TimedStt
    tts: TimedTts
    plan: ReplyPlan
    phrases: Phrases
    reply_s: float
    offset: float
    vad_tail_ms: float = 0.0
    stt_s: float = 1.2
    """One full-window transcription of the request on this machine (measured at start-up)."""

    @property
    def reply_delay_s(self) -> float:
        """A generous guess at speech end -> first audio, for spacing the turns (so no reply is cut by the next)."""
        ttft_s, rate = float(self.args.ttft_ms) / 1000, max(float(self.args.tokens_per_s), 1.0)
        whisper_s = max(1.5, 1.5 * self.stt_s)  # Whisper's full window, with room for a busy moment
        return 0.7 + whisper_s + ttft_s + self.plan.first_emit_tokens / rate

    async def run(
        self,
        name: str,
        config: Config,
        layout: Layout,
        *,
        fast: bool = False,
        noise_rms: float = 0.0,
        probe: Probe | None = None,
        during: Callable[[Runtime, Probe], Awaitable[None]] | None = None,
    ) -> Probe:
        wav = layout.write(self.folder / f"{name}.wav", noise_rms)
        probe = probe or Probe()
        progress(f"{name}: {layout.seconds:.0f} s of input{' (fast)' if fast else ' in real time'}")
        output = self.folder / f"{name}-out.wav"
        with build(config, input_wav=wav, output_wav=output, fast=fast, engines=self.engines) as runtime:
            probe.attach(runtime)
            if during is None:
                await runtime.assistant.run()
            else:
                task = asyncio.create_task(runtime.assistant.run(), name=f"bench-{name}")
                await during(runtime, probe)
                await task
        if self.args.keep is not None:  # the events, with their wall times, beside the WAVs
            with (self.folder / f"{name}-events.jsonl").open("w", encoding="utf-8") as out:
                for at, event in probe.events:
                    out.write(json.dumps({"perf": round(at, 4), **event.to_dict()}) + "\n")
        return probe

    def turns(self, probe: Probe, layout: Layout, config: Config) -> list[metrics.TurnFigures | None]:
        settings = metrics.Settings(
            config.vad.silence_ms, self.args.ttft_ms, self.args.tokens_per_s, self.plan, self.vad_tail_ms
        )
        requests = self.server.requests
        return [
            metrics.analyse_turn(probe, cue, settings, self.stt.calls, self.tts.calls, requests, self.offset)
            for cue in layout.cues
        ]


def measure_idle(seconds: float, result: dict[str, Any]) -> Callable[[Runtime, Probe], Awaitable[None]]:
    """CPU time over `seconds` of real time while the assistant waits for its wake word."""

    async def during(runtime: Runtime, probe: Probe) -> None:
        await asyncio.sleep(1.0)  # the microphone starts at once; skip its first blocks
        threads0, cpu0, wall0 = report.thread_cpu(), time.process_time(), time.perf_counter()
        blocks0 = len(probe.ticks_at)
        await asyncio.sleep(seconds)
        threads1, cpu1, wall1 = report.thread_cpu(), time.process_time(), time.perf_counter()
        wall = wall1 - wall0
        result["idle_cpu_percent"] = round(100.0 * (cpu1 - cpu0) / wall, 2)
        result["idle_wall_s"] = round(wall, 2)
        result["idle_blocks"] = len(probe.ticks_at) - blocks0
        result["idle_cpu_threads_percent"] = {
            name: round(100.0 * (threads1.get(name, 0.0) - threads0.get(name, 0.0)) / wall, 2)
            for name in sorted(set(threads0) | set(threads1))
            if threads1.get(name, 0.0) - threads0.get(name, 0.0) > 0
        }
        wake = getattr(runtime.engines.wake, "ms_per_block", None)
        if isinstance(wake, float):
            result["idle_wake_ms_per_block"] = round(wake, 2)

    return during


def stt_windows(stt: Any, audio: Any, runs: int) -> dict[str, Any]:
    """Whisper on a 3 s utterance: the full 30 s window (audio_ctx=0) against one fitted to it."""
    from assistant.engines.stt import audio_ctx_for

    fitted = audio_ctx_for(len(audio), stt.min_audio_ctx, stt.margin_frames)
    stt.transcribe(audio, audio_ctx=0)
    stt.transcribe(audio, audio_ctx=fitted)
    full: list[float] = []
    trimmed: list[float] = []
    for _ in range(runs):
        for ctx, into in ((0, full), (fitted, trimmed)):
            start = time.perf_counter()
            stt.transcribe(audio, audio_ctx=ctx)
            into.append((time.perf_counter() - start) * 1000)
    return {"stt_full_window_ms": metrics.stats(full), "stt_trimmed_ms": metrics.stats(trimmed)}


async def soak(bench: Bench, config: Config, minutes: float) -> dict[str, Any]:
    layout = script.soak_layout(bench.phrases, minutes, bench.reply_s, bench.reply_delay_s)
    rss: dict[str, float] = {}

    def on_event(event: Event) -> None:
        if event.type == "turn" and "warm" not in rss:
            gc.collect()
            rss["warm"] = read_status("VmRSS")

    probe = Probe(keep_audio=False, on_event=on_event)
    started = time.perf_counter()
    crashed = ""
    try:
        await bench.run("soak", config, layout, fast=True, noise_rms=0.003, probe=probe)
    except Exception as exc:  # a soak reports a crash rather than dying with it
        crashed = repr(exc)
    gc.collect()
    end = read_status("VmRSS")
    events = [e for _, e in probe.events]
    turns = [e for e in events if e.type == "turn"]
    completed = [e for e in turns if getattr(e, "end_of_speech_to_first_audio_ms", None) is not None]
    errors = [f"{getattr(e, 'code', '?')}: {getattr(e, 'message', '')}" for e in events if e.type == "error"]
    if crashed:
        errors.append(f"crash: {crashed}")
    wakes = sum(1 for e in events if e.type == "wake")
    warm = rss.get("warm", end)
    return {
        "minutes": minutes,
        "input_s": round(layout.seconds, 1),
        "wall_s": round(time.perf_counter() - started, 1),
        "turns_expected": len(layout.cues),
        "turns_completed": len(completed),
        "wakes": wakes,
        "false_wakes": max(0, wakes - layout.wakes),
        "errors": len(errors),
        "error_messages": errors[:20],
        "rss_after_warmup_mb": round(warm, 1),
        "rss_end_mb": round(end, 1),
        "rss_growth_mb": round(end - warm, 1),
    }


async def realtime_figure(config: Config, engines: Any, request: Any, folder: Path, turns: int) -> dict[str, Any]:
    """p50/p95 ms from `input_audio_buffer.commit` to the first audio delta, over `turns` turns."""
    from assistant.audio.wav import write_wav
    from assistant.realtime.bench import measure_commit_to_first_delta
    from assistant.realtime.server import RealtimeServer

    wav = folder / "realtime-request.wav"
    write_wav(wav, request)
    async with RealtimeServer(config, engines).running("127.0.0.1", 0) as server:
        timings = await measure_commit_to_first_delta(server.url, wav, turns)
    return metrics.stats(timings)


async def speech_phase(bench: Bench, config: Config) -> dict[str, Any]:
    """Every request of the speech set through `assistant run`, per Whisper window."""
    from assistant.config import TtsConfig
    from assistant.engines.tts import load_tts

    progress("making the speech set (espeak-ng voices and the Piper voice)")
    piper = load_tts(TtsConfig(voice=bench.args.speech_voice, accelerator="cpu"), config.models_path)
    wav, placed = speech.write_input(bench.folder, piper, bench.args.speech_count)
    del piper
    windows = ["full", "fitted"] if bench.args.stt_window == "both" else [bench.args.stt_window]
    whisper = bench.stt.inner
    configured = whisper.window
    out: dict[str, Any] = {"requests": len(placed), "windows": {}}
    saved_reply, bench.server.reply = bench.server.reply, speech.REPLY
    try:
        for window in windows:
            whisper.window = window
            runaways, tts_calls = whisper.runaways, len(bench.tts.calls)
            progress(f"speech set: {len(placed)} requests, {window} Whisper window")
            probe = Probe(keep_audio=False)
            output = bench.folder / f"speech-set-{window}-out.wav"
            with build(config, input_wav=wav, output_wav=output, fast=True, engines=bench.engines) as runtime:
                probe.attach(runtime)
                await runtime.assistant.run()
            heard = speech.match(placed, [event for _, event in probe.events])
            figures = speech.summarise(heard, whisper.runaways - runaways)
            figures["tts_rtf"] = speech.tts_rtf(bench.tts.calls[tts_calls:])
            out["windows"][window] = figures
    finally:
        whisper.window = configured
        bench.server.reply = saved_reply
    out["tts_rtf"] = speech.tts_rtf(bench.tts.calls)
    return out


async def turn_taking_phase(bench: Bench) -> dict[str, Any]:
    """The turn-taking set through `assistant run`, once per endpointing mode (`assistant.bench.turntaking`)."""
    from assistant.bench import turntaking

    progress("making the turn-taking set")
    utterances = turntaking.pick(
        turntaking.write_turnset(bench.folder / "turnset", piper=bench.engines.tts), bench.args.turn_count
    )
    saved_reply, bench.server.reply = bench.server.reply, turntaking.REPLY
    out: dict[str, Any] = {}
    try:
        for mode in turntaking.DEFAULT_MODES:
            progress(f"turn taking: {len(utterances)} requests, {mode}")
            config = make_config(bench.args, bench.server.url, turntaking.MODES[mode])
            out[mode] = await turntaking.run_turn_taking(config, utterances, bench.engines, bench.folder)
    finally:
        bench.server.reply = saved_reply
    # Idle in each mode, one after the other in the same run: the end-of-turn model must cost nothing
    # while nobody speaks (it runs only in a pause of a request).
    seconds = min(float(bench.args.idle_seconds), TURN_IDLE_S)
    for mode in turntaking.DEFAULT_MODES:
        idle: dict[str, Any] = {}
        config = make_config(bench.args, bench.server.url, turntaking.MODES[mode])
        layout = script.idle_layout(seconds)
        probe = await bench.run(f"idle-{mode}", config, layout, noise_rms=0.003, during=measure_idle(seconds, idle))
        out[mode]["idle_cpu_percent"] = idle.get("idle_cpu_percent")
        out[mode]["idle_end_of_turn_calls"] = metrics.counts(probe).get("end_of_turn", 0)
    return out


def skills_phase(bench: Bench, config: Config) -> dict[str, Any]:
    """The skills set: spoken requests through the configured Whisper, matched to the device's intents."""
    from assistant.config import TtsConfig
    from assistant.core.transcript import phrase_words
    from assistant.engines.tts import load_tts
    from assistant.skills.matcher import IntentMatcher

    requests = skillset.SKILLSET[: bench.args.skills_count]
    every = bench.args.skills_voices == "all"
    said = len(requests) * (len(skillset.VOICES) if every else 1)
    progress(f"skills set: {said} spoken requests ({bench.args.skills_voices} voices), then general questions")
    piper = load_tts(TtsConfig(voice=bench.args.speech_voice, accelerator="cpu"), config.models_path)
    matcher = IntentMatcher(config.skills.strip_words, max_timer_s=config.skills.max_timer_s)
    whisper = bench.stt.inner
    # The device's request audio starts before the wake word's detection: Whisper hears both.
    wake = " ".join(phrase_words(Path(config.wake.models[0]).stem)) if config.wake.models else ""
    found = skillset.measure(whisper.transcribe, matcher, requests, all_voices=every, piper=piper, wake=wake)
    return {
        "stt_model": config.stt.model,
        "stt_prompt": config.stt.prompt,
        "wake": wake,
        "voices": bench.args.skills_voices,
        "piper_voice": bench.args.speech_voice,
        **found.as_dict(),
    }


async def local_answers_phase(bench: Bench) -> dict[str, Any]:
    """The device's own requests through `assistant run`, the LLM server up and then down (`localanswers`)."""
    from assistant.bench import localanswers
    from assistant.engines.llm_chain import build_llm

    progress("making the local-answer set")
    utterances = localanswers.write_local_set(bench.folder / "local", bench.engines.tts, bench.args.local_count)
    out: dict[str, Any] = {}
    for state, host in (("up", bench.server.url), ("down", localanswers.DOWN_HOST)):
        progress(f"local answers: {len(utterances)} requests, LLM server {state}")
        config = make_config(bench.args, host, localanswers.OVERRIDES)
        llm = bench.engines.llm if state == "up" else build_llm(config.llm)
        try:
            engines = replace(bench.engines, llm=llm)
            out[state] = await localanswers.run_local(config, utterances, engines, bench.folder)
        finally:
            if llm is not bench.engines.llm:
                await llm.aclose()
    return out


async def thinking_phase(bench: Bench, config: Config, pairs: int) -> dict[str, Any]:
    """A wake word while the last request is still thinking: the new request's latency against an ordinary one."""
    saved = bench.server.reply, bench.server.ttft_ms
    # A slower first token keeps the first request thinking when the second wake word comes; the
    # ordinary turns of the same phase wait the same, so the two are compared like for like.
    bench.server.reply, bench.server.ttft_ms = THINKING_REPLY, 1500.0
    try:
        # The reply as long as it sounds (not a guess), so the next request never cuts an ordinary turn.
        reply_s = len(bench.tts.inner.synthesize(THINKING_REPLY)) / SAMPLE_RATE
        layout = script.thinking_barge_layout(bench.phrases, pairs, reply_s, bench.reply_delay_s + 1.5)
        probe = await bench.run("thinking-barge-in", config, layout)
    finally:
        bench.server.reply, bench.server.ttft_ms = saved
    return speech.thinking_barge_ins(layout.cues, [event for _, event in probe.events])


async def run_bench(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    from assistant.engines.tts import load_tts
    from assistant.testing.ollama_server import OllamaTestServer

    progress("making speech with espeak-ng")
    phrases = Phrases.make()
    results: dict[str, Any] = {"machine": report.machine()}
    with OllamaTestServer(
        models=["bench-model"], reply=args.reply, ttft_ms=args.ttft_ms, tokens_per_s=args.tokens_per_s
    ) as server:
        config = make_config(args, server.url)
        plan = ReplyPlan.of(args.reply, config.tts.first_chunk_min_chars)
        # The reply's length, on a throw-away voice (so the real one stays as start-up left it).
        voice = load_tts(config.tts, config.models_path)
        reply_s = float(sum(len(voice.synthesize(chunk)) for chunk in plan.chunks)) / SAMPLE_RATE
        del voice
        progress("loading and warming every model")
        started = time.perf_counter()
        engines = load_engines(config)
        load_s = time.perf_counter() - started
        gc.collect()
        results["rss_mb"] = round(read_status("VmRSS"), 1)
        stt, tts = TimedStt(engines.stt), TimedTts(engines.tts)
        engines = replace(engines, stt=stt, tts=tts)
        bench = Bench(args, folder, server, engines, stt, tts, plan, phrases, reply_s, monotonic_to_perf())
        started = time.perf_counter()
        stt.inner.transcribe(phrases.request)  # not one of the recorded calls
        bench.stt_s = time.perf_counter() - started
        progress(f"one transcription: {bench.stt_s:.2f} s here; a reply is expected {bench.reply_delay_s:.1f} s in")
        results["settings"] = report.settings(args, config, plan, reply_s, load_s)

        # 0. The speech set: how the assistant hears real requests, on each Whisper window.
        if not (args.turn_only or args.skills_only):
            results["speech_set"] = await speech_phase(bench, config)
        # 0b. The turn-taking set: the fixed silence against the end-of-turn model.
        if not (args.speech_only or args.skills_only) and args.turn_count != 0:
            results["turn_taking"] = await turn_taking_phase(bench)
        # 0c. The skills set: spoken requests reach the right intent and slots, questions stay the LLM's.
        if not (args.speech_only or args.turn_only) and args.skills_count != 0:
            results["skills_set"] = await asyncio.to_thread(skills_phase, bench, config)
        if not (args.speech_only or args.turn_only) and args.skills_count != 0 and args.local_count != 0:
            results["local_answers"] = await local_answers_phase(bench)
        if args.speech_only or args.turn_only or args.skills_only:
            await engines.llm.aclose()
            return results

        # 1. The cold first turn, straight after start-up, then the steady turns (dynamic endpointing off).
        layout = script.turns_layout(phrases, args.turns + 1, reply_s, bench.reply_delay_s)
        probe = await bench.run("turns", config, layout)
        # 2. The same turns with dynamic endpointing on.
        dynamic_config = make_config(args, server.url, DYNAMIC)
        dyn_layout = script.turns_layout(phrases, args.turns, reply_s, bench.reply_delay_s)
        dyn_probe = await bench.run("dynamic", dynamic_config, dyn_layout)
        # 3. Barge-in: a second "hey jarvis" during a long reply.
        barge = []
        if args.barge_ins:
            server.reply = " ".join([args.reply] * 4)  # long enough to be talked over
            barge_config = make_config(args, server.url, ["vad.no_speech_timeout_s=1.5"])
            barge_layout = script.barge_layout(phrases, args.barge_ins, bench.reply_delay_s, 1.5)
            barge_probe = await bench.run("barge-in", barge_config, barge_layout)
            barge = metrics.barge_ins(barge_probe)
            server.reply = args.reply
        # 3b. A wake word while the previous request is still thinking.
        if args.barge_ins:
            results["thinking_barge_in"] = await thinking_phase(bench, config, args.barge_ins)
        # 4. Idle: room noise, nobody says the wake word.
        idle: dict[str, Any] = {}
        idle_probe = await bench.run(
            "idle",
            config,
            script.idle_layout(args.idle_seconds),
            noise_rms=0.003,
            during=measure_idle(args.idle_seconds, idle),
        )
        idle["idle_wakes"] = metrics.counts(idle_probe).get("wake", 0)
        # 5. Whisper's window: full against trimmed.
        progress("stt: full window against trimmed, on a 3 s utterance")
        results.update(stt_windows(stt.inner, script.padded(phrases.request, 3.0), args.stt_runs))
        # 5b. The realtime API on the same engines: commit -> first audio delta.
        progress("realtime API: input_audio_buffer.commit -> first response.output_audio.delta")
        results["realtime_commit_to_first_delta_ms"] = await realtime_figure(
            config, engines, phrases.request, folder, max(args.turns, 2)
        )
        # 5c. Realtime fairness (assistant.realtime.bench.fairness): one session flooding the shared worker
        # against another, and four sessions speaking at once.
        from assistant.realtime.bench import fairness

        progress("realtime API: fairness, one session flooding and four at once")
        flood_wav = ROOT.parent / "shared" / "audio" / "jfk.wav"
        results["realtime_fairness"] = fairness_figures = await fairness(
            config, engines, phrases.request, folder, max(args.turns, 2), flood_wav=flood_wav
        )
        progress(f"realtime fairness: {json.dumps(fairness_figures)}")
        bench.vad_tail_ms = script.vad_model_tail_ms(engines.vad, phrases.request, config.vad.threshold)
        results["vad_model_tail_ms"] = round(bench.vad_tail_ms, 1)
        turns = bench.turns(probe, layout, config)
        dynamic = bench.turns(dyn_probe, dyn_layout, dynamic_config)
        results["rss_peak_mb"] = round(read_status("VmHWM"), 1)
        # 6. The soak.
        if args.soak is not None:
            results["soak"] = await soak(bench, config, args.soak)
        close = getattr(engines.llm, "aclose", None)
        if close is not None:
            await close()
    results.update(report.summarise(turns, dynamic, barge, idle, results))
    results["counts"] = {"turns": metrics.counts(probe), "dynamic": metrics.counts(dyn_probe)}
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    level = logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.faults:
        from assistant.bench import faults

        return faults.main(args)
    started = time.perf_counter()
    try:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            results = asyncio.run(run_bench(args, args.keep))
        else:
            with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
                results = asyncio.run(run_bench(args, Path(tmp)))
    except script.ToolMissing as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    results["bench_wall_s"] = round(time.perf_counter() - started, 1)
    if not (args.speech_only or args.turn_only or args.skills_only):
        print(report.render(results))
    if "speech_set" in results:
        print(speech.render(results["speech_set"]))
    if "turn_taking" in results:
        from assistant.bench import turntaking

        print(turntaking.render(results["turn_taking"]))
    if "skills_set" in results:
        print(skillset.render(results["skills_set"]))
    if "local_answers" in results:
        from assistant.bench import localanswers

        print(localanswers.render(results["local_answers"]))
    if args.json is not None:
        report.write_json(results, args.json)
        progress(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
