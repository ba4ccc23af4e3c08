"""How far PyTorch's own bf16 training arithmetic lands from the exact (fp64) log-probs and gradients of each
fixture model: the yardstick for Kite's bf16 parity bounds (`kite bench cuda-parity`, ModelParity).

For every model under Tests/Fixtures/models (config.json, model.safetensors, reference.json and
gradients.safetensors, written by dense_models.py / moe_models.py in fp64), the same loss is computed twice in
bf16 with transformers:
  autocast     fp32 weights, `torch.autocast("cpu", torch.bfloat16)` (products in bf16, fp32 master weights and
               gradients: the arrangement of Kite's bf16 mode and of Megatron's bf16 training)
  bf16 weights the model cast to bf16 (weights, activations and gradients in bf16)
The head's log-softmax runs in fp32 in both (as Kite's fused head does). Sparse models replay the experts the
fp64 forward chose (recorded from its router calls; the gate weights are recomputed from the bf16 logits), so
the error is the arithmetic's, not a near-tie routed elsewhere.

Errors are normwise relative (||x - ref|| / ||ref||), as the parity check measures them: log-probs, entropies,
all gradients together, and the worst single gradient tensor (its error floored at 5% of the root mean square
of all tensors' norms, as in ModelParity). Output: Tests/Fixtures/models/pytorch_bf16_error.json.

usage: python3 scripts/reference/bf16_reference_error.py   (CPU only; torch 2.x, transformers 5.x)
"""
import json
import math
import os

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "Fixtures", "models")
MODELS = ["llama", "llama_linear_tied", "qwen2", "qwen3", "deepseek_v2", "deepseek_v3", "deepseek_v3_plain", "qwen3_moe",
          "qwen3_moe_sparse_step"]


def is_gate(name, module):
    return name.endswith("mlp.gate") and hasattr(module, "weight") and module.weight.dim() == 2


def record_routing(model, run):
    """Runs `run()` and returns, per gate, the expert indices of each of its calls, in call order."""
    recorded = {}
    hooks = []
    for name, module in model.named_modules():
        if is_gate(name, module):
            hooks.append(module.register_forward_hook(
                lambda m, args, out, name=name: recorded.setdefault(name, []).append(out[2].detach().clone())))
    try:
        run()
    finally:
        for hook in hooks:
            hook.remove()
    return recorded


def replay_weights(gate, config, logits, indices):
    """The gate weights transformers would give `indices` from these router logits."""
    logits = logits.float()
    if config.model_type == "deepseek_v3":
        weights = logits.sigmoid().gather(1, indices)
        if config.norm_topk_prob:
            weights = weights / (weights.sum(-1, keepdim=True) + 1e-20)
        return weights * config.routed_scaling_factor
    weights = logits.softmax(-1).gather(1, indices)
    if config.model_type == "deepseek_v2":
        return weights * config.routed_scaling_factor
    if config.norm_topk_prob:
        weights = weights / weights.sum(-1, keepdim=True)
    return weights


def install_replay(model, recorded):
    """Makes every gate return its recorded indices, call by call; returns a function removing the patch."""
    originals = {}
    for name, module in model.named_modules():
        if not is_gate(name, module):
            continue
        calls = iter(recorded[name])
        original = module.forward
        originals[name] = (module, original)

        def forward(hidden_states, module=module, original=original, calls=calls):
            logits, weights, indices = original(hidden_states)
            wanted = next(calls)
            same = (wanted.sort(-1).values == indices.sort(-1).values).all(-1)
            replayed = replay_weights(module, model.config, logits, wanted)
            # Where the choice agrees, the recomputed weights are transformers' own (up to their order).
            mine = weights.float().gather(1, indices.argsort(-1)).sort(-1).values
            theirs = replayed.gather(1, wanted.argsort(-1)).sort(-1).values
            assert torch.allclose(mine[same], theirs[same], rtol=1e-2, atol=1e-3), "replayed gate weights differ from transformers'"
            return logits, replayed.to(weights.dtype), wanted

        module.forward = forward

    def remove():
        for module, original in originals.values():
            module.forward = original
    return remove


def loss_and_outputs(model, reference, autocast):
    temperature = reference["temperature"]
    total = 0
    logprobs, entropies = [], []
    for seq, wl, we in zip(reference["sequences"], reference["loss_weights_logprob"], reference["loss_weights_entropy"]):
        ids = torch.tensor([seq])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits = model(input_ids=ids).logits[0]
        logp_all = torch.log_softmax(logits.float() / temperature, dim=-1)
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        n = len(seq)
        if n > 1:
            lp = logp_all[:-1].gather(1, ids[0, 1:, None])[:, 0]
            ent = entropy[:-1]
            total = total + (torch.tensor(wl[:n - 1]) * lp).sum() + (torch.tensor(we[:n - 1]) * ent).sum()
            logprobs += lp.tolist()
            entropies += ent.tolist()
    total.backward()
    return logprobs, entropies


def named_gradients(model):
    grads = {name: p.grad.detach().double() for name, p in model.named_parameters() if p.grad is not None}
    if model.config.tie_word_embeddings:
        grads.pop("lm_head.weight", None)
    for name in [n for n in grads if n.endswith("mlp.experts.gate_up_proj")]:
        stacked = grads.pop(name)
        base = name[: -len("gate_up_proj")]
        width = stacked.shape[1] // 2
        for e in range(stacked.shape[0]):
            grads[f"{base}{e}.gate_proj.weight"] = stacked[e, :width]
            grads[f"{base}{e}.up_proj.weight"] = stacked[e, width:]
    for name in [n for n in grads if n.endswith("mlp.experts.down_proj")]:
        stacked = grads.pop(name)
        base = name[: -len("down_proj")]
        for e in range(stacked.shape[0]):
            grads[f"{base}{e}.down_proj.weight"] = stacked[e]
    return grads


def relative(ours, reference):
    ours, reference = torch.as_tensor(ours, dtype=torch.float64), torch.as_tensor(reference, dtype=torch.float64)
    return ((ours - reference).norm() / reference.norm().clamp_min(1e-300)).item()


def errors(name, mode):
    directory = os.path.join(ROOT, name)
    with open(os.path.join(directory, "reference.json")) as f:
        reference = json.load(f)
    exact = load_file(os.path.join(directory, "gradients.safetensors"))
    model64 = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float64, attn_implementation="eager", experts_implementation="eager")
    recorded = record_routing(model64, lambda: [model64(input_ids=torch.tensor([s])) for s in reference["sequences"]])
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.bfloat16 if mode == "bf16 weights" else torch.float32,
                                                 attn_implementation="eager", experts_implementation="eager")
    remove = install_replay(model, recorded) if recorded else (lambda: None)
    try:
        logprobs, entropies = loss_and_outputs(model, reference, autocast=mode == "autocast")
    finally:
        remove()
    grads = named_gradients(model)
    names = sorted(exact)
    missing = [n for n in names if n not in grads]
    assert not missing, f"{name}: no gradient for {missing[:3]}"
    ours = torch.cat([grads[n].flatten() for n in names])
    theirs = torch.cat([exact[n].double().flatten() for n in names])
    norms = [exact[n].double().norm().item() for n in names]
    floor = 0.05 * math.sqrt(sum(x * x for x in norms) / len(norms))
    worst = max(((grads[n] - exact[n].double()).norm().item() / max(norms[i], floor, 1e-30), n) for i, n in enumerate(names))
    return {
        "logprobs": relative(logprobs, [x for row in reference["logprobs"] for x in row]),
        "entropy": relative(entropies, [x for row in reference["entropy"] for x in row]),
        "all_gradients": relative(ours, theirs),
        "worst_gradient": worst[0],
        "worst_gradient_tensor": worst[1],
        "routing_replayed": bool(recorded),
    }


def main():
    torch.manual_seed(0)
    results = {}
    for name in MODELS:
        results[name] = {mode: errors(name, mode) for mode in ["autocast", "bf16 weights"]}
        for mode, e in results[name].items():
            print(f"{name:24s} {mode:13s} logprobs {e['logprobs']:.2e} entropy {e['entropy']:.2e} "
                  f"all gradients {e['all_gradients']:.2e} worst {e['worst_gradient']:.2e} ({e['worst_gradient_tensor']})")
    with open(os.path.join(ROOT, "pytorch_bf16_error.json"), "w") as f:
        json.dump({"torch": torch.__version__, "models": results}, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
