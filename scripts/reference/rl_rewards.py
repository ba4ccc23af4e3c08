#!/usr/bin/env python3
"""Graded-answer tables for KiteRL's RewardHub, scored by slime's own reward code.

Imports `slime/rollout/rm_hub/{math_utils,deepscaler,math_dapo_utils,f1,gpqa}.py` from a checkout of
THUDM/slime (the package `__init__` is skipped: it only adds remote/async plumbing) and runs every case
through them, exactly as `rm_hub.async_rm` calls them:
  deepscaler: get_deepscaler_rule_based_reward(response, label)
  dapo:       compute_score(response, label)          (the dict; errors recorded as "error")
  math:       1 if grade_answer_verl(response, label) else 0
  f1:         f1_score(response, label)[0]
  gpqa:       compute_gpqa_reward(response, label, metadata=metadata)
Needs `sympy` and `pylatexenc` (pip install pylatexenc), as slime does.

Usage: SLIME_SRC=/path/to/slime-checkout python3 scripts/reference/rl_rewards.py
Writes Tests/Fixtures/rl/rewards.json.
"""

import copy
import importlib
import json
import os
import sys
import types
from pathlib import Path

SLIME_SRC = os.environ.get("SLIME_SRC", "/tmp/slime")
OUT = Path(__file__).resolve().parents[2] / "Tests" / "Fixtures" / "rl" / "rewards.json"

package = types.ModuleType("rm_hub")
package.__path__ = [os.path.join(SLIME_SRC, "slime", "rollout", "rm_hub")]
sys.modules["rm_hub"] = package
math_utils = importlib.import_module("rm_hub.math_utils")
deepscaler = importlib.import_module("rm_hub.deepscaler")
dapo = importlib.import_module("rm_hub.math_dapo_utils")
f1 = importlib.import_module("rm_hub.f1")
gpqa = importlib.import_module("rm_hub.gpqa")

# (answer as the model writes it, label): right, wrong, equal in other formats, and traps.
ANSWER_PAIRS = [
    ("3", "3"), ("5", "6"), ("\\frac{1}{2}", "\\frac12"), ("0.5", "\\frac{1}{2}"), ("1/2", "\\frac{1}{2}"),
    ("\\dfrac{3}{4}", "\\frac{3}{4}"), ("\\tfrac{3}{4}", "3/4"), ("2\\sqrt{3}", "2\\sqrt3"), ("\\sqrt{12}", "2\\sqrt{3}"),
    ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}"), ("10\\%", "10"), ("\\$5", "5"), ("5 \\text{ cm}", "5"),
    ("90^\\circ", "90"), ("90^{\\circ}", "90"), ("x = 5", "5"), ("k=7", "7"), ("\\left( 1, 2 \\right)", "(1,2)"),
    ("(1, 2)", "(1,2)"), ("[1, 2)", "[1,2)"), ("(1,2]", "[1,2]"), ("1,000", "1000"), ("1{,}000", "1000"),
    ("1,000,000", "1000000"), ("\\text{Monday}", "Monday"), ("monday", "Monday"), ("2\\pi", "2\\pi"), ("\\pi", "3.14"),
    ("6.28", "2\\pi"), ("3.0", "3"), ("3.00", "3"), ("-3", "-3"), ("- 3", "-3"), ("+3", "3"), ("03", "3"),
    ("x^2+2x+1", "(x+1)^2"), ("2x+2", "2(x+1)"), ("x^{2}", "x^2"), ("\\frac{x}{2}", "0.5x"), ("7 3/4", "31/4"),
    ("\\frac{2}{4}", "\\frac{1}{2}"), ("2/4", "1/2"), ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}"), ("1e3", "1000"),
    ("1000000", "1 million"), ("\\infty", "\\infty"), ("-\\infty", "\\infty"), ("(-\\infty, 3)", "(-\\infty,3)"),
    ("\\{1,2\\}", "\\{1, 2\\}"), ("12", "12.5"), ("\\frac{1}{3}", "0.333"), ("0.333", "1/3"),
    ("\\frac{1}{3}", "0.3333333333333333"), ("\\frac{1}{4}", "0.25"), ("25\\%", "0.25"), ("a", "A"), ("B", "b"),
    ("\\text{(A)}", "A"), ("x \\in [2, 5]", "[2,5]"), ("\\sqrt{8}", "2\\sqrt{2}"), ("\\sqrt{3}+1", "1+\\sqrt{3}"),
    ("\\frac{1+\\sqrt{5}}{2}", "\\frac{1 + \\sqrt 5}{2}"), ("\\frac{x+1}{x-1}", "\\frac{x-1}{x+1}"), ("3x", "3*x"),
    ("y=2x+3", "2x+3"), ("f(x)=x^2", "x^2"), ("\\dfrac{1}{2}", "\\frac{1}{2}"), ("\\frac12", "0.5"), (".5", "0.5"),
    ("50", "50.0"), ("\\mathrm{5}", "5"), ("\\textbf{5}", "5"), ("5\\text{ meters}", "5"), ("5 meters", "5"),
    ("5 miles per hour", "5"), ("12 inches", "1 foot"), ("2 hours", "2"), ("\\$1,000", "1000"), ("1,000.50", "1000.5"),
    ("(1,2,3)", "(1, 2, 3)"), ("(3,1)", "(1,3)"), ("[0,1]", "(0,1)"), ("-\\frac{1}{2}", "-0.5"),
    ("\\frac{-1}{2}", "-\\frac{1}{2}"), ("2^{10}", "1024"), ("\\pi/2", "\\frac{\\pi}{2}"), ("90", "\\frac{\\pi}{2}"),
    ("\\sqrt{2}", "1.414"), ("", "5"), ("{5}", "5"), ("\\boxed{5}", "5"), ("99999999999999999999", "1e20"),
    ("\\frac{3}{2}", "1.5"), ("1\\frac{1}{2}", "\\frac{3}{2}"), ("\\sqrt{2}\\cdot\\sqrt{2}", "2"), ("2 \\times 3", "6"),
    ("x+y", "y+x"), ("xy", "yx"), ("\\frac{1}{x}", "x^{-1}"), ("2^{-1}", "\\frac{1}{2}"), ("\\sqrt{x^2}", "x"),
    ("(x+1)(x-1)", "x^2-1"), ("\\pi r^2", "r^2\\pi"), ("-0", "0"), ("0.1", "\\frac{1}{10}"), ("4\\sqrt{2}", "\\sqrt{32}"),
    ("\\frac{\\pi}{4}", "0.785"), ("3\\frac{1}{3}", "\\frac{10}{3}"), ("1.5\\%", "1.5"), ("\\text{yes}", "Yes"),
    ("10^6", "1000000"), ("2\\times10^3", "2000"), ("5!", "120"), ("\\ln 2", "\\ln(2)"), ("\\sin x", "\\sin(x)"),
    ("3 + 4i", "3+4i"), ("\\alpha", "\\alpha"), ("\\frac{1}{0}", "\\frac{2}{0}"), ("0.1+0.2", "0.3"),
]

# deepscaler: the response around the answer, and structural traps.
DEEPSCALER_CASES = [(f"<think>Let me work it out.</think> The answer is $\\boxed{{{a}}}$.", label) for a, label in ANSWER_PAIRS] + [
    ("\\boxed{5}", "5"),  # no </think>: 0
    ("<think>thinking \\boxed{5}</think> so the answer is five", "5"),  # box only inside the thought
    ("###Response The answer is \\boxed{5}", "5"),
    ("###Response first \\boxed{5} ###Response second \\boxed{6}", "6"),  # split(...)[1]: the first segment
    ("<think>a</think>\\boxed{4}</think>\\boxed{5}", "5"),  # after the last </think>
    ("<think>x</think> \\boxed{5", "5"),  # unclosed
    ("<think>x</think> \\boxed 5", "5"),
    ("<think>x</think> \\fbox{5}", "5"),
    ("<think>x</think> \\boxed{5} and \\boxed{6}", "6"),
    ("<think>x</think> \\boxed{5} and \\boxed{6}", "5"),
    ("<think>x</think> \\boxed{\\frac{1}{2}}", "0.5"),
    ("<think>x</think> \\boxed{{5}}", "5"),
    ("<think>x</think> \\boxed{\\boxed{5}}", "5"),
    ("<think>x</think> \\boxed{}", "5"),
    ("<think>x</think> \\boxed{5\\}", "5"),
    ("<think>x</think> \\boxed{\\frac{1}{2}", "\\frac{1}{2}"),
    ("<think>x</think> \\boxed{5}", "\\boxed{5}"),
    ("<think>x</think> \\boxed{5}", "\\boxed{5"),
    ("<think>x</think> \\boxed{5}", ""),
    ("<think>x</think> \\boxed{5}", 5),
    ("<think>x</think> \\boxed{0.5}", 0.5),
    ("<think>x</think> \\boxed{3}", 3.0),
    ("<think>x</think>\n\n**Final answer:** $\\boxed{\\dfrac{7}{12}}$", "\\frac{7}{12}"),
    ("<think>x</think> \\boxed{(2, 3)}", "(2,3)"),
    ("<think>x</think> \\boxed{x=\\frac{3}{2}}", "\\frac32"),
]

DAPO_CASES = [
    ("Answer: 34", "34"), ("answer: 34", "34"), ("ANSWER:34", "34"), ("The final Answer: 34", "34"),
    ("Answer: $34$", "34"), ("Answer: \\boxed{34}", "34"), ("Answer: 34.", "34"), ("Answer: 34 dollars", "34"),
    ("Answer: x = 34", "34"), ("Answer: 3,400", "3400"), ("Answer: 34\nmore text", "34"), ("Answer: 34 Answer: 35", "35"),
    ("Answer: 12\nAnswer: 34", "34"), ("Answer:\n34", "34"), ("The result is 34.", "34"), ("Answer: \\frac{68}{2}", "34"),
    ("Answer: 34.0", "34"), ("Answer: -5", "-5"), ("Answer: 5", "5.0"), ("Answer: 1000", "1e3"), ("Answer: 34", 34),
    ("Answer: 34", 34.0), ("Answer: 34", "abc"), ("Answer: 34", "\\frac{1}{2}"), ("x" * 400 + "\nAnswer: 34", "34"),
    ("Answer: 34\n" + "y" * 400, "34"), ("Answer: ３４", "34"), ("Answer: 34^\\circ", "34"), ("Answer: \\text{34}", "34"),
    ("Answer: 34 <|im_end|>", "34"), ("Answer: 1,234", "1234"), ("Answer: $34$ and $35$", "34"),
    ("Answer: 34 \\text{ways}", "34"), ("Answer: a 34", "34"), ("Answer: 034", "34"), ("Answer: 35", "34"),
    ("Answer: \\boxed{34} is it", "34"), ("Answer: \\textbf{34}", "34"), ("Answer: \\overline{34}", "34"),
    ("Answer: 34 cm", "34"), ("Answer: 34 degrees", "34"), ("Answer: 34 \\;", "34"), ("Answer: 34,\\!000", "34000"),
    ("Answer: 34{,}000", "34000"), ("Answer: \"34\"", "34"), ("Answer: 34 \\dots", "34"), ("Answer: y = 2 = 34", "34"),
    ("Answer: 34 units", "34"), ("Answer: 34\\%", "34"), ("Answer: \\$34", "34"), ("Answer: 3 4", "34"),
    ("**Answer:** 34", "34"), ("Answer : 34", "34"), ("Answer :   \n  34", "34"), ("Answer:  \n", "34"),
    ("Answer: \\frac12", "0"), ("Answer: \\sqrt2", "1"), ("Answer: 10^{3}", "1000"), ("Answer: 1000", "1000.7"),
    ("Answer: -1000", "-1000.7"), ("Answer: 100000000000000000000", "1e20"), ("\\boxed{34}", "34"),
    ("Answer: 34", "inf"), ("Answer: 34", "  34  "), ("Answer: 7", "\\boxed{7}"), ("Answer: 5 hours", "5"),
    ("Answer: 2 meters", "2"), ("Answer: 8 students", "8"), ("Answer: 6 edges", "6"),
]

MATH_CASES = [(f"We find the result. Final: \\boxed{{{a}}}", label) for a, label in ANSWER_PAIRS[:70]] + [
    ("no box at all", "5"), ("\\boxed{5}", ""), ("\\boxed{5}", 0), ("\\boxed{0}", 0), ("\\boxed{5}", None),
    ("\\boxed{5}", "\\boxed{5}"), ("\\boxed{5}", "\\boxed{5"), ("<think>\\boxed{4}</think> \\boxed{5}", "5"),
    ("\\boxed{5", "5"), ("\\fbox{5}", "5"), ("\\boxed 5", "5"), ("\\boxed{\\text{5 apples}}", "5"),
]

F1_CASES = [
    ("The Eiffel Tower", "Eiffel Tower"), ("Paris, France", "Paris"), ("yes", "yes"), ("Yes.", "yes"), ("yes", "no"),
    ("no answer", "noanswer"), ("noanswer", "noanswer"), ("a an the", "the"), ("the cat sat on the mat", "cat on mat"),
    ("cat cat cat", "cat"), ("", "something"), ("Barack Obama", "obama barack"), ("1,000", "1000"),
    ("théâtre de l'odéon", "Théâtre de l Odéon"), ("an apple a day", "apple day"), ("the_end", "the end"),
]

GPQA_CASES = [
    ("The answer is B", "B", {}), ("The answer is (C).", "B", {}), ("</think>Answer: d", "D", {}),
    ("I think A is correct", "A", {}), ("Final answer: C", "C", {}), ("<think>answer is A</think> so B", "B", {}),
    ("It must be Photosynthesis", "Photosynthesis", {"choices": ["Respiration", "Photosynthesis", "Fermentation"]}),
    ("Option 2", 1, {"choices": ["x", "y", "z"]}), ("The answer is b", "B", {"choices": {"A": "p", "B": "q"}}),
    ("answer isn't clear, pick K", "K", {}), ("My choice: E", "E", {"valid_letters": ["a", "b", "c", "d", "e"]}),
    ("The answer is B", "", {"correct_letter": "b"}), ("Clearly the mitochondria.", "", {"correct_answer": "Mitochondria"}),
    ("I'm not sure", "A", {}), ("So X.", "X", {}), ("answer: Z", "Z", {"valid_letters": ["X", "Y", "Z"]}),
    ("The correct option is D", 3, {}), ("", "A", {}),
]


def generated_pairs(seed=2024, count=600):
    """Random answers in many notations, paired with random labels, to probe the graders widely."""
    import random

    rng = random.Random(seed)
    atoms = [
        lambda: str(rng.randint(-20, 120)), lambda: f"{rng.randint(0, 9)}.{rng.randint(0, 99)}",
        lambda: f"\\frac{{{rng.randint(1, 9)}}}{{{rng.randint(1, 9)}}}", lambda: f"\\dfrac{{{rng.randint(1, 12)}}}{{{rng.randint(2, 12)}}}",
        lambda: f"{rng.randint(1, 9)}/{rng.randint(1, 9)}", lambda: f"\\sqrt{{{rng.choice([2, 3, 4, 8, 9, 12, 18, 27])}}}",
        lambda: f"{rng.randint(2, 5)}\\sqrt{{{rng.choice([2, 3, 5])}}}", lambda: rng.choice(["\\pi", "2\\pi", "\\frac{\\pi}{2}", "\\frac{\\pi}{3}"]),
        lambda: f"{rng.randint(1, 99)}\\%", lambda: f"{rng.randint(1, 9)}^{rng.randint(1, 3)}", lambda: f"{rng.randint(1, 9)}x+{rng.randint(1, 9)}",
        lambda: f"x^2+{rng.randint(1, 5)}x", lambda: f"({rng.randint(0, 5)}, {rng.randint(0, 5)})", lambda: f"[{rng.randint(-3, 0)}, {rng.randint(1, 4)})",
        lambda: f"{rng.randint(1, 9)},{rng.randint(100, 999)}", lambda: f"\\text{{{rng.randint(1, 30)}}}", lambda: f"{rng.randint(1, 30)} \\text{{ cm}}",
        lambda: f"{rng.randint(1, 180)}^\\circ", lambda: f"x={rng.randint(1, 9)}", lambda: f"{rng.randint(1, 9)}.0",
        lambda: f"\\frac{{{rng.randint(1, 9)}}}{{\\sqrt{{{rng.choice([2, 3])}}}}}", lambda: f"{rng.randint(1, 9)}\\frac{{{rng.randint(1, 3)}}}{{{rng.randint(4, 6)}}}",
        lambda: f"{rng.randint(2, 9)}({rng.randint(1, 9)})", lambda: f"-\\frac{{{rng.randint(1, 9)}}}{{{rng.randint(1, 9)}}}",
        lambda: f"0.{rng.choice(['5', '25', '125', '333', '75'])}", lambda: f"\\$ {rng.randint(1, 99)}",
    ]
    pairs = []
    for _ in range(count):
        given = rng.choice(atoms)()
        label = given if rng.random() < 0.25 else rng.choice(atoms)()
        pairs.append((given, label))
    # The same value written two ways.
    from fractions import Fraction

    for _ in range(count // 2):
        kind = rng.randrange(6)
        if kind == 0:
            f = Fraction(rng.randint(-12, 12), rng.choice([1, 2, 4, 5, 8, 3]))
            forms = [f"\\frac{{{f.numerator}}}{{{f.denominator}}}", f"{f.numerator}/{f.denominator}", f"\\dfrac{{{f.numerator}}}{{{f.denominator}}}",
                     str(float(f)), f"\\frac{{{2 * f.numerator}}}{{{2 * f.denominator}}}", f"{float(f) * 100:g}\\%", f"\\tfrac{{{f.numerator}}}{{{f.denominator}}}"]
        elif kind == 1:
            k, m = rng.randint(2, 6), rng.choice([2, 3, 5, 7])
            forms = [f"{k}\\sqrt{{{m}}}", f"\\sqrt{{{k * k * m}}}", f"{k}\\sqrt {m}", f"\\sqrt{{{m}}}\\cdot {k}", f"{k}*sqrt({m})"]
        elif kind == 2:
            m = rng.choice([2, 3, 5])
            forms = [f"\\frac{{1}}{{\\sqrt{{{m}}}}}", f"\\frac{{\\sqrt{{{m}}}}}{{{m}}}", f"\\sqrt{{{m}}}/{m}", f"{m}^{{-1/2}}", f"\\sqrt{{\\frac{{1}}{{{m}}}}}"]
        elif kind == 3:
            a, b = rng.randint(1, 5), rng.randint(1, 5)
            forms = [f"(x+{a})(x+{b})", f"x^2+{a + b}x+{a * b}", f"x^{{2}} + {a + b}x + {a * b}", f"{a * b}+{a + b}x+x^2", f"(x+{b})(x+{a})"]
        elif kind == 4:
            a, b = rng.randint(-5, 5), rng.randint(6, 12)
            bracket = rng.choice(["()", "[]", "(]", "[)"])
            forms = [f"{bracket[0]}{a},{b}{bracket[1]}", f"\\left{bracket[0]}{a}, {b}\\right{bracket[1]}", f"{bracket[0]} {a} , {b} {bracket[1]}",
                     f"{bracket[0]}{b},{a}{bracket[1]}", f"{bracket[0]}{a}.0,{b}{bracket[1]}"]
        else:
            n = rng.randint(1, 3) * 1000 + rng.randint(0, 999)
            forms = [str(n), f"{n // 1000},{n % 1000:03d}", f"{n}.0", f"\\${n}", f"{n} \\text{{ dollars}}", f"{n}\\text{{ meters}}", f"{n//1000}{{,}}{n % 1000:03d}"]
        pairs.append((rng.choice(forms), rng.choice(forms)))
    return pairs


def run(fn):
    try:
        return {"reward": fn()}
    except Exception as error:  # slime raises: the Swift side must throw
        return {"error": f"{type(error).__name__}: {error}"}


def main():
    table = {"deepscaler": [], "dapo": [], "math": [], "f1": [], "gpqa": []}
    for response, label in DEEPSCALER_CASES:
        table["deepscaler"].append({"response": response, "label": label, **run(lambda: deepscaler.get_deepscaler_rule_based_reward(response, label))})
    for response, label in DAPO_CASES:
        table["dapo"].append({"response": response, "label": label, **run(lambda: dapo.compute_score(response, label))})
    for response, label in MATH_CASES:
        table["math"].append({"response": response, "label": label, **run(lambda: 1 if math_utils.grade_answer_verl(response, label) else 0)})
    table["generated"] = []
    for given, label in generated_pairs():
        table["generated"].append({"response": f"\\boxed{{{given}}}", "label": label,
                                   **run(lambda: 1 if math_utils.grade_answer_verl(f"\\boxed{{{given}}}", label) else 0)})
    for response, label in F1_CASES:
        table["f1"].append({"response": response, "label": label, **run(lambda: f1.f1_score(response, label)[0])})
    for response, label, metadata in GPQA_CASES:
        table["gpqa"].append({"response": response, "label": label, "metadata": metadata,
                              **run(lambda: gpqa.compute_gpqa_reward(response, label, metadata=copy.deepcopy(metadata)))})
    OUT.write_text(json.dumps(table, ensure_ascii=False, indent=1) + "\n")
    for name, rows in table.items():
        print(name, len(rows), "cases,", sum("error" in r for r in rows), "errors")


if __name__ == "__main__":
    main()
