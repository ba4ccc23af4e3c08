"""Checks that `kite train --save-hf` writes a directory transformers loads as is, with the same log-probs.

Trains a few GRPO rollouts with `kite train` (CPU), exports with --save-hf, then:
  1. loads the export with transformers' AutoModelForCausalLM (fp32) and, when the model came with one,
     AutoTokenizer; the tokenizer must encode a probe text to the same ids as the original's;
  2. scores a fixed token sequence with transformers and with `kite logprobs` on the same directory: every
     next-token log-prob must agree within 1e-4 (fp32 both sides; the dense-model parity tests use the same bound);
  3. checks the export differs from the starting weights (training happened) by scoring the same sequence on
     the starting checkpoint.

usage: python3 scripts/reference/save_hf_roundtrip.py [--kite .build/release/kite] [--model DIR_OR_GGUF] [--rollouts 2]
Default model: Tests/Fixtures/models/tiny_chat (a llama with the SmolLM2 tokenizer and chat template). With the
SmolLM2 GGUF (.assets/SmolLM2-135M-Instruct.Q4_1.gguf) the export's tokenizer is the GGUF's as llama.cpp
reads it, compared over the tokenizer corpus with tokenizers_reference.py's GGUF-faithful tokenizer.json, and
the starting point is transformers' own GGUF load.
Exit status 0 when every check passes.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TOLERANCE = 1e-4


def transformers_logprobs(model, ids):
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    return [logprobs[i, ids[i + 1]].item() for i in range(len(ids) - 1)]


def load(path):
    if path.endswith(".gguf"):
        return AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path), torch_dtype=torch.float32)
    return AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kite", default=os.path.join(ROOT, ".build", "release", "kite"))
    parser.add_argument("--model", default=os.path.join(ROOT, "Tests", "Fixtures", "models", "tiny_chat"))
    parser.add_argument("--rollouts", type=int, default=2)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="kite-save-hf-")
    data = os.path.join(work, "arith.jsonl")
    subprocess.run([args.kite, "data", "make", "arithmetic", "--n", "64", "--out", data, "--seed", "3"], check=True)
    export = os.path.join(work, "hf_{rollout_id}")
    train = [
        args.kite, "train", "--hf-checkpoint", args.model, "--prompt-data", data, "--input-key", "prompt", "--label-key", "label",
        "--apply-chat-template", "--rm-type", "arithmetic", "--num-rollout", str(args.rollouts),
        "--rollout-batch-size", "4", "--n-samples-per-prompt", "4", "--rollout-max-response-len", "8", "--rollout-temperature", "1.0",
        "--num-steps-per-rollout", "2", "--advantage-estimator", "grpo", "--lr", "1e-3", "--entropy-coef", "0.01",
        "--save-hf", export,
    ]
    subprocess.run(train, check=True)
    exported = export.replace("{rollout_id}", str(args.rollouts - 1))
    print(f"export: {exported}: {sorted(os.listdir(exported))}")

    trained = load(exported)
    vocabulary = trained.config.vocab_size
    generator = torch.Generator().manual_seed(7)
    ids = torch.randint(0, vocabulary, (24,), generator=generator).tolist()
    reference = transformers_logprobs(trained, ids)
    kite = json.loads(subprocess.run([args.kite, "logprobs", "--model", exported, "--input-ids", ",".join(map(str, ids))],
                                     check=True, capture_output=True, text=True).stdout)["logprobs"]
    difference = max(abs(a - b) for a, b in zip(reference, kite))
    print(f"kite logprobs vs transformers on the export: max |diff| {difference:.2e} (tolerance {TOLERANCE})")
    failures = []
    if len(kite) != len(reference) or difference > TOLERANCE:
        failures.append("log-probs differ")

    start = transformers_logprobs(load(args.model), ids)
    moved = max(abs(a - b) for a, b in zip(reference, start))
    print(f"export vs starting weights: max |diff| {moved:.2e} (must be > 0: training changed the weights)")
    if moved == 0:
        failures.append("the export equals the starting weights")

    chat = [{"role": "user", "content": "What is 2 + 3?"}]
    reloaded = AutoTokenizer.from_pretrained(exported)
    if args.model.endswith(".gguf"):
        # Kite writes the GGUF's tokenizer as llama.cpp reads it; the reference is the GGUF-faithful
        # tokenizer.json that tokenizers_reference.py builds, run by HF tokenizers, over the whole corpus.
        from tokenizers import Tokenizer
        name = {"SmolLM2": "smollm2", "DeepSeek-R1": "r1"}
        key = next((v for k, v in name.items() if k in os.path.basename(args.model)), None)
        reference_path = os.path.join(ROOT, ".assets", "tokenizers", f"{key}-gguf", "tokenizer.json")
        corpus = json.load(open(os.path.join(ROOT, "Tests", "Fixtures", "tokenizers", "corpus.json"), encoding="utf-8"))["strings"]
        if key and os.path.exists(reference_path):
            reference_tokenizer = Tokenizer.from_file(reference_path)
            differ = sum(reloaded(t, add_special_tokens=False)["input_ids"] != reference_tokenizer.encode(t, add_special_tokens=False).ids for t in corpus)
            print(f"tokenizer: {differ} of {len(corpus)} corpus strings encode differently from the GGUF-faithful reference")
            if differ:
                failures.append("the exported tokenizer differs")
        else:
            print(f"tokenizer: no reference at {reference_path} (run tokenizers_reference.py); not compared")
        gguf_tokenizer = AutoTokenizer.from_pretrained(os.path.dirname(args.model), gguf_file=os.path.basename(args.model))
        same_template = gguf_tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == \
            reloaded.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        print(f"chat template: same rendering as transformers' GGUF load {same_template}")
        if not same_template:
            failures.append("the exported chat template differs")
    else:
        probe = "Hello, world! 12 + 30 = 42 <|im_start|>user\n日本語"
        original = AutoTokenizer.from_pretrained(args.model)
        same = original(probe)["input_ids"] == reloaded(probe)["input_ids"]
        same_template = original.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == \
            reloaded.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        print(f"tokenizer: same ids {same}, same chat template rendering {same_template}")
        if not (same and same_template):
            failures.append("the exported tokenizer differs")

    if failures:
        print("FAIL: " + "; ".join(failures))
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
