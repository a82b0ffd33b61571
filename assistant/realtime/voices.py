"""The voices a realtime session can choose by name, loaded on first use and kept loaded.

Names come from three places: the appliance's own voice (`tts.voice`, named
after its file, e.g. ``en_US-joe-medium``; it is the default), the
`tts.voices` map (name -> bundled Piper voice or path to a .onnx), and
OpenAI's voice names, which mean the default voice unless `tts.voices` binds
them to another.  A medium Piper voice holds about 65 MB, so each is loaded
once, when a session first asks for it, and then shared by every session.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assistant.config import Config, TtsConfig

logger = logging.getLogger(__name__)

OPENAI_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")
"""OpenAI's Realtime voice names: clients written for OpenAI send these."""

Loader = Callable[[TtsConfig, Path], Any]


def voice_name(voice: str) -> str:
    """The name clients see for a configured Piper voice (a bundled name or a path to its .onnx)."""
    return Path(voice).name.removesuffix(".onnx")


def _load_piper(cfg: TtsConfig, models_dir: Path) -> Any:
    from assistant.engines.tts import load_tts

    voice = load_tts(cfg, models_dir)
    voice.warm()  # the first reply in this voice then pays no set-up cost
    return voice


class Voices:
    """Name -> Piper voice for every session; `names` lists them, `get` loads one on first use."""

    def __init__(self, config: Config, default: Any, *, loader: Loader = _load_piper) -> None:
        self._tts = config.tts
        self._models = config.models_path
        self._loader = loader
        self.default = voice_name(config.tts.voice)
        self._specs: dict[str, str] = {self.default: config.tts.voice, **config.tts.voices}
        self._loaded: dict[str, Any] = {config.tts.voice: default}
        """Loaded voices by what they were configured as: names bound to one file share it."""
        self._loading: dict[str, asyncio.Lock] = {}

    @property
    def names(self) -> tuple[str, ...]:
        """Every name a session may give: the default first, then `tts.voices`, then OpenAI's other names."""
        own = tuple(self._specs)
        return own + tuple(name for name in OPENAI_VOICES if name not in self._specs)

    def spec(self, name: str) -> str:
        """The configured voice (bundled name or path) a session's voice name stands for."""
        return self._specs.get(name, self._specs[self.default])

    async def get(self, name: str) -> Any:
        """The voice for `name`, loading it on a thread the first time (ModelError if its files are bad)."""
        spec = self.spec(name)
        if spec in self._loaded:
            return self._loaded[spec]
        lock = self._loading.setdefault(spec, asyncio.Lock())
        async with lock:  # two sessions asking at once load it once
            if spec not in self._loaded:
                cfg = self._tts.model_copy(update={"voice": spec})
                logger.info("tts: loading voice %r (%s) for a realtime session", name, spec)
                self._loaded[spec] = await asyncio.to_thread(self._loader, cfg, self._models)
        return self._loaded[spec]
