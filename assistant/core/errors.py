"""The error hierarchy: stable codes that events, logs and apologies use."""

from __future__ import annotations


class AssistantError(Exception):
    """Base of every error the assistant raises on purpose."""

    code = "internal"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class FatalError(AssistantError):
    """Start-up cannot go on (bad config, missing model): exit with status 78.

    Only what a restart cannot fix belongs here; a fault that happens while
    running is a `DeviceFault` or a `TurnError`, never a FatalError.
    """

    exit_status = 78


class ConfigError(FatalError):
    code = "config"


class ModelError(FatalError):
    code = "model_missing"


class DeviceFault(AssistantError):
    """A device failed while running (unplugged, busy, a driver error): the
    assistant says so, keeps its models loaded and looks for the device again."""

    code = "device_fault"


class AudioDeviceLost(DeviceFault):
    code = "audio_device_lost"


class TurnError(AssistantError):
    """One turn failed; the device apologises and keeps working."""

    code = "turn_failed"


class LlmUnreachable(TurnError):
    code = "llm_unreachable"


class LlmModelMissing(TurnError):
    code = "llm_model_missing"


class LlmTimeout(TurnError):
    code = "llm_timeout"


class LlmStreamCut(TurnError):
    code = "llm_stream_cut"


class LlmFailed(TurnError):
    code = "llm_failed"


class SpeechToTextFailed(TurnError):
    code = "stt_failed"


class SpeechToTextCancelled(TurnError):
    """A transcription was abandoned (a newer request, or the turn ended)."""

    code = "stt_cancelled"


class NothingHeard(TurnError):
    """The request held no words (silence, a cough, Whisper's [BLANK_AUDIO])."""

    code = "nothing_heard"


class TextToSpeechFailed(TurnError):
    code = "tts_failed"
