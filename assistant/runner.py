"""`assistant run`: the long-running process around the core loop."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import IO

from assistant.app import build
from assistant.config import Config

log = logging.getLogger(__name__)


async def run(
    config: Config,
    *,
    input_wav: Path | None = None,
    output_wav: Path | None = None,
    fast: bool = False,
    events: IO[str] | None = None,
) -> None:
    """Load everything, open the audio, then run until the input ends or a signal."""
    with build(config, input_wav=input_wav, output_wav=output_wav, fast=fast, events=events) as runtime:
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, lambda: main.cancel() if main else None)
            except (NotImplementedError, RuntimeError):
                pass
        log.info("ready: listening for %s", ", ".join(config.wake.models))
        try:
            await runtime.assistant.run()
        except asyncio.CancelledError:
            log.info("stopping")
