"""`scripts/bench`: a short real-time run, checked for consistency (never for speed).

One subprocess run (two steady turns' worth, one barge-in, 2 s idle, a 0.2
minute soak) is shared by every test here; the checks are that every figure
is there and that the figures agree with each other by construction.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from assistant.bench.report import TIMINGS
from tests.conftest import ROOT, missing

# Three sentences, short, so the run stays quick.
REPLY = "The capital of France is Paris, a city on the Seine. It is very old. Millions visit it every year."
TOLERANCE_MS = 100.0  # one microphone block and a bit: the VAD may call speech over a little early
# The shared run is set up by the first test; it takes 4 minutes on a fast 2-core machine, 6 on a slow one.
pytestmark = pytest.mark.timeout(1500)


@pytest.fixture(scope="module")
def bench(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        missing("espeak-ng and sox are needed (scripts/setup --test installs them)")
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    command = [
        str(ROOT / "scripts" / "bench"),
        "--turns", "1",
        "--barge-ins", "1",
        "--idle-seconds", "2",
        "--stt-runs", "1",
        "--soak", "0.2",
        "--speech-count", "5",
        "--turn-count", "1",
        "--skills-count", "5",
        "--skills-voices", "rotate",
        "--local-count", "2",
        "--stt-window", "full",
        "--reply", REPLY,
        "--models", str(models_dir),
        "--json", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200)  # catches a hang
    assert done.returncode == 0, done.stderr[-4000:]
    return {"json": json.loads(out.read_text(encoding="utf-8")), "stdout": done.stdout}


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def test_every_timing_has_p50_and_p95(bench: dict[str, Any]) -> None:
    report = bench["json"]
    for key in TIMINGS:
        assert key in report, key
        assert is_number(report[key]["p50"]) and is_number(report[key]["p95"]), (key, report[key])
        assert report[key]["p95"] >= report[key]["p50"], key
    for key in ("end_of_speech_to_first_audio_vad_ms", "barge_in_audio_ms"):
        assert is_number(report[key]["p50"]), key
    for mode in ("off", "on"):
        figure = report["dynamic_endpointing"][mode]["end_of_speech_to_first_audio_ms"]
        assert is_number(figure["p50"]) and is_number(figure["p95"]), mode
    assert is_number(report["pipelined_over_naive"])
    assert is_number(report["first_turn_over_steady"])
    assert isinstance(report["first_audio_before_llm_done"]["all"], bool)
    assert 0 <= report["first_audio_before_llm_done"]["ratio"] <= 1
    assert report["idle_cpu_percent"] >= 0 and report["idle_wall_s"] > 1
    assert report["rss_mb"] > 0
    assert report["machine"]["cores"] >= 1 and report["machine"]["cpu"]
    assert report["settings"]["ttft_ms"] == 150 and report["settings"]["tokens_per_s"] == 40
    assert report["missed_turns"] == 0


def test_every_goal_agrees_with_the_figures_it_judges(bench: dict[str, Any]) -> None:
    report = bench["json"]
    goals = {g["goal"]: g for g in report["goals"]}
    before, soak = report["first_audio_before_llm_done"], report["soak"]
    full = report["speech_set"]["windows"]["full"]
    lost = full["turns_lost"] + full["runaway_transcriptions"]
    done = soak["turns_completed"] == soak["turns_expected"]

    def judge(value: Any, meets: Callable[[Any], bool]) -> tuple[Any, bool | None]:
        """The figure a goal shows, and whether it meets the goal (None: not measured)."""
        return value, None if value is None else meets(value)

    judged = {
        "overhead_ms p95 <= 30": judge(report["overhead_ms"]["p95"], lambda v: v <= 30),
        "barge_in_ms p95 <= 50": judge(report["barge_in_ms"]["p95"], lambda v: v <= 50),
        "idle_cpu_percent <= 5": judge(report["idle_cpu_percent"], lambda v: v <= 5),
        "first turn within 20% of steady": judge(report["first_turn_over_steady"], lambda v: abs(v - 1) <= 0.2),
        "end_of_speech_to_first_audio p50 <= 0.7 x naive": judge(report["pipelined_over_naive"], lambda v: v <= 0.7),
        "first audio before LLM done": judge(before["ratio"], lambda v: v == 1.0),
        "soak: no errors, RSS growth <= 10 MB": judge(
            soak["rss_growth_mb"], lambda v: soak["errors"] == 0 and v <= 10 and done
        ),
        "speech set: 0 lost turns, 0 runaway transcriptions": judge(lost, lambda v: v == 0),
        "speech set: wer <= 10%": judge(full["wer"], lambda v: v <= 0.10),
        "speech set: every wake word found": (
            f"{full['wakes_found']}/{full['requests']}",
            full["wakes_found"] == full["requests"],
        ),
        "speech set: stt_ms max <= 1000": judge(full["stt_ms"]["max"], lambda v: v <= 1000),
        "barge-in while thinking: p50 within 20% of an ordinary turn": judge(
            report["thinking_barge_in"]["barge_over_ordinary"], lambda v: v <= 1.2
        ),
        "skills set: >= 95% right intent and slots": judge(report["skills_set"]["share"], lambda v: v >= 0.95),
        "skills set: no general question taken from the LLM": judge(
            len(report["skills_set"]["questions_taken"]), lambda v: v == 0
        ),
    }
    for state, local in report["local_answers"].items():
        judged[f"local answers, LLM {state}: first audio <= endpointing + stt_ms + 250 (p50)"] = judge(
            local["after_stt_ms"]["p50"], lambda v: v <= 250
        )
    assert set(goals) == set(judged), "every goal is judged here"
    for name, (value, met) in judged.items():
        assert goals[name]["value"] == value, name
        assert goals[name]["met"] is met, (name, goals[name])
    assert before["all"] is (before["ratio"] == 1.0), before


def test_stages_add_up_to_the_total(bench: dict[str, Any]) -> None:
    turns = [t for t in bench["json"]["turns"] if t and t["total_ms"] is not None]
    assert len(turns) == 2  # the cold first turn and one steady turn
    for turn in turns:
        total = turn["total_ms"]
        # The critical path, stage by stage, is the whole of the total...
        assert sum(turn["path_ms"].values()) == pytest.approx(total, abs=1.5)
        # ...the overhead is what is left once the engines' share is taken off...
        assert turn["must_ms"] + turn["overhead_ms"] == pytest.approx(total, abs=0.2)
        assert sum(turn["excess_ms"].values()) == pytest.approx(turn["overhead_ms"], abs=1.5)
        assert turn["overhead_ms"] >= -TOLERANCE_MS
        # ...and the engines' share holds the endpoint silence, the server's ttft and the compute.
        assert turn["must_ms"] >= 700 + 150 + turn["stt_compute_ms"] + turn["tts_compute_ms"] - 0.2
        # The core's own clock figures tell the same story within a microphone block.
        assert turn["total_clock_ms"] == pytest.approx(total, abs=TOLERANCE_MS)
        assert turn["total_vad_ms"] + 80 >= turn["endpointing_ms"] + turn["stt_ms"] + turn["first_sentence_ms"]
        assert turn["first_sentence_ms"] >= turn["llm_first_token_ms"]


def test_naive_is_no_faster_than_pipelined(bench: dict[str, Any]) -> None:
    report = bench["json"]
    pipelined, naive = report["end_of_speech_to_first_audio_ms"]["p50"], report["naive_ms"]["p50"]
    assert naive >= pipelined
    assert report["pipelined_over_naive"] == pytest.approx(pipelined / naive, abs=0.002)


def test_barge_in_and_idle_were_measured(bench: dict[str, Any]) -> None:
    report = bench["json"]
    assert report["barge_in_ms"]["n"] == 1
    assert report["barge_in_audio_ms"]["p50"] >= 0
    assert report["idle_wakes"] == 0


def test_soak_keys(bench: dict[str, Any]) -> None:
    soak = bench["json"]["soak"]
    for key in ("turns_expected", "turns_completed", "errors", "rss_after_warmup_mb", "rss_end_mb", "rss_growth_mb"):
        assert key in soak, key
    assert soak["turns_expected"] >= 1 and soak["turns_completed"] == soak["turns_expected"]
    assert soak["errors"] == 0, soak["error_messages"]
    assert soak["rss_growth_mb"] == pytest.approx(soak["rss_end_mb"] - soak["rss_after_warmup_mb"], abs=0.11)


def test_prints_the_machine_and_the_table(bench: dict[str, Any]) -> None:
    out = bench["stdout"]
    assert out.startswith("machine: ")
    assert "end of speech -> first audio" in out and "p50" in out
    lines = out.splitlines()
    for goal in bench["json"]["goals"]:
        rows = [line for line in lines if f"  {goal['goal']} " in line]
        assert rows, f"the table has no row for {goal['goal']!r}"
        verdict = "-" if goal["met"] is None else ("PASS" if goal["met"] else "MISS")
        for row in rows:
            assert row.rstrip().endswith(f" {verdict}"), (goal, row)


def test_speech_set_figures_are_consistent(bench: dict[str, Any]) -> None:
    speech = bench["json"]["speech_set"]
    full = speech["windows"]["full"]
    assert speech["requests"] == full["requests"] == 5
    assert sum(v["requests"] for v in full["per_voice"].values()) == 5
    assert len(full["per_voice"]) == 5, "the first five requests are said by five voices"
    assert 0 <= full["wakes_found"] <= 5 and 0 <= full["turns_lost"] <= full["wakes_found"]
    assert 0.0 <= full["wer"] <= 1.5
    stt = full["stt_ms"]
    assert stt["n"] >= 1 and stt["p50"] <= stt["p95"] <= stt["max"] + 0.1
    assert speech["tts_rtf"] > 0
    misheard = {m["said"] for m in full["misheard"]}
    assert misheard <= {
        "what time is it",
        "what is the date today",
        "set a timer for ten minutes",
        "set a timer for five minutes",
        "cancel the timer",
    }


def test_skills_set_figures_are_consistent(bench: dict[str, Any]) -> None:
    skills = bench["json"]["skills_set"]
    assert skills["requests"] == 5, "the first five requests, one voice each"
    assert skills["wake"] == "hey jarvis"
    assert sum(v["requests"] for v in skills["per_voice"].values()) == 5
    assert sum(v["right"] for v in skills["per_voice"].values()) == skills["right"]
    assert skills["share"] == pytest.approx(skills["right"] / 5, abs=1e-4)
    assert len(skills["misses"]) == 5 - skills["right"] == skills["not_taken"] + skills["unclear"] + skills["wrong"]
    assert all(miss["heard"] is not None and miss["kind"] != "ok" for miss in skills["misses"])
    assert skills["questions"] > 0
    out = bench["stdout"]
    assert f"skills set: {skills['right']}/5 right intent and slots" in out
    assert "per voice: " in out
    for miss in skills["misses"]:
        assert f"said {miss['said']!r} heard {miss['heard']!r}" in out


def test_thinking_barge_in_was_measured(bench: dict[str, Any]) -> None:
    thinking = bench["json"]["thinking_barge_in"]
    assert thinking["pairs"] == 1
    assert thinking["ordinary_ms"]["n"] == 1
    assert thinking["woke_while_thinking"] <= thinking["pairs"]


def test_turn_taking_figures_for_each_mode(bench: dict[str, Any]) -> None:
    taking = bench["json"]["turn_taking"]
    assert set(taking) == {"silence_700ms", "smart_turn"}
    for mode, figures in taking.items():
        assert figures["complete_requests"] == figures["paused_requests"] == 1, mode
        assert 0 <= figures["cut_off"] <= 1 and 0 <= figures["ended_in_pause"] <= 1, mode
        assert figures["no_wake"] == 0, (mode, figures["rows"])
        endpointing = figures["endpointing_ms"]
        assert endpointing["n"] == 1 and endpointing["p50"] >= 0, mode
        assert [row["paused"] for row in figures["rows"]] == [False, True], mode
        assert is_number(figures["idle_cpu_percent"]) and figures["idle_cpu_percent"] >= 0, mode
        assert figures["idle_end_of_turn_calls"] == 0, "the end-of-turn model never runs while idle"
    # The fixed 700 ms silence waits at least its 700 ms of audio after the end of speech.
    assert taking["silence_700ms"]["endpointing_ms"]["p50"] >= 700 - TOLERANCE_MS
    assert "Turn taking" in bench["stdout"] and "smart_turn" in bench["stdout"]


def test_local_answers_never_ask_the_llm_up_or_down(bench: dict[str, Any]) -> None:
    local = bench["json"]["local_answers"]
    assert set(local) == {"up", "down"}
    for state, figures in local.items():
        assert figures["requests"] == 2, state
        assert figures["asked_llm"] == 0, (state, figures["rows"])
        assert figures["answered_locally"] == 2, (state, figures["rows"])
        for row in figures["rows"]:
            # The three shares are measured separately; what is left is the local answer's own cost.
            assert row["after_stt_ms"] == pytest.approx(
                row["end_of_speech_to_first_audio_ms"] - row["endpointing_ms"] - row["stt_ms"]
            ), row
            assert row["after_stt_ms"] > 0, row
    assert "Local answers" in bench["stdout"]
