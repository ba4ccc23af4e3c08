"""A --custom-rm-cmd reward program: 1 when the last integer in the response equals the label, else 0.
Chat models answer "57 + 22 = 79." rather than "79", which the built-in `arithmetic` checker (exact match)
scores 0. Protocol: one JSON request per line on stdin ({"id", "prompt", "response", "label", ...}), one
{"id", "reward"} per line on stdout."""
import json
import re
import sys

for line in sys.stdin:
    request = json.loads(line)
    numbers = re.findall(r"-?\d+", request.get("response", "").replace(",", ""))
    label = str(request.get("label", "")).strip()
    reward = 1.0 if numbers and numbers[-1].lstrip("0") == label.lstrip("0") else 0.0
    print(json.dumps({"id": request["id"], "reward": reward}), flush=True)
