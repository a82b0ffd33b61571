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


def _realtime(sub: SubParsers) -> None:
    from assistant.realtime.cli import register

    register(sub)


REGISTER: list[Callable[[SubParsers], None]] = [_models, _leds, _realtime]
