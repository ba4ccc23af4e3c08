"""A reward program for Kite's tests, speaking --custom-rm-cmd's JSON lines: the reward is the fraction of the
response's characters that are digits (graded, so random responses get different rewards). With the argument
`hang` it never answers; with `crash-after N` it exits after answering N requests."""
import json, sys, time

mode = sys.argv[1] if len(sys.argv) > 1 else ""
answered = 0
for line in sys.stdin:
    request = json.loads(line)
    if mode == "hang":
        time.sleep(3600)
    if mode == "crash-after" and answered >= int(sys.argv[2]):
        sys.exit(3)
    response = request.get("response", "")
    reward = sum(c.isdigit() for c in response) / max(len(response), 1)
    print(json.dumps({"id": request["id"], "reward": reward}), flush=True)
    answered += 1
