"""How fast the fallback host answers the first turn after the primary goes away.

    python -m assistant.bench.fallback [--runs 10] [--connect-timeout-s 0.5] [--ttft-ms 150]

The real `LlmChain` and `ollama` client against the loopback Ollama test
servers (assistant/testing/ollama_server.py): for each way the primary can be gone, a
fresh chain (nothing known about the primary yet, no warm-up) is asked one
question and the time to the first piece of the reply is measured.  The goal
is the primary's connect time-out plus the fallback's own first token (which
is measured too, asking the fallback directly).  Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing, asynccontextmanager
from typing import Any

from assistant.core.errors import TurnError
from assistant.core.ports import Message
from assistant.engines.llm import OllamaLanguageModel
from assistant.engines.llm_chain import LlmChain

MESSAGES = [Message("system", "Be brief."), Message("user", "What is the capital of France?")]

Gone = Callable[[], AsyncIterator[str]]
"""Sets up a primary that is gone in one way; yields its URL."""


async def first_piece_ms(chain: LlmChain) -> float:
    """Milliseconds from asking to the first piece of the reply."""
    started = time.perf_counter()
    async with aclosing(chain.stream(MESSAGES)) as stream:
        async for _ in stream:
            return (time.perf_counter() - started) * 1000
    raise RuntimeError("an empty reply")


def summary(samples: Sequence[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(samples), 1),
        "max_ms": round(max(samples), 1),
        "min_ms": round(min(samples), 1),
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from assistant.testing.ollama_server import Behaviour, Blackhole, OllamaTestServer

    def host(url: str, model: str) -> OllamaLanguageModel:
        return OllamaLanguageModel(url, model, timeout_s=10.0, connect_timeout_s=args.connect_timeout_s)

    fallback = OllamaTestServer(models=["small"], ttft_ms=args.ttft_ms, tokens_per_s=40).start()

    @asynccontextmanager
    async def refused() -> AsyncIterator[str]:
        server = OllamaTestServer(models=["big"]).start()
        server.stop()
        yield server.url

    @asynccontextmanager
    async def off_the_network() -> AsyncIterator[str]:
        with Blackhole() as hole:
            yield hole.url

    @asynccontextmanager
    async def answering_503() -> AsyncIterator[str]:
        with OllamaTestServer(models=["big"]) as server:
            server.script(Behaviour(status=503, error="server busy"))
            yield server.url

    @asynccontextmanager
    async def model_not_pulled() -> AsyncIterator[str]:
        with OllamaTestServer(models=[]) as server:
            yield server.url

    async def run(gone: Callable[[], Any]) -> list[float]:
        samples = []
        for _ in range(args.runs):
            async with gone() as url:
                chain = LlmChain([host(url, "big"), host(fallback.url, "small")], recheck_s=3600.0)
                try:
                    samples.append(await first_piece_ms(chain))
                finally:
                    await chain.aclose()
        return samples

    async def direct() -> list[float]:
        samples = []
        for _ in range(args.runs):
            chain = LlmChain([host(fallback.url, "small")])
            try:
                samples.append(await first_piece_ms(chain))
            finally:
                await chain.aclose()
        return samples

    try:
        fallback_alone = summary(await direct())
        results: dict[str, Any] = {
            "runs": args.runs,
            "connect_timeout_s": args.connect_timeout_s,
            "fallback_ttft_ms_setting": args.ttft_ms,
            "fallback_first_token_direct": fallback_alone,
        }
        budget = args.connect_timeout_s * 1000 + fallback_alone["median_ms"]
        results["budget_ms"] = round(budget, 1)  # connect time-out + the fallback's own first token (median)
        cases: dict[str, Callable[[], Awaitable[list[float]]]] = {
            "primary_refusing": lambda: run(refused),
            "primary_off_the_network": lambda: run(off_the_network),
            "primary_answering_503": lambda: run(answering_503),
            "primary_without_the_model": lambda: run(model_not_pulled),
        }
        for name, case in cases.items():
            figures: dict[str, Any] = summary(await case())
            figures["over_budget_ms"] = round(figures["median_ms"] - budget, 1)  # <= 0: the goal is met
            results[name] = figures
    except TurnError as exc:
        results = {"error": f"{exc.code}: {exc}"}
    finally:
        fallback.stop()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assistant.bench.fallback", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--connect-timeout-s", type=float, default=0.5)
    parser.add_argument("--ttft-ms", type=float, default=150.0, help="the fallback server's time to first token")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(measure(args)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
