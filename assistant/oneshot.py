"""One-shot tools: `assistant say` and `assistant transcribe`."""

from __future__ import annotations

import asyncio
from pathlib import Path

from assistant.config import Config


def say(config: Config, text: str, output: Path | None) -> int:
    """Speak `text` with the configured voice, to a WAV file or the speaker."""
    from assistant.engines.tts import load_tts

    tts = load_tts(config.tts, config.models_path)
    audio = tts.synthesize(text)
    if output is not None:
        from assistant.audio.wav import write_wav

        write_wav(output, audio)
        print(f"wrote {output} ({len(audio) / 16000:.2f} s)")
        return 0

    from assistant.audio.clock import SampleClock
    from assistant.audio.devices import PyAudioSpeaker

    async def play() -> None:
        speaker = PyAudioSpeaker(config.audio.output_device, config.audio.output_rate, SampleClock())
        try:
            await speaker.play(audio)
            await speaker.drain()
        finally:
            speaker.close()

    asyncio.run(play())
    return 0


def transcribe(config: Config, wav: Path) -> int:
    """Print the transcript of a WAV file."""
    from assistant.audio.wav import read_wav
    from assistant.engines.stt import load_stt

    stt = load_stt(config.stt, config.models_path)
    print(stt.transcribe(read_wav(wav)))
    return 0
