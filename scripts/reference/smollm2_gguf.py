"""transformers' view of SmolLM2-135M-Instruct loaded from Kite's test asset (.assets/SmolLM2-135M-Instruct.Q4_1.gguf,
fetched by scripts/assets/fetch.sh): the chat-templated prompt's ids, the logits at its last position, every
next-token log-prob of the prompt, and a greedy continuation. Writes Tests/Fixtures/smollm2/.

Needs: pip install torch transformers gguf accelerate safetensors
"""
import json, os, sys
import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
assets = os.path.join(root, ".assets")
out = os.path.join(root, "Tests", "Fixtures", "smollm2")
name = "SmolLM2-135M-Instruct.Q4_1.gguf"
tokenizer = AutoTokenizer.from_pretrained(assets, gguf_file=name)
model = AutoModelForCausalLM.from_pretrained(assets, gguf_file=name, torch_dtype=torch.float32)
model.eval()
messages = [{"role": "user", "content": "What is the capital of France?"}]
text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
ids = tokenizer(text, add_special_tokens=False)["input_ids"]
with torch.no_grad():
    logits = model(torch.tensor([ids])).logits[0]
    logp = torch.log_softmax(logits, -1)
    prompt_logprobs = logp[:-1].gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
    generated = model.generate(torch.tensor([ids]), max_new_tokens=20, do_sample=False)[0][len(ids):]
os.makedirs(out, exist_ok=True)
save_file({"last_logits": logits[-1].contiguous()}, os.path.join(out, "last_logits.safetensors"))
with open(os.path.join(out, "reference.json"), "w") as f:
    json.dump({"prompt_text": text, "prompt_ids": ids, "prompt_logprobs": prompt_logprobs.tolist(),
               "greedy_ids": generated.tolist(), "greedy_text": tokenizer.decode(generated, skip_special_tokens=True)}, f, indent=1)
print(len(ids), "prompt ids;", repr(tokenizer.decode(generated, skip_special_tokens=True)))
