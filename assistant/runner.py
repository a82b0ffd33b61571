"""`assistant run`: the long-running process around the core loop.

It owns what the core does not: signals, systemd's notify protocol (READY
once every model is loaded and the audio is open, WATCHDOG pings from the
loop, STATUS with the state) and the optional realtime server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from assistant.app import Runtime, build
from assistant.config import Config
from assistant.device.notify import SystemdNotifier
from assistant.events import DeviceLost, DeviceRestored, Event

if TYPE_CHECKING:
    from assistant.metrics import Metrics

logger = logging.getLogger(__name__)


def _status_line(event: Event) -> str | None:
    if event.type == "state":
        return f"state: {getattr(event, 'state', '?')}"
    if event.type == "error":
        return f"error: {getattr(event, 'code', '?')}: {getattr(event, 'message', '')}"
    if event.type == "muted":
        return "state: muted" if getattr(event, "muted", False) else "state: unmuted"
    if isinstance(event, DeviceLost):
        return f"degraded: {event.device} {event.name!r} lost ({event.message}); looking for it again"
    if isinstance(event, DeviceRestored):
        return f"state: {event.device} {event.name!r} back after {event.down_s:.0f} s"
    return None


NOTICE = "My microphone stopped working. I will keep looking for it."
"""Spoken when the microphone is lost and the speaker still works (the LEDs and STATUS say it too)."""


class _Notices:
    """Speaks a short notice on the speaker when the microphone is lost; owns its tasks."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.tasks: set[asyncio.Task[None]] = set()

    def __call__(self, event: Event) -> None:
        if not isinstance(event, DeviceLost) or event.device != "microphone":
            return
        task = asyncio.create_task(self._speak(NOTICE), name="device-notice")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _speak(self, text: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            audio = await loop.run_in_executor(self.runtime.compute_pool, self.runtime.engines.tts.synthesize, text)
            await self.runtime.speaker.play(audio)
        except Exception as exc:  # a notice is best effort: the log and the LEDs already say it
            logger.warning("could not speak the device notice: %s", exc)

    def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()


async def _report_llm(config: Config) -> None:
    """Say once at start whether the LLM answers and, when it does not, what to fix; runs beside the loop."""
    from assistant.engines.llm_chain import llm_health

    try:
        rows = await llm_health(config.llm)
    except Exception as exc:  # a report must not stop the assistant
        logger.warning("could not check the LLM server: %s", exc)
        return
    answering = rows[-1]
    if answering.ok:
        logger.info("llm: %s", answering.detail)
        return
    failing = next((row for row in rows if not row.ok and row.fix), answering)
    logger.warning(
        "general questions need the LLM server, which is not ready: %s %s; "
        "the device's own intents (time, timers, alarms, volume) answer without it. fix: %s",
        failing.part,
        failing.detail,
        failing.fix,
    )


async def _watchdog(notifier: SystemdNotifier, interval: float) -> None:
    """Ping from the event loop itself: a stuck loop stops the pings and gets restarted."""
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval / 2)


async def run(
    config: Config,
    *,
    input_wav: Path | None = None,
    output_wav: Path | None = None,
    fast: bool = False,
    events: IO[str] | None = None,
) -> None:
    """Load everything, open the audio, then run until the input ends or a signal."""
    notifier = SystemdNotifier()
    with build(config, input_wav=input_wav, output_wav=output_wav, fast=fast, events=events) as runtime:
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, lambda: main.cancel() if main else None)

        def on_event(event: Event) -> None:
            line = _status_line(event)
            if line is not None:
                notifier.status(line)

        runtime.bus.subscribe(on_event)
        notices = _Notices(runtime)
        runtime.bus.subscribe(notices)
        try:
            with _attach_device(runtime, config):
                await _serve(runtime, config, notifier)
        finally:
            notices.cancel()
            await runtime.engines.llm.aclose()  # its background host checks and connections
        notifier.stopping()


@contextlib.contextmanager
def _attach_device(runtime: Runtime, config: Config) -> Iterator[None]:
    """LEDs, the mute button and the persisted mute switch, where configured."""
    from assistant.device.wiring import attach_device

    with attach_device(runtime.assistant, runtime.bus, config):
        yield


def _metrics(runtime: Runtime, config: Config) -> Metrics | None:
    """The Prometheus metrics, following the bus, when `metrics.enabled`."""
    if not config.metrics.enabled:
        return None
    from assistant.metrics import Metrics

    metrics = Metrics(config.llm.host)
    runtime.bus.subscribe(metrics)
    return metrics


async def _serve(runtime: Runtime, config: Config, notifier: SystemdNotifier) -> None:
    metrics = _metrics(runtime, config)
    tasks: list[asyncio.Task[None]] = []
    interval = notifier.watchdog_interval()
    if interval:
        tasks.append(asyncio.create_task(_watchdog(notifier, interval), name="watchdog"))
    m = config.metrics
    if metrics is not None and m.port is not None:
        from assistant.metrics import serve_metrics

        tasks.append(asyncio.create_task(serve_metrics(metrics, m.host, m.port, m.token), name="metrics"))
    if config.server.enabled:
        from assistant.realtime.server import serve

        tasks.append(
            asyncio.create_task(
                serve(
                    config,
                    runtime.engines,
                    executor=runtime.compute_pool,
                    metrics=metrics,
                    tools=runtime.skills,
                    clock=runtime.clock.now,
                ),
                name="realtime",
            )
        )
    logger.info("ready: listening for %s", ", ".join(config.wake.models))
    tasks.append(asyncio.create_task(_report_llm(config), name="llm-report"))
    notifier.ready()
    notifier.status("state: idle")
    try:
        await runtime.assistant.run()
    except asyncio.CancelledError:
        logger.info("stopping")
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
