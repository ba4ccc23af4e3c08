"""Writes Tests/Fixtures/json/dumps.json: documents and what Python's json.dumps makes of them
under the option sets Kite's JSON writer mirrors (transformers' `tojson` filter calls json.dumps)."""
import json, os

documents = [
    {"name": "x", "n": 1, "f": 1.5, "list": [1, 2.0, None, True, False], "nested": {"b": [], "a": {}}},
    [1e15, 1e16, 1e-4, 1e-5, 0.1, -0.0, 3.141592653589793, 1e300, 5e-324, 123456789012345678.0, 2.5e-7, 100.0],
    ["caf\u00e9", "\u65e5\u672c\u8a9e", "emoji \U0001F600", "tab\tnew\nline\r", "quote\" back\\ slash /", "\x01\x1f\x7f"],
    {"zeta": 1, "alpha": 2, "Mid": 3, "\u00e9": 4},
    {"type": "function", "function": {"name": "get_weather", "description": "Get the weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    [[], {}, [[]], [{}], ""],
    9007199254740993,
    -17,
    "plain",
]
option_sets = {
    "default": {},
    "utf8": {"ensure_ascii": False},
    "indent2": {"indent": 2},
    "indent4_utf8_sorted": {"indent": 4, "ensure_ascii": False, "sort_keys": True},
    "compact": {"ensure_ascii": False, "separators": (",", ":")},
}
cases = []
for doc in documents:
    text = json.dumps(doc, ensure_ascii=False)
    cases.append({"input": text, "outputs": {name: json.dumps(doc, **opts) for name, opts in option_sets.items()}})
out = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "Fixtures", "json", "dumps.json")
with open(out, "w", encoding="utf-8") as f:
    json.dump(cases, f, ensure_ascii=False, indent=1)
