"""The catalogue of models the assistant knows, and where their files live.

The catalogue lists every model the assistant knows by name, with its
official source URL, pinned sha256, size and licence. Files are laid out
under one models directory:

    openwakeword/melspectrogram.onnx, openwakeword/embedding_model.onnx
    openwakeword/hey_jarvis_v0.1.onnx (and the other bundled wake words)
    vad/silero_vad.onnx
    turn/smart-turn-v3.2-cpu.onnx
    whisper/ggml-tiny.en.bin, whisper/ggml-base.en.bin
    piper/en_US-lessac-medium.onnx (+ .onnx.json)

``download`` fetches what is missing: each file goes to a temporary file in
its destination directory, its sha256 is checked, and only then is it moved
into place with ``os.replace``, so a failed or interrupted download never
leaves a partial model behind. A mirror (a directory or an http(s) base URL
with the same layout) can stand in for the official URLs; the pins still
apply.
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

logger = logging.getLogger(__name__)

ENV_MODELS_DIR = "ASSISTANT_MODELS_DIR"

KINDS = ("features", "wake", "vad", "stt", "tts", "turn")

Status = Literal["present", "downloaded", "failed"]

OPENWAKEWORD_RELEASE = "https://github.com/dscripka/openWakeWord/releases/download/v0.5.1"
SILERO_VAD_URL = "https://github.com/snakers4/silero-vad/raw/v6.2.1/src/silero_vad/data/silero_vad.onnx"
WHISPER_BASE = "https://huggingface.co/ggerganov/whisper.cpp/resolve/main"
SMART_TURN_BASE = "https://huggingface.co/pipecat-ai/smart-turn-v3/resolve/main"
PIPER_BASE = "https://huggingface.co/rhasspy/piper-voices/resolve/v1.0.0/en/en_US/lessac/medium"
PIPER_JOE = "https://huggingface.co/rhasspy/piper-voices/resolve/v1.0.0/en/en_US/joe/medium"

APACHE = "Apache-2.0"
NON_COMMERCIAL = "CC-BY-NC-SA-4.0 (non-commercial)"
MIT = "MIT"
BSD2 = "BSD-2-Clause"
LESSAC = "MIT voice; Lessac/Blizzard 2011 data licence (see MODEL_CARD)"
JOE = "MIT voice; CC0 dataset (NabuCasa voice-datasets, see MODEL_CARD)"


@dataclass(frozen=True)
class ModelFile:
    """One file of a model: where it goes under the models dir and how to check it."""

    path: str  # relative to the models dir, "/"-separated
    url: str
    sha256: str
    size: int
    licence: str


@dataclass(frozen=True)
class Model:
    """A named model: one or more files plus the models it cannot run without."""

    name: str
    kind: str
    description: str
    files: tuple[ModelFile, ...]
    requires: tuple[str, ...] = ()


def _wake(name: str, sha256: str, size: int) -> Model:
    filename = f"{name}_v0.1.onnx"
    return Model(
        name=name,
        kind="wake",
        description=f"openWakeWord '{name}' wake word (v0.1)",
        files=(
            ModelFile(
                f"openwakeword/{filename}",
                f"{OPENWAKEWORD_RELEASE}/{filename}",
                sha256,
                size,
                NON_COMMERCIAL,
            ),
        ),
        requires=("openwakeword-features",),
    )


def _whisper(name: str, sha256: str, size: int) -> Model:
    filename = f"ggml-{name}.bin"
    return Model(
        name=name,
        kind="stt",
        description=f"Whisper {name} for whisper.cpp (ggml)",
        files=(ModelFile(f"whisper/{filename}", f"{WHISPER_BASE}/{filename}", sha256, size, MIT),),
    )


# Where the pins come from:
# - openWakeWord v0.5.1 release assets and Silero VAD v6 (silero-vad 6.2.x
#   package data, unchanged from v6.2.1 to v6.2.3): sha256 of the copies in the
#   project's shared/models, which match these files (tests/test_models.py).
# - Whisper ggml tiny.en / base.en: the sha256 (LFS oid) Hugging Face lists for
#   ggerganov/whisper.cpp, as pinned by many independent projects; not
#   re-downloaded here (no access to huggingface.co from the build machine).
# - Piper en_US-lessac-medium .onnx: the LFS sha256 Hugging Face lists for
#   rhasspy/piper-voices. The .onnx.json is a plain git file (4885 bytes, LF
#   line endings); its pin equals the sha256 of shared/models' copy once that
#   copy's CRLF line endings are turned back into LF.
# - Smart Turn v3.2 (CPU build): the file Hugging Face serves as
#   pipecat-ai/smart-turn-v3 smart-turn-v3.2-cpu.onnx, the same bytes as the
#   copy in the pipecat-ai 1.14.0 wheel and in shared/models.
# - Piper en_US-joe-medium (an extra voice for realtime sessions, not a
#   default download): the .onnx pin is the LFS sha256 Hugging Face lists for
#   rhasspy/piper-voices v1.0.0; the .onnx.json pin is the sha256 of
#   shared/models' copy, whose git blob id (b4ab600f...) is the one the
#   repository lists, so it is byte-identical to the file served.
CATALOGUE: dict[str, Model] = {
    model.name: model
    for model in (
        Model(
            name="openwakeword-features",
            kind="features",
            description="openWakeWord shared feature models (melspectrogram + embedding)",
            files=(
                ModelFile(
                    "openwakeword/melspectrogram.onnx",
                    f"{OPENWAKEWORD_RELEASE}/melspectrogram.onnx",
                    "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f",
                    1_087_958,
                    APACHE,
                ),
                ModelFile(
                    "openwakeword/embedding_model.onnx",
                    f"{OPENWAKEWORD_RELEASE}/embedding_model.onnx",
                    "70d164290c1d095d1d4ee149bc5e00543250a7316b59f31d056cff7bd3075c1f",
                    1_326_578,
                    APACHE,
                ),
            ),
        ),
        _wake(
            "hey_jarvis",
            "94a13cfe60075b132f6a472e7e462e8123ee70861bc3fb58434a73712ee0d2cb",
            1_271_370,
        ),
        _wake(
            "alexa",
            "6ff566a01d12670e8d9e3c59da32651db1575d17272a601b7f8a39283dfbae3e",
            854_246,
        ),
        _wake(
            "hey_mycroft",
            "c2a311e8fa1338de89c31b3b46dc4dffd4af2f9a8d6ddead48893c2d301b1f18",
            857_691,
        ),
        _wake(
            "hey_rhasspy",
            "5a9b3ed3be2910e35780e097905aa9f35a9c10038df47914cf2b3ec4d670f6ea",
            204_081,
        ),
        Model(
            name="silero_vad",
            kind="vad",
            description="Silero VAD v6 (ONNX, 16 kHz)",
            files=(
                ModelFile(
                    "vad/silero_vad.onnx",
                    SILERO_VAD_URL,
                    "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
                    2_327_524,
                    MIT,
                ),
            ),
        ),
        Model(
            name="smart-turn-v3.2",
            kind="turn",
            description="Smart Turn v3.2 end-of-turn model (ONNX, CPU build, 8 s of 16 kHz audio)",
            files=(
                ModelFile(
                    "turn/smart-turn-v3.2-cpu.onnx",
                    f"{SMART_TURN_BASE}/smart-turn-v3.2-cpu.onnx",
                    "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f",
                    8_679_182,
                    BSD2,
                ),
            ),
        ),
        _whisper(
            "tiny.en",
            "921e4cf8686fdd993dcd081a5da5b6c365bfde1162e72b08d75ac75289920b1f",
            77_704_715,
        ),
        _whisper(
            "base.en",
            "a03779c86df3323075f5e796cb2ce5029f00ec8869eee3fdfb897afe36c6d002",
            147_964_211,
        ),
        Model(
            name="en_US-lessac-medium",
            kind="tts",
            description="Piper voice en_US lessac, medium quality (22.05 kHz)",
            files=(
                ModelFile(
                    "piper/en_US-lessac-medium.onnx",
                    f"{PIPER_BASE}/en_US-lessac-medium.onnx",
                    "5efe09e69902187827af646e1a6e9d269dee769f9877d17b16b1b46eeaaf019f",
                    63_201_294,
                    LESSAC,
                ),
                ModelFile(
                    "piper/en_US-lessac-medium.onnx.json",
                    f"{PIPER_BASE}/en_US-lessac-medium.onnx.json",
                    "efe19c417bed055f2d69908248c6ba650fa135bc868b0e6abb3da181dab690a0",
                    4_885,
                    LESSAC,
                ),
            ),
        ),
        Model(
            name="en_US-joe-medium",
            kind="tts",
            description="Piper voice en_US joe, medium quality (22.05 kHz)",
            files=(
                ModelFile(
                    "piper/en_US-joe-medium.onnx",
                    f"{PIPER_JOE}/en_US-joe-medium.onnx",
                    "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
                    63_201_294,
                    JOE,
                ),
                ModelFile(
                    "piper/en_US-joe-medium.onnx.json",
                    f"{PIPER_JOE}/en_US-joe-medium.onnx.json",
                    "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
                    4_794,
                    JOE,
                ),
            ),
        ),
    )
}

DEFAULT_NAMES: tuple[str, ...] = (
    "openwakeword-features",
    "hey_jarvis",
    "silero_vad",
    "smart-turn-v3.2",
    "tiny.en",
    "base.en",
    "en_US-lessac-medium",
)


class UnknownModel(ValueError):
    """A model name the catalogue does not know."""


# --------------------------------------------------------------------------- paths


def default_models_dir() -> Path:
    """``$ASSISTANT_MODELS_DIR``, else ``~/.local/share/assistant/models``."""
    env = os.environ.get(ENV_MODELS_DIR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "assistant" / "models"


def _models_dir(models_dir: str | os.PathLike[str] | None) -> Path:
    return default_models_dir() if models_dir is None else Path(models_dir).expanduser()


def _catalogue(catalogue: Mapping[str, Model] | None) -> Mapping[str, Model]:
    return CATALOGUE if catalogue is None else catalogue


def find_model(kind: str, name: str, catalogue: Mapping[str, Model] | None = None) -> tuple[Model, ModelFile]:
    """The catalogue model and file a bundled ``name`` of ``kind`` refers to.

    ``name`` may be a catalogue key ("hey_jarvis", "tiny.en") or a file's stem
    ("hey_jarvis_v0.1", "ggml-tiny.en", "melspectrogram"). For a key, the
    model's first file is the one meant (the .onnx of a Piper voice).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {', '.join(KINDS)}")
    entries = [m for m in _catalogue(catalogue).values() if m.kind == kind]
    for model in entries:
        if model.name == name:
            return model, model.files[0]
    for model in entries:
        for file in model.files:
            filename = file.path.rsplit("/", 1)[-1]
            if name in (
                filename,
                filename.split(".onnx")[0],
                filename.removesuffix(".bin"),
            ):
                return model, file
    known = ", ".join(m.name for m in entries) or "none"
    raise UnknownModel(f"no bundled {kind} model named {name!r} (known: {known})")


def expected_path(
    models_dir: str | os.PathLike[str] | None,
    kind: str,
    name: str,
    catalogue: Mapping[str, Model] | None = None,
) -> Path:
    """Where the bundled model ``name`` of ``kind`` lives under ``models_dir``.

    ``expected_path(d, "wake", "hey_jarvis")`` is ``d/openwakeword/hey_jarvis_v0.1.onnx``;
    ``"stt", "tiny.en"`` gives ``d/whisper/ggml-tiny.en.bin``; ``"tts",
    "en_US-lessac-medium"`` gives ``d/piper/en_US-lessac-medium.onnx`` and
    ``"vad", "silero_vad"`` gives ``d/vad/silero_vad.onnx``. A ``name`` that is
    a path (it has a directory part), or a model file name the catalogue does
    not know, is returned as a path, relative ones taken under ``models_dir``.
    Raises ``UnknownModel`` for names the catalogue does not know.
    """
    root = _models_dir(models_dir)
    path = Path(name).expanduser()
    if "/" in name or os.sep in name or path.is_absolute():
        return path if path.is_absolute() else root / path
    try:
        _, file = find_model(kind, name, catalogue)
    except UnknownModel:
        if name.endswith((".onnx", ".bin", ".tflite")):
            return root / name
        raise
    return root / file.path


def model_paths(
    models_dir: str | os.PathLike[str] | None,
    name: str,
    catalogue: Mapping[str, Model] | None = None,
) -> list[Path]:
    """Every file of catalogue model ``name`` (e.g. a Piper voice's .onnx and .onnx.json)."""
    root = _models_dir(models_dir)
    return [root / f.path for f in _model(name, _catalogue(catalogue)).files]


def download_command(names: Sequence[str], models_dir: str | os.PathLike[str] | None = None) -> str:
    """The shell command that fetches ``names`` into ``models_dir``."""
    parts = ["assistant", "models", "download", *names]
    if models_dir is not None:
        root = Path(models_dir).expanduser()
        if root.resolve() != default_models_dir().resolve():
            parts += ["--dir", str(root)]
    return shlex.join(parts)


def fetch_command(path: str | os.PathLike[str], catalogue: Mapping[str, Model] | None = None) -> str | None:
    """The command a user runs to get the missing model file ``path``, or None if unknown.

    ``fetch_command(d / "whisper/ggml-tiny.en.bin")`` is
    ``assistant models download tiny.en`` (plus ``--dir d`` when ``d`` is not
    the default models dir).
    """
    target = Path(path).expanduser()
    posix = target.as_posix()
    for model in _catalogue(catalogue).values():
        for file in model.files:
            if posix == file.path or posix.endswith("/" + file.path):
                root = posix[: -len(file.path)].rstrip("/") or "."
                return download_command([model.name], Path(root))
    return None


# --------------------------------------------------------------------------- download


def _model(name: str, catalogue: Mapping[str, Model]) -> Model:
    try:
        return catalogue[name]
    except KeyError:
        known = ", ".join(catalogue)
        raise UnknownModel(f"unknown model {name!r} (known: {known})") from None


def resolve_names(names: Iterable[str] | None, catalogue: Mapping[str, Model] | None = None) -> list[Model]:
    """The models to fetch for ``names`` (None or empty: the defaults; "all": everything),
    with what each requires first and no repeats."""
    cat = _catalogue(catalogue)
    wanted = list(names or ())
    if not wanted:
        wanted = [n for n in DEFAULT_NAMES if n in cat]
    if "all" in wanted:
        wanted = list(cat)
    ordered: dict[str, Model] = {}

    def add(name: str, chain: tuple[str, ...]) -> None:
        if name in ordered or name in chain:
            return
        model = _model(name, cat)
        for required in model.requires:
            add(required, (*chain, name))
        ordered[name] = model

    for name in wanted:
        add(name, ())
    return list(ordered.values())
