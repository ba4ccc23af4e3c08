"""Tiny random DeepSeek-V2/V3 and Qwen3-MoE models and their reference outputs, for Kite's model tests.

For each model, writes Tests/Fixtures/models/<name>/ exactly as dense_models.py does for the dense ones:
  config.json, model.safetensors   transformers' own save_pretrained (fp32, per-expert tensor names)
  reference.json                   packed sequences, temperature, loss weights, transformers' per-position
                                   log-probs and entropies (fp64 model; the routers compute in fp32 as
                                   transformers casts them), and the smallest routing margin met
  gradients.safetensors            d loss / d parameter by torch autograd in fp64 (loss as in dense_models.py)

The configurations cover latent attention with and without the query bottleneck (q_lora_rank), YaRN with
mscale / mscale_all_dim, interleaved and plain rotary layouts, DeepSeek-V3's sigmoid routing with the
expert-choice bias and group-limited choice, DeepSeek-V2's softmax routing (greedy and group-limited),
Qwen3-MoE's softmax routing with and without norm_topk_prob, shared experts, first_k_dense_replace,
mlp_only_layers and decoder_sparse_step.

Every seed is checked so that no token's expert (or group) choice is within MARGIN of a tie: an fp32
implementation must make the same discrete choices as this reference. The first deepseek_v3 model also gets
the tensors of a multi-token-prediction layer appended to its checkpoint (num_nextn_predict_layers = 1), which
Kite must recognise and skip.

Usage: python3 scripts/reference/moe_models.py   (torch + transformers, CPU is enough)
"""
import json, os
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "Fixtures", "models")

YARN = dict(rope_type="yarn", rope_theta=10000.0, factor=4.0, original_max_position_embeddings=32, beta_fast=32.0,
            beta_slow=1.0, mscale=0.707, mscale_all_dim=0.707)
MODELS = {
    # q_lora, groups, shared expert, one dense layer first, YaRN with mscale, interleaved RoPE, MTP layer.
    "deepseek_v3": dict(model_type="deepseek_v3", vocab_size=96, hidden_size=32, intermediate_size=48,
                        moe_intermediate_size=16, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
                        q_lora_rank=24, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=12,
                        n_routed_experts=8, num_experts_per_tok=3, n_group=4, topk_group=2, n_shared_experts=1,
                        first_k_dense_replace=1, routed_scaling_factor=2.5, norm_topk_prob=True, rope_interleave=True,
                        rope_parameters=YARN, max_position_embeddings=128, rms_norm_eps=1e-5,
                        num_nextn_predict_layers=1, tie_word_embeddings=False),
    # No query bottleneck, no groups, two shared experts, every layer sparse, plain RoPE, biases, no renormalisation.
    "deepseek_v3_plain": dict(model_type="deepseek_v3", vocab_size=80, hidden_size=32, intermediate_size=40,
                        moe_intermediate_size=12, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                        q_lora_rank=None, kv_lora_rank=12, qk_nope_head_dim=12, qk_rope_head_dim=4, v_head_dim=8,
                        n_routed_experts=6, num_experts_per_tok=2, n_group=1, topk_group=1, n_shared_experts=2,
                        first_k_dense_replace=0, routed_scaling_factor=1.0, norm_topk_prob=False, rope_interleave=False,
                        attention_bias=True, rope_parameters=dict(rope_type="default", rope_theta=500.0),
                        max_position_embeddings=256, rms_norm_eps=1e-6, num_nextn_predict_layers=0, tie_word_embeddings=True),
    # DeepSeek-V2: softmax routing limited to the best groups (by their best expert), scaled, not renormalised.
    "deepseek_v2": dict(model_type="deepseek_v2", vocab_size=72, hidden_size=32, intermediate_size=48,
                        moe_intermediate_size=16, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                        q_lora_rank=16, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8,
                        n_routed_experts=8, num_experts_per_tok=2, n_group=4, topk_group=2, topk_method="group_limited_greedy",
                        n_shared_experts=1, first_k_dense_replace=1, routed_scaling_factor=1.5,
                        rope_parameters=dict(YARN, factor=2.0, mscale=1.0, mscale_all_dim=1.0, original_max_position_embeddings=64),
                        max_position_embeddings=128, rms_norm_eps=1e-6, tie_word_embeddings=False),
    # Qwen3-MoE: grouped-query attention with q/k norms; layer 1 dense (mlp_only_layers); renormalised top-k.
    "qwen3_moe": dict(model_type="qwen3_moe", vocab_size=88, hidden_size=32, intermediate_size=56,
                      moe_intermediate_size=20, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                      head_dim=8, num_experts=8, num_experts_per_tok=2, norm_topk_prob=True, decoder_sparse_step=1,
                      mlp_only_layers=[1], rope_parameters=dict(rope_type="default", rope_theta=1000000.0),
                      max_position_embeddings=256, rms_norm_eps=1e-6, tie_word_embeddings=False),
    # Every second layer sparse (decoder_sparse_step 2), top-k weights not renormalised, attention biases.
    "qwen3_moe_sparse_step": dict(model_type="qwen3_moe", vocab_size=64, hidden_size=24, intermediate_size=40,
                      moe_intermediate_size=16, num_hidden_layers=2, num_attention_heads=3, num_key_value_heads=1,
                      num_experts=6, num_experts_per_tok=3, norm_topk_prob=False, decoder_sparse_step=2,
                      attention_bias=True, rope_parameters=dict(rope_type="default", rope_theta=10000.0),
                      max_position_embeddings=128, rms_norm_eps=1e-6, tie_word_embeddings=True),
}
LENGTHS = [7, 12, 1, 23]
TEMPERATURE = 0.8
MARGIN = 2e-5


def build(spec, seed):
    spec = dict(spec)
    model_type = spec.pop("model_type")
    config = AutoConfig.for_model(model_type, **spec)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", experts_implementation="eager").float()
    # Non-trivial norms, biases and expert-choice biases, so their gradients and code paths are exercised.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.05 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(0.05 * torch.randn_like(b))
    return model


def routing_margin(model, router_inputs):
    """The smallest gap, over tokens and sparse layers, between a chosen and an unchosen expert (or group)."""
    config = model.config
    worst = float("inf")
    for name, hidden in router_inputs.items():
        gate = model.get_submodule(name)
        logits = hidden.reshape(-1, hidden.shape[-1]).double() @ gate.weight.double().T
        k = config.num_experts_per_tok
        if config.model_type == "qwen3_moe" or config.model_type == "deepseek_v2":
            scores = torch.softmax(logits, dim=-1)
        else:
            scores = torch.sigmoid(logits) + gate.e_score_correction_bias.double()
        experts = scores.shape[-1]
        groups = getattr(config, "n_group", None) or 1
        limited = config.model_type == "deepseek_v3" or getattr(config, "topk_method", "") == "group_limited_greedy"
        if groups > 1 and limited:
            grouped = scores.view(-1, groups, experts // groups)
            if config.model_type == "deepseek_v3":
                group_scores = grouped.topk(2, dim=-1)[0].sum(-1)
            else:
                group_scores = grouped.max(-1).values
            ordered = group_scores.sort(dim=-1, descending=True).values
            worst = min(worst, (ordered[:, config.topk_group - 1] - ordered[:, config.topk_group]).min().item())
            keep = torch.zeros_like(group_scores).scatter_(1, group_scores.topk(config.topk_group, dim=-1)[1], 1)
            mask = keep.unsqueeze(-1).expand(-1, groups, experts // groups).reshape(-1, experts).bool()
            scores = scores.masked_fill(~mask, float("-inf"))
        ordered = scores.sort(dim=-1, descending=True).values
        worst = min(worst, (ordered[:, k - 1] - ordered[:, k]).min().item())
    return worst


def reference_outputs(model, sequences, weights_lp, weights_ent):
    model64 = model.double()
    model64.zero_grad()
    router_inputs = {}
    hooks = []
    for name, module in model64.named_modules():
        if name.endswith("mlp.gate") and hasattr(module, "weight"):
            hooks.append(module.register_forward_hook(
                lambda m, args, out, name=name: router_inputs.setdefault(name, []).append(args[0].detach())))
    total = 0
    logprobs, entropies = [], []
    for seq, wl, we in zip(sequences, weights_lp, weights_ent):
        ids = torch.tensor([seq])
        logits = model64(input_ids=ids).logits[0] / TEMPERATURE
        logp_all = torch.log_softmax(logits, dim=-1)
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        n = len(seq)
        if n > 1:
            lp = logp_all[:-1].gather(1, ids[0, 1:, None])[:, 0]
            ent = entropy[:-1]
            total = total + (torch.tensor(wl[:n - 1], dtype=torch.float64) * lp).sum() \
                          + (torch.tensor(we[:n - 1], dtype=torch.float64) * ent).sum()
            logprobs.append(lp.tolist())
            entropies.append(ent.tolist())
        else:
            logprobs.append([])
            entropies.append([])
    for hook in hooks:
        hook.remove()
    total.backward()
    margin = routing_margin(model64, {name: torch.cat([h.reshape(-1, h.shape[-1]) for h in hs]) for name, hs in router_inputs.items()})
    return model64, total, logprobs, entropies, margin


def append_mtp_layer(out, config):
    """Tensors named like DeepSeek-V3's multi-token-prediction layer, after the decoder layers."""
    path = os.path.join(out, "model.safetensors")
    tensors = load_file(path)
    layer = config.num_hidden_layers
    d = config.hidden_size
    g = torch.Generator().manual_seed(5)
    extra = {
        f"model.layers.{layer}.enorm.weight": torch.ones(d),
        f"model.layers.{layer}.hnorm.weight": torch.ones(d),
        f"model.layers.{layer}.eh_proj.weight": torch.randn(d, 2 * d, generator=g),
        f"model.layers.{layer}.input_layernorm.weight": torch.ones(d),
        f"model.layers.{layer}.shared_head.norm.weight": torch.ones(d),
    }
    tensors.update(extra)
    save_file(tensors, path, metadata={"format": "pt"})


def main():
    for index, (name, spec) in enumerate(MODELS.items()):
        out = os.path.join(ROOT, name)
        os.makedirs(out, exist_ok=True)
        for attempt in range(50):
            seed = 4321 + 97 * index + attempt
            model = build(spec, seed)
            g = torch.Generator().manual_seed(199 + index + 1000 * attempt)
            vocab = model.config.vocab_size
            sequences = [torch.randint(0, vocab, (n,), generator=g).tolist() for n in LENGTHS]
            weights_lp = [torch.randn(n, generator=g).tolist() for n in LENGTHS]
            weights_ent = [(0.3 * torch.randn(n, generator=g)).tolist() for n in LENGTHS]
            for seq_weights in (weights_lp, weights_ent):
                seq_weights[1][3] = 0.0  # a masked position
            model.float().save_pretrained(out, safe_serialization=True)
            model64, total, logprobs, entropies, margin = reference_outputs(model, sequences, weights_lp, weights_ent)
            if margin > MARGIN:
                break
            print(name, "seed", seed, "routing margin", margin, "too small; trying another")
        else:
            raise SystemExit(f"{name}: no seed gave a routing margin above {MARGIN}")
        if spec.get("num_nextn_predict_layers", 0) > 0:
            append_mtp_layer(out, model.config)
        grads = {pname: p.grad.detach().float().contiguous() for pname, p in model64.named_parameters() if p.grad is not None}
        if model.config.tie_word_embeddings:
            grads.pop("lm_head.weight", None)
        # transformers stacks the experts; checkpoints (and Kite) name them one by one.
        for pname in [p for p in grads if p.endswith("mlp.experts.gate_up_proj")]:
            stacked = grads.pop(pname)
            base = pname[: -len("gate_up_proj")]
            width = stacked.shape[1] // 2
            for e in range(stacked.shape[0]):
                grads[f"{base}{e}.gate_proj.weight"] = stacked[e, :width].contiguous()
                grads[f"{base}{e}.up_proj.weight"] = stacked[e, width:].contiguous()
        for pname in [p for p in grads if p.endswith("mlp.experts.down_proj")]:
            stacked = grads.pop(pname)
            base = pname[: -len("down_proj")]
            for e in range(stacked.shape[0]):
                grads[f"{base}{e}.down_proj.weight"] = stacked[e].contiguous()
        save_file(grads, os.path.join(out, "gradients.safetensors"))
        reference = dict(temperature=TEMPERATURE, sequences=sequences, loss_weights_logprob=weights_lp,
                         loss_weights_entropy=weights_ent, logprobs=logprobs, entropy=entropies, loss=total.item(),
                         routing_margin=margin)
        with open(os.path.join(out, "reference.json"), "w") as f:
            json.dump(reference, f)
        print(name, "seed", seed, "loss", total.item(), "routing margin", margin,
              "params", sum(p.numel() for p in model.parameters()))


if __name__ == "__main__":
    main()
