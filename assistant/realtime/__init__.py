"""The OpenAI Realtime-compatible server, its browser page, and a Python client.

`assistant.realtime.connect(url=..., model=..., voice=...)` opens a blocking
client session (`assistant.realtime.client.RealtimeSession`) for a `with` block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.realtime.client import RealtimeSession


def connect(url: str = "ws://127.0.0.1:8765", **options: Any) -> RealtimeSession:
    """A blocking realtime client session: `with connect(url=..., voice=...) as session:`."""
    from assistant.realtime.client import RealtimeSession  # websockets and soxr only when a client is wanted

    return RealtimeSession(url, **options)
