"""`assistant check`: every part, OK or FAIL, and the fix."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

from assistant.config import Config
from assistant.core.errors import AssistantError
from assistant.core.ports import Health


def _load(part: str, loader: Callable[[], Any]) -> tuple[Any, list[Health]]:
    try:
        engine = loader()
    except AssistantError as exc:
        return None, [Health(part, False, str(exc).splitlines()[0], _fix_from(str(exc)))]
    rows: list[Health] = engine.health() if hasattr(engine, "health") else [Health(part, True, "loaded")]
    return engine, rows


def _fix_from(message: str) -> str:
    for line in message.splitlines():
        lowered = line.strip().lower()
        for marker in ("fix:", "run:", "fetch it with:", "get it with:"):
            if marker in lowered:
                return line.split(":", 1)[1].strip()
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
    from assistant.engines.llm import OllamaLanguageModel
    from assistant.engines.stt import load_stt
    from assistant.engines.tts import load_tts
    from assistant.engines.turn import load_turn
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
    llm = OllamaLanguageModel(
        host=config.llm.host,
        model=config.llm.model,
        options=dict(config.llm.options),
        keep_alive=config.llm.keep_alive,
        timeout_s=min(config.llm.timeout_s, 5.0),
    )
    rows += asyncio.run(llm.check())
    return rows


def render(rows: list[Health]) -> str:
    width = max(len(r.part) for r in rows)
    lines = [f"{'PART':<{width}}  STATUS  DETAIL"]
    for r in rows:
        lines.append(f"{r.part:<{width}}  {'OK' if r.ok else 'FAIL':<6}  {r.detail}")
        if not r.ok and r.fix:
            lines.append(f"{'':<{width}}          fix: {r.fix}")
    return "\n".join(lines)


def run_check(config: Config) -> int:
    rows = collect(config)
    print(render(rows))
    failed = [r for r in rows if not r.ok]
    print(f"\n{len(rows) - len(failed)} OK, {len(failed)} FAIL", file=sys.stdout)
    return 1 if failed else 0
