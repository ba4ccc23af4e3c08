"""Tiny random llama / qwen2 / qwen3 models and their reference outputs, for Kite's model tests.

For each model, writes Tests/Fixtures/models/<name>/:
  config.json, model.safetensors   transformers' own save_pretrained (fp32)
  reference.json                   packed sequences, temperature, loss weights, and transformers' per-position
                                   log-probs and entropies (computed in fp64 from the same weights)
  gradients.safetensors            d loss / d parameter by torch autograd in fp64, where
                                   loss = sum_t w_lp[t] * logprob[t] + w_ent[t] * entropy[t] over every position
                                   that has a next token (a masked weighted sum: weight 0 masks a position)

Usage: python3 scripts/reference/dense_models.py   (torch + transformers, CPU is enough)
"""
import json, os
import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "Fixtures", "models")

MODELS = {
    "llama": dict(model_type="llama", vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, attention_bias=True, mlp_bias=True,
                  rope_parameters=dict(rope_type="llama3", rope_theta=10000.0, factor=8.0, low_freq_factor=1.0,
                                       high_freq_factor=4.0, original_max_position_embeddings=64),
                  max_position_embeddings=512, rms_norm_eps=1e-5, tie_word_embeddings=False),
    "llama_linear_tied": dict(model_type="llama", vocab_size=64, hidden_size=24, intermediate_size=40, num_hidden_layers=2,
                  num_attention_heads=3, num_key_value_heads=3,
                  rope_parameters=dict(rope_type="linear", rope_theta=500.0, factor=2.0),
                  max_position_embeddings=256, rms_norm_eps=1e-6, tie_word_embeddings=True),
    "qwen2": dict(model_type="qwen2", vocab_size=80, hidden_size=48, intermediate_size=72, num_hidden_layers=2,
                  num_attention_heads=6, num_key_value_heads=2,
                  rope_parameters=dict(rope_type="default", rope_theta=1000000.0),
                  max_position_embeddings=1024, rms_norm_eps=1e-6, tie_word_embeddings=True),
    "qwen3": dict(model_type="qwen3", vocab_size=72, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                  rope_parameters=dict(rope_type="yarn", rope_theta=10000.0, factor=4.0, original_max_position_embeddings=32),
                  max_position_embeddings=128, rms_norm_eps=1e-6, tie_word_embeddings=False),
}
LENGTHS = [7, 12, 1, 23]
TEMPERATURE = 0.8


def build(name, spec, seed):
    spec = dict(spec)
    model_type = spec.pop("model_type")
    config = AutoConfig.for_model(model_type, **spec)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").float()
    # Non-trivial norms and biases, so their gradients and code paths are exercised.
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif pname.endswith(".bias"):
                p.copy_(0.05 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))
    return model


def main():
    for index, (name, spec) in enumerate(MODELS.items()):
        out = os.path.join(ROOT, name)
        os.makedirs(out, exist_ok=True)
        model = build(name, spec, 1234 + index)
        model.save_pretrained(out, safe_serialization=True)
        g = torch.Generator().manual_seed(99 + index)
        vocab = model.config.vocab_size
        sequences = [torch.randint(0, vocab, (n,), generator=g).tolist() for n in LENGTHS]
        weights_lp = [torch.randn(n, generator=g).tolist() for n in LENGTHS]
        weights_ent = [(0.3 * torch.randn(n, generator=g)).tolist() for n in LENGTHS]
        for seq_weights in (weights_lp, weights_ent):
            seq_weights[1][3] = 0.0  # a masked position

        model64 = model.double()
        model64.zero_grad()
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
        total.backward()
        grads = {pname: p.grad.detach().float().contiguous() for pname, p in model64.named_parameters() if p.grad is not None}
        if model.config.tie_word_embeddings:
            grads.pop("lm_head.weight", None)
        save_file(grads, os.path.join(out, "gradients.safetensors"))
        reference = dict(temperature=TEMPERATURE, sequences=sequences, loss_weights_logprob=weights_lp,
                         loss_weights_entropy=weights_ent, logprobs=logprobs, entropy=entropies, loss=total.item())
        with open(os.path.join(out, "reference.json"), "w") as f:
            json.dump(reference, f)
        print(name, "loss", total.item(), "params", sum(p.numel() for p in model.parameters()))


if __name__ == "__main__":
    main()
