"""Writes Tests/Fixtures/chat_templates/differential.json: mutants of the reference snippets and of the
real chat templates (spans deleted, duplicated or swapped, Jinja fragments inserted) that jinja2
compiles, with what transformers' environment renders for them (or the exception it raises). Snippet
mutants render with the snippet context, template mutants with a chat context (messages with tool calls
and reasoning, tools, special tokens). The Swift test renders the same mutants and compares; random
mutants reach corners of the semantics that hand-written snippets miss.

    python3 scripts/reference/jinja_differential.py [count [seed [output]]]
"""
import json
import os
import random
import re
import sys

import jinja2
from transformers.utils.chat_template_utils import _compile_jinja_template

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "..", "Tests", "Fixtures", "chat_templates")

FRAGMENTS = [
    "{{ ", " }}", "{% if ", " %}", "{% endif %}", "{% for x in l %}", "{% endfor %}", "{% else %}", " else ", " if ",
    " and ", " or ", " not ", " in ", " is defined", " is none", " is string", " is iterable", "|length", "|first",
    "|last", "|join(',')", "|list", "|tojson", "|trim", "|default('d')", "|upper", "|reverse", "|sort", "|unique",
    "|string", "|int", "|float", "|map(attribute='role')", "|selectattr('role', 'equalto', 'user')", "~", " + ", " - ",
    " * ", " // ", " % ", " / ", "**", " == ", " != ", " < ", " >= ", "[0]", "[-1]", "[1:]", "[::-1]", ".strip()",
    ".split(',')", ".upper()", ".startswith('H')", ".get('a')", ".items()", "loop.index", "loop.last", "loop.previtem",
    "namespace(a=1)", "range(3)", "(1, 2)", "[1, 'a']", "{'k': 2}", "none", "true", "1.5", "'s'", "s", "n", "f", "l", "d",
    "msgs", "people", "text", "uni", "z", "nope", "\n", "  ", "-", "(", ")", "[", "]", ",", ":", ".", "|",
]


def mutate(rng, text, seeds):
    for _ in range(rng.randint(1, 3)):
        n = len(text)
        a = rng.randint(0, n)
        b = min(n, a + rng.randint(0, 12))
        op = rng.randrange(6)
        if op == 0:
            text = text[:a] + text[b:]
        elif op == 1:
            c = rng.randint(0, n)
            text = text[:c] + text[a:b] + text[c:]
        elif op == 2:
            c = rng.randint(0, n)
            d = min(n, c + rng.randint(0, 12))
            if b <= c:
                text = text[:a] + text[c:d] + text[b:c] + text[a:b] + text[d:]
        elif op in (3, 4):
            text = text[:a] + rng.choice(FRAGMENTS) + text[a:]
        else:
            other = rng.choice(seeds)
            c = rng.randint(0, len(other))
            text = text[:a] + other[c:c + rng.randint(1, 30)] + text[a:]
    return text


ADDRESS = re.compile(r"0x[0-9a-f]{6,}", re.IGNORECASE)


def has_address(text):
    # also when a repr was split into characters (`list(...)`)
    return ADDRESS.search(text) or ADDRESS.search(text.replace("', '", ""))


def folds_item_access(environment, source):
    """Whether jinja2 evaluates, at compile time, a `{{ }}` expression that reads items or attributes of
    constants: it does so even unoptimised, through the sandbox's lenient getitem (an error there
    becomes undefined instead of being raised)."""
    from jinja2 import nodes

    try:
        tree = environment.parse(source)
    except Exception:
        return False
    context = nodes.EvalContext(environment)
    for output in tree.find_all(nodes.Output):
        for child in output.nodes:
            if isinstance(child, nodes.TemplateData):
                continue
            if not any(True for _ in child.find_all((nodes.Getitem, nodes.Getattr))):
                continue
            try:
                child.as_const(context)
                return True
            except Exception:
                pass
    return False


def run(template, context):
    try:
        output = template.render(**context)
        return None if has_address(output) else {"output": output}
    except Exception as e:
        if has_address(str(e)) or isinstance(e, (RecursionError, NameError)):
            return None
        return {"error_type": type(e).__name__, "error": str(e)}


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 20261125
    destination = sys.argv[3] if len(sys.argv) > 3 else os.path.join(FIXTURES, "differential.json")
    with open(os.path.join(FIXTURES, "snippets.json"), encoding="utf-8") as f:
        snippets = json.load(f)
    with open(os.path.join(FIXTURES, "conversations.json"), encoding="utf-8") as f:
        conversation = json.load(f)["thinking_with_tools"]
    contexts = {
        "snippet": snippets["context"],
        "chat": {"messages": conversation["messages"], "tools": conversation["tools"], "documents": None,
                 "add_generation_prompt": True, "bos_token": "<s>", "eos_token": "</s>", "enable_thinking": False,
                 "date_string": "26 Jul 2024"},
    }
    seeds = [c["template"] for c in snippets["cases"]]
    templates = []
    for name in sorted(os.listdir(FIXTURES)):
        if name.endswith(".jinja") and name != "probe.jinja":
            with open(os.path.join(FIXTURES, name), encoding="utf-8", newline="") as f:
                templates.append(f.read())
    rng = random.Random(seed)
    # Chat-template mutants are long; a small share keeps the committed fixture small.
    chat_share = float(os.environ.get("KITE_DIFFERENTIAL_CHAT_SHARE", "0.06"))
    cases = []
    seen = set()
    attempts = 0
    while len(cases) < count and attempts < count * 50:
        attempts += 1
        kind = "chat" if rng.random() < chat_share else "snippet"
        source = rng.choice(templates if kind == "chat" else seeds)
        mutant = mutate(rng, source, seeds)
        if mutant in seen or len(mutant) > (6000 if kind == "chat" else 600):
            continue
        seen.add(mutant)
        try:
            template = _compile_jinja_template(mutant)
            environment = template.environment
        except (jinja2.TemplateSyntaxError, SyntaxError):
            if rng.random() < 0.15:  # keep a few: both must reject them
                cases.append({"template": mutant, "context": kind, "error_type": "TemplateSyntaxError"})
            continue
        except Exception:
            continue
        outcome = run(template, contexts[kind])
        # Object addresses cannot be compared; NameError comes from jinja2 folding a constant such as
        # float('nan') into generated Python code, an artifact of its compiler.
        if outcome is None:
            continue
        case = {"template": mutant, "context": kind, **outcome}
        # jinja2 folds constant subexpressions at compile time, which can change an outcome (slicing a
        # literal number gives undefined instead of an error; a folded-away branch hides an unknown
        # test). Kite evaluates everything at render time, as jinja2 does with `optimized=False`;
        # such cases are marked and counted separately. So are outputs that depend on Markup.
        environment.optimized = False
        try:
            unoptimized = run(environment.from_string(mutant), contexts[kind])
        except Exception:
            unoptimized = None
        finally:
            environment.optimized = True
        if unoptimized != outcome or folds_item_access(environment, mutant):
            case["constant_folding"] = True
        if "Markup" in json.dumps(outcome):
            case["markup"] = True
        cases.append(case)
    with open(destination, "w", encoding="utf-8") as f:
        json.dump({"seed": seed, "contexts": contexts, "cases": cases}, f, ensure_ascii=False, indent=0)
    print(f"{len(cases)} mutants ({sum('output' in c for c in cases)} render, {sum('error' in c for c in cases)} raise)")


if __name__ == "__main__":
    main()
