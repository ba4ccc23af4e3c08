"""HF `tokenizers` (Rust) throughput on Kite's tokenizer corpus, one thread, for comparison with
`TokenizerBenchmark.run` (`kite bench tokenizer`) on the same corpus and tokenizer.json.

usage: python3 scripts/reference/tokenizer_throughput.py [TOKENIZER_DIR ...]
       (default: .assets/tokenizers/smollm2 and .assets/tokenizers/r1, made by tokenizers_reference.py)
Prints MB/s for `encode` called per string, for one `encode_batch` over the corpus, and for `encode` of the
corpus joined by newlines into one document (per-call overhead out of the way), median of passes.
Kite's numbers for the same three: `TokenizerBenchmark.run(tokenizer:corpus:)` with the corpus, and with
`[corpus.joined(separator: "\n")]` for the document.
"""
import json
import os
import sys
import time

# One thread: set before tokenizers starts its thread pool.
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

from tokenizers import Tokenizer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def median_seconds(body, minimum_seconds=2.0):
    body()  # warm-up (fills HF's word cache, as Kite's run does its warm-up pass)
    times = []
    start = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < minimum_seconds:
        t0 = time.perf_counter()
        body()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def main():
    with open(os.path.join(ROOT, "Tests", "Fixtures", "tokenizers", "corpus.json"), encoding="utf-8") as f:
        corpus = json.load(f)["strings"]
    size = sum(len(s.encode("utf-8")) for s in corpus)
    dirs = sys.argv[1:] or [os.path.join(ROOT, ".assets", "tokenizers", n) for n in ("smollm2", "r1")]
    print(f"corpus: {len(corpus)} strings, {size} bytes")
    for directory in dirs:
        tokenizer = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
        single = median_seconds(lambda: [tokenizer.encode(s, add_special_tokens=False) for s in corpus])
        batch = median_seconds(lambda: tokenizer.encode_batch(corpus, add_special_tokens=False))
        document = "\n".join(corpus)
        whole = median_seconds(lambda: tokenizer.encode(document, add_special_tokens=False))
        print(f"{os.path.basename(directory)}: encode {size / single / 1e6:.2f} MB/s, "
              f"encode_batch {size / batch / 1e6:.2f} MB/s, "
              f"document {len(document.encode('utf-8')) / whole / 1e6:.2f} MB/s")


if __name__ == "__main__":
    main()
