"""What every command shares: the --config/--set options, the config they name, and logging.

`assistant.cli` and the command groups that live with their feature
(`assistant.commands`, `assistant.realtime.cli`) all build on these, so none of
them needs to import another's private helpers.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from assistant import config as config_module

_PRIORITY = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}


class JournalFormatter(logging.Formatter):
    """`<priority>name: message`: journald reads the level and adds the time."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return "\n".join(f"<{_PRIORITY.get(record.levelname, 6)}>{line}" for line in text.splitlines())


def setup_logging(level: str) -> None:
    """Log to stderr at `level`; journald's own format when running under systemd."""
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"):
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """Add `--config FILE` (repeatable, layered) and `--set KEY=VALUE` to a command."""
    parser.add_argument(
        "--config", action="append", default=[], metavar="FILE", help="YAML config; repeat to layer files"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override one key, e.g. llm.model=qwen2.5:1.5b"
    )


def load_config(args: argparse.Namespace) -> config_module.Config:
    """The config a command's `--config` files and `--set` overrides describe."""
    return config_module.load(args.config, args.set)
