"""Setting up the LLM: what to fix when Ollama does not answer, and pulling the configured model.

`server_advice` turns "nothing answers at llm.host" into the fix for this
machine: install Ollama (no ``ollama`` on PATH), start it (installed, not
running), or point ``llm.host`` somewhere else (a host elsewhere that does
not answer, or something that is not Ollama).  ``assistant check`` and the
start-up log use it.

`pull` streams Ollama's ``POST /api/pull`` through the ``ollama`` client and
shows each layer's download with the model download's own progress meter (a
bar on a terminal, one line per layer otherwise).  `offer_pull` is what
``scripts/run`` does before starting: when Ollama answers but lacks the
model, it asks on a terminal (or is told yes) and pulls it, or says how.
"""

from __future__ import annotations

import ipaddress
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO
from urllib.parse import urlsplit

import httpx
import ollama

from assistant.core.errors import AssistantError
from assistant.engines.llm import _model_key, normalise_host
from assistant.models.download import _Progress

__all__ = ["INSTALL_COMMAND", "PullFailed", "is_loopback", "offer_pull", "probe", "pull", "server_advice"]

INSTALL_COMMAND = "curl -fsSL https://ollama.com/install.sh | sh"
"""Ollama's official one-line install for Linux (https://ollama.com/download/linux)."""

Which = Callable[[str], str | None]


class PullFailed(AssistantError):
    code = "llm_pull_failed"


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine (``localhost``, 127.x, ``::1``), without asking DNS."""
    name = (urlsplit(normalise_host(host)).hostname or "").lower()
    if name in ("localhost", "localhost.localdomain") or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def server_advice(host: str, code: str, *, which: Which = shutil.which) -> tuple[str, str]:
    """Why Ollama at `host` failed with error `code` (as far as this machine can tell), and the fix."""
    host = normalise_host(host)
    installed = which("ollama") is not None
    if code != "llm_unreachable":  # something answered, and it is not a working Ollama
        return (
            "something answers there, but not as Ollama does",
            f"set llm.host to the Ollama server's address (now {host}), or restart Ollama there",
        )
    if is_loopback(host):
        if not installed:
            return (
                "nothing answers, and Ollama is not installed here (no `ollama` on PATH)",
                f"install Ollama: {INSTALL_COMMAND}  (or set llm.host to a home server running Ollama)",
            )
        return (
            "nothing answers: Ollama is installed but not running",
            f"start Ollama (`systemctl start ollama` or `ollama serve`), or set llm.host (now {host})",
        )
    here = "" if installed else f"; or install it here: {INSTALL_COMMAND}  and set llm.host: http://127.0.0.1:11434"
    fix = f"set llm.host to a machine running Ollama (now {host}) or start Ollama there{here}"
    return "nothing answers there", fix


# --- pulling the model ----------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """What one quick look at the server found."""

    answers: bool
    has_model: bool
    error: str = ""


def probe(host: str, model: str, *, timeout_s: float = 5.0) -> Probe:
    """Whether Ollama answers at `host` and lists `model` (its default tag ``:latest`` understood)."""
    client = ollama.Client(host=normalise_host(host), trust_env=False, timeout=timeout_s)
    try:
        listing = client.list()
    except (httpx.HTTPError, ollama.ResponseError, ConnectionError, ValueError) as exc:
        return Probe(False, False, str(exc))
    have = {_model_key(m.model) for m in listing.models if m.model}
    return Probe(True, _model_key(model) in have)


def pull(host: str, model: str, *, progress: bool = True, out: IO[str] | None = None) -> None:
    """Pull `model` onto the Ollama server at `host`, showing its progress; raises `PullFailed`.

    Ollama's stream: ``pulling manifest``, then ``pulling <digest>`` with ``total``
    and ``completed`` for each layer, then ``verifying sha256 digest``,
    ``writing manifest`` and ``success`` (or an ``error`` line, which the client
    raises as `ollama.ResponseError`).
    """
    out = out or sys.stderr
    host = normalise_host(host)
    # No read time-out: a layer of a few GB takes as long as it takes; the stream itself shows it moving.
    client = ollama.Client(host=host, trust_env=False, timeout=httpx.Timeout(None, connect=5.0))
    meters: dict[str, _Progress] = {}
    seen: dict[str, int] = {}
    status = ""
    outcome = "failed"
    try:
        for part in client.pull(model, stream=True):
            status = part.status or ""
            if part.digest:
                meter = meters.get(part.digest)
                if meter is None and part.total:
                    meter = meters[part.digest] = _Progress(status or f"pulling {part.digest}", part.total, progress)
                    seen[part.digest] = 0
                if meter is not None and part.completed is not None:
                    step = part.completed - seen[part.digest]
                    if step > 0:
                        meter.update(step)
                        seen[part.digest] = part.completed
                continue
            _close(meters)
            if progress:
                print(status, file=out, flush=True)
        if status != "success":
            raise PullFailed(f"pulling {model} from {host} ended without Ollama's success (last: {status!r})")
        outcome = "ok"
    except ollama.ResponseError as exc:
        raise PullFailed(f"Ollama at {host} could not pull {model}: {exc.error}") from exc
    except (httpx.HTTPError, ConnectionError) as exc:
        if status:  # it had started: the connection broke off
            raise PullFailed(f"pulling {model} from {host} broke off ({status}): {exc}") from exc
        why, fix = server_advice(host, "llm_unreachable")
        raise PullFailed(f"Ollama at {host}: {why}; fix: {fix}") from exc
    finally:
        _close(meters, outcome)


def _close(meters: dict[str, _Progress], outcome: str = "ok") -> None:
    for meter in meters.values():
        meter.close(outcome)
    meters.clear()


def offer_pull(
    host: str,
    model: str,
    *,
    yes: bool = False,
    interactive: bool | None = None,
    ask: Callable[[str], str] = input,
    progress: bool = True,
    out: IO[str] | None = None,
) -> int:
    """Before starting: when Ollama answers at `host` but lacks `model`, pull it (asked, or `yes`), or say how.

    Asks only where `interactive` (default: stdin and stdout are terminals);
    otherwise, unless `yes`, it says how to pull the model and leaves it.
    Nothing to do (the model is there) or nothing it can do (Ollama does not
    answer: ``assistant check`` says why) is quiet.  Returns 1 when a pull failed.
    """
    out = out or sys.stdout
    found = probe(host, model)
    if not found.answers or found.has_model:
        return 0
    host = normalise_host(host)
    print(f"Ollama answers at {host} but has no model {model}: general questions need it.", file=out, flush=True)
    if not yes:
        if interactive is None:
            interactive = sys.stdin.isatty() and sys.stdout.isatty()
        if not interactive:
            print(
                f"to pull it: assistant llm pull  (ollama pull {model}; scripts/run --yes pulls it without asking)",
                file=out,
                flush=True,
            )
            return 0
        try:
            answer = ask(f"Pull {model} now? [Y/n] ").strip().lower()
        except EOFError:
            answer = "n"
        if answer not in ("", "y", "yes"):
            print(f"not pulled; later: assistant llm pull  (or ollama pull {model})", file=out, flush=True)
            return 0
    print(f"pulling {model} onto {host}", file=out, flush=True)
    try:
        pull(host, model, progress=progress)
    except PullFailed as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"{model} is pulled", file=out, flush=True)
    return 0
