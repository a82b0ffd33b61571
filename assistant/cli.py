"""The `assistant` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from assistant import __version__
from assistant import config as config_module
from assistant.cmdline import add_config_args, load_config, setup_logging
from assistant.core.errors import AssistantError, FatalError

log = logging.getLogger("assistant")


def cmd_run(args: argparse.Namespace) -> int:
    from assistant.runner import run

    config = load_config(args)
    setup_logging(config.log_level)
    events: IO[str] | None = None
    with contextlib.ExitStack() as stack:
        if args.events == "-":
            events = sys.stdout
        elif args.events:
            events = stack.enter_context(open(args.events, "w", encoding="utf-8"))
        asyncio.run(run(config, input_wav=args.input, output_wav=args.output, fast=args.fast, events=events))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from assistant.check import run_check

    config = load_config(args)
    setup_logging("warning")
    return run_check(config, audio=args.audio, wake_sample=args.wake_sample)


def cmd_devices(args: argparse.Namespace) -> int:
    from assistant.audio.devices import list_devices

    devices = list_devices()
    if not devices:
        print("no audio devices found (is a sound card or PulseAudio available?)")
        return 1
    print(f"{'#':>3}  {'name':40} {'in':>3} {'out':>3}  rates (Hz)")
    for d in devices:
        rates = ", ".join(str(r) for r in sorted(set(d.input_rates) | set(d.output_rates)))
        print(f"{d.index:>3}  {d.name[:40]:40} {d.max_input_channels:>3} {d.max_output_channels:>3}  {rates}")
    return 0


def cmd_say(args: argparse.Namespace) -> int:
    from assistant.oneshot import say

    config = load_config(args)
    setup_logging("warning")
    return say(config, " ".join(args.text), args.output)


def cmd_transcribe(args: argparse.Namespace) -> int:
    from assistant.oneshot import transcribe

    config = load_config(args)
    setup_logging("warning")
    return transcribe(config, args.wav)


def cmd_config_validate(args: argparse.Namespace) -> int:
    for file in args.files:
        config_module.load([*args.config, file], args.set)
        print(f"{file}: valid")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    import yaml

    config = load_config(args)
    print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="assistant", description="An offline voice assistant.")
    parser.add_argument("--version", action="version", version=f"assistant {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the assistant (microphone → reply)")
    add_config_args(run)
    run.add_argument("--input", type=Path, metavar="IN.wav", help="a WAV file as the microphone")
    run.add_argument("--output", type=Path, metavar="OUT.wav", help="a WAV file as the speaker")
    run.add_argument("--fast", action="store_true", help="with --input: run on a virtual clock, as fast as possible")
    run.add_argument("--events", metavar="FILE|-", help="write events as JSON lines")
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check", help="check every part and say how to fix what fails")
    add_config_args(check)
    check.add_argument(
        "--audio",
        action="store_true",
        help="self-test the audio only: play a chirp and a wake-word sample, record them, measure the noise floor",
    )
    check.add_argument(
        "--wake-sample", type=Path, metavar="FILE.wav", help="with --audio: your own recording of the wake word"
    )
    check.set_defaults(func=cmd_check)

    devices = sub.add_parser("devices", help="list audio devices")
    devices.set_defaults(func=cmd_devices)

    say = sub.add_parser("say", help="speak text with the configured voice")
    add_config_args(say)
    say.add_argument("text", nargs="+")
    say.add_argument("--output", type=Path, metavar="OUT.wav")
    say.set_defaults(func=cmd_say)

    transcribe = sub.add_parser("transcribe", help="transcribe a WAV file")
    add_config_args(transcribe)
    transcribe.add_argument("wav", type=Path)
    transcribe.set_defaults(func=cmd_transcribe)

    cfg = sub.add_parser("config", help="validate or show configuration")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    validate = cfg_sub.add_parser("validate", help="validate config files with the assistant's own loader")
    add_config_args(validate)
    validate.add_argument("files", nargs="+", type=Path)
    validate.set_defaults(func=cmd_config_validate)
    show = cfg_sub.add_parser("show", help="print the effective configuration")
    add_config_args(show)
    show.set_defaults(func=cmd_config_show)

    for register in _extensions():
        register(sub)
    return parser


def _extensions() -> list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]]:
    """Command groups that live with their feature (models, leds, serve, ...)."""
    from assistant import commands

    return commands.REGISTER


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except FatalError as exc:
        print(f"assistant: {exc}", file=sys.stderr)
        return exc.exit_status
    except AssistantError as exc:
        print(f"assistant: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
