#!/usr/bin/env bash
# Builds the stripped, statically linked `kite` for the GPU machine and gathers what its scripts need.
# usage: scripts/device/build.sh [destination]   (default: /work/main/.device, which the device tool carries)
# The binary targets Haswell (AVX2 + FMA) so it runs on any x86-64 server CPU; CUDA libraries are loaded
# at run time, so the same binary runs its CPU paths where no GPU exists.
set -euo pipefail
cd "$(dirname "$0")/../.."
destination="${1:-/work/main/.device}"
mkdir -p "$destination"
KITE_TARGET_CPU=haswell swift build -c release --static-swift-stdlib --product kite -j "${KITE_BUILD_JOBS:-2}"
binary="$(swift build -c release --static-swift-stdlib --product kite --show-bin-path)/kite"
strip -o "$destination/kite" "$binary"
cp scripts/device/*.sh scripts/device/*.py "$destination/"
for script in train_step.py decode_static.py; do
    for reference in "../shared/reference/gpu/$script" "/work/shared/reference/gpu/$script"; do
        if [ -f "$reference" ]; then cp "$reference" "$destination/$script"; break; fi
    done
done
ls -la "$destination"
