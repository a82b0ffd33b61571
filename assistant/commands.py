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


REGISTER: list[Callable[[SubParsers], None]] = [_models]
