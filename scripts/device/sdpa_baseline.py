"""PyTorch SDPA next to `kite bench attention`: causal attention forward + backward in bf16, the same shape
and the same FLOP count (4 B H T^2 D / 2 forward, 2.5x that backward). Median of timed repeats with CUDA events.
usage: python3 sdpa_baseline.py [batch sequence heads head_dim]  -> prints JSON, writes $OUT/sdpa.json"""
import json, os, sys, torch
import torch.nn.functional as F

B, T, H, D = (int(x) for x in (sys.argv[1:5] if len(sys.argv) >= 5 else (8, 2048, 16, 128)))
q, k, v, grad = (torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16) for _ in range(4))
for t in (q, k, v):
    t.requires_grad_(True)
forward, total = [], []
for i in range(23):
    for t in (q, k, v):
        t.grad = None
    start, middle, end = (torch.cuda.Event(enable_timing=True) for _ in range(3))
    start.record()
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    middle.record()
    out.backward(grad)
    end.record()
    torch.cuda.synchronize()
    if i >= 3:
        forward.append(start.elapsed_time(middle))
        total.append(start.elapsed_time(end))
forward.sort(); total.sort()
fwd, tot = forward[len(forward) // 2], total[len(total) // 2]
flops = 4 * B * H * T * T * D / 2
res = {"torch": torch.__version__, "shape": [B, T, H, D], "forward_ms": fwd, "backward_ms": tot - fwd, "total_ms": tot,
       "tflops": 3.5 * flops / tot / 1e9}
print("sdpa", json.dumps(res), flush=True)
json.dump(res, open(os.path.join(os.environ.get("OUT", "/tmp"), "sdpa.json"), "w"), indent=1)
