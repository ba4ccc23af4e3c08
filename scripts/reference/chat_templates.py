"""Writes the chat-template fixtures in Tests/Fixtures/chat_templates/:

  smollm2.jinja, deepseek_r1.jinja  the `tokenizer.chat_template` metadata of the two GGUF test assets
                                    (re-extracted when .assets/ holds them; see scripts/assets/fetch.sh)
  conversations.json                the conversations every template is rendered over (defined below)
  expected.json                     what transformers renders for every template x conversation x option
                                    set, or the exception it raises

The other templates (qwen3, qwen2_5, llama3_2, llama3_3, deepseek_v3) are committed copies of public
texts; SOURCES.md says where each came from. probe.jinja is Kite's own: it prints the context that
apply_chat_template builds, so that message normalisation is compared as well.

Rendering goes through transformers' own code path for apply_chat_template(tokenize=False):
`_normalize_chat_messages` (drop None fields), then `render_jinja_template`, which compiles with
transformers' environment (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
AssistantTracker, raise_exception, strftime_now, its tojson) and aliases reasoning fields. Special tokens
go in as template variables, then the extra kwargs (as `{**special_tokens_map, **kwargs}`).

    python3 scripts/reference/chat_templates.py
"""
import json
import os
import struct
import sys

import jinja2
import transformers
from transformers.utils.chat_template_utils import _normalize_chat_messages, render_jinja_template

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures", "chat_templates")
ASSETS = os.path.join(ROOT, ".assets")


def gguf_metadata(path):
    """Key/value metadata of a GGUF file, read with the gguf package's type codes. The R1 asset is only
    the first part of a split file, which gguf.GGUFReader refuses (its tensor data is cut off), so the
    header is walked here and the tensor section never touched."""
    import gguf

    scalar_formats = {
        gguf.GGUFValueType.UINT8: "<B", gguf.GGUFValueType.INT8: "<b", gguf.GGUFValueType.UINT16: "<H",
        gguf.GGUFValueType.INT16: "<h", gguf.GGUFValueType.UINT32: "<I", gguf.GGUFValueType.INT32: "<i",
        gguf.GGUFValueType.FLOAT32: "<f", gguf.GGUFValueType.BOOL: "<?", gguf.GGUFValueType.UINT64: "<Q",
        gguf.GGUFValueType.INT64: "<q", gguf.GGUFValueType.FLOAT64: "<d",
    }
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ValueError(f"{path}: not a GGUF file")
        f.read(4)  # version
        _, kv_count = struct.unpack("<QQ", f.read(16))

        def string():
            (n,) = struct.unpack("<Q", f.read(8))
            return f.read(n).decode("utf-8")

        def value(kind):
            kind = gguf.GGUFValueType(kind)
            if kind == gguf.GGUFValueType.STRING:
                return string()
            if kind == gguf.GGUFValueType.ARRAY:
                element, count = struct.unpack("<IQ", f.read(12))
                return [value(element) for _ in range(count)]
            fmt = scalar_formats[kind]
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        metadata = {}
        for _ in range(kv_count):
            key = string()
            (kind,) = struct.unpack("<I", f.read(4))
            metadata[key] = value(kind)
        return metadata


def extract_gguf_templates():
    for asset, fixture in [
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2.jinja"),
        ("DeepSeek-R1-Distill-Qwen-7B-part-0000.gguf", "deepseek_r1.jinja"),
    ]:
        path = os.path.join(ASSETS, asset)
        if not os.path.exists(path):
            print(f"{asset} not in .assets/, keeping the committed {fixture}", file=sys.stderr)
            continue
        template = gguf_metadata(path)["tokenizer.chat_template"]
        with open(os.path.join(FIXTURES, fixture), "w", encoding="utf-8", newline="") as f:
            f.write(template)


# Special tokens as each model's tokenizer config / GGUF metadata names them.
TEMPLATES = {
    "smollm2": {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "unk_token": "<|endoftext|>", "pad_token": "<|im_end|>"},
    "deepseek_r1": {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>", "pad_token": "<|vision_pad|>"},
    "deepseek_v3": {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>"},
    "qwen3": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "qwen2_5": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "llama3_2": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "llama3_3": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    # Kite's own probe: prints the context apply_chat_template builds (see probe.jinja).
    "probe": {"bos_token": "<s>", "eos_token": "</s>"},
}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city — in °C or °F.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. \"Paris\""},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
CALC_TOOL = {
    "type": "function",
    "function": {
        "name": "calculate",
        "description": "Evaluate an arithmetic expression.",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string"}, "precision": {"type": "integer", "default": 2}},
            "required": ["expression"],
        },
    },
}
SYSTEM = {"role": "system", "content": "You are a careful assistant. Answer briefly."}


def call(name, arguments, call_id=None):
    c = {"type": "function", "function": {"name": name, "arguments": arguments}}
    if call_id:
        c["id"] = call_id
    return c


# name -> (messages, tools or None)
CONVERSATIONS = {
    "user_only": ([{"role": "user", "content": "What is the capital of France?"}], None),
    "system_user": ([SYSTEM, {"role": "user", "content": "Hi!"}], None),
    "multi_turn": ([
        SYSTEM,
        {"role": "user", "content": "Name a prime number."},
        {"role": "assistant", "content": "7"},
        {"role": "user", "content": "And one larger than 100?"},
    ], None),
    "multi_turn_no_system": ([
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "3*3?"},
        {"role": "assistant", "content": "9"},
        {"role": "user", "content": "10/4?"},
    ], None),
    "ends_with_assistant": ([
        {"role": "user", "content": "Say hello."},
        {"role": "assistant", "content": "Hello!"},
    ], None),
    "think_in_content": ([
        {"role": "user", "content": "What is 17*3?"},
        {"role": "assistant", "content": "<think>\n17*3 = 51.\n</think>\n\nThe answer is 51."},
        {"role": "user", "content": "And 17*4?"},
    ], None),
    "think_last_turn": ([
        SYSTEM,
        {"role": "user", "content": "Is 91 prime?"},
        {"role": "assistant", "content": "<think>\n91 = 7 * 13.\n</think>\n\nNo, 91 = 7 × 13."},
    ], None),
    "reasoning_content_field": ([
        {"role": "user", "content": "Pick a color."},
        {"role": "assistant", "content": "Blue.", "reasoning_content": "The user wants any color; blue is fine."},
        {"role": "user", "content": "Why?"},
    ], None),
    "think_close_only": ([
        {"role": "user", "content": "Quick: 2**10?"},
        {"role": "assistant", "content": "2**10 is 1024.\n</think>\n\n1024"},
        {"role": "user", "content": "Thanks"},
    ], None),
    "tools_offered": ([SYSTEM, {"role": "user", "content": "What's the weather in Paris?"}], [WEATHER_TOOL, CALC_TOOL]),
    "tools_no_system": ([{"role": "user", "content": "Compute 3/7 to 4 places."}], [CALC_TOOL]),
    "tool_call_dict_args": ([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [call("get_weather", {"city": "Paris", "unit": "celsius"}, "call_1")]},
        {"role": "tool", "content": "{\"temperature\": 21.5, \"sky\": \"clear\"}", "tool_call_id": "call_1"},
        {"role": "assistant", "content": "It is 21.5 °C and clear in Paris."},
    ], [WEATHER_TOOL]),
    "tool_call_string_args": ([
        SYSTEM,
        {"role": "user", "content": "Compute 2^0.5"},
        {"role": "assistant", "content": "", "tool_calls": [call("calculate", "{\"expression\": \"2**0.5\", \"precision\": 3}")]},
        {"role": "tool", "content": "1.414"},
    ], [CALC_TOOL]),
    "tool_call_content_null": ([
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [call("get_weather", "{\"city\": \"Oslo\"}")]},
        {"role": "tool", "content": "-3 degrees, snow"},
    ], [WEATHER_TOOL]),
    "tool_call_with_text": ([
        {"role": "user", "content": "Weather in Rome, please."},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [call("get_weather", {"city": "Rome"})]},
        {"role": "tool", "content": "sunny, 28"},
        {"role": "assistant", "content": "Sunny and 28 degrees."},
        {"role": "user", "content": "And tomorrow?"},
    ], [WEATHER_TOOL]),
    "parallel_tool_calls": ([
        {"role": "user", "content": "Weather in Paris and Berlin?"},
        {"role": "assistant", "content": "", "tool_calls": [
            call("get_weather", {"city": "Paris"}), call("get_weather", {"city": "Berlin", "unit": "fahrenheit"})]},
        {"role": "tool", "content": "Paris: 20"},
        {"role": "tool", "content": "Berlin: 64"},
        {"role": "assistant", "content": "Paris is 20 °C; Berlin is 64 °F."},
    ], [WEATHER_TOOL]),
    "tool_args_numbers": ([
        {"role": "user", "content": "Round pi."},
        {"role": "assistant", "content": "", "tool_calls": [call("calculate", {"expression": "pi", "precision": 2, "scale": 1.0,
            "epsilon": 2.5e-7, "big": 12345678901234, "flags": [True, False, None], "nested": {"a": [1, 2.5], "b": {}}})]},
        {"role": "tool", "content": "3.14"},
    ], [CALC_TOOL]),
    "thinking_with_tools": ([
        {"role": "user", "content": "Is it warm in Cairo?"},
        {"role": "assistant", "content": "<think>\nI should look it up.\n</think>\n\n", "tool_calls": [call("get_weather", {"city": "Cairo"})]},
        {"role": "tool", "content": "35 degrees"},
        {"role": "assistant", "content": "<think>\n35 is warm.\n</think>\n\nYes, 35 °C."},
    ], [WEATHER_TOOL]),
    "tool_response_in_user": ([
        {"role": "user", "content": "Find the weather."},
        {"role": "assistant", "content": "<think>\nCalling the tool.\n</think>\n\nChecking."},
        {"role": "user", "content": "<tool_response>\nrainy\n</tool_response>"},
    ], None),
    "unicode_and_escapes": ([
        {"role": "system", "content": "Réponds en français. 日本語も OK. Emoji: 😀. Quotes: \"double\" and 'single'. Backslash: \\n stays."},
        {"role": "user", "content": "  Leading and trailing spaces  \n\n"},
        {"role": "assistant", "content": "Tab\there, e\u0301 (combining), zero-width\u200bspace."},
        {"role": "user", "content": "{{ not a template }} {% neither %}"},
    ], None),
    "two_system_messages": ([
        {"role": "system", "content": "First system."},
        {"role": "system", "content": "Second system."},
        {"role": "user", "content": "Hello"},
    ], None),
    "empty_contents": ([
        {"role": "system", "content": ""},
        {"role": "user", "content": ""},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "?"},
    ], None),
    "system_only": ([SYSTEM], None),
    "long_conversation": ([SYSTEM] + [
        m for i in range(10) for m in (
            {"role": "user", "content": f"Question {i}: what is {i} squared?"},
            {"role": "assistant", "content": f"<think>\n{i}*{i} = {i * i}\n</think>\n\n{i * i}" if i % 3 == 0 else f"{i * i}"},
        )
    ] + [{"role": "user", "content": "Sum them all."}], None),
}

# Option sets per template: add_generation_prompt both ways, plus template-specific kwargs.
def option_sets(template):
    sets = [{"add_generation_prompt": False, "extra": {}}, {"add_generation_prompt": True, "extra": {}}]
    if template == "qwen3":
        for thinking in (True, False):
            sets += [{"add_generation_prompt": agp, "extra": {"enable_thinking": thinking}} for agp in (False, True)]
    if template.startswith("llama3"):
        # Without date_string the Llama 3.2 template calls strftime_now(): pin the date instead.
        for s in sets:
            s["extra"] = {"date_string": "26 Jul 2024"}
        sets.append({"add_generation_prompt": True, "extra": {"date_string": "26 Jul 2024", "tools_in_user_message": False}})
    if template == "probe":
        sets.append({"add_generation_prompt": False, "extra": {"enable_thinking": False, "eos_token": "<override>"}})
    if template == "deepseek_r1":
        sets.append({"add_generation_prompt": True, "extra": {"bos_token": "<BOS>"}})
    return sets


def render(template_text, messages, tools, add_generation_prompt, special_tokens, extra):
    chat = _normalize_chat_messages(messages)
    kwargs = {**special_tokens, **extra}
    try:
        rendered, _ = render_jinja_template(
            conversations=[chat], tools=tools, documents=None, chat_template=template_text,
            add_generation_prompt=add_generation_prompt, **kwargs)
        return {"output": rendered[0]}
    except Exception as e:  # the Swift test expects the same failure
        return {"error_type": type(e).__name__, "error": str(e)}


def main():
    extract_gguf_templates()
    with open(os.path.join(FIXTURES, "conversations.json"), "w", encoding="utf-8") as f:
        json.dump({name: {"messages": m, "tools": t} for name, (m, t) in CONVERSATIONS.items()}, f, ensure_ascii=False, indent=1)
    cases = []
    for template in TEMPLATES:
        with open(os.path.join(FIXTURES, template + ".jinja"), encoding="utf-8", newline="") as f:
            text = f.read()
        for name, (messages, tools) in CONVERSATIONS.items():
            for options in option_sets(template):
                result = render(text, messages, tools, options["add_generation_prompt"], TEMPLATES[template], options["extra"])
                cases.append({"template": template, "conversation": name, "add_generation_prompt": options["add_generation_prompt"],
                              "extra_context": options["extra"], "special_tokens": TEMPLATES[template], **result})
    with open(os.path.join(FIXTURES, "expected.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": f"transformers {transformers.__version__}, jinja2 {jinja2.__version__}", "cases": cases},
                  f, ensure_ascii=False, indent=0)
    errors = sum("error" in c for c in cases)
    print(f"{len(cases)} cases ({errors} raise) over {len(TEMPLATES)} templates and {len(CONVERSATIONS)} conversations")


if __name__ == "__main__":
    main()
