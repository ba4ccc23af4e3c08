"""Small byte-level BPE tokenizers that exercise tokenizer.json features the two real tokenizers do not use
(added-token flags, normalizers, prefix spaces, post-processors, ignore_merges, old merge format, split
behaviours, tokenizer_config.json), with HF `tokenizers` / transformers ids for each.

Writes Tests/Fixtures/tokenizers/tiny.json:
  base       a tokenizer.json trained here on the corpus (vocab 700)
  strings    the test strings (shared by all variants)
  variants   name -> {"overrides": fields replacing the base's, "files": extra files for a directory (config),
                      "ids": [[...]], "ids_with_special_tokens": [[...]] or null when the same as "ids",
                      "decoded" / "decoded_skipping_special": {index: text} where it is not the string itself}
The Swift test rebuilds each variant from the base in the same way.

usage: python3 scripts/reference/tiny_tokenizers_reference.py
"""
import copy
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from tokenizer_corpus import plain_corpus  # noqa: E402
from pretokenizer_reference import DEEPSEEK3, LLAMA3  # noqa: E402

FIXTURE = os.path.join(ROOT, "Tests", "Fixtures", "tokenizers", "tiny.json")


def added(content, id_, special=False, lstrip=False, rstrip=False, single_word=False, normalized=None):
    return {"id": id_, "content": content, "single_word": single_word, "lstrip": lstrip, "rstrip": rstrip,
            "normalized": (not special) if normalized is None else normalized, "special": special}


def byte_level(prefix=False, regex=True):
    return {"type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": True, "use_regex": regex}


def split(pattern, behavior="Isolated", invert=False):
    return {"type": "Split", "pattern": {"Regex": pattern}, "behavior": behavior, "invert": invert}


def train_base():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=700, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(plain_corpus(), trainer)
    return json.loads(tokenizer.to_str())


def variants(base_size):
    n = base_size
    tokens = ["<|special|>", "[L]", "[R]", "[LR]", "word", "ÉTÉ", "<s>", "</s>", "<pad>", "<extra>", "<more>"]
    contexts = []
    for t in tokens:
        contexts += [t, " " + t + " ", "a" + t + "b", "a " + t + " b", "  " + t + "\n\n", "x" + t, t + "x", t + t,
                     "the word is word.", "keyword words word_ word1 _word", "été ÉTÉ Été", "A  B\tC"]
    contexts = sorted(set(contexts))
    # The ids written for these are deliberately not the ones HF assigns (n, n+1, ...): HF ignores them.
    flags = [
        added("<|special|>", n + 10, special=True),
        added("[L]", n + 11, lstrip=True),
        added("[R]", n + 12, rstrip=True),
        added("[LR]", n + 13, special=True, lstrip=True, rstrip=True),
        added("word", n + 14, single_word=True),
        added("ÉTÉ", n + 15, normalized=True),
        added("<|special|>", n + 16, special=True, rstrip=True),
    ]
    s_tokens = [added("<s>", n, special=True), added("</s>", n + 1, special=True), added("<pad>", n + 2, special=True)]
    return {
        "added-flags": {"overrides": {"added_tokens": flags}, "strings": contexts},
        "normalizers": {
            "overrides": {
                "added_tokens": flags,
                "normalizer": {"type": "Sequence", "normalizers": [
                    {"type": "NFC"},
                    {"type": "Replace", "pattern": {"String": "  "}, "content": " "},
                    {"type": "Replace", "pattern": {"Regex": r"\d+"}, "content": "#"},
                    {"type": "Lowercase"},
                    {"type": "Strip", "strip_left": True, "strip_right": False},
                    {"type": "Prepend", "prepend": "^"},
                ]},
            },
            "strings": contexts,
        },
        "prefix-space": {"overrides": {"added_tokens": flags, "pre_tokenizer": byte_level(prefix=True)},
                         "strings": contexts},
        "template": {
            "overrides": {
                "added_tokens": s_tokens,
                "post_processor": {"type": "TemplateProcessing",
                                   "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                              {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                                   "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                                   "special_tokens": {"<s>": {"id": "<s>", "ids": [n], "tokens": ["<s>"]},
                                                      "</s>": {"id": "</s>", "ids": [n + 1], "tokens": ["</s>"]}}},
            },
            "strings": contexts,
        },
        "llama3-post-processor": {
            "overrides": {
                "added_tokens": s_tokens,
                "post_processor": {"type": "Sequence", "processors": [
                    {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
                    {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                                              {"Sequence": {"id": "A", "type_id": 0}}],
                     "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                     "special_tokens": {"<s>": {"id": "<s>", "ids": [n], "tokens": ["<s>"]}}},
                ]},
            },
            "strings": contexts,
        },
        "roberta": {
            "overrides": {"added_tokens": s_tokens,
                          "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", n + 1], "cls": ["<s>", n],
                                             "trim_offsets": True, "add_prefix_space": False}},
            "strings": contexts,
        },
        "ignore-merges": {"overrides": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [split(LLAMA3), byte_level(regex=False)]},
                                        "model": {"ignore_merges": True}}, "strings": contexts},
        "deepseek-v3": {"overrides": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [split(p) for p in DEEPSEEK3] + [byte_level(regex=False)]}},
                        "strings": contexts},
        "string-merges": {"overrides": {"model": {"merges": "as strings"}}, "strings": contexts},
        "split-behaviours": {"overrides": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": False}, split(r"[,.]", "MergedWithNext"), split(r"\s+", "Contiguous", True),
            byte_level()]}}, "strings": contexts},
        "config-add-bos-eos": {
            "overrides": {"added_tokens": s_tokens},
            "files": {"tokenizer_config.json": {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
                                                "add_bos_token": True, "add_eos_token": True,
                                                "extra_special_tokens": ["<more>"],
                                                "tokenizer_class": "PreTrainedTokenizerFast"}},
            "strings": contexts,
        },
        "special-tokens-map": {
            "overrides": {"added_tokens": s_tokens},
            "files": {"tokenizer_config.json": {"add_bos_token": True, "tokenizer_class": "PreTrainedTokenizerFast"},
                      "special_tokens_map.json": {"bos_token": {"content": "<s>", "lstrip": False, "normalized": False,
                                                                "rstrip": False, "single_word": False},
                                                  "eos_token": "</s>", "additional_special_tokens": ["<extra>"]}},
            "strings": contexts,
        },
    }


def apply(base, overrides):
    spec = copy.deepcopy(base)
    for key, value in overrides.items():
        if key == "model":
            for model_key, model_value in value.items():
                if model_key == "merges" and model_value == "as strings":
                    spec["model"]["merges"] = [" ".join(m) for m in spec["model"]["merges"]]
                else:
                    spec["model"][model_key] = model_value
        else:
            spec[key] = value
    return spec


def main():
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    base = train_base()
    corpus = plain_corpus()[:150]
    out = {"base": base, "strings": None, "variants": {}}
    for name, variant in variants(len(base["model"]["vocab"])).items():
        spec = apply(base, variant["overrides"])
        strings = corpus + variant["strings"]
        if "files" in variant:
            with tempfile.TemporaryDirectory() as directory:
                with open(os.path.join(directory, "tokenizer.json"), "w", encoding="utf-8") as f:
                    json.dump(spec, f)
                for file_name, content in variant["files"].items():
                    with open(os.path.join(directory, file_name), "w", encoding="utf-8") as f:
                        json.dump(content, f)
                hf = AutoTokenizer.from_pretrained(directory)
                ids = [hf(s, add_special_tokens=False)["input_ids"] for s in strings]
                with_special = [hf(s, add_special_tokens=True)["input_ids"] for s in strings]
                decoded = [hf.decode(i) for i in ids]
                skipping = [hf.decode(i, skip_special_tokens=True) for i in ids]
        else:
            hf = Tokenizer.from_str(json.dumps(spec))
            ids = [hf.encode(s, add_special_tokens=False).ids for s in strings]
            with_special = [hf.encode(s, add_special_tokens=True).ids for s in strings]
            decoded = [hf.decode(i, skip_special_tokens=False) for i in ids]
            skipping = [hf.decode(i, skip_special_tokens=True) for i in ids]
        assert out["strings"] in (None, strings)
        out["strings"] = strings
        out["variants"][name] = {
            "overrides": variant["overrides"], "files": variant.get("files"), "ids": ids,
            "ids_with_special_tokens": None if with_special == ids else with_special,
            "decoded": {str(i): d for i, d in enumerate(decoded) if d != strings[i]},
            "decoded_skipping_special": {str(i): d for i, d in enumerate(skipping) if d != strings[i]},
        }
        print(name, len(strings), "strings")
    with open(FIXTURE, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=True, separators=(",", ":"))


if __name__ == "__main__":
    main()
