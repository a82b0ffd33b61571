"""Every engine the assistant needs, loaded once from config and shared.

The microphone loop (`assistant.app`) and the realtime server both take an
`Engines`; keeping it here, below both, lets neither import the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from assistant.config import Config
from assistant.core.ports import LoadedStt, LoadedTts, LoadedTurn, LoadedVad, LoadedWake

if TYPE_CHECKING:
    from assistant.engines.llm_chain import LlmChain


@dataclass
class Engines:
    """Every model, loaded once at start-up and shared (also by the realtime server)."""

    wake: LoadedWake
    vad: LoadedVad
    stt: LoadedStt
    llm: LlmChain
    tts: LoadedTts
    turn: LoadedTurn | None = None
    """The end-of-turn model (None when turn.mode is silence)."""


def load_engines(config: Config, *, warm: bool = True) -> Engines:
    """Load (and warm) every model; raises ModelError naming a missing file."""
    from assistant.engines.llm_chain import build_llm
    from assistant.engines.smart_turn import load_turn
    from assistant.engines.stt import load_stt
    from assistant.engines.tts import load_tts
    from assistant.engines.vad import load_vad
    from assistant.engines.wake import load_wake

    models = config.models_path
    engines = Engines(
        wake=load_wake(config.wake, models),
        vad=load_vad(config.vad, models),
        stt=load_stt(config.stt, models),
        llm=build_llm(config.llm),
        tts=load_tts(config.tts, models),
        turn=load_turn(config.turn, models) if config.turn.mode == "smart_turn" else None,
    )
    if warm:
        engines.stt.warm()
        engines.tts.warm()
        if engines.turn is not None:
            engines.turn.warm()
    return engines
