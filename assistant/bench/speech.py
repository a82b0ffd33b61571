"""The speech-set phase: every request of the set through the real `assistant run` path.

Reports wake words found, the word error rate of the transcripts, `stt_ms`,
turns lost and runaway transcriptions, per voice and overall, and the real
voice's real-time factor.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.audio.wav import write_wav
from assistant.bench import metrics, speechset
from assistant.bench.probe import Call, Probe
from assistant.bench.wer import normalise, wer
from assistant.core.ports import SAMPLE_RATE
from assistant.events import Event

REPLY = "Okay."  # a short reply keeps the set quick: this phase is about hearing


@dataclass
class Heard:
    """What the assistant made of one request."""

    placed: speechset.Placed
    woke: bool = False
    transcript: str | None = None
    stt_ms: float | None = None
    answered: bool = False
    error: str = ""

    @property
    def lost(self) -> bool:
        """Woken, but the turn never finished with a transcript (a transcription that hung, failed or was dropped).

        A turn that ends cleanly counts even when nothing is said back: "stop" and "mute" are answered in silence.
        """
        return self.woke and not (self.answered and not self.error)


def match(placed: list[speechset.Placed], events: list[Event]) -> list[Heard]:
    """Give each request the events between its wake word and the next request's."""
    heard = [Heard(p) for p in placed]
    bounds = [p.wake_start / SAMPLE_RATE for p in placed] + [float("inf")]
    for event in events:
        index = int(np.searchsorted(bounds, event.t, side="right")) - 1
        if index < 0:
            continue
        into = heard[index]
        if event.type == "wake":
            into.woke = True
        elif event.type == "transcript":
            into.transcript = getattr(event, "text", "")
        elif event.type == "turn":
            into.stt_ms = getattr(event, "stt_ms", None)
            into.answered = into.answered or into.transcript is not None
        elif event.type == "error":
            into.error = f"{getattr(event, 'code', '?')}: {getattr(event, 'message', '')}"
    return heard


def tts_rtf(calls: list[Call]) -> float | None:
    """Synthesis time over the audio made (the real voice)."""
    made = sum(c.samples for c in calls) / SAMPLE_RATE
    spent = sum(c.end - c.start for c in calls)
    return round(spent / made, 3) if made else None


def summarise(heard: list[Heard], runaways: int) -> dict[str, Any]:
    """The figures of one pass over the set, overall and per voice."""
    by_voice: dict[str, list[Heard]] = defaultdict(list)
    for h in heard:
        by_voice[h.placed.item.voice.label].append(h)

    def figures(group: list[Heard]) -> dict[str, Any]:
        pairs = [(h.placed.item.text, h.transcript or "") for h in group if h.woke]
        stt = [h.stt_ms for h in group if h.stt_ms is not None]
        return {
            "requests": len(group),
            "wakes_found": sum(h.woke for h in group),
            "wer": round(wer(pairs), 4) if pairs else None,
            "turns_lost": sum(h.lost for h in group),
            "stt_ms": {**metrics.stats(stt), "max": round(max(stt), 1) if stt else None},
        }

    misheard = [
        {"said": h.placed.item.text, "heard": h.transcript, "voice": h.placed.item.voice.label, "error": h.error}
        for h in heard
        if not h.woke or normalise(h.transcript or "") != normalise(h.placed.item.text)
    ]
    return {
        **figures(heard),
        "runaway_transcriptions": runaways,
        "per_voice": {voice: figures(group) for voice, group in sorted(by_voice.items())},
        "misheard": misheard,
    }


def write_input(folder: Path, piper: speechset.Synthesizer, count: int | None) -> tuple[Path, list[speechset.Placed]]:
    """The set's input WAV (made once per benchmark run)."""
    audio, placed = speechset.render(speechset.items(count), piper)
    path = folder / "speech-set.wav"
    write_wav(path, audio)
    return path, placed


def runaway_count(probe: Probe) -> int:
    """Decodes whisper.cpp had to retry (logged by the engine) or gave up on."""
    return sum(1 for _, e in probe.events if e.type == "error" and getattr(e, "code", "") == "stt_failed")


def render(figures: dict[str, Any]) -> str:
    """The speech set's table, one block per Whisper window."""
    lines = [f"speech set: {figures.get('requests')} requests; real voice tts_rtf {figures.get('tts_rtf')}"]
    for window, f in figures.get("windows", {}).items():
        stt = f["stt_ms"]
        lines.append(
            f"  {window} window: wakes {f['wakes_found']}/{f['requests']}, wer {_percent(f['wer'])}, "
            f"stt_ms p50 {stt['p50']} p95 {stt['p95']} max {stt['max']}, turns lost {f['turns_lost']}, "
            f"runaway decodes {f['runaway_transcriptions']}"
        )
        for voice, v in f["per_voice"].items():
            lines.append(
                f"    {voice:16s} wakes {v['wakes_found']}/{v['requests']}, wer {_percent(v['wer'])}, "
                f"stt_ms p50 {v['stt_ms']['p50']} max {v['stt_ms']['max']}, lost {v['turns_lost']}"
            )
        for miss in f["misheard"]:
            lines.append(
                f"    misheard [{miss['voice']}] {miss['said']!r} -> {miss['heard']!r} {miss['error']}".rstrip()
            )
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def thinking_barge_ins(cues: list[Any], events: list[Event]) -> dict[str, Any]:
    """End of speech -> first audio of the requests said while a turn was thinking, against ordinary ones."""
    bounds = [c.wake_start / SAMPLE_RATE for c in cues] + [float("inf")]
    latency: dict[str, list[float]] = {"turn": [], "barge": []}
    thinking_at_wake = 0
    state = "idle"
    for event in events:
        if event.type == "state":
            state = getattr(event, "state", state)
            continue
        index = int(np.searchsorted(bounds, event.t, side="right")) - 1
        if index < 0:
            continue
        kind = cues[index].kind
        if event.type == "wake" and kind == "barge" and state == "thinking":
            thinking_at_wake += 1
        value = getattr(event, "end_of_speech_to_first_audio_ms", None)
        if event.type == "turn" and kind in latency and value is not None:
            latency[kind].append(float(value))
    ordinary, barge = metrics.stats(latency["turn"]), metrics.stats(latency["barge"])
    ratio = None
    if ordinary["p50"] and barge["p50"] is not None:
        ratio = round(float(barge["p50"]) / float(ordinary["p50"]), 3)
    return {
        "pairs": sum(1 for c in cues if c.kind == "barge"),
        "woke_while_thinking": thinking_at_wake,
        "ordinary_ms": ordinary,
        "after_barge_in_ms": barge,
        "barge_over_ordinary": ratio,
    }
