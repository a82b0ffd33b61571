#!/usr/bin/env bash
# Build pywhispercpp with CUDA and install onnxruntime-gpu into a virtualenv (Jetson).
#   deploy/jetson/install-cuda.sh [VENV]   (default: the project's .venv)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${1:-$root/.venv}"
pip="$venv/bin/python -m pip"

if [[ ! -f /etc/nv_tegra_release ]]; then
  echo "warning: /etc/nv_tegra_release not found: this does not look like a Jetson" >&2
fi
if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
command -v nvcc >/dev/null || { echo "error: nvcc not found; install JetPack's CUDA toolkit" >&2; exit 1; }

sudo_cmd=""; [[ $(id -u) -ne 0 ]] && sudo_cmd=sudo
$sudo_cmd apt-get install -y -qq cmake git build-essential python3-dev >/dev/null

echo "==> building pywhispercpp with CUDA (GGML_CUDA=1, arch ${CMAKE_CUDA_ARCHITECTURES:=87})"
export GGML_CUDA=1 CMAKE_CUDA_ARCHITECTURES
$pip install --no-binary pywhispercpp --no-cache-dir --force-reinstall --no-deps 'pywhispercpp==1.5.1'

echo "==> installing onnxruntime-gpu"
# Both wheels install the same package folder: remove the CPU one first.
$pip uninstall -y onnxruntime >/dev/null 2>&1 || true
if [[ -n "${ORT_WHEEL:-}" ]]; then
  $pip install --force-reinstall --no-deps "$ORT_WHEEL"
elif [[ -n "${ORT_INDEX:-}" ]]; then
  $pip install --force-reinstall --no-deps --index-url "$ORT_INDEX" onnxruntime-gpu
else
  echo "set ORT_WHEEL=/path/to/onnxruntime_gpu-*.whl or ORT_INDEX=URL (NVIDIA's Jetson wheels)" >&2
  exit 2
fi

echo "==> what the engines see"
"$venv/bin/python" - <<'PY'
import onnxruntime
from assistant.engines.accel import whisper_has_cuda
print("onnxruntime providers:", onnxruntime.get_available_providers())
print("whisper.cpp CUDA build:", whisper_has_cuda())
PY
