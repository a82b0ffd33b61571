"""Fetching model files: atomic, checked against pinned sha256 sums, with progress."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from assistant.models.catalogue import (
    Model,
    ModelFile,
    Status,
    _models_dir,
    download_command,
    resolve_names,
)

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024
TIMEOUT_S = 30.0
USER_AGENT = "assistant-models/1 (+offline voice assistant)"


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
        counts = {s: sum(1 for r in self.results if r.status == s) for s in ("present", "downloaded", "failed")}
        return (
            f"{counts['downloaded']} downloaded, {counts['present']} already present, "
            f"{counts['failed']} failed in {self.models_dir}"
        )


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
        raise DownloadError(f"cannot reach {host}: timed out after {TIMEOUT_S:.0f} s") from None
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
    def __init__(self, update: Callable[[int], object], close: Callable[[], object]) -> None:
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
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
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
                    raise DownloadError(f"transfer broke off after {meter.done} bytes: {exc!r}") from None
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
                meter.update(len(chunk))
            missing = getattr(stream, "length", None)  # http.client: bytes still owed
            if isinstance(missing, int) and missing > 0:
                raise DownloadError(f"connection closed early: got {meter.done} bytes, {missing} more were due")
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
            report.results.append(_download_file(model.name, file, root, mirror, progress))
    logger.info("models: %s", report.summary())
    return report


def _download_file(model: str, file: ModelFile, root: Path, source: str | None, progress: bool) -> FileResult:
    dest = root / file.path
    location = _source_location(file, source)
    if dest.is_file():
        got = sha256_file(dest)
        if got == file.sha256:
            logger.info("%s already present and verified", dest)
            return FileResult(model, file, dest, "present", location)
        logger.warning("%s has sha256 %s, expected %s; fetching it again", dest, got, file.sha256)
    logger.info("fetching %s from %s", file.path, location)
    start = time.monotonic()
    try:
        _fetch(file, dest, location, progress)
    except DownloadError as exc:
        # The report carries the message; callers decide how loudly to say it.
        logger.info("could not fetch %s from %s: %s", file.path, location, exc)
        return FileResult(model, file, dest, "failed", location, str(exc), time.monotonic() - start)
    except OSError as exc:
        logger.info("could not write %s: %s", dest, exc)
        return FileResult(model, file, dest, "failed", location, f"cannot write {dest}: {exc}")
    return FileResult(model, file, dest, "downloaded", location, seconds=time.monotonic() - start)


# --------------------------------------------------------------------------- CLI
