"""The machine, the settings, the summary figures, the goals, and the printed table."""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assistant.bench.metrics import BargeIn, TurnFigures, stats
from assistant.bench.script import ReplyPlan
from assistant.config import Config

TIMINGS = (
    "end_of_speech_to_first_audio_ms",
    "endpointing_ms",
    "stt_ms",
    "llm_first_token_ms",
    "first_sentence_ms",
    "tts_first_audio_ms",
    "overhead_ms",
    "naive_ms",
    "first_turn_ms",
    "barge_in_ms",
    "stt_full_window_ms",
    "stt_trimmed_ms",
    "realtime_commit_to_first_delta_ms",
)
"""The keys every JSON report carries as {"p50": .., "p95": ..} in ms."""
SKILLS_SHARE = 0.95
SKILLS_GOAL = "skills set: >= 95% right intent and slots"


def machine() -> dict[str, Any]:
    found: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                key, _, value = line.partition(":")
                found.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    model = found.get("model name") or found.get("hardware") or platform.processor() or platform.machine()
    if found.get("model") and not found["model"].isdigit():
        model += f" ({found['model']})"  # a Raspberry Pi names the board here
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "arch": platform.machine(),
        "python": platform.python_version(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


def settings(
    args: argparse.Namespace, config: Config, plan: ReplyPlan, reply_s: float, load_s: float
) -> dict[str, Any]:
    return {
        "ttft_ms": args.ttft_ms,
        "tokens_per_s": args.tokens_per_s,
        "turns": args.turns,
        "barge_ins": args.barge_ins,
        "idle_seconds": args.idle_seconds,
        "soak_minutes": args.soak,
        "models": str(args.models),
        "stt_model": config.stt.model,
        "stt_threads": config.stt.threads,
        "stt_prompt": config.stt.prompt,
        "voice": config.tts.voice,
        "vad_silence_ms": config.vad.silence_ms,
        "reply_tokens": len(plan.tokens),
        "reply_chunks": len(plan.chunks),
        "first_chunk": plan.chunks[0] if plan.chunks else "",
        "first_chunk_tokens": plan.first_text_tokens,
        "first_chunk_emitted_after_tokens": plan.first_emit_tokens,
        "reply_audio_s": round(reply_s, 2),
        "model_load_s": round(load_s, 2),
    }


def thread_cpu() -> dict[str, float]:
    """CPU seconds per thread of this process (Python names where known)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat", encoding="utf-8") as handle:
                stat = handle.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 1 :].split()
        name = names.get(int(tid)) or f"native:{comm}"
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def _p50(figure: dict[str, Any]) -> float | None:
    value = figure.get("p50")
    return float(value) if value is not None else None


def _figures(turns: Sequence[TurnFigures | None]) -> list[TurnFigures]:
    return [t for t in turns if t is not None]


def summarise(
    turns: Sequence[TurnFigures | None],
    dynamic: Sequence[TurnFigures | None],
    barge: Sequence[BargeIn],
    idle: dict[str, Any],
    results: dict[str, Any],
) -> dict[str, Any]:
    """The report's figures: steady turns are every turn after the cold first one."""
    first = turns[0] if turns else None
    steady = _figures(turns[1:])
    every = _figures(turns)
    out: dict[str, Any] = {
        "end_of_speech_to_first_audio_ms": stats(t.total_ms for t in steady),
        "end_of_speech_to_first_audio_vad_ms": stats(t.total_vad_ms for t in steady),
        "end_of_speech_to_first_audio_clock_ms": stats(t.total_clock_ms for t in steady),
        "endpointing_ms": stats(t.endpointing_ms for t in steady),
        "stt_ms": stats(t.stt_ms for t in steady),
        "stt_compute_ms": stats(t.stt_compute_ms for t in steady),
        "llm_first_token_ms": stats(t.llm_first_token_ms for t in steady),
        "first_sentence_ms": stats(t.first_sentence_ms for t in steady),
        "tts_first_audio_ms": stats(t.tts_first_audio_ms for t in steady),
        "tts_compute_ms": stats(t.tts_compute_ms for t in steady),
        "overhead_ms": stats(t.overhead_ms for t in steady),
        "overhead_plumbing_ms": stats(t.plumbing_ms for t in steady),
        "naive_ms": stats(t.naive_ms for t in steady),
    }
    keys = sorted({k for t in steady for k in t.excess_ms}, key=lambda k: list(steady[0].excess_ms).index(k))
    out["overhead_breakdown_ms"] = {k: stats(t.excess_ms.get(k) for t in steady) for k in keys}
    path = [k for k in (steady[0].path_ms if steady else {})]
    out["critical_path_ms"] = {k: stats(t.path_ms.get(k) for t in steady) for k in path}
    total, naive = _p50(out["end_of_speech_to_first_audio_ms"]), _p50(out["naive_ms"])
    out["pipelined_over_naive"] = round(total / naive, 3) if total is not None and naive else None
    first_ms = first.total_ms if first is not None else None
    out["first_turn_ms"] = {"p50": _round(first_ms), "p95": _round(first_ms), "n": int(first_ms is not None)}
    out["steady_turn_ms"] = out["end_of_speech_to_first_audio_ms"]
    out["first_turn_over_steady"] = round(first_ms / total, 3) if first_ms is not None and total else None
    if first is not None and first.path_ms:
        out["first_turn_path_ms"] = {k: round(v, 1) for k, v in first.path_ms.items()}
    flags = [t.before_llm_done for t in every if t.before_llm_done is not None]
    out["first_audio_before_llm_done"] = {
        "all": bool(flags) and all(flags),
        "ratio": round(sum(flags) / len(flags), 3) if flags else None,
        "n": len(flags),
    }
    out["barge_in_ms"] = stats(b.barge_in_ms for b in barge)
    out["barge_in_audio_ms"] = stats(b.audio_ms for b in barge)
    out["barge_in_event_ms"] = stats(b.stopped_event_ms for b in barge)
    out["barge_in_detection_lag_ms"] = stats(b.detection_lag_ms for b in barge)
    out["barge_in_leaked_writes"] = sum(b.leaked_writes for b in barge)
    out.update(idle)
    dyn = _figures(dynamic)
    out["dynamic_endpointing"] = {
        "settings": {"vad.complete_silence_ms": 300, "vad.trailing_silence_ms": 1200},
        "off": {
            "end_of_speech_to_first_audio_ms": out["end_of_speech_to_first_audio_ms"],
            "end_of_speech_to_first_audio_vad_ms": out["end_of_speech_to_first_audio_vad_ms"],
            "endpointing_ms": out["endpointing_ms"],
        },
        "on": {
            "end_of_speech_to_first_audio_ms": stats(t.total_ms for t in dyn),
            "end_of_speech_to_first_audio_vad_ms": stats(t.total_vad_ms for t in dyn),
            "endpointing_ms": stats(t.endpointing_ms for t in dyn),
            # Turns whose transcript came from the speculative transcription (the core's stt_ms ~ 0).
            "speculation_used": sum(1 for t in dyn if t.stt_ms is not None and t.stt_ms < 1.0),
            "end_of_speech_to_first_audio_when_speculated_ms": stats(
                t.total_ms for t in dyn if t.stt_ms is not None and t.stt_ms < 1.0
            ),
            "turns": len(dyn),
        },
    }
    out["missed_turns"] = sum(1 for t in [*turns, *dynamic] if t is None or t.total_ms is None)
    out["interrupted_turns"] = sum(1 for t in [*every, *dyn] if t.interrupted)
    out["turns"] = [t.as_dict() if t is not None else None for t in turns]
    out["dynamic_turns"] = [t.as_dict() if t is not None else None for t in dynamic]
    merged = {**results, **out}
    out["goals"] = goals(merged)
    return out


def _round(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


def goals(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals: name, target, measured value, met (None: not measured)."""

    def p(key: str, q: str = "p50") -> float | None:
        figure = r.get(key) or {}
        value = figure.get(q) if isinstance(figure, dict) else None
        return float(value) if value is not None else None

    def check(ok: bool | None, *values: float | None) -> bool | None:
        return None if any(v is None for v in values) else ok

    out: list[dict[str, Any]] = []
    overhead = p("overhead_ms", "p95")
    out.append({"goal": "overhead_ms p95 <= 30", "value": overhead, "met": check((overhead or 0) <= 30, overhead)})
    before = r.get("first_audio_before_llm_done", {})
    ratio = before.get("ratio")
    out.append({"goal": "first audio before LLM done", "value": ratio, "met": check(bool(before.get("all")), ratio)})
    barge = p("barge_in_ms", "p95")
    out.append({"goal": "barge_in_ms p95 <= 50", "value": barge, "met": check((barge or 0) <= 50, barge)})
    idle = r.get("idle_cpu_percent")
    out.append({"goal": "idle_cpu_percent <= 5", "value": idle, "met": check((idle or 0) <= 5, idle)})
    out += speech_goals(r)
    first = r.get("first_turn_over_steady")
    out.append(
        {"goal": "first turn within 20% of steady", "value": first, "met": check(abs((first or 1) - 1) <= 0.2, first)}
    )
    pipelined = r.get("pipelined_over_naive")
    out.append(
        {
            "goal": "end_of_speech_to_first_audio p50 <= 0.7 x naive",
            "value": pipelined,
            "met": check((pipelined or 0) <= 0.7, pipelined),
        }
    )
    soak = r.get("soak")
    if soak is not None:
        growth = soak.get("rss_growth_mb")
        done = soak.get("turns_completed") == soak.get("turns_expected")
        ok = soak.get("errors") == 0 and (growth or 0) <= 10 and done
        out.append({"goal": "soak: no errors, RSS growth <= 10 MB", "value": growth, "met": check(ok, growth)})
    return out


def speech_goals(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The real-speech goals: the speech set on the configured (full) window, and barge-in while thinking."""
    out: list[dict[str, Any]] = []
    full = (r.get("speech_set") or {}).get("windows", {}).get("full")
    if full is not None:
        lost, runaways = full["turns_lost"], full["runaway_transcriptions"]
        out.append(
            {
                "goal": "speech set: 0 lost turns, 0 runaway transcriptions",
                "value": lost + runaways,
                "met": lost + runaways == 0,
            }
        )
        out.append({"goal": "speech set: wer <= 10%", "value": full["wer"], "met": full["wer"] <= 0.10})
        out.append(
            {
                "goal": "speech set: every wake word found",
                "value": f"{full['wakes_found']}/{full['requests']}",
                "met": full["wakes_found"] == full["requests"],
            }
        )
        worst = full["stt_ms"]["max"]
        out.append(
            {"goal": "speech set: stt_ms max <= 1000", "value": worst, "met": None if worst is None else worst <= 1000}
        )
    skills = r.get("skills_set")
    if skills is not None:
        out.append(
            {
                "goal": SKILLS_GOAL,
                "value": skills["share"],
                "met": skills["share"] >= SKILLS_SHARE,
            }
        )
        taken = len(skills["questions_taken"])
        out.append({"goal": "skills set: no general question taken from the LLM", "value": taken, "met": taken == 0})
    for state, local in (r.get("local_answers") or {}).items():
        after = local["after_stt_ms"]["p50"]
        out.append(
            {
                "goal": f"local answers, LLM {state}: first audio <= endpointing + stt_ms + 250 (p50)",
                "value": after,
                "met": None if after is None else after <= 250,
            }
        )
    thinking = r.get("thinking_barge_in")
    if thinking is not None:
        ratio = thinking.get("barge_over_ordinary")
        out.append(
            {
                "goal": "barge-in while thinking: p50 within 20% of an ordinary turn",
                "value": ratio,
                "met": None if ratio is None else ratio <= 1.2,
            }
        )
    return out


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.0f}"
    return str(value)


def _verdict(met: bool | None) -> str:
    return "-" if met is None else ("PASS" if met else "MISS")


def render(r: dict[str, Any]) -> str:
    m, s = r.get("machine", {}), r.get("settings", {})
    lines = [
        f"machine: {m.get('cpu')}, {m.get('cores')} cores ({m.get('usable_cores')} usable), {m.get('arch')}, "
        f"Python {m.get('python')}, load {m.get('load_avg')}",
        f"settings: server ttft {s.get('ttft_ms')} ms at {s.get('tokens_per_s')} tokens/s; {s.get('turns')} steady "
        f"turns + 1 cold; {s.get('barge_ins')} barge-ins; idle {s.get('idle_seconds')} s; stt {s.get('stt_model')} "
        f"({s.get('stt_threads')} threads); voice {s.get('voice')}; vad.silence_ms {s.get('vad_silence_ms')}",
        f"reply: {s.get('reply_tokens')} tokens in {s.get('reply_chunks')} chunks, "
        f"{s.get('reply_audio_s')} s of audio; "
        f"first chunk {s.get('first_chunk')!r} = {s.get('first_chunk_tokens')} tokens "
        f"(emitted after {s.get('first_chunk_emitted_after_tokens')})",
        "",
    ]
    goal = {g["goal"]: g for g in r.get("goals", [])}
    rows: list[tuple[str, Any, Any, str, str]] = []

    def timing(label: str, key: str, goal_name: str = "", source: dict[str, Any] | None = None) -> None:
        figure = (source or r).get(key) or {}
        g = goal.get(goal_name, {})
        rows.append((label, figure.get("p50"), figure.get("p95"), goal_name, _verdict(g.get("met")) if g else ""))

    def scalar(label: str, value: Any, goal_name: str = "") -> None:
        g = goal.get(goal_name, {})
        rows.append((label, value, None, goal_name, _verdict(g.get("met")) if g else ""))

    timing(
        "end of speech -> first audio (script end, wall)",
        "end_of_speech_to_first_audio_ms",
        "end_of_speech_to_first_audio p50 <= 0.7 x naive",
    )
    timing("  the same from the VAD's speech end (core figure)", "end_of_speech_to_first_audio_vad_ms")
    timing("endpointing (VAD end -> decision)", "endpointing_ms")
    timing("stt (core figure)", "stt_ms")
    timing("llm first token (core figure)", "llm_first_token_ms")
    timing("first sentence (core figure)", "first_sentence_ms")
    timing("tts first audio (first chunk -> speaker)", "tts_first_audio_ms")
    timing("overhead (total - engines' share)", "overhead_ms", "overhead_ms p95 <= 30")
    timing("  of it core plumbing (less VAD tail, rounding, look-ahead)", "overhead_plumbing_ms")
    timing("naive (each stage waits for the last)", "naive_ms")
    scalar("pipelined / naive (p50)", r.get("pipelined_over_naive"), "end_of_speech_to_first_audio p50 <= 0.7 x naive")
    timing("first turn (cold)", "first_turn_ms")
    scalar("first turn / steady p50", r.get("first_turn_over_steady"), "first turn within 20% of steady")
    before = r.get("first_audio_before_llm_done", {})
    scalar(
        "first audio before LLM done (share of turns)",
        f"{before.get('ratio')} of {before.get('n')}",
        "first audio before LLM done",
    )
    timing("barge-in (wake -> reply silenced, wall)", "barge_in_ms", "barge_in_ms p95 <= 50")
    timing("  the same on the output timeline", "barge_in_audio_ms")
    scalar("idle CPU, % of one core", r.get("idle_cpu_percent"), "idle_cpu_percent <= 5")
    scalar("RSS with every model loaded, MB", r.get("rss_mb"))
    timing("stt, full 30 s window (3 s utterance)", "stt_full_window_ms")
    timing("stt, fitted window (3 s utterance)", "stt_trimmed_ms")
    full = (r.get("speech_set") or {}).get("windows", {}).get("full")
    if full is not None:
        scalar(
            "speech set: turns lost + runaway decodes",
            full["turns_lost"] + full["runaway_transcriptions"],
            "speech set: 0 lost turns, 0 runaway transcriptions",
        )
        scalar("speech set: word error rate (tiny.en)", full["wer"], "speech set: wer <= 10%")
        scalar(
            "speech set: wake words found",
            f"{full['wakes_found']}/{full['requests']}",
            "speech set: every wake word found",
        )
        rows.append(
            (
                "speech set: stt_ms (max in p95 column)",
                full["stt_ms"]["p50"],
                full["stt_ms"]["max"],
                "speech set: stt_ms max <= 1000",
                _verdict(goal.get("speech set: stt_ms max <= 1000", {}).get("met")),
            )
        )
    scalar("real voice tts_rtf (synthesis / audio)", (r.get("speech_set") or {}).get("tts_rtf"))
    skills = r.get("skills_set")
    if skills is not None:
        scalar(f"skills set: right intent and slots, of {skills['requests']}", skills["share"], SKILLS_GOAL)
        scalar(
            f"skills set: general questions taken, of {skills['questions']}",
            len(skills["questions_taken"]),
            "skills set: no general question taken from the LLM",
        )
    for state, local in (r.get("local_answers") or {}).items():
        timing(f"local answer, LLM {state}: end -> first audio", "end_of_speech_to_first_audio_ms", source=local)
        timing(
            f"  after the transcript (LLM {state})",
            "after_stt_ms",
            f"local answers, LLM {state}: first audio <= endpointing + stt_ms + 250 (p50)",
            source=local,
        )
    thinking = r.get("thinking_barge_in")
    if thinking is not None:
        timing("ordinary turn (phase with 1.5 s ttft): end -> first audio", "ordinary_ms", source=thinking)
        timing("after a barge-in while thinking: end -> first audio", "after_barge_in_ms", source=thinking)
        scalar(
            "  barge-in / ordinary (p50)",
            thinking.get("barge_over_ordinary"),
            "barge-in while thinking: p50 within 20% of an ordinary turn",
        )
    timing("realtime API: commit -> first audio delta", "realtime_commit_to_first_delta_ms")
    dyn = r.get("dynamic_endpointing", {})
    timing("dynamic endpointing off: end -> first audio", "end_of_speech_to_first_audio_ms", source=dyn.get("off"))
    timing("dynamic endpointing on:  end -> first audio", "end_of_speech_to_first_audio_ms", source=dyn.get("on"))
    timing("dynamic endpointing on:  endpointing", "endpointing_ms", source=dyn.get("on"))
    on = dyn.get("on") or {}
    timing(
        "dynamic endpointing on:  end -> first audio, speculated turns",
        "end_of_speech_to_first_audio_when_speculated_ms",
        source=on,
    )
    scalar("dynamic endpointing on:  turns ended by speculation", f"{on.get('speculation_used')} of {on.get('turns')}")
    soak = r.get("soak")
    if soak is not None:
        scalar(
            "soak: turns done/expected, errors, false wakes",
            f"{soak['turns_completed']}/{soak['turns_expected']}, {soak['errors']}, {soak['false_wakes']}",
        )
        scalar(
            "soak: RSS warm -> end (growth), MB",
            f"{soak['rss_after_warmup_mb']} -> {soak['rss_end_mb']} ({soak['rss_growth_mb']:+})",
            "soak: no errors, RSS growth <= 10 MB",
        )
    width = max(len(row[0]) for row in rows)
    lines.append(f"{'figure (ms unless said)':<{width}}  {'p50':>12}  {'p95':>7}  {'goal':<48} result")
    lines.append("-" * (width + 80))
    for label, p50, p95, goal_name, verdict in rows:
        lines.append(f"{label:<{width}}  {_cell(p50):>12}  {_cell(p95):>7}  {goal_name:<48} {verdict}")
    lines += ["", "where the overhead goes (steady turns; p50 / p95 ms):"]
    for key, figure in r.get("overhead_breakdown_ms", {}).items():
        lines.append(f"  {key:<26} {_cell(figure.get('p50')):>8} {_cell(figure.get('p95')):>8}")
    lines += ["", "critical path, stage by stage (p50 ms):"]
    lines.append("  " + "  ".join(f"{k}={_cell(v.get('p50'))}" for k, v in r.get("critical_path_ms", {}).items()))
    first_path = r.get("first_turn_path_ms")
    if first_path:
        steady_path = r.get("critical_path_ms", {})
        lines.append(
            "cold first turn vs steady p50 (ms): "
            + ", ".join(
                f"{k} {_cell(v)} vs {_cell(steady_path.get(k, {}).get('p50'))}"
                for k, v in first_path.items()
                if abs(v - (steady_path.get(k, {}).get("p50") or 0.0)) >= 5
            )
        )
    lines.append(f"VAD model tail (Silero, 32 ms windows, offline): {_cell(r.get('vad_model_tail_ms'))} ms")
    threads = r.get("idle_cpu_threads_percent")
    if threads:
        lines.append("idle CPU by thread (% of one core): " + ", ".join(f"{k} {v}" for k, v in threads.items()))
    notes = []
    if r.get("missed_turns"):
        notes.append(f"{r['missed_turns']} scripted turn(s) not measured")
    if r.get("interrupted_turns"):
        notes.append(f"{r['interrupted_turns']} steady turn(s) interrupted (the next turn came too early)")
    if r.get("idle_wakes"):
        notes.append(f"{r['idle_wakes']} false wake(s) on room noise")
    if r.get("barge_in_leaked_writes"):
        notes.append(f"{r['barge_in_leaked_writes']} reply block(s) written after a barge-in stop")
    if notes:
        lines += ["", "notes: " + "; ".join(notes)]
    lines.append(f"bench took {r.get('bench_wall_s')} s")
    return "\n".join(lines)


def write_json(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
