"""An offline-first voice assistant for Raspberry Pi and Jetson class devices."""

__version__ = "0.1.0"
