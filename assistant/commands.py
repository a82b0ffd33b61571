"""Command groups registered by the features that own them."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _models(sub: SubParsers) -> None:
    parser = sub.add_parser("models", help="download or list the models")
    actions = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    download = actions.add_parser("download", help="fetch models, checking pinned sha256 sums")

    def run_download(args: argparse.Namespace) -> int:
        from assistant import models

        return models.run_cli(args)

    from assistant import models

    models.add_arguments(download)
    download.set_defaults(func=run_download)


def _leds(sub: SubParsers) -> None:
    from assistant.cmdline import add_config_args

    parser = sub.add_parser("leds", help="check the status LEDs")
    actions = parser.add_subparsers(dest="leds_command", required=True, metavar="ACTION")
    test = actions.add_parser("test", help="show every state's pattern and print the pin values it set")
    add_config_args(test)
    test.add_argument("--hold", type=float, default=1.0, metavar="SECONDS", help="how long to show each state")

    def run_test(args: argparse.Namespace) -> int:
        from assistant.cmdline import load_config, setup_logging
        from assistant.device.leds import run_test

        config = load_config(args)
        setup_logging("warning")
        return run_test(config.leds, hold_s=max(0.0, args.hold))

    test.set_defaults(func=run_test)


def _llm(sub: SubParsers) -> None:
    from assistant.cmdline import add_config_args

    parser = sub.add_parser("llm", help="set up the LLM server")
    actions = parser.add_subparsers(dest="llm_command", required=True, metavar="ACTION")
    pull = actions.add_parser(
        "pull", help="pull the configured model (llm.model) onto the Ollama server at llm.host, with its progress"
    )
    add_config_args(pull)
    pull.add_argument("--model", metavar="NAME", help="pull this model instead of llm.model")
    pull.add_argument(
        "--offer",
        action="store_true",
        help="only when Ollama answers but lacks the model: ask first on a terminal, else say how (scripts/run)",
    )
    pull.add_argument("--yes", "-y", action="store_true", help="with --offer: pull without asking")
    pull.add_argument("--no-progress", dest="progress", action="store_false", help="no progress output")

    def run_pull(args: argparse.Namespace) -> int:
        import sys

        from assistant.cmdline import load_config, setup_logging
        from assistant.engines.ollama_setup import PullFailed, offer_pull
        from assistant.engines.ollama_setup import pull as pull_model

        config = load_config(args)
        setup_logging("warning")
        model = args.model or config.llm.model
        if args.offer:
            return offer_pull(config.llm.host, model, yes=args.yes, progress=args.progress)
        try:
            pull_model(config.llm.host, model, progress=args.progress)
        except PullFailed as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"{model} is pulled")
        return 0

    pull.set_defaults(func=run_pull)


def _realtime(sub: SubParsers) -> None:
    from assistant.realtime.cli import register

    register(sub)


REGISTER: list[Callable[[SubParsers], None]] = [_models, _llm, _leds, _realtime]
