#!/usr/bin/env bash
# Fetches NVRTC (the `nvidia-cuda-nvrtc-cu12` wheel from PyPI: the library and the CUDA headers it needs) into
# .assets/nvrtc, so that the kernel-compilation test compiles every CUDA kernel for sm_90 on a machine without
# CUDA or a GPU. Idempotent; prints the library folder to pass as KITE_NVRTC_PATH.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
target="$root/.assets/nvrtc"
if [ ! -d "$target/nvidia/cuda_nvrtc/lib" ]; then
    mkdir -p "$root/.assets/wheels"
    python3 -m pip download -q --no-deps -d "$root/.assets/wheels" nvidia-cuda-nvrtc-cu12==12.9.86 >&2
    python3 - "$root/.assets/wheels" "$target.partial" <<'PY' >&2
import glob, sys, zipfile
wheels = glob.glob(sys.argv[1] + "/nvidia_cuda_nvrtc_cu12-12.9.86-*.whl")
if not wheels:
    sys.exit("nvidia-cuda-nvrtc-cu12 12.9.86: no wheel downloaded")
zipfile.ZipFile(wheels[0]).extractall(sys.argv[2])
PY
    rm -rf "$target"
    mv "$target.partial" "$target"
fi
echo "$target/nvidia/cuda_nvrtc/lib"
