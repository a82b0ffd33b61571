"""Accelerator selection: which onnxruntime providers and whisper.cpp backend to use."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

logger = logging.getLogger(__name__)

Requested = Literal["auto", "cpu", "cuda"]
Device = Literal["cuda", "cpu"]

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
GPU_PROVIDERS = frozenset({CUDA, "TensorrtExecutionProvider"})
JETSON_MARKER = Path("/etc/nv_tegra_release")

ONNX_CUDA_HINT = (
    "install onnxruntime-gpu in place of onnxruntime (on a Jetson, NVIDIA's "
    "Jetson onnxruntime wheels; see deploy/jetson)"
)
WHISPER_CUDA_HINT = (
    "rebuild pywhispercpp from source with GGML_CUDA=1 (on a Jetson Orin also "
    "CMAKE_CUDA_ARCHITECTURES=87; see deploy/jetson)"
)

# (engine, requested) pairs already warned about: one warning per engine, not per call.
_warned: set[tuple[str, str]] = set()


def _warn_once(engine: str, requested: str, message: str, *args: object) -> None:
    if (engine, requested) in _warned:
        return
    _warned.add((engine, requested))
    logger.warning(message, *args)


def available_providers() -> list[str]:
    """The execution providers this onnxruntime build offers."""
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def onnx_providers(requested: Requested, engine: str) -> list[str]:
    """Providers for an `engine`'s onnxruntime session, CUDA first only when it really exists."""
    if requested == "cpu":
        return [CPU]
    if CUDA in available_providers():
        return [CUDA, CPU]
    if requested == "cuda":
        _warn_once(
            engine,
            requested,
            "%s: accelerator 'cuda' requested but this onnxruntime has no %s; running on the CPU. To use the GPU, %s",
            engine,
            CUDA,
            ONNX_CUDA_HINT,
        )
    else:
        _warn_once(
            engine,
            requested,
            "%s: accelerator 'auto' found no CUDA in onnxruntime; running on the CPU",
            engine,
        )
    return [CPU]


def whisper_system_info() -> str:
    """whisper.cpp's system-info line (backends and CPU features it was built with)."""
    try:
        import _pywhispercpp  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return ""
    return str(_pywhispercpp.whisper_print_system_info())


def whisper_has_cuda() -> bool:
    """True when the installed pywhispercpp's whisper.cpp was built with CUDA."""
    return "CUDA" in whisper_system_info().upper()


def whisper_use_gpu(requested: Requested, engine: str = "stt") -> bool:
    """Whether whisper.cpp should be asked for the GPU (`use_gpu`)."""
    if requested == "cpu":
        return False
    if whisper_has_cuda():
        return True
    if requested == "cuda":
        _warn_once(
            engine,
            requested,
            "%s: accelerator 'cuda' requested but whisper.cpp was built without CUDA; running "
            "on the CPU. To use the GPU, %s",
            engine,
            WHISPER_CUDA_HINT,
        )
    else:
        _warn_once(
            engine,
            requested,
            "%s: accelerator 'auto' found whisper.cpp built without CUDA; running on the CPU",
            engine,
        )
    return False


def session_device(session: Any) -> Device:
    """The device an onnxruntime session actually runs on (its first provider)."""
    providers = session.get_providers()
    return "cuda" if providers and providers[0] in GPU_PROVIDERS else "cpu"


def is_jetson(marker: Path = JETSON_MARKER) -> bool:
    """True on an NVIDIA Jetson (L4T writes /etc/nv_tegra_release)."""
    return marker.exists()
