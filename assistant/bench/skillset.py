"""The skills set: spoken requests through real Whisper, checked for the right intent and slots.

Each request is spoken by four espeak-ng voices and the Piper neural voice
(voices rotate, or every voice with `all_voices`), transcribed by the
configured whisper.cpp model and matched by the device's `IntentMatcher`. A
request counts when the intent is right and every expected slot has the
expected value (other slots may be present). A miss is either "not taken"
(no intent: the request would go to the LLM) or "wrong" (another intent or
wrong slots: the device would do the wrong thing). General questions
(`NOT_OURS`) must match nothing.

    python -m assistant.bench.skillset --models-dir ../shared/models \
        --stt-model whisper/ggml-tiny.en-real.bin [--all-voices]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from assistant.audio.wav import read_wav
from assistant.core.ports import SAMPLE_RATE, Audio
from assistant.core.transcript import strip_wake_phrase
from assistant.skills.matcher import IntentMatcher


@dataclass(frozen=True)
class Request:
    phrase: str
    intent: str
    slots: dict[str, Any] = field(default_factory=dict)


PAD_S = 0.5  # silence around each request, as the VAD's pre-roll and end-of-speech silence leave it
PIPER = "piper:joe"  # the Piper voice, given to `measure` as a synthesizer
WAKE = "hey jarvis"  # said before each request, as the device hears it
VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb-x-rp+m3", PIPER)
PIPER_VOICE = "piper/en_US-joe-medium.onnx"
GOAL = 0.95  # the share of requests that must reach the right intent and slots
SKILLSET: tuple[Request, ...] = (
    Request("what time is it", "HassGetCurrentTime"),
    Request("hey jarvis what time is it", "HassGetCurrentTime"),
    Request("what's the time", "HassGetCurrentTime"),
    Request("tell me the time please", "HassGetCurrentTime"),
    Request("what's the date today", "HassGetCurrentDate"),
    Request("what day is it today", "HassGetCurrentDate"),
    Request("set a timer for ten minutes", "HassStartTimer", {"duration_s": 600}),
    Request("set a timer for five minutes", "HassStartTimer", {"duration_s": 300}),
    Request("set a timer for thirty seconds", "HassStartTimer", {"duration_s": 30}),
    Request("set a timer for one hour", "HassStartTimer", {"duration_s": 3600}),
    Request("start a timer for twenty minutes", "HassStartTimer", {"duration_s": 1200}),
    Request("set a three minute timer", "HassStartTimer", {"duration_s": 180}),
    Request("set a pizza timer for twelve minutes", "HassStartTimer", {"duration_s": 720, "name": "pizza"}),
    Request("set a timer for an hour and a half", "HassStartTimer", {"duration_s": 5400}),
    Request("set a timer for two hours and fifteen minutes", "HassStartTimer", {"duration_s": 8100}),
    Request("set a timer for minus five minutes", "HassStartTimer", {"invalid": "duration"}),
    Request("how much time is left", "HassTimerStatus"),
    Request("how much time is left on my timer", "HassTimerStatus"),
    Request("how much time is left on the pizza timer", "HassTimerStatus", {"name": "pizza"}),
    Request("cancel the timer", "HassCancelTimer"),
    Request("cancel the pizza timer", "HassCancelTimer", {"name": "pizza"}),
    Request("cancel all timers", "HassCancelAllTimers"),
    Request("pause the timer", "HassPauseTimer"),
    Request("resume the timer", "HassUnpauseTimer"),
    Request("add five minutes to the timer", "HassIncreaseTimer", {"duration_s": 300}),
    Request("wake me up at seven", "SkillSetAlarm", {"hour": 7, "minute": 0}),
    Request("wake me up at six thirty tomorrow", "SkillSetAlarm", {"hour": 6, "minute": 30, "day": "tomorrow"}),
    Request("set an alarm for seven a.m.", "SkillSetAlarm", {"hour": 7, "minute": 0, "meridiem": "am"}),
    Request("set an alarm for eight thirty", "SkillSetAlarm", {"hour": 8, "minute": 30}),
    Request("set an alarm for half past six", "SkillSetAlarm", {"hour": 6, "minute": 30}),
    Request("set an alarm for twenty five o'clock", "SkillSetAlarm", {"invalid": "time"}),
    Request("cancel my alarm", "SkillCancelAlarm"),
    Request("what alarms do I have", "SkillAlarmStatus"),
    Request("turn up the volume", "HassSetVolumeRelative", {"direction": "up"}),
    Request("turn the volume down", "HassSetVolumeRelative", {"direction": "down"}),
    Request("louder please", "HassSetVolumeRelative", {"direction": "up"}),
    Request("speak more quietly", "HassSetVolumeRelative", {"direction": "down"}),
    Request("set the volume to fifty percent", "HassSetVolume", {"level_pct": 50}),
    Request("set the volume to three", "HassSetVolume", {"level_pct": 30}),
    Request("mute", "HassMediaPlayerMute"),
    Request("unmute", "HassMediaPlayerUnmute"),
    Request("stop", "SkillStop"),
    Request("stop the alarm", "SkillStop"),
    Request("be quiet", "SkillStop"),
    Request("never mind", "HassNevermind"),
    Request("repeat that", "SkillRepeat"),
    Request("say that again", "SkillRepeat"),
    Request("what did you say", "SkillRepeat"),
)
# Requests the device must NOT take: they belong to the LLM. Most share words with the
# device's own requests (time, timer, alarm, volume, minutes, set, day).
NOT_OURS: tuple[str, ...] = (
    "what is the capital of france",
    "tell me a joke",
    "what time is it in tokyo",
    "how long does it take to boil an egg",
    "what time does the bakery open",
    "how many minutes are in an hour",
    "who invented the alarm clock",
    "what is the volume of a sphere",
    "how do i make a timer in python",
    "what's the weather like tomorrow",
    "play some music",
    "remind me to call my sister",
    "what day was the moon landing",
    "set the table for dinner",
)


@dataclass(frozen=True)
class Outcome:
    request: Request
    voice: str
    heard: str
    intent: str | None
    slots: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.intent == self.request.intent and all(
            _same(self.slots.get(key), value) for key, value in self.request.slots.items()
        )

    @property
    def kind(self) -> str:
        """How it went: "ok"; "not taken" (nothing matched: the LLM would get it); "unclear" (the right
        intent, but a value the device says it did not catch); "wrong" (another intent or a wrong value:
        the device would do the wrong thing)."""
        if self.ok:
            return "ok"
        if self.intent is None:
            return "not taken"
        if self.intent == self.request.intent and "invalid" in self.slots and "invalid" not in self.request.slots:
            return "unclear"
        return "wrong"

    def as_dict(self) -> dict[str, Any]:
        r = self.request
        return {
            "said": r.phrase,
            "voice": self.voice,
            "heard": self.heard,
            "kind": self.kind,
            "intent": self.intent,
            "slots": self.slots,
            "want_intent": r.intent,
            "want_slots": r.slots,
        }


@dataclass(frozen=True)
class FalseTake:
    """A general question the device took for one of its own requests."""

    phrase: str
    voice: str
    heard: str
    intent: str


@dataclass(frozen=True)
class Report:
    outcomes: tuple[Outcome, ...]
    false_takes: tuple[FalseTake, ...]
    questions: int = 0  # NOT_OURS phrases said (each in one voice or in every voice)

    @property
    def share(self) -> float:
        return sum(o.ok for o in self.outcomes) / max(1, len(self.outcomes))

    @property
    def misses(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def per_voice(self) -> dict[str, dict[str, Any]]:
        """Right / said, and the share, for each voice (in the order first used)."""
        out: dict[str, dict[str, Any]] = {}
        for outcome in self.outcomes:
            figure = out.setdefault(outcome.voice, {"right": 0, "requests": 0})
            figure["right"] += outcome.ok
            figure["requests"] += 1
        for figure in out.values():
            figure["share"] = round(figure["right"] / figure["requests"], 4)
        return out

    def as_dict(self) -> dict[str, Any]:
        """The figures for the benchmark's JSON."""
        return {
            "requests": len(self.outcomes),
            "right": sum(o.ok for o in self.outcomes),
            "share": round(self.share, 4),
            "not_taken": sum(o.kind == "not taken" for o in self.outcomes),
            "unclear": sum(o.kind == "unclear" for o in self.outcomes),
            "wrong": sum(o.kind == "wrong" for o in self.outcomes),
            "per_voice": self.per_voice(),
            "misses": [miss.as_dict() for miss in self.misses],
            "questions": self.questions,
            "questions_taken": [
                {"said": t.phrase, "voice": t.voice, "heard": t.heard, "intent": t.intent} for t in self.false_takes
            ],
        }

    def lines(self) -> list[str]:
        return render(self.as_dict()).splitlines()


def render(figures: dict[str, Any]) -> str:
    """The skills set's lines: the share, the per-voice figures, each miss and each question taken."""
    right, total, wrong = figures["right"], figures["requests"], figures["wrong"]
    taken = figures["questions_taken"]
    lines = [
        f"skills set: {right}/{total} right intent and slots ({figures['share']:.1%}); misses: "
        f"{figures['not_taken']} not taken, {figures['unclear']} value not caught, {wrong} wrong; "
        f"{len(taken)}/{figures['questions']} general questions taken from the LLM"
    ]
    if figures.get("stt_model"):
        lines.append(
            f"  stt {figures['stt_model']}, prompt {figures.get('stt_prompt', '')!r}; "
            f"said after {figures.get('wake', '')!r}"
        )
    lines.append(
        "  per voice: "
        + ", ".join(
            f"{voice} {f['right']}/{f['requests']} ({f['share']:.0%})" for voice, f in figures["per_voice"].items()
        )
    )
    for miss in figures["misses"]:
        lines.append(
            f"  MISS ({miss['kind']}) [{miss['voice']}] said {miss['said']!r} heard {miss['heard']!r}: "
            f"got {miss['intent']} {miss['slots']}, want {miss['want_intent']} {miss['want_slots']}"
        )
    for take in taken:
        said, heard = take["said"], take["heard"]
        lines.append(f"  TAKEN [{take['voice']}] said {said!r} heard {heard!r}: went to {take['intent']}")
    return "\n".join(lines)


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, int | float) and isinstance(got, int | float):
        return abs(float(got) - float(want)) < 1e-6
    return bool(got == want)


class Synthesizer(Protocol):
    def synthesize(self, text: str) -> Audio: ...


def speak(text: str, folder: Path, name: str, voice: str, piper: Synthesizer | None = None) -> Audio:
    """`text` said by `voice` as 16 kHz mono float samples, with PAD_S of silence either side.

    `voice` is an espeak-ng voice name, or PIPER for the Piper synthesizer `piper`.
    """
    pad = np.zeros(int(PAD_S * SAMPLE_RATE), dtype=np.float32)
    if voice == PIPER:
        if piper is None:
            raise RuntimeError(f"the {PIPER} voice needs a Piper synthesizer ({PIPER_VOICE})")
        return np.concatenate((pad, np.asarray(piper.synthesize(text), dtype=np.float32), pad))
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is needed to speak the skills set (apt install espeak-ng sox)")
    raw, wav = folder / f"{name}.raw.wav", folder / f"{name}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(wav)], check=True)
    return np.concatenate((pad, read_wav(wav), pad))


def _with_wake(phrase: str, wake: str) -> str:
    return f"{wake}, {phrase}" if wake and not phrase.startswith(wake) else phrase


def _request_of(heard: str, wake: str) -> str:
    return strip_wake_phrase(heard, [wake.split()]) if wake else heard


def measure(
    transcribe: Callable[[Audio], str],
    matcher: IntentMatcher,
    requests: Sequence[Request] = SKILLSET,
    *,
    voices: Sequence[str] = VOICES,
    all_voices: bool = False,
    not_ours: Iterable[str] = NOT_OURS,
    piper: Synthesizer | None = None,
    wake: str = "",
    progress: Callable[[Outcome], None] | None = None,
) -> Report:
    """Speak, transcribe and match every request; the share that reached the right intent and slots.

    The general questions of `not_ours` are said the same way (rotating voices, or every voice).
    With `wake` ("hey jarvis"), each is said after the wake phrase in one breath, and the
    transcript loses the wake phrase as a turn's does: what Whisper hears on the device, whose
    request audio starts before the wake word's detection.
    """
    outcomes = []
    false_takes = []
    questions = 0
    with tempfile.TemporaryDirectory(prefix="skillset-") as tmp:
        folder = Path(tmp)
        for index, request in enumerate(requests):
            chosen = voices if all_voices else [voices[index % len(voices)]]
            for voice in chosen:
                heard = transcribe(speak(_with_wake(request.phrase, wake), folder, f"r{index}", voice, piper))
                match = matcher.match(_request_of(heard, wake))
                outcome = Outcome(request, voice, heard, match.intent if match else None, match.slots if match else {})
                outcomes.append(outcome)
                if progress is not None:
                    progress(outcome)
        for index, phrase in enumerate(not_ours):
            for voice in voices if all_voices else [voices[index % len(voices)]]:
                questions += 1
                heard = transcribe(speak(_with_wake(phrase, wake), folder, f"n{index}", voice, piper))
                match = matcher.match(_request_of(heard, wake))
                if match is not None:
                    false_takes.append(FalseTake(phrase, voice, heard, match.intent))
    return Report(tuple(outcomes), tuple(false_takes), questions)


def main(argv: Sequence[str] | None = None) -> int:
    from assistant.config import SkillsConfig, SttConfig, TtsConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--stt-model", default="whisper/ggml-tiny.en-real.bin")
    parser.add_argument(
        "--stt-prompt",
        default=None,
        help="Whisper's initial prompt (default: stt.prompt's default; '' for none)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--all-voices", action="store_true", help="speak every request in every voice")
    parser.add_argument(
        "--voices",
        default=",".join(VOICES),
        help=f"comma-separated espeak-ng voices, {PIPER} for the Piper voice (default: %(default)s)",
    )
    parser.add_argument("--piper-voice", default=PIPER_VOICE, help="the Piper model said by " + PIPER)
    parser.add_argument("--count", type=int, default=None, help="only the first N requests")
    parser.add_argument(
        "--wake",
        default=WAKE,
        help="said before each request, and cut from the transcript as a turn does ('' for the bare requests)",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the figures as JSON")
    parser.add_argument(
        "--audio-ctx",
        type=int,
        default=None,
        help="whisper.cpp encoder context (0 = the full 30 s window); default: the engine's own sizing",
    )
    args = parser.parse_args(argv)
    from assistant.engines.stt import load_stt

    voices = [v.strip() for v in args.voices.split(",") if v.strip()]
    prompt = SttConfig().prompt if args.stt_prompt is None else args.stt_prompt
    stt = load_stt(SttConfig(model=args.stt_model, threads=args.threads, prompt=prompt), args.models_dir)
    piper = None
    if PIPER in voices:
        from assistant.engines.tts import load_tts

        piper = load_tts(TtsConfig(voice=args.piper_voice, accelerator="cpu"), args.models_dir)
    settings = SkillsConfig()
    matcher = IntentMatcher(settings.strip_words, max_timer_s=settings.max_timer_s)

    def show(outcome: Outcome) -> None:
        mark = "ok  " if outcome.ok else "MISS"
        print(f"{mark} [{outcome.voice}] {outcome.request.phrase!r} -> {outcome.heard!r}", file=sys.stderr, flush=True)

    def transcribe(audio: Audio) -> str:
        return stt.transcribe(audio, audio_ctx=args.audio_ctx)

    requests = SKILLSET if args.count is None else SKILLSET[: args.count]
    report = measure(
        transcribe,
        matcher,
        requests,
        voices=voices,
        all_voices=args.all_voices,
        piper=piper,
        wake=args.wake,
        progress=show,
    )
    figures = {
        "stt_model": args.stt_model,
        "stt_prompt": prompt,
        "wake": args.wake,
        "all_voices": args.all_voices,
        **report.as_dict(),
    }
    print(render(figures))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0 if report.share >= GOAL and not report.false_takes else 1


if __name__ == "__main__":
    sys.exit(main())
