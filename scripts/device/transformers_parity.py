"""On the GPU machine: `kite logprobs --device cuda` on every dense fixture model against transformers' own
log-probs for the same sequences (Tests/Fixtures/models/*/reference.json, written by
scripts/reference/dense_models.py with transformers in fp32), in fp32 and bf16 mode.

Tolerances: fp32 mode 1e-4 absolute (the CPU backend's bound against the same references); bf16 mode 5e-2
absolute on log-probs of these tiny random models (bf16 keeps 8 bits of mantissa, about 4e-3 relative per
product; a handful of layers and a log-softmax over a small vocabulary stay within this).
usage: python3 .device/transformers_parity.py [kite binary]      (from the repository root; exit 1 on any failure)
"""
import json
import os
import subprocess
import sys

kite = sys.argv[1] if len(sys.argv) > 1 else ".device/kite"
bounds = {"fp32": 1e-4, "bf16": 5e-2}
failed = False
for model in ["llama", "llama_linear_tied", "qwen2", "qwen3", "tiny_chat"]:
    directory = os.path.join("Tests", "Fixtures", "models", model)
    reference_path = os.path.join(directory, "reference.json")
    if not os.path.exists(reference_path):
        continue
    reference = json.load(open(reference_path))
    for precision, bound in bounds.items():
        worst = 0.0
        for sequence, expected in zip(reference["sequences"], reference["logprobs"]):
            if len(sequence) < 2:
                continue
            out = subprocess.run([kite, "logprobs", "--device", "cuda", "--precision", precision, "--model", directory,
                                  "--temperature", str(reference["temperature"]), "--input-ids", ",".join(map(str, sequence))],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                print(f"FAIL {model} {precision}: kite exited {out.returncode}: {out.stderr.strip()[:300]}")
                failed = True
                break
            got = json.loads(out.stdout)["logprobs"]
            worst = max([worst] + [abs(a - b) for a, b in zip(got, expected)])
        verdict = "PASS" if worst <= bound else "FAIL"
        failed |= verdict == "FAIL"
        print(f"{verdict} {model:18} {precision}: max |kite cuda - transformers| = {worst:.2e} (bound {bound})")
sys.exit(1 if failed else 0)
