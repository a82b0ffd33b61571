"""The skills set: spoken requests through real Whisper, checked for the right intent and slots.

Each request is spoken by espeak-ng (voices rotate, or every voice with
`all_voices`), transcribed by the configured whisper.cpp model and matched by
the device's `IntentMatcher`. A request counts when the intent is right and
every expected slot has the expected value (other slots may be present).

    python -m assistant.bench.skillset --models-dir ../shared/models \
        --stt-model whisper/ggml-tiny.en-real.bin [--all-voices]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant.audio.wav import read_wav
from assistant.core.ports import SAMPLE_RATE, Audio
from assistant.skills.matcher import IntentMatcher


@dataclass(frozen=True)
class Request:
    phrase: str
    intent: str
    slots: dict[str, Any] = field(default_factory=dict)


PAD_S = 0.5  # silence around each request, as the VAD's pre-roll and end-of-speech silence leave it
VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb-x-rp+m3")
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
    Request("set an alarm for seven a m", "SkillSetAlarm", {"hour": 7, "minute": 0, "meridiem": "am"}),
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
# Requests the device must NOT take: they belong to the LLM.
NOT_OURS: tuple[str, ...] = (
    "what is the capital of france",
    "tell me a joke",
    "what time is it in tokyo",
    "how long does it take to boil an egg",
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


@dataclass(frozen=True)
class Report:
    outcomes: tuple[Outcome, ...]
    false_takes: tuple[tuple[str, str, str], ...]  # (phrase, heard, intent) for NOT_OURS that matched

    @property
    def share(self) -> float:
        return sum(o.ok for o in self.outcomes) / max(1, len(self.outcomes))

    @property
    def misses(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def lines(self) -> list[str]:
        ok = sum(o.ok for o in self.outcomes)
        out = [f"skills set: {ok}/{len(self.outcomes)} right ({self.share:.1%})"]
        for miss in self.misses:
            r = miss.request
            out.append(
                f"  MISS [{miss.voice}] said {r.phrase!r} heard {miss.heard!r}: "
                f"got {miss.intent} {miss.slots}, want {r.intent} {r.slots}"
            )
        for phrase, heard, intent in self.false_takes:
            out.append(f"  TAKEN [{phrase!r}] heard {heard!r} went to {intent} instead of the LLM")
        return out


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, int | float) and isinstance(got, int | float):
        return abs(float(got) - float(want)) < 1e-6
    return bool(got == want)


def speak(text: str, folder: Path, name: str, voice: str) -> Audio:
    """espeak-ng speech as 16 kHz mono float samples, with PAD_S of silence either side."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is needed to speak the skills set (apt install espeak-ng sox)")
    raw, wav = folder / f"{name}.raw.wav", folder / f"{name}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(wav)], check=True)
    pad = np.zeros(int(PAD_S * SAMPLE_RATE), dtype=np.float32)
    return np.concatenate((pad, read_wav(wav), pad))


def measure(
    transcribe: Callable[[Audio], str],
    matcher: IntentMatcher,
    requests: Sequence[Request] = SKILLSET,
    *,
    voices: Sequence[str] = VOICES,
    all_voices: bool = False,
    not_ours: Iterable[str] = NOT_OURS,
    progress: Callable[[Outcome], None] | None = None,
) -> Report:
    """Speak, transcribe and match every request; the share that reached the right intent and slots."""
    outcomes = []
    false_takes = []
    with tempfile.TemporaryDirectory(prefix="skillset-") as tmp:
        folder = Path(tmp)
        for index, request in enumerate(requests):
            chosen = voices if all_voices else [voices[index % len(voices)]]
            for voice in chosen:
                heard = transcribe(speak(request.phrase, folder, f"r{index}", voice))
                match = matcher.match(heard)
                outcome = Outcome(request, voice, heard, match.intent if match else None, match.slots if match else {})
                outcomes.append(outcome)
                if progress is not None:
                    progress(outcome)
        for index, phrase in enumerate(not_ours):
            heard = transcribe(speak(phrase, folder, f"n{index}", voices[index % len(voices)]))
            match = matcher.match(heard)
            if match is not None:
                false_takes.append((phrase, heard, match.intent))
    return Report(tuple(outcomes), tuple(false_takes))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--stt-model", default="whisper/ggml-tiny.en-real.bin")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--all-voices", action="store_true", help="speak every request in every voice")
    parser.add_argument(
        "--audio-ctx",
        type=int,
        default=None,
        help="whisper.cpp encoder context (0 = the full 30 s window); default: the engine's own sizing",
    )
    args = parser.parse_args(argv)
    from assistant.config import SkillsConfig, SttConfig
    from assistant.engines.stt import load_stt

    stt = load_stt(SttConfig(model=args.stt_model, threads=args.threads), args.models_dir)
    settings = SkillsConfig()
    matcher = IntentMatcher(settings.strip_words, max_timer_s=settings.max_timer_s)

    def show(outcome: Outcome) -> None:
        mark = "ok  " if outcome.ok else "MISS"
        print(f"{mark} [{outcome.voice}] {outcome.request.phrase!r} -> {outcome.heard!r}", file=sys.stderr, flush=True)

    def transcribe(audio: Audio) -> str:
        return stt.transcribe(audio, audio_ctx=args.audio_ctx)

    report = measure(transcribe, matcher, all_voices=args.all_voices, progress=show)
    print("\n".join(report.lines()))
    return 0 if report.share >= 0.95 and not report.false_takes else 1


if __name__ == "__main__":
    sys.exit(main())
