"""Fetch the model files the assistant needs, and say where they live.

`catalogue` names every model with its official URL, pinned sha256, size and
licence; `download` fetches files atomically and checks them; `cli` is
`assistant models download`.
"""

from assistant.models import catalogue
from assistant.models.catalogue import (
    CATALOGUE,
    DEFAULT_NAMES,
    ENV_MODELS_DIR,
    KINDS,
    Model,
    ModelFile,
    UnknownModel,
    default_models_dir,
    download_command,
    expected_path,
    fetch_command,
    find_model,
    model_paths,
    resolve_names,
)
from assistant.models.cli import add_arguments, list_table, main, run_cli
from assistant.models.download import (
    DownloadError,
    DownloadReport,
    FileResult,
    download,
    sha256_file,
)

__all__ = [
    "CATALOGUE",
    "DEFAULT_NAMES",
    "ENV_MODELS_DIR",
    "KINDS",
    "DownloadError",
    "DownloadReport",
    "FileResult",
    "Model",
    "ModelFile",
    "UnknownModel",
    "add_arguments",
    "catalogue",
    "default_models_dir",
    "download",
    "download_command",
    "expected_path",
    "fetch_command",
    "find_model",
    "list_table",
    "main",
    "model_paths",
    "resolve_names",
    "run_cli",
    "sha256_file",
]
