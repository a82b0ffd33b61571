"""An offline-first voice assistant for Raspberry Pi and Jetson class devices."""

from typing import Any

__version__ = "0.1.0"


def realtime(url: str = "ws://127.0.0.1:8765", **options: Any) -> Any:
    """A blocking realtime client session: `with assistant.realtime(url=..., voice=...) as session:`."""
    from assistant.realtime.client import RealtimeSession

    return RealtimeSession(url, **options)
