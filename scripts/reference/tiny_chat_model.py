"""A tiny llama with a real byte-level BPE tokenizer and a ChatML chat template, for fast end-to-end tests of
`kite train` (Tests/Fixtures/models/tiny_chat). The tokenizer is trained by HF `tokenizers` on a small corpus
of arithmetic and chat text; the model is random (transformers' initialisation, fixed seed).

Usage: python3 scripts/reference/tiny_chat_model.py
"""
import os
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "Fixtures", "models", "tiny_chat")
corpus = [f"{a:02d}+{b:02d}={a + b}" for a in range(0, 100, 3) for b in range(0, 100, 7)]
corpus += ["user", "assistant", "system", "You are a helpful assistant.", "What is", "The answer is"] * 50

tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=320, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
chat_template = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|endoftext|>")
fast.chat_template = chat_template

config = AutoConfig.for_model("llama", vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True,
                              bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id)
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(config).float()
os.makedirs(out, exist_ok=True)
model.save_pretrained(out, safe_serialization=True)
fast.save_pretrained(out)
print(len(fast), "tokens;", sum(p.numel() for p in model.parameters()), "parameters")
