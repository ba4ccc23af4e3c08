"""Reference pre-tokenizations and Unicode classes from HF `tokenizers` (its regex engine is Oniguruma).

Writes into Tests/Fixtures/tokenizers/:
  pretokenize.json      for each pre-tokenizer spec (the regexes llama.cpp names for gpt2, smollm, qwen2,
                        llama-bpe and deepseek-v3, plus Split behaviours, Digits and other regex constructs), the
                        pieces HF cuts corpus strings into (all of them for the tokenizers' own patterns, those
                        under 200 bytes for the rest), as UTF-8 byte ranges encoded compactly: per string, a
                        comma-separated list where "L" is a piece of L bytes starting where the previous one
                        ended and "G+L" one of L bytes after a gap of G bytes
  unicode_classes.json  the code points Oniguruma puts in \\p{L}, \\p{N}, \\s, ... as inclusive ranges, so that
                        Swift's Unicode tables can be checked against the engine HF uses

usage: python3 scripts/reference/pretokenizer_reference.py
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from tokenizer_corpus import plain_corpus  # noqa: E402

FIXTURES = os.path.join(ROOT, "Tests", "Fixtures", "tokenizers")

GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
DEEPSEEK3 = [
    r"\p{N}{1,3}",
    r"[一-龥぀-ゟ゠-ヿ]+",
    r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
]


def split(pattern, behavior="Isolated", invert=False):
    return {"type": "Split", "pattern": {"Regex": pattern}, "behavior": behavior, "invert": invert}


def sequence(*items):
    return {"type": "Sequence", "pretokenizers": list(items)}


# name -> pre_tokenizer JSON as it appears in tokenizer.json
SPECS = {
    "gpt2": split(GPT2),
    "qwen2": split(QWEN2),
    "llama3": split(LLAMA3),
    "deepseek-v3": sequence(*[split(p) for p in DEEPSEEK3]),
    "smollm": sequence({"type": "Digits", "individual_digits": True}, split(GPT2)),
    "digits-contiguous": {"type": "Digits", "individual_digits": False},
    "removed": split(r"\s+", "Removed"),
    "merged-with-previous": split(r"[.,!?]", "MergedWithPrevious"),
    "merged-with-next": split(r" ", "MergedWithNext"),
    "contiguous": split(r"\p{P}", "Contiguous"),
    "invert-isolated": split(r"\p{L}+", "Isolated", True),
    "string-pattern": {"type": "Split", "pattern": {"String": "  "}, "behavior": "Isolated", "invert": False},
    "lazy-and-lookahead": split(r"\w+?(?=\s|$)|[^\w\s]{2,}?|\s"),
    "alternation-order": split(r"a|ab|abc|\d{2,4}|[a-c\p{Lu}]x|x{2}y{0,}z{1,2}"),
    "anchors": split(r"^\s+|\s+$|\b\w"),
}
# Regex constructs beyond the tokenizers' own patterns, each run as a Split on the corpus.
REGEX_FEATURES = [
    r"(?>a+)a|a++b|\w++", r"(?i)[a-c]+|(?i:É)|(?i:'S)", r"\h+|.", r"\A\s+|\s+\z|\s+\Z", r"[\x{4E00}-\u9FA5]+|\x41",
    r"[a[0-9]]+|[^[^x]]", r"\P{L}+|\p{^N}", r"a|", r"(a?)*", r"(?:ab|a)*b", r"x*", r"\S+?\s", r"(?:\p{Lu}\p{Ll}+)+",
    r"[-a]|[a-]|[\]]|[\\]", r"\p{Lo}{2,}|\p{Lm}|\p{Mn}+|\p{Sc}|\p{Zs}|\p{Pd}|\p{Cf}", r"(?i)\p{Lu}+",
    r"\s*\n\s*|(?!\s)\W{2}", r"\b\w+\b", r"\B.\B", r"[^\p{L}\p{N}\s]+(?=\p{L})",
]
for number, pattern in enumerate(REGEX_FEATURES):
    SPECS["regex-%02d" % number] = split(pattern)


FULL_CORPUS_SPECS = {"gpt2", "qwen2", "llama3", "deepseek-v3", "smollm", "digits-contiguous"}


def pieces(pre_tokenizer, text):
    """The pieces' UTF-8 byte ranges, encoded as described above."""
    char_to_byte = [0]
    for ch in text:
        char_to_byte.append(char_to_byte[-1] + len(ch.encode("utf-8")))
    out = []
    previous = 0
    for _, (start, end) in pre_tokenizer.pre_tokenize_str(text):
        start, end = char_to_byte[start], char_to_byte[end]
        out.append(str(end - start) if start == previous else "%d+%d" % (start - previous, end - start))
        previous = end
    return ",".join(out)


def unicode_classes():
    from tokenizers import Regex, pre_tokenizers

    scalars = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    text = "".join(map(chr, scalars))
    classes = {}
    for name in ["L", "Lu", "Ll", "Lt", "Lm", "Lo", "M", "N", "Nd", "P", "S", "Z", "C"]:
        classes["\\p{%s}" % name] = r"[^\p{%s}]+" % name
    classes.update({"\\s": r"\S+", "\\d": r"\D+", "\\w": r"\W+"})
    result = {}
    for name, complement in classes.items():
        splitter = pre_tokenizers.Split(Regex(complement), behavior="removed")
        result[name] = [[scalars[s], scalars[e - 1]] for _, (s, e) in splitter.pre_tokenize_str(text)]
    return result


def main():
    from tokenizers import Tokenizer

    corpus = plain_corpus()
    fixture = {"strings_fixture": "corpus.json", "specs": {}, "pieces": {}}
    short = [i for i, s in enumerate(corpus) if len(s.encode("utf-8")) < 200]
    for name, spec in SPECS.items():
        # A tokenizer.json shell lets HF parse the spec exactly as it parses one from a file.
        shell = {"version": "1.0", "pre_tokenizer": spec,
                 "model": {"type": "BPE", "vocab": {}, "merges": []}}
        pre = Tokenizer.from_str(json.dumps(shell)).pre_tokenizer
        fixture["specs"][name] = spec
        indices = range(len(corpus)) if name in FULL_CORPUS_SPECS else short
        fixture["pieces"][name] = {str(i): pieces(pre, corpus[i]) for i in indices}
    with open(os.path.join(FIXTURES, "pretokenize.json"), "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=True, separators=(",", ":"))
    with open(os.path.join(FIXTURES, "unicode_classes.json"), "w", encoding="utf-8") as f:
        json.dump(unicode_classes(), f, separators=(",", ":"))


if __name__ == "__main__":
    main()
