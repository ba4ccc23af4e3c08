"""HF transformers `generate`, eager (dynamic cache, no compilation), on a Qwen3-0.6B-shaped model with random
bf16 weights: B prompts of 512 random tokens, 512 new tokens each (greedy, EOS never stops it), output tokens/s
over the whole call, as gpu-baselines.md measured. One short warm-up call per batch size first.
usage: python3 decode_eager.py [batch sizes...]  -> prints JSON and writes $OUT/decode-eager.json"""
import json, os, sys, time, torch
from transformers import AutoConfig, AutoModelForCausalLM
out = os.environ.get("OUT", "/tmp"); res = {"torch": torch.__version__}
def save(): json.dump(res, open(f"{out}/decode-eager.json", "w"), indent=1)
cfg = AutoConfig.for_model("qwen3", vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
    num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=4096, tie_word_embeddings=True, rope_theta=1e6)
m = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).cuda().eval()
import transformers; res["transformers"] = transformers.__version__
new = int(os.environ.get("DECODE_NEW", "512"))
for bs in [int(x) for x in sys.argv[1:] or ["1", "64", "256"]]:
    ids = torch.randint(0, 151936, (bs, 512), device="cuda")
    kw = dict(attention_mask=torch.ones_like(ids), do_sample=False)
    with torch.no_grad(): m.generate(ids, max_new_tokens=4, min_new_tokens=4, **kw)
    torch.cuda.synchronize(); t = time.perf_counter()
    with torch.no_grad(): o = m.generate(ids, max_new_tokens=new, min_new_tokens=new, **kw)
    torch.cuda.synchronize(); dt = time.perf_counter() - t
    res[f"bs{bs}_eager_out_tok_per_s"] = bs * (o.shape[1] - 512) / dt; res[f"bs{bs}_s"] = dt; save()
    print(json.dumps(res), flush=True)
