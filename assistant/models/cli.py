"""`assistant models download`: the command line of the download step."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from assistant.models import catalogue as known
from assistant.models.catalogue import ENV_MODELS_DIR, Model, UnknownModel, _catalogue, _models_dir
from assistant.models.download import _human, download

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``assistant models download``."""
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="models to fetch (default: " + " ".join(known.DEFAULT_NAMES) + "; 'all' for every one)",
    )
    parser.add_argument(
        "--dir",
        dest="models_dir",
        type=Path,
        default=None,
        help=f"models directory (default: ${ENV_MODELS_DIR} or ~/.local/share/assistant/models)",
    )
    parser.add_argument(
        "--from",
        dest="source",
        metavar="MIRROR",
        default=None,
        help="fetch from this directory or http(s) base URL (same layout) instead of the official URLs",
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="list the known models and whether they are present",
    )
    parser.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress output",
    )


def list_table(
    models_dir: str | os.PathLike[str] | None = None,
    catalogue: Mapping[str, Model] | None = None,
) -> str:
    """A table of every catalogue file: name, file, size, licence, present?

    "yes" means the file exists with the pinned size (``download`` checks the
    sha256 before it trusts a file)."""
    root = _models_dir(models_dir)
    rows = [("NAME", "FILE", "SIZE", "LICENCE", "PRESENT")]
    for model in _catalogue(catalogue).values():
        for file in model.files:
            dest = root / file.path
            if not dest.is_file():
                present = "no"
            elif dest.stat().st_size == file.size:
                present = "yes"
            else:
                present = "wrong size"
            rows.append((model.name, file.path, _human(file.size), file.licence, present))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=False)) + "  " + row[4]
        for row in rows
    ]
    return "\n".join([*lines, "default set: " + " ".join(known.DEFAULT_NAMES), f"models dir: {root}"])


def run_cli(args: argparse.Namespace) -> int:
    """Run ``assistant models download`` with parsed ``args``; returns the exit status."""
    models_dir: Path | None = args.models_dir
    if args.list:
        print(list_table(models_dir))
        return 0
    try:
        report = download(args.names, models_dir, args.source, progress=args.progress)
    except UnknownModel as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if report.ok:
        print(report.summary())
    else:
        print(report.failure_message(), file=sys.stderr)
        print(report.summary(), file=sys.stderr)
    return report.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry: ``python -m assistant.models [NAMES...] [--dir DIR] [--from MIRROR] [--list]``."""
    parser = argparse.ArgumentParser(
        prog="assistant models download",
        description="Fetch the assistant's model files.",
    )
    add_arguments(parser)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_cli(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
