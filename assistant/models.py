"""Fetch the model files the assistant needs, and say where they live.

The catalogue lists every model the assistant knows by name, with its
official source URL, pinned sha256, size and licence. Files are laid out
under one models directory:

    openwakeword/melspectrogram.onnx, openwakeword/embedding_model.onnx
    openwakeword/hey_jarvis_v0.1.onnx (and the other bundled wake words)
    vad/silero_vad.onnx
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

import argparse
import hashlib
import http.client
import logging
import os
import shlex
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

logger = logging.getLogger(__name__)

ENV_MODELS_DIR = "ASSISTANT_MODELS_DIR"
CHUNK_SIZE = 1024 * 1024
TIMEOUT_S = 30.0
USER_AGENT = "assistant-models/1 (+offline voice assistant)"

KINDS = ("features", "wake", "vad", "stt", "tts")

Status = Literal["present", "downloaded", "failed"]

OPENWAKEWORD_RELEASE = (
    "https://github.com/dscripka/openWakeWord/releases/download/v0.5.1"
)
SILERO_VAD_URL = "https://github.com/snakers4/silero-vad/raw/v6.2.1/src/silero_vad/data/silero_vad.onnx"
WHISPER_BASE = "https://huggingface.co/ggerganov/whisper.cpp/resolve/main"
PIPER_BASE = (
    "https://huggingface.co/rhasspy/piper-voices/resolve/v1.0.0/en/en_US/lessac/medium"
)

APACHE = "Apache-2.0"
NON_COMMERCIAL = "CC-BY-NC-SA-4.0 (non-commercial)"
MIT = "MIT"
LESSAC = "MIT voice; Lessac/Blizzard 2011 data licence (see MODEL_CARD)"


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
        files=(
            ModelFile(
                f"whisper/{filename}", f"{WHISPER_BASE}/{filename}", sha256, size, MIT
            ),
        ),
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
    )
}

DEFAULT_NAMES: tuple[str, ...] = (
    "openwakeword-features",
    "hey_jarvis",
    "silero_vad",
    "tiny.en",
    "base.en",
    "en_US-lessac-medium",
)


class UnknownModel(ValueError):
    """A model name the catalogue does not know."""


class DownloadError(Exception):
    """One file could not be fetched; the message says why."""


@dataclass
class FileResult:
    """What happened to one file."""

    model: str
    file: ModelFile
    path: Path
    status: Status
    url: str = ""
    error: str = ""
    seconds: float = 0.0


@dataclass
class DownloadReport:
    """The outcome of one ``download`` call."""

    models_dir: Path
    source: str | None
    results: list[FileResult] = field(default_factory=list)

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def failure_message(self) -> str:
        """Which files failed, from where, why, and what to do next ("" when none did)."""
        failed = self.failed
        if not failed:
            return ""
        lines = [f"{len(failed)} model file(s) could not be fetched:"]
        for result in failed:
            lines.append(f"  {result.file.path} from {result.url}: {result.error}")
        names = list(dict.fromkeys(r.model for r in failed))
        retry = download_command(names, self.models_dir)
        layout = ", ".join(r.file.path for r in failed)
        lines += [
            "To proceed, either:",
            f"  - fix the network (or the mirror) and run again: {retry}",
            f"  - copy the files into {self.models_dir} with the same layout ({layout})",
            f"  - or fetch them from a mirror: {retry} --from MIRROR",
            "    (MIRROR is a directory or an http(s) URL laid out like the models dir)",
        ]
        return "\n".join(lines)

    def summary(self) -> str:
        counts = {
            s: sum(1 for r in self.results if r.status == s)
            for s in ("present", "downloaded", "failed")
        }
        return (
            f"{counts['downloaded']} downloaded, {counts['present']} already present, "
            f"{counts['failed']} failed in {self.models_dir}"
        )


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


def find_model(
    kind: str, name: str, catalogue: Mapping[str, Model] | None = None
) -> tuple[Model, ModelFile]:
    """The catalogue model and file a bundled ``name`` of ``kind`` refers to.

    ``name`` may be a catalogue key ("hey_jarvis", "tiny.en") or a file's stem
    ("hey_jarvis_v0.1", "ggml-tiny.en", "melspectrogram"). For a key, the
    model's first file is the one meant (the .onnx of a Piper voice).
    """
    if kind not in KINDS:
        raise ValueError(
            f"unknown model kind {kind!r}; expected one of {', '.join(KINDS)}"
        )
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


def download_command(
    names: Sequence[str], models_dir: str | os.PathLike[str] | None = None
) -> str:
    """The shell command that fetches ``names`` into ``models_dir``."""
    parts = ["assistant", "models", "download", *names]
    if models_dir is not None:
        root = Path(models_dir).expanduser()
        if root.resolve() != default_models_dir().resolve():
            parts += ["--dir", str(root)]
    return shlex.join(parts)


def fetch_command(
    path: str | os.PathLike[str], catalogue: Mapping[str, Model] | None = None
) -> str | None:
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


def resolve_names(
    names: Iterable[str] | None, catalogue: Mapping[str, Model] | None = None
) -> list[Model]:
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


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _source_location(file: ModelFile, source: str | None) -> str:
    if source is None:
        return file.url
    if is_url(source):
        return source.rstrip("/") + "/" + urllib.parse.quote(file.path)
    return str(Path(source).expanduser() / file.path)


@contextmanager
def _open_source(location: str) -> Iterator[BinaryIO]:
    """A readable stream for a URL or a local path; errors become DownloadError."""
    if not is_url(location):
        try:
            handle = open(location, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise DownloadError(f"no such file in the mirror: {location}") from None
        except OSError as exc:
            raise DownloadError(f"cannot read {location}: {exc}") from None
        with handle:
            yield handle
        return
    host = urllib.parse.urlsplit(location).netloc
    request = urllib.request.Request(location, headers={"User-Agent": USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{host} answered HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DownloadError(f"cannot reach {host}: {exc.reason}") from None
    except TimeoutError:
        raise DownloadError(
            f"cannot reach {host}: timed out after {TIMEOUT_S:.0f} s"
        ) from None
    except OSError as exc:
        raise DownloadError(f"cannot reach {host}: {exc}") from None
    with response:
        yield response


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.2f} GiB"


class _Progress:
    """A tqdm bar on a terminal; one line per file otherwise (or nothing when quiet)."""

    def __init__(self, label: str, total: int, enabled: bool) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.start = time.monotonic()
        self.bar: _Bar | None = None
        self.enabled = enabled
        if enabled and sys.stderr.isatty():
            self.bar = _tqdm_bar(label, total)

    def update(self, count: int) -> None:
        self.done += count
        if self.bar is not None:
            self.bar.update(count)

    def close(self, outcome: str) -> None:
        if self.bar is not None:
            self.bar.close()
        if not self.enabled:
            return
        if outcome != "ok":  # the report says why
            print(f"{self.label}: {outcome}", file=sys.stderr, flush=True)
            return
        elapsed = max(time.monotonic() - self.start, 1e-6)
        rate = _human(self.done / elapsed) + "/s"
        print(
            f"{self.label}: {outcome}, {_human(self.done)} in {elapsed:.1f} s ({rate})",
            file=sys.stderr,
            flush=True,
        )


class _Bar:
    def __init__(
        self, update: Callable[[int], object], close: Callable[[], object]
    ) -> None:
        self.update = update
        self.close = close


def _tqdm_bar(label: str, total: int) -> _Bar | None:
    try:
        from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return None
    bar = tqdm(
        total=total,
        desc=label,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        leave=False,
    )
    return _Bar(bar.update, bar.close)


def _fetch(file: ModelFile, dest: Path, location: str, progress: bool) -> None:
    """Copy ``location`` to ``dest`` through a checked temp file; raise DownloadError on failure."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{dest.name}.", suffix=".part", dir=dest.parent
    )
    tmp = Path(tmp_name)
    meter = _Progress(file.path, file.size, progress)
    outcome = "failed"
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, _open_source(location) as stream:
            while True:
                try:
                    chunk = stream.read(CHUNK_SIZE)
                except (OSError, http.client.HTTPException) as exc:
                    raise DownloadError(
                        f"transfer broke off after {meter.done} bytes: {exc!r}"
                    ) from None
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
                meter.update(len(chunk))
            missing = getattr(stream, "length", None)  # http.client: bytes still owed
            if isinstance(missing, int) and missing > 0:
                raise DownloadError(
                    f"connection closed early: got {meter.done} bytes, {missing} more were due"
                )
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if got != file.sha256:
            raise DownloadError(
                f"checksum mismatch: expected sha256 {file.sha256}, got {got} "
                f"({meter.done} bytes, expected {file.size}); the download was discarded"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
        outcome = "ok"
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        meter.close(outcome)


def download(
    names: Iterable[str] | None = None,
    models_dir: str | os.PathLike[str] | None = None,
    source: str | os.PathLike[str] | None = None,
    progress: bool = True,
    catalogue: Mapping[str, Model] | None = None,
) -> DownloadReport:
    """Fetch the files of ``names`` (default: ``DEFAULT_NAMES``) into ``models_dir``.

    Files already present with the pinned sha256 are left alone. ``source``
    is an optional mirror (a directory or an http(s) base URL laid out like
    the models dir) used instead of the official URLs. Raises UnknownModel
    for names the catalogue does not know; every other failure is recorded
    in the returned report (see ``DownloadReport.failure_message``).
    """
    root = _models_dir(models_dir)
    mirror = None if source is None else os.fspath(source)
    report = DownloadReport(models_dir=root, source=mirror)
    for model in resolve_names(names, catalogue):
        for file in model.files:
            report.results.append(
                _download_file(model.name, file, root, mirror, progress)
            )
    logger.info("models: %s", report.summary())
    return report


def _download_file(
    model: str, file: ModelFile, root: Path, source: str | None, progress: bool
) -> FileResult:
    dest = root / file.path
    location = _source_location(file, source)
    if dest.is_file():
        got = sha256_file(dest)
        if got == file.sha256:
            logger.info("%s already present and verified", dest)
            return FileResult(model, file, dest, "present", location)
        logger.warning(
            "%s has sha256 %s, expected %s; fetching it again", dest, got, file.sha256
        )
    logger.info("fetching %s from %s", file.path, location)
    start = time.monotonic()
    try:
        _fetch(file, dest, location, progress)
    except DownloadError as exc:
        # The report carries the message; callers decide how loudly to say it.
        logger.info("could not fetch %s from %s: %s", file.path, location, exc)
        return FileResult(
            model, file, dest, "failed", location, str(exc), time.monotonic() - start
        )
    except OSError as exc:
        logger.info("could not write %s: %s", dest, exc)
        return FileResult(
            model, file, dest, "failed", location, f"cannot write {dest}: {exc}"
        )
    return FileResult(
        model, file, dest, "downloaded", location, seconds=time.monotonic() - start
    )


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``assistant models download``."""
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="models to fetch (default: "
        + " ".join(DEFAULT_NAMES)
        + "; 'all' for every one)",
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
            rows.append(
                (model.name, file.path, _human(file.size), file.licence, present)
            )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=False))
        + "  "
        + row[4]
        for row in rows
    ]
    return "\n".join(
        [*lines, "default set: " + " ".join(DEFAULT_NAMES), f"models dir: {root}"]
    )


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
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    return run_cli(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
