"""From one probed run to per-turn figures: the critical path, its overhead, the naive pipeline."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from assistant.bench.probe import Call, Probe
from assistant.bench.script import Cue, ReplyPlan
from assistant.core.ports import SAMPLE_RATE
from assistant.events import Event, SpeechStopped, TurnLatency, Wake

BOUNDARIES = ("wake", "speech_started")


def cell(figure: dict[str, Any] | None, *quantiles: str) -> str:
    """A table cell of a `stats` figure: "736/768" for ("p50", "p95"), "-" for what was not measured."""
    values = [(figure or {}).get(q) for q in quantiles]
    return "/".join("-" if v is None else f"{v:.0f}" for v in values)


def stats(values: Iterable[float | None]) -> dict[str, float | int | None]:
    """p50 / p95 (ms figures rounded to 0.1), with the count; None where nothing was measured."""
    data = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not data:
        return {"p50": None, "p95": None, "n": 0}
    return {
        "p50": round(float(np.percentile(data, 50)), 1),
        "p95": round(float(np.percentile(data, 95)), 1),
        "n": len(data),
    }


@dataclass(frozen=True)
class Settings:
    """What the engines must take, by construction of the benchmark."""

    silence_ms: float
    ttft_ms: float
    tokens_per_s: float
    plan: ReplyPlan
    vad_model_tail_ms: float = 0.0  # Silero's own hangover past the last voiced sample, at window resolution

    def tokens_ms(self, count: int) -> float:
        """Server time from the first token to the `count`-th one."""
        return 1000.0 * max(count - 1, 0) / self.tokens_per_s if self.tokens_per_s > 0 else 0.0


@dataclass
class TurnFigures:
    """One turn's figures in ms (None: did not happen)."""

    speech_end_s: float
    total_ms: float | None = None  # last voiced input sample -> first reply sample handed to the speaker (wall)
    total_clock_ms: float | None = None  # the same on the audio clock (80 ms blocks)
    total_vad_ms: float | None = None  # the core's own figure: VAD speech end -> first audio (clock)
    endpointing_ms: float | None = None
    stt_ms: float | None = None
    llm_first_token_ms: float | None = None
    first_sentence_ms: float | None = None
    tts_first_audio_ms: float | None = None
    stt_compute_ms: float | None = None
    tts_compute_ms: float | None = None
    tts_all_ms: float | None = None
    must_ms: float | None = None
    overhead_ms: float | None = None
    plumbing_ms: float | None = None  # the overhead less the VAD tail, block rounding and splitter look-ahead
    naive_ms: float | None = None
    before_llm_done: bool | None = None
    interrupted: bool = False
    path_ms: dict[str, float] = field(default_factory=dict)  # the critical path, stage by stage
    excess_ms: dict[str, float] = field(default_factory=dict)  # the overhead, part by part

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if isinstance(value, float):
                value = round(value, 1)
            elif isinstance(value, dict):
                value = {k: round(v, 1) for k, v in value.items()}
            out[key] = value
        return out


def _first(events: Sequence[tuple[float, Event]], kind: str) -> tuple[float, Event] | None:
    return next(((at, e) for at, e in events if e.type == kind), None)


def _ms(seconds: float) -> float:
    return seconds * 1000.0


def turn_span(probe: Probe, cue: Cue) -> tuple[int, int] | None:
    """Event indices of the turn the cue's request started: its speech_stopped up to the next boundary."""
    lo, hi = cue.request_start / SAMPLE_RATE, cue.speech_end / SAMPLE_RATE + 3.0
    events = probe.events
    start = next(
        (i for i, (_, e) in enumerate(events) if isinstance(e, SpeechStopped) and lo <= e.t <= hi),
        None,
    )
    if start is None:
        return None
    end = next((i for i in range(start + 1, len(events)) if events[i][1].type in BOUNDARIES), len(events))
    return start, end


def analyse_turn(
    probe: Probe,
    cue: Cue,
    settings: Settings,
    stt_calls: Sequence[Call],
    tts_calls: Sequence[Call],
    requests: Sequence[Any],
    mono_offset: float,
) -> TurnFigures | None:
    """The figures of one scripted turn, or None when the assistant never took it."""
    span = turn_span(probe, cue)
    if span is None:
        return None
    events = probe.events[span[0] : span[1]]
    window_end = probe.events[span[1]][0] if span[1] < len(probe.events) else math.inf
    figures = TurnFigures(speech_end_s=cue.speech_end / SAMPLE_RATE)
    stopped_at, stopped = events[0]
    latency = _first(events, "turn")
    if latency is not None:
        lat = latency[1]
        assert isinstance(lat, TurnLatency)
        figures.endpointing_ms = lat.endpointing_ms
        figures.stt_ms = lat.stt_ms
        figures.llm_first_token_ms = lat.llm_first_token_ms
        figures.first_sentence_ms = lat.first_sentence_ms
        figures.total_vad_ms = lat.end_of_speech_to_first_audio_ms
    audio_stopped = _first(events, "audio_stopped")
    figures.interrupted = bool(audio_stopped and getattr(audio_stopped[1], "interrupted", False))
    started = _first(events, "audio_started")
    sentence = _first(events, "sentence")
    request = _first(events, "llm_request")
    speech_end_wall = probe.wall_of_sample(cue.speech_end)
    transcript = _first(events, "transcript")
    if started is None or sentence is None or request is None or speech_end_wall is None or transcript is None:
        return figures
    figures.total_clock_ms = _ms(started[1].t - figures.speech_end_s)
    first_write = next((w for w in probe.writes if w.at >= started[0]), None)
    if first_write is None:
        return figures
    figures.total_ms = _ms(first_write.at - speech_end_wall)
    figures.tts_first_audio_ms = _ms(first_write.at - sentence[0])
    # The transcription the turn used: the last one done by its transcript (a speculative one may start early).
    stt = next((c for c in reversed(stt_calls) if c.end <= transcript[0]), None)
    tts = [c for c in tts_calls if sentence[0] <= c.start < window_end]
    chat = next(
        (
            r
            for r in requests
            if r.path == "/api/chat"
            and isinstance(r.body, dict)
            and r.body.get("messages")
            and r.body.get("stream") is not False
            and r.received_at + mono_offset >= request[0] - 0.001
        ),
        None,
    )
    if stt is None or not tts or chat is None or chat.first_token_at is None:
        return figures
    first_token = chat.first_token_at + mono_offset
    figures.stt_compute_ms = _ms(stt.end - stt.start)
    figures.tts_compute_ms = _ms(tts[0].end - tts[0].start)
    figures.tts_all_ms = sum(_ms(c.end - c.start) for c in tts)
    if chat.finished_at is not None:
        figures.before_llm_done = first_write.at < chat.finished_at + mono_offset
    vad_tail = _ms(stopped.t - figures.speech_end_s)
    endpoint = figures.endpointing_ms if figures.endpointing_ms is not None else 0.0
    path = {
        "vad_tail": vad_tail,
        "endpoint_silence": endpoint,
        "endpoint_decision_lag": _ms(stopped_at - speech_end_wall) - vad_tail - endpoint,
        "to_stt": _ms(stt.start - stopped_at),
        "stt": figures.stt_compute_ms,
        "stt_to_llm_request": _ms(request[0] - stt.end),
        "request_to_server": _ms(chat.received_at + mono_offset - request[0]),
        "server_ttft": _ms(chat.first_token_at - chat.received_at),
        "tokens_to_first_chunk": _ms(sentence[0] - first_token),
        "to_tts": _ms(tts[0].start - sentence[0]),
        "tts": figures.tts_compute_ms,
        "tts_to_speaker": _ms(first_write.at - tts[0].end),
    }
    figures.path_ms = path
    chunk_ms = settings.tokens_ms(settings.plan.first_text_tokens)
    engines = figures.stt_compute_ms + settings.ttft_ms + chunk_ms + figures.tts_compute_ms
    figures.must_ms = settings.silence_ms + engines
    figures.overhead_ms = figures.total_ms - figures.must_ms
    lookahead = settings.tokens_ms(settings.plan.first_emit_tokens) - chunk_ms
    figures.excess_ms = {
        "vad_model_tail": settings.vad_model_tail_ms,
        "vad_block_rounding": vad_tail - settings.vad_model_tail_ms,
        "endpoint_block_rounding": endpoint - settings.silence_ms,
        "endpoint_decision_lag": path["endpoint_decision_lag"],
        "to_stt": path["to_stt"],
        "stt_to_llm_request": path["stt_to_llm_request"],
        "request_to_server": path["request_to_server"],
        "server_ttft_late": path["server_ttft"] - settings.ttft_ms,
        "splitter_lookahead": lookahead,
        "first_chunk_late": path["tokens_to_first_chunk"] - chunk_ms - lookahead,
        "to_tts": path["to_tts"],
        "tts_to_speaker": path["tts_to_speaker"],
    }
    design = ("vad_model_tail", "vad_block_rounding", "endpoint_block_rounding", "splitter_lookahead")
    figures.plumbing_ms = figures.overhead_ms - sum(figures.excess_ms[k] for k in design)
    whole_reply_ms = settings.tokens_ms(len(settings.plan.tokens))
    figures.naive_ms = (
        _ms(stopped_at - speech_end_wall)
        + figures.stt_compute_ms
        + settings.ttft_ms
        + whole_reply_ms
        + figures.tts_all_ms
    )
    return figures


@dataclass
class BargeIn:
    wake_t: float
    barge_in_ms: float  # wake detected -> the last reply sample handed to / left in the speaker (wall)
    audio_ms: float  # wake block end -> the last reply sample left in the output timeline (audio time)
    detection_lag_ms: float  # wake block arrived -> wake event (inference), not counted above
    stopped_event_ms: float | None  # audio_stopped(interrupted).t - wake.t, the core's own figure
    leaked_writes: int  # reply blocks written after the stop


def barge_ins(probe: Probe) -> list[BargeIn]:
    """Every wake word that came while a reply was playing, and how fast the reply went quiet."""
    results: list[BargeIn] = []
    playing = False
    events = probe.events
    for index, (at, event) in enumerate(events):
        if event.type == "audio_started":
            playing = True
        elif event.type == "audio_stopped":
            playing = False
        elif isinstance(event, Wake) and playing:
            playing = False
            stop = next((s for s in probe.stops if s.at >= at), None)
            if stop is None:
                continue
            next_audio = next((a for a, e in events[index:] if e.type == "audio_started"), math.inf)
            later = [w for w in probe.writes if at < w.at < next_audio]
            leaked = [w for w in later if w.at > stop.at]
            last_at = max([stop.at, *(w.at for w in later)])
            kept = [min(w.end, stop.now) for w in probe.writes if w.at <= stop.at] + [w.end for w in leaked]
            wake_sample = round(event.t * SAMPLE_RATE)
            arrived = probe.wall_of_sample(wake_sample)
            stopped_event = next(
                (e.t for _, e in events[index:] if e.type == "audio_stopped" and getattr(e, "interrupted", False)),
                None,
            )
            results.append(
                BargeIn(
                    wake_t=event.t,
                    barge_in_ms=_ms(last_at - at),
                    audio_ms=1000.0 * (max(kept, default=wake_sample) - wake_sample) / SAMPLE_RATE,
                    detection_lag_ms=_ms(at - arrived) if arrived is not None else math.nan,
                    stopped_event_ms=_ms(stopped_event - event.t) if stopped_event is not None else None,
                    leaked_writes=len(leaked),
                )
            )
    return results


def counts(probe: Probe) -> dict[str, int]:
    out: dict[str, int] = {}
    for _, event in probe.events:
        out[event.type] = out.get(event.type, 0) + 1
    return out
