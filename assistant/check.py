"""`assistant check`: every part, OK or FAIL, and the fix."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from assistant.config import Config
from assistant.core.errors import AssistantError
from assistant.core.ports import Checked, Health

E = TypeVar("E", bound=Checked)


def _load(part: str, loader: Callable[[], E]) -> tuple[E | None, list[Health]]:
    try:
        engine = loader()
    except AssistantError as exc:
        return None, [Health(part, False, str(exc).splitlines()[0], _fix_from(str(exc)))]
    return engine, engine.health()


_FIX = re.compile(r"\b(?:fix|run|fetch it with|get it with):\s*(.+)", re.IGNORECASE)


def _fix_from(message: str) -> str:
    """What follows the first "run:" (or "fix:", ...) in an error message: not the path before it."""
    for line in message.splitlines():
        found = _FIX.search(line.strip())
        if found:
            fix = found.group(1).strip()
            if fix.endswith(")") and fix.count(")") > fix.count("("):
                fix = fix[:-1].rstrip()  # the marker sat inside "(...)"
            return fix
    return ""


def audio_rows(config: Config) -> list[Health]:
    from assistant.audio.devices import find_device

    rows = []
    for kind, name in (("input", config.audio.input_device), ("output", config.audio.output_device)):
        part = f"audio {kind}"
        try:
            device = find_device(name, kind)  # type: ignore[arg-type]
            rows.append(Health(part, True, device.describe()))
        except AssistantError as exc:
            rows.append(
                Health(part, False, str(exc).splitlines()[0], f"set audio.{kind}_device (see `assistant devices`)")
            )
    return rows


def collect(config: Config) -> list[Health]:
    """Load each engine as `assistant run` would and gather their health rows."""
    from assistant.engines.llm_chain import llm_health
    from assistant.engines.smart_turn import load_turn
    from assistant.engines.stt import load_stt
    from assistant.engines.tts import load_tts
    from assistant.engines.vad import load_vad
    from assistant.engines.wake import load_wake

    models = config.models_path
    rows = [Health("config", True, "valid")]
    rows += audio_rows(config)
    for part, loader in (
        ("wake word", lambda: load_wake(config.wake, models)),
        ("vad", lambda: load_vad(config.vad, models)),
        ("speech-to-text", lambda: load_stt(config.stt, models)),
        ("text-to-speech", lambda: load_tts(config.tts, models)),
    ):
        rows += _load(part, loader)[1]
    if config.turn.mode == "smart_turn":
        rows += _load("end of turn", lambda: load_turn(config.turn, models))[1]
    else:
        rows.append(Health("end of turn", True, f"off (turn.mode: silence, {config.vad.silence_ms} ms of silence)"))
    rows += asyncio.run(llm_health(config.llm))
    return rows


def audio_selftest(config: Config, wake_sample: Path | None = None) -> list[Health]:
    """The devices, then the speaker → microphone loop and the wake word on them (`check --audio`)."""
    from assistant.audio.clock import SampleClock
    from assistant.audio.devices import PyAudioMicrophone, PyAudioSpeaker
    from assistant.audio.wav import read_wav
    from assistant.engines.wake import load_wake
    from assistant.selftest import run_selftest, stored_wake_sample

    rows = [Health("config", True, "valid"), *audio_rows(config)]
    wake, wake_rows = _load("wake word", lambda: load_wake(config.wake, config.models_path))
    rows += wake_rows
    if not all(r.ok for r in rows):
        return [*rows, Health("self-test", False, "not run: fix the rows above first")]
    path = wake_sample or stored_wake_sample(config.wake.models[0])
    clock = SampleClock()
    a = config.audio
    try:
        mic = PyAudioMicrophone(a.input_device, a.input_rate, clock, queue_blocks=a.queue_blocks)
        try:
            speaker = PyAudioSpeaker(a.output_device, a.output_rate, clock, block_ms=a.output_block_ms)
            try:
                rows += asyncio.run(
                    run_selftest(
                        mic,
                        speaker,
                        clock,
                        wake,
                        wake_sample=None if path is None else read_wav(path),
                        sample_path=path,
                        threshold=config.wake.threshold,
                    )
                )
            finally:
                speaker.close()
        finally:
            mic.close()
    except (AssistantError, TimeoutError) as exc:
        rows.append(
            Health(
                "self-test",
                False,
                f"stopped: {exc or 'a device stopped delivering audio'}",
                "see `assistant devices`; a device may be busy (another program holds it)",
            )
        )
    return rows


def render(rows: list[Health]) -> str:
    width = max(len(r.part) for r in rows)
    lines = [f"{'PART':<{width}}  STATUS  DETAIL"]
    for r in rows:
        lines.append(f"{r.part:<{width}}  {'OK' if r.ok else 'FAIL':<6}  {r.detail}")
        if not r.ok and r.fix:
            lines.append(f"{'':<{width}}          fix: {r.fix}")
    return "\n".join(lines)


def run_check(config: Config, *, audio: bool = False, wake_sample: Path | None = None) -> int:
    rows = audio_selftest(config, wake_sample) if audio else collect(config)
    print(render(rows))
    failed = [r for r in rows if not r.ok]
    print(f"\n{len(rows) - len(failed)} OK, {len(failed)} FAIL", file=sys.stdout)
    return 1 if failed else 0
