"""Local answers: the device's own requests through `assistant run`, with the LLM server up and down.

A request the device answers itself (the time, a timer, the volume) must not
wait for the LLM: from the user's last word to the first audio it costs the
endpointing and Whisper, then only the answer's first sentence on the voice.
Each request is one WAV of the turn-taking set's kind ("hey jarvis", the
request, room noise; voices in turn) through a freshly built assistant, on
the real models and the device's default endpointing (Smart Turn), once
with the Ollama test server answering and once with nothing listening at
`llm.host`.

`after_stt_ms` is end of speech -> first audio less the endpointing and
`stt_ms` (what is left once the transcript is there: the match, the
handler, the first sentence's synthesis, the speaker); its goal is
`AFTER_STT_GOAL_MS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assistant.bench.metrics import cell, stats
from assistant.bench.turnset import Utterance, write_turnset
from assistant.bench.turntaking import run_one
from assistant.config import Config
from assistant.engines.bundle import Engines

AFTER_STT_GOAL_MS = 250.0
OVERRIDES = ("turn.mode=smart_turn",)  # the device's default endpointing
DOWN_HOST = "http://127.0.0.1:9"  # nothing listens on the discard port
REQUESTS: tuple[str, ...] = (
    "What time is it?",
    "Set a timer for ten minutes.",
    "What's the date today?",
    "How much time is left on my timer?",
    "Turn the volume down.",
    "Cancel the timer.",
)
__all__ = [
    "AFTER_STT_GOAL_MS",
    "DOWN_HOST",
    "OVERRIDES",
    "REQUESTS",
    "after_stt_ms",
    "render",
    "run_local",
    "write_local_set",
]


def write_local_set(folder: Path, piper: Any, count: int | None = None) -> list[Utterance]:
    """The requests as WAVs, voices in turn (the first `count` of them; None: all)."""
    items = [(text, 0.0, "") for text in REQUESTS[:count]]
    return write_turnset(folder, piper=piper, items=items)


def after_stt_ms(row: dict[str, Any]) -> float | None:
    """End of speech -> first audio, less the endpointing and Whisper's share (None if a figure is missing)."""
    figures = (row.get("end_of_speech_to_first_audio_ms"), row.get("endpointing_ms"), row.get("stt_ms"))
    if any(f is None for f in figures):
        return None
    first, endpointing, stt = (float(f) for f in figures)  # type: ignore[arg-type]
    return first - endpointing - stt


async def run_local(config: Config, utterances: Sequence[Utterance], engines: Engines, folder: Path) -> dict[str, Any]:
    """The figures for one LLM state over the set; every request must be answered without the LLM."""
    rows = [await run_one(config, u, engines, folder) for u in utterances]
    for row in rows:
        row["after_stt_ms"] = after_stt_ms(row)
    answered = [r for r in rows if r["answered"] and not r["asked_llm"]]
    return {
        "requests": len(rows),
        "answered_locally": len(answered),
        "asked_llm": sum(1 for r in rows if r["asked_llm"]),
        "end_of_speech_to_first_audio_ms": stats([r["end_of_speech_to_first_audio_ms"] for r in answered]),
        "stt_ms": stats([r["stt_ms"] for r in answered if r["stt_ms"] is not None]),
        "endpointing_ms": stats([r["endpointing_ms"] for r in answered if r["endpointing_ms"] is not None]),
        "after_stt_ms": stats([r["after_stt_ms"] for r in answered if r["after_stt_ms"] is not None]),
        "rows": rows,
    }


def render(results: dict[str, Any]) -> str:
    """The local-answer figures per LLM state, as scripts/bench prints them."""
    lines = ["", "Local answers (the device's own requests through `assistant run`, real models)"]

    lines.append(
        f"  {'LLM server':<12}{'answered':>10}{'first audio p50/p95':>22}{'stt_ms p50':>12}{'after stt p50/p95':>20}"
    )
    for state, f in results.items():
        first = cell(f["end_of_speech_to_first_audio_ms"], "p50", "p95")
        after = cell(f["after_stt_ms"], "p50", "p95")
        answered, stt = f"{f['answered_locally']}/{f['requests']}", cell(f["stt_ms"], "p50")
        lines.append(f"  {state:<12}{answered:>10}{first:>22}{stt:>12}{after:>20}")
    lines.append(
        f"  goal: first audio <= endpointing + stt_ms + {AFTER_STT_GOAL_MS:.0f} ms (after stt p50), the LLM up or down"
    )
    return "\n".join(lines)
