"""The skills' state file: JSON in the state directory, written atomically.

A power cut leaves the old file or the new one, never half of one (temporary
file, fsync, `os.replace`). A file that cannot be read as our state is moved
aside with a log line, and the device starts without timers.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from assistant.files import write_atomically

logger = logging.getLogger(__name__)

FILE_NAME = "skills.json"


class StateFile:
    """Load and save one JSON object at `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def in_dir(cls, state_dir: Path | str) -> StateFile:
        return cls(Path(state_dir).expanduser() / FILE_NAME)

    def load(self) -> dict[str, Any] | None:
        """The saved object; None when there is none or it was corrupt (then moved aside)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            self.set_aside(f"cannot be read ({exc})")
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            self.set_aside(f"is not valid JSON ({exc})")
            return None
        if not isinstance(data, dict):
            self.set_aside(f"holds a {type(data).__name__}, not an object")
            return None
        return data

    def set_aside(self, why: str) -> Path | None:
        """Move a bad state file to the first free `NAME.corrupt[.N]` so it can be looked at later."""
        target = self.path.with_name(self.path.name + ".corrupt")
        counter = 1
        while target.exists():
            target = self.path.with_name(f"{self.path.name}.corrupt.{counter}")
            counter += 1
        try:
            os.replace(self.path, target)
        except OSError as exc:
            logger.warning("skills: state file %s %s and cannot be moved aside (%s)", self.path, why, exc)
            return None
        logger.warning("skills: state file %s %s: moved to %s, starting with no timers", self.path, why, target)
        return target

    def save(self, data: dict[str, Any]) -> bool:
        """Write `data` (temporary file, fsync, rename); False (and a log line) when it cannot."""
        try:
            write_atomically(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")
        except OSError as exc:
            logger.warning("skills: cannot save %s (%s): timers will not survive a restart", self.path, exc)
            return False
        return True
