"""Client and comparison for serve-smoke.sh.

  serve_compare.py request URL OUT.json   waits for /health, sends the greedy requests, writes the answers
  serve_compare.py compare DIR            compares the answers' log-probs while the generated tokens agree,
                                          normwise relative as `kite bench cuda-parity` measures: GPU fp32 must
                                          give the CPU's tokens and log-probs within 1e-4; GPU bf16 within 1e-2;
                                          the fp8 checkpoint served on the GPU (fp8 products, activations rounded
                                          to e4m3) against the CPU (dequantised weights) within 1e-1, the bound of
                                          cuda-parity's fp8 engine row (a greedy start compares few tokens)
"""
import math
import json
import sys
import time
import urllib.request

PROMPTS = [[1, 5, 9, 20, 33], [7, 7, 7, 2], list(range(3, 40))]


def post(url, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def request(url, out):
    for _ in range(600):
        try:
            urllib.request.urlopen(url + "/health", timeout=2)
            break
        except Exception:
            time.sleep(0.5)
    else:
        raise SystemExit(f"{url}: no /health after 300 s")
    answers = []
    for prompt in PROMPTS:
        answers.append(post(url + "/generate", {"input_ids": prompt, "return_logprob": True,
                                               "sampling_params": {"max_new_tokens": 12, "temperature": 0}}))
    with open(out, "w") as f:
        json.dump(answers, f)
    print(url, "answered", len(answers), "requests")


def tokens_and_logprobs(answer):
    logprobs = [entry[0] for entry in answer["meta_info"]["output_token_logprobs"]]
    return answer["output_ids"], logprobs


def compare(directory):
    def load(name):
        with open(f"{directory}/answer-{name}.json") as f:
            return [tokens_and_logprobs(a) for a in json.load(f)]
    failures = 0
    for reference, name, same_tokens, bound in [("cpu", "cuda-fp32", True, 1e-4), ("cpu", "cuda-bf16", False, 1e-2),
                                                ("fp8-cpu", "fp8-cuda", False, 1e-1)]:
        try:
            ours, theirs = load(name), load(reference)
        except FileNotFoundError as error:
            print(f"FAIL {name}: {error}")
            failures += 1
            continue
        equal = sum(a[0] == b[0] for a, b in zip(ours, theirs))
        # Log-probs compared while the two sequences agree (after a different token they score different text).
        worst = squared = norm = 0.0
        compared = 0
        for (tokens, logprobs), (ref_tokens, ref_logprobs) in zip(ours, theirs):
            for t, r, lp, rlp in zip(tokens, ref_tokens, logprobs, ref_logprobs):
                worst = max(worst, abs(lp - rlp))
                squared += (lp - rlp) ** 2
                norm += rlp ** 2
                compared += 1
                if t != r:
                    break
        error = math.sqrt(squared / norm) if norm > 0 else float("inf")
        ok = error <= bound and (equal == len(theirs) or not same_tokens)
        failures += not ok
        print(f"{'PASS' if ok else 'FAIL'} {name} vs {reference}: {equal}/{len(theirs)} token sequences equal; log-probs of "
              f"{compared} tokens: relative error {error:.2e} (bound {bound:g}), max |difference| {worst:.2e}")
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    if sys.argv[1] == "request":
        request(sys.argv[2], sys.argv[3])
    else:
        compare(sys.argv[2])
