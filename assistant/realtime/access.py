"""Who may open a realtime session: Host, Origin, token and ``?model=`` checks, all pure.

Browsers let any page open a WebSocket to any address and do not apply the
same-origin policy to it; the server must check the ``Origin`` header itself
(cross-site WebSocket hijacking).  A page on an attacker's name that resolves
to this machine (DNS rebinding) sends its own name as ``Host``, so the Host
is checked too, on every request.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from assistant.config import is_loopback

KEY_PREFIX = "openai-insecure-api-key."
DEFAULT_MODELS = ("", "default")
"""``?model=`` values that mean the configured LLM (as do OpenAI names starting ``gpt-``)."""
WILDCARDS = ("0.0.0.0", "::", "")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def host_name(header: str) -> str | None:
    """The host name of a ``Host`` header (``[::1]:8765`` -> ``::1``), lower-cased; None if malformed."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (value[end + 1 :] and not value[end + 1 :].startswith(":")):
            return None
        name = value[1:end]
        return name if _is_ip(name) else None
    name, _, port = value.partition(":")
    if (port and not port.isdigit()) or ":" in port:
        return None
    name = name.rstrip(".")
    if not name or any(c in name for c in "/@ \\"):
        return None
    return name


@dataclass(frozen=True)
class Access:
    """The server's access rules, built once from ``server.*``."""

    bind_host: str
    allowed_hosts: frozenset[str]
    allowed_origins: frozenset[str]
    token: str | None

    @classmethod
    def build(cls, bind_host: str, hosts: Iterable[str], origins: Iterable[str], token: str | None) -> Access:
        """Rules for a server bound to `bind_host` with the configured extra hosts and origins."""
        names = {bind_host.lower(), "localhost", *hosts}
        if is_loopback(bind_host) or bind_host in WILDCARDS:
            names |= {"127.0.0.1", "::1"}
        if bind_host in WILDCARDS:
            machine = socket.gethostname().lower()
            names |= {machine, f"{machine}.local"}
        return cls(bind_host, frozenset(names), frozenset(origins), token)

    def host_allowed(self, header: str | None) -> bool:
        """Whether a request's ``Host`` names this server (not a rebinding attacker's name)."""
        name = host_name(header or "")
        if name is None:
            return False
        if name in self.allowed_hosts:
            return True
        # An address literal cannot be rebound; off a wildcard bind any of the machine's addresses may be used.
        return self.bind_host in WILDCARDS and _is_ip(name)

    def origin_allowed(self, origin: str | None, host_header: str | None) -> bool:
        """No Origin (a non-browser client), the server's own page, or a configured origin."""
        if origin is None:
            return True
        value = origin.strip().lower().rstrip("/")
        if value in self.allowed_origins:
            return True
        scheme, sep, netloc = value.partition("://")
        own = (host_header or "").strip().lower()
        return bool(sep) and scheme in ("http", "https") and bool(own) and netloc == own

    def authorized(self, authorization: str | None, subprotocols: Iterable[str]) -> bool:
        """The token as ``Authorization: Bearer`` (scheme in any case) or as a key subprotocol."""
        if not self.token:
            return True
        expected = self.token.encode()
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), expected):
            return True
        for value in subprotocols:
            for proto in value.split(","):
                proto = proto.strip()
                if proto.startswith(KEY_PREFIX) and hmac.compare_digest(proto[len(KEY_PREFIX) :].encode(), expected):
                    return True
        return False


def resolve_model(requested: str, configured: str, allowed: Iterable[str]) -> str | None:
    """The Ollama model for ``?model=`` (OpenAI names mean the configured one); None when not allowed."""
    if requested in DEFAULT_MODELS or requested.startswith("gpt-"):
        return configured
    return requested if requested in {configured, *allowed} else None
