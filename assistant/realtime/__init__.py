"""The OpenAI Realtime-compatible server, its browser page, and a Python client.

`assistant.realtime(url=..., model=..., voice=...)` opens a blocking client
session (`assistant.realtime.client.RealtimeSession`): the package itself is
callable, so the call works whether or not this package was imported first.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableModule(types.ModuleType):
    def __call__(self, url: str = "ws://127.0.0.1:8765", **options: Any) -> Any:
        """Open a blocking realtime client session (use it in a `with` block)."""
        from assistant.realtime.client import RealtimeSession

        return RealtimeSession(url, **options)


sys.modules[__name__].__class__ = _CallableModule
