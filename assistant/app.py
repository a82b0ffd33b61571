"""The composition root: builds the real engines and devices from config and runs them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from assistant.audio.clock import SampleClock
from assistant.audio.gain import GainSpeaker
from assistant.audio.wav import WavMicrophone
from assistant.config import Config
from assistant.core.endpointing import EndpointSettings
from assistant.core.fairness import FairExecutor
from assistant.core.history import History
from assistant.core.loop import Loop, LoopSettings
from assistant.core.ports import Audio, Microphone, Speaker
from assistant.core.transcript import phrase_words
from assistant.core.turn import Turn, TurnSettings
from assistant.engines.bundle import Engines, load_engines
from assistant.events import EventBus, JsonLinesWriter
from assistant.heap import HeapTrimmer

if TYPE_CHECKING:
    from assistant.skills import Skills

logger = logging.getLogger(__name__)

DeviceOpeners = Callable[[SampleClock], dict[str, Callable[[], Any]]]
"""Given the runtime's clock: an opener per device kind ("microphone", "speaker") standing in for pyaudio's."""


def endpoint_settings(config: Config) -> EndpointSettings:
    vad = config.vad
    return EndpointSettings(
        threshold=vad.threshold,
        silence_s=vad.silence_ms / 1000,
        complete_silence_s=None if vad.complete_silence_ms is None else vad.complete_silence_ms / 1000,
        trailing_silence_s=None if vad.trailing_silence_ms is None else vad.trailing_silence_ms / 1000,
        min_speech_s=vad.min_speech_ms / 1000,
        no_speech_timeout_s=vad.no_speech_timeout_s,
        max_utterance_s=vad.max_utterance_s,
        **turn_settings(config),
    )


def turn_settings(config: Config) -> dict[str, Any]:
    """The end-of-turn model's part of the endpoint settings (none in silence mode)."""
    turn = config.turn
    if turn.mode != "smart_turn":
        return {}
    return {
        "turn_check_s": turn.check_silence_ms / 1000,
        "turn_recheck_s": turn.recheck_ms / 1000,
        "turn_max_silence_s": turn.max_silence_ms / 1000,
        "turn_threshold": turn.threshold,
        "turn_needs_hint": turn.transcript_check,
    }


def speculative_stt(config: Config) -> bool:
    """Whether pauses are transcribed speculatively (the transcript rule, alone or with Smart Turn)."""
    smart = config.turn.mode == "smart_turn" and config.turn.transcript_check
    return config.vad.complete_silence_ms is not None or smart


@dataclass
class Runtime:
    """A built assistant with the resources it owns."""

    assistant: Loop
    bus: EventBus
    clock: SampleClock
    engines: Engines
    mic: Microphone
    speaker: Speaker
    compute_pool: FairExecutor
    """The one worker thread for STT and TTS, shared with the realtime server (the microphone's work first)."""
    skills: Skills | None = None
    """The device's own skills (None when `skills.enabled` is false)."""


@contextmanager
def build(
    config: Config,
    *,
    input_wav: Path | None = None,
    output_wav: Path | None = None,
    fast: bool = False,
    events: IO[str] | None = None,
    engines: Engines | None = None,
    sounds: dict[str, Audio] | None = None,
    devices: DeviceOpeners | None = None,
) -> Iterator[Runtime]:
    """Build the assistant on real engines and devices (or WAV files).

    `devices` replaces the pyaudio openers where no WAV is given; those devices still go through
    `AudioLink` and its recovery (the fault soak, assistant/bench/faults.py, opens failing ones).
    """
    with ExitStack() as stack:
        bus = EventBus()
        if events is not None:
            bus.subscribe(JsonLinesWriter(events))
        engines = engines or load_engines(config)
        clock = SampleClock()
        stack.callback(engines.llm.subscribe(bus.publish, clock.now))
        mic, speaker = open_audio(config, clock, input_wav, output_wav, fast, stack, bus, devices)
        audio_pool = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="audio"))
        # Work submitted to the pool itself is the microphone loop's, served before any realtime session's.
        compute_pool = stack.enter_context(FairExecutor("compute"))
        turn_pool = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="turn"))
        bus.subscribe(HeapTrimmer(turn_pool))  # the turn model's thread is free once idle
        detector = engines.turn
        if config.turn.mode != "smart_turn":
            detector = None
        elif detector is None:  # engines loaded for another mode: add the model this config needs
            from assistant.engines.smart_turn import load_turn

            detector = load_turn(config.turn, config.models_path)
        skills = build_skills(config, clock.now())
        # Replies and what rings play at the skills' volume; feedback sounds stay as configured.
        voice = speaker if skills is None else GainSpeaker(speaker, lambda: skills.gain)
        history = History(config.llm.system_prompt, config.conversation.max_turns, config.conversation.forget_after_s)
        turn = Turn(
            stt=engines.stt,
            llm=engines.llm,
            tts=engines.tts,
            speaker=voice,
            clock=clock,
            bus=bus,
            history=history,
            settings=TurnSettings(
                config.llm.model,
                config.conversation.apology,
                not_heard=config.conversation.not_heard,
                llm_unavailable=config.conversation.llm_unavailable,
                first_chunk_min_chars=config.tts.first_chunk_min_chars,
                wake_phrases=[phrase_words(Path(name).stem) for name in config.wake.models],
            ),
            executor=compute_pool,
            tools=skills if config.llm.tools else None,
        )
        assistant = Loop(
            mic=mic,
            speaker=speaker,
            clock=clock,
            wake=engines.wake,
            vad=engines.vad,
            turn=turn,
            bus=bus,
            settings=LoopSettings(
                endpoint=endpoint_settings(config),
                preroll_s=config.wake.preroll_ms / 1000,
                follow_up_s=config.conversation.follow_up_s,
                warm_on_wake=config.llm.warm_on_wake,
                speculative_stt=speculative_stt(config),
            ),
            audio_executor=audio_pool,
            sounds=sounds,
            turn_detector=detector,
            turn_executor=turn_pool,
            skills=skills,
        )
        if isinstance(mic, WavMicrophone):
            mic.busy = lambda: assistant.busy
        yield Runtime(assistant, bus, clock, engines, mic, speaker, compute_pool, skills)


def build_skills(config: Config, now: float) -> Skills | None:
    """The device's own skills (None when `skills.enabled` is false), state in `state_dir`."""
    if not config.skills.enabled:
        return None
    from assistant.skills import Skills

    return Skills.from_config(config.skills, config.state_path, now=now)


def open_audio(
    config: Config,
    clock: SampleClock,
    input_wav: Path | None,
    output_wav: Path | None,
    fast: bool,
    stack: ExitStack,
    bus: EventBus | None = None,
    devices: DeviceOpeners | None = None,
) -> tuple[Microphone, Speaker]:
    """The microphone and speaker: WAV files where given, else pyaudio devices (or `devices`') that survive faults."""
    from assistant.audio.wav import WavMicrophone, WavSpeaker

    a = config.audio
    given = devices(clock) if devices is not None else {}
    wanted = {"microphone": input_wav is None, "speaker": output_wav is None}
    openers: dict[str, Callable[[], Any]] = {kind: opener for kind, opener in given.items() if wanted.get(kind)}
    if input_wav is None and "microphone" not in openers:
        from assistant.audio.devices import PyAudioMicrophone

        openers["microphone"] = lambda: PyAudioMicrophone(
            a.input_device, a.input_rate, clock, queue_blocks=a.queue_blocks
        )
    if output_wav is None and "speaker" not in openers:
        from assistant.audio.devices import PyAudioSpeaker

        openers["speaker"] = lambda: PyAudioSpeaker(a.output_device, a.output_rate, clock, block_ms=a.output_block_ms)
    link = None
    if openers:
        from assistant.audio.recovery import AudioLink

        names = {"microphone": a.input_device, "speaker": a.output_device}
        link = AudioLink(
            openers, names, clock, bus or EventBus(), initial_s=a.reconnect_initial_s, max_s=a.reconnect_max_s
        )
        stack.callback(link.close)
        link.open()
    mic: Microphone
    speaker: Speaker
    if input_wav is not None:
        mic = WavMicrophone(input_wav, clock, realtime=not fast)
    else:
        assert link is not None
        mic = link.mic
    if output_wav is not None:
        wav_speaker = WavSpeaker(output_wav, clock, rate=a.output_rate or 16000, block_ms=a.output_block_ms)
        stack.callback(wav_speaker.close)
        speaker = wav_speaker
    else:
        assert link is not None
        speaker = link.speaker
    return mic, speaker
