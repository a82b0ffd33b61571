"""From a config value to a model file, and the fix to show when it is missing."""

from __future__ import annotations

from pathlib import Path

from assistant import models as catalogue
from assistant.core.errors import ModelError


def locate(models_dir: Path, kind: str, name: str, key: str, expects: str) -> Path:
    """The file a bundled name or a path in config key `key` stands for."""
    try:
        return catalogue.expected_path(Path(models_dir).expanduser(), kind, name)
    except catalogue.UnknownModel as exc:
        raise ModelError(f"{key}: {exc}. Give a bundled name or {expects}") from None


def fix_for(path: Path, key: str, note: str = "") -> str:
    """The download command for a bundled file, else a pointer to the config key."""
    command = catalogue.fetch_command(path)
    return f"run: {command}" if command else f"check {key}{note}"
