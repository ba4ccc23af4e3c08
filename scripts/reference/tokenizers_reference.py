"""Reference token ids for Kite's tokenizer tests, from transformers and HF `tokenizers` (Rust).

Writes into .assets/tokenizers/ (git-ignored, large):
  r1-metadata.gguf              the R1 part's metadata only (see gguf_metadata_only.py)
  <name>/                       transformers' export of the GGUF tokenizer (AutoTokenizer(gguf_file=...).save_pretrained)
  <name>-gguf/tokenizer.json    the GGUF tokenizer as llama.cpp reads it, rebuilt for HF `tokenizers`: every GGUF
                                token at its GGUF id, token types 3 (control) and 4 (user-defined) as atomic added
                                tokens (special for type 3), and the pre-tokenizer that llama.cpp maps
                                `tokenizer.ggml.pre` to
and into Tests/Fixtures/tokenizers/ (committed, compact):
  corpus.json    plain-text corpus; transformers' ids, and the GGUF-faithful ids where they differ
  special.json   special tokens inside text: GGUF-faithful ids, with and without added special tokens, and decodes

Why two references: transformers' GGUF conversion drops things llama.cpp keeps. For R1 it re-adds bos/eos at new
ids 152064-152066 and does not make control tokens such as <｜User｜> atomic; for SmolLM2 it drops the `Digits`
pre-tokenizer that `smollm` implies (llama.cpp splits every digit off first). Plain text is compared with
transformers; where the GGUF's own reading differs, the GGUF-faithful tokenizer is the reference.

usage: python3 scripts/reference/tokenizers_reference.py
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from tokenizer_corpus import plain_corpus, special_corpus  # noqa: E402

ASSETS = os.path.join(ROOT, ".assets")
OUT = os.path.join(ASSETS, "tokenizers")
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures", "tokenizers")

GGUFS = {
    "smollm2": os.path.join(ASSETS, "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "r1": os.path.join(OUT, "r1-metadata.gguf"),
}

GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
QWEN2_REGEX = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def byte_level(use_regex: bool) -> dict:
    return {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": use_regex}


def split(pattern: str) -> dict:
    return {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False}


# llama.cpp's reading of tokenizer.ggml.pre, for the two assets (llama-vocab.cpp: smollm -> \p{N} then the GPT-2
# regex, which is HF's Digits(individual) + ByteLevel; deepseek-r1-qwen -> LLAMA_VOCAB_PRE_TYPE_QWEN2).
PRE_TOKENIZERS = {
    "smollm": {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, byte_level(True)]},
    "deepseek-r1-qwen": {"type": "Sequence", "pretokenizers": [split(QWEN2_REGEX), byte_level(False)]},
    "qwen2": {"type": "Sequence", "pretokenizers": [split(QWEN2_REGEX), byte_level(False)]},
}


def read_gguf(path: str) -> dict:
    from gguf import GGUFReader

    reader = GGUFReader(path)

    def scalar(key):
        field = reader.fields.get(key)
        if field is None:
            return None
        value = field.parts[field.data[0]]
        if field.types[0].name == "STRING":
            return bytes(value).decode("utf-8")
        return value.tolist()[0]

    def strings(key):
        field = reader.fields[key]
        return [bytes(field.parts[i]).decode("utf-8") for i in field.data]

    types = reader.fields["tokenizer.ggml.token_type"]
    return {
        "model": scalar("tokenizer.ggml.model"),
        "pre": scalar("tokenizer.ggml.pre"),
        "tokens": strings("tokenizer.ggml.tokens"),
        "merges": strings("tokenizer.ggml.merges"),
        "token_types": [int(types.parts[i][0]) for i in types.data],
        "bos_token_id": scalar("tokenizer.ggml.bos_token_id"),
        "eos_token_id": scalar("tokenizer.ggml.eos_token_id"),
        "padding_token_id": scalar("tokenizer.ggml.padding_token_id"),
        "unknown_token_id": scalar("tokenizer.ggml.unknown_token_id"),
        "add_bos_token": scalar("tokenizer.ggml.add_bos_token"),
        "add_eos_token": scalar("tokenizer.ggml.add_eos_token"),
    }


def gguf_faithful_tokenizer_json(meta: dict) -> dict:
    tokens = meta["tokens"]
    assert len(set(tokens)) == len(tokens), "duplicate GGUF tokens"
    added = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
         "special": meta["token_types"][i] == 3}
        for i, t in enumerate(tokens) if meta["token_types"][i] in (3, 4)
    ]
    bos = tokens[meta["bos_token_id"]] if meta["bos_token_id"] is not None else None
    single = [{"Sequence": {"id": "A", "type_id": 0}}]
    special_tokens = {}
    if meta["add_bos_token"] and bos is not None:
        single = [{"SpecialToken": {"id": bos, "type_id": 0}}] + single
        special_tokens[bos] = {"id": bos, "ids": [meta["bos_token_id"]], "tokens": [bos]}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": PRE_TOKENIZERS[meta["pre"]],
        "post_processor": {"type": "TemplateProcessing", "single": single, "pair": single, "special_tokens": special_tokens},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": [m.split(" ", 1) for m in meta["merges"]],
        },
    }


def main() -> None:
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    os.makedirs(OUT, exist_ok=True)
    if not os.path.exists(GGUFS["r1"]):
        subprocess.check_call([sys.executable, os.path.join(HERE, "gguf_metadata_only.py"),
                               os.path.join(ASSETS, "DeepSeek-R1-Distill-Qwen-7B-part-0000.gguf"), GGUFS["r1"]])

    corpus = plain_corpus()
    fixture = {"strings": corpus, "transformers": {}, "gguf_differs": {}}
    special_fixture = {}
    for name, path in GGUFS.items():
        export_dir = os.path.join(OUT, name)
        hf = AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
        hf.save_pretrained(export_dir)

        meta = read_gguf(path)
        gguf_dir = os.path.join(OUT, name + "-gguf")
        os.makedirs(gguf_dir, exist_ok=True)
        spec = gguf_faithful_tokenizer_json(meta)
        with open(os.path.join(gguf_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(spec, f, ensure_ascii=False)
        faithful = Tokenizer.from_str(json.dumps(spec))

        hf_ids = [hf(s, add_special_tokens=False)["input_ids"] for s in corpus]
        gguf_ids = [faithful.encode(s, add_special_tokens=False).ids for s in corpus]
        for s, ids in zip(corpus, hf_ids):
            assert hf.decode(ids) == s, (name, s)
        fixture["transformers"][name] = hf_ids
        fixture["gguf_differs"][name] = {str(i): g for i, (h, g) in enumerate(zip(hf_ids, gguf_ids)) if h != g}
        print(f"{name}: {len(corpus)} plain strings, {len(fixture['gguf_differs'][name])} where the GGUF's reading "
              f"differs from transformers' conversion")

        atomic = [t for t, ty in zip(meta["tokens"], meta["token_types"]) if ty in (3, 4)]
        strings = special_corpus(atomic)
        ids = [faithful.encode(s, add_special_tokens=False).ids for s in strings]
        with_special = [faithful.encode(s, add_special_tokens=True).ids for s in strings]
        special_fixture[name] = {
            "atomic_tokens": {t: i for i, (t, ty) in enumerate(zip(meta["tokens"], meta["token_types"])) if ty in (3, 4)},
            "bos_token_id": meta["bos_token_id"],
            "eos_token_id": meta["eos_token_id"],
            "padding_token_id": meta["padding_token_id"],
            "add_bos_token": bool(meta["add_bos_token"]),
            "strings": strings,
            "ids": ids,
            "ids_with_special_tokens": with_special,
            "decoded": [faithful.decode(i, skip_special_tokens=False) for i in ids],
            "decoded_skipping_special": [faithful.decode(i, skip_special_tokens=True) for i in ids],
        }
        print(f"{name}: {len(strings)} strings with {len(atomic)} atomic tokens")

    os.makedirs(FIXTURES, exist_ok=True)
    with open(os.path.join(FIXTURES, "corpus.json"), "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=True, separators=(",", ":"))
    with open(os.path.join(FIXTURES, "special.json"), "w", encoding="utf-8") as f:
        json.dump(special_fixture, f, ensure_ascii=True, separators=(",", ":"))


if __name__ == "__main__":
    main()
