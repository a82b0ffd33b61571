"""Turn taking, measured: the turn-taking set through the real assistant, one runtime per utterance.

Entry points: `run_turn_taking(config, utterances, engines)` (async) returns
the figures for one configuration; `python -m assistant.bench.turntaking`
makes the set and compares the fixed-silence mode with Smart Turn:

    PYTHONPATH=. python -m assistant.bench.turntaking --json turn.json

Figures: `endpointing_ms` (p50/p95, complete requests: the VAD's end of
speech to the end of the turn, audio time), `cut_off` (paused requests whose
transcript lost the words after the pause), `ended_in_pause` (paused requests
whose turn ended before the second part began) and
`end_of_speech_to_first_audio_ms` (p50/p95, every request with a reply).
Runs use `fast=True`: the input goes faster than real time only while the
assistant is idle or listening with nothing computing; while the turn model,
a transcription or a reply is computing, it is paced in real time, so every
figure includes the real compute cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assistant.app import build
from assistant.bench.metrics import cell, stats
from assistant.bench.runner import bench_config
from assistant.bench.turnset import Utterance, write_turnset
from assistant.bench.wer import normalise
from assistant.config import Config
from assistant.engines.bundle import Engines, load_engines
from assistant.events import Event

ROOT = Path(__file__).resolve().parents[2]
MODES: dict[str, tuple[str, ...]] = {
    "silence_700ms": ("turn.mode=silence", "vad.silence_ms=700"),
    "smart_turn": ("turn.mode=smart_turn",),
    "smart_turn_model_only": ("turn.mode=smart_turn", "turn.transcript_check=false"),
}
DEFAULT_MODES = ("silence_700ms", "smart_turn")
REPLY = "Sure, here is the answer you asked for."
__all__ = ["DEFAULT_MODES", "MODES", "REPLY", "pick", "render", "run_turn_taking", "write_turnset"]


def pick(utterances: Sequence[Utterance], count: int | None) -> list[Utterance]:
    """The first `count` complete and `count` paused utterances (None: all)."""
    if count is None:
        return list(utterances)
    return [u for u in utterances if not u.paused][:count] + [u for u in utterances if u.paused][:count]


def lost_second_part(utterance: Utterance, transcripts: list[str]) -> bool:
    """True when no content word of the part after the pause made it into the request's transcript.

    Both sides are normalised as the word error rate is ("50%" is "fifty percent")."""
    words = normalise(utterance.second)
    wanted = {w for w in words if len(w) >= 4} or set(words)
    heard = set(normalise(transcripts[0])) if transcripts else set()
    return not wanted & heard


async def run_one(config: Config, utterance: Utterance, engines: Engines, folder: Path) -> dict[str, Any]:
    """One utterance through a freshly built assistant; what happened, from its events."""
    events: list[Event] = []
    output = folder / (Path(utterance.path).stem + "-out.wav")
    with build(config, input_wav=Path(utterance.path), output_wav=output, fast=True, engines=engines) as runtime:
        runtime.bus.subscribe(events.append)
        await runtime.assistant.run()
    by_type: dict[str, list[Any]] = {}
    for event in events:
        by_type.setdefault(event.type, []).append(event)
    turn = (by_type.get("turn") or [None])[0]
    stopped = (by_type.get("speech_stopped") or [None])[0]
    transcripts = [e.text for e in by_type.get("transcript", [])]
    result: dict[str, Any] = {
        "text": utterance.text,
        "voice": utterance.voice,
        "paused": utterance.paused,
        "woke": bool(by_type.get("wake")),
        "transcripts": transcripts,
        "endpointing_ms": getattr(turn, "endpointing_ms", None),
        "end_of_speech_to_first_audio_ms": getattr(turn, "end_of_speech_to_first_audio_ms", None),
        "stt_ms": getattr(turn, "stt_ms", None),
        "answered": getattr(turn, "end_of_speech_to_first_audio_ms", None) is not None,
        "asked_llm": bool(by_type.get("llm_request")),
        "model_calls": len(by_type.get("end_of_turn", [])),
        "model_ms": [e.ms for e in by_type.get("end_of_turn", [])],
        "model_p": [round(e.probability, 3) for e in by_type.get("end_of_turn", [])],
        "model_silence_ms": [e.silence_ms for e in by_type.get("end_of_turn", [])],
    }
    if utterance.paused:
        result["cut_off"] = lost_second_part(utterance, transcripts)
        assert utterance.second_start_s is not None
        result["ended_in_pause"] = stopped is not None and stopped.t < utterance.second_start_s
    return result


async def run_turn_taking(
    config: Config, utterances: Sequence[Utterance], engines: Engines, folder: Path
) -> dict[str, Any]:
    """The figures for one configuration over the set (see the module docstring)."""
    rows = [await run_one(config, u, engines, folder) for u in utterances]
    complete = [r for r in rows if not r["paused"]]
    paused = [r for r in rows if r["paused"]]
    model_ms = [ms for r in rows for ms in r["model_ms"]]
    return {
        "endpointing_ms": stats([r["endpointing_ms"] for r in complete if r["endpointing_ms"] is not None]),
        "cut_off": sum(1 for r in paused if r["cut_off"]),
        "ended_in_pause": sum(1 for r in paused if r["ended_in_pause"]),
        "paused_requests": len(paused),
        "complete_requests": len(complete),
        "no_wake": sum(1 for r in rows if not r["woke"]),
        "end_of_speech_to_first_audio_ms": stats(
            [r["end_of_speech_to_first_audio_ms"] for r in rows if r["end_of_speech_to_first_audio_ms"] is not None]
        ),
        "paused_endpointing_ms": stats([r["endpointing_ms"] for r in paused if r["endpointing_ms"] is not None]),
        "model_call_ms": stats(model_ms) if model_ms else None,
        "rows": rows,
    }


def render(results: dict[str, Any]) -> str:
    """The turn-taking figures per mode, as scripts/bench prints them."""
    lines = ["", "Turn taking (the turn-taking set through `assistant run`, real models)"]

    header = (
        f"  {'mode':<24}{'endpointing p50/p95':>22}{'cut_off':>10}{'in pause':>10}{'first audio p50/p95':>22}"
        f"{'idle CPU %':>12}"
    )
    lines.append(header)
    for mode, f in results.items():
        endpointing = cell(f["endpointing_ms"], "p50", "p95")
        first = cell(f["end_of_speech_to_first_audio_ms"], "p50", "p95")
        cut = f"{f['cut_off']}/{f['paused_requests']}"
        in_pause = f"{f['ended_in_pause']}/{f['paused_requests']}"
        idle = f.get("idle_cpu_percent")
        idle_cpu = "-" if idle is None else f"{idle:.1f}"
        lines.append(f"  {mode:<24}{endpointing:>22}{cut:>10}{in_pause:>10}{first:>22}{idle_cpu:>12}")
    lines.append(
        "  goals: endpointing p50 <= 250 ms (complete requests); cut_off 0; first audio p50 <= 800 ms;"
        " idle CPU unchanged"
    )
    return "\n".join(lines)


def make_config(models: Path, host: str, overrides: Sequence[str]) -> Config:
    return bench_config(models, host, overrides)


async def main_async(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    from assistant.testing.ollama_server import OllamaTestServer  # the Ollama test server the benchmark uses

    with OllamaTestServer(models=["bench-model"], reply=REPLY, ttft_ms=150, tokens_per_s=40) as server:
        config = make_config(args.models, server.url, [*args.set])
        engines = load_engines(config)
        utterances = pick(write_turnset(folder / "set", piper=engines.tts), args.limit // 2 or None)
        results: dict[str, Any] = {}
        for mode in args.modes:
            print(f"[turntaking] {mode}: {len(utterances)} utterances", file=sys.stderr, flush=True)
            mode_config = make_config(args.models, server.url, [*MODES[mode], *args.set])
            results[mode] = await run_turn_taking(mode_config, utterances, engines, folder)
        return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assistant.bench.turntaking", description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=ROOT.parent / "shared" / "models")
    parser.add_argument("--modes", nargs="+", default=["silence_700ms", "smart_turn"], choices=sorted(MODES))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override")
    parser.add_argument("--limit", type=int, default=0, help="use only this many utterances (half paused)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR")
    args = parser.parse_args(argv)
    if args.keep is not None:
        results = asyncio.run(main_async(args, args.keep))
    else:
        with tempfile.TemporaryDirectory(prefix="turntaking-") as tmp:
            results = asyncio.run(main_async(args, Path(tmp)))
    print(render(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
