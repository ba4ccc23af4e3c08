"""The tokenizer test corpus: strings written for Kite's tokenizer tests.

`plain_corpus()` is compared with transformers' ids; `special_corpus(tokens)` puts a tokenizer's special
tokens inside text and is compared with the GGUF's own ids (see tokenizers_reference.py).
Deterministic: generated parts use a fixed seed.
"""
import random

ENGLISH = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France?",
    "I'm sure you'll like it; they've said it's great, and we'd agree.",
    "DON'T SHOUT. I'LL HEAR YOU'RE THERE. HE'S FINE, SHE'D SAY.",
    "It\u2019s a curly apostrophe: don\u2019t, won\u2019t, I\u2019ll.",
    "Mixed 'Quotes' and \"double quotes\" and `backticks`.",
    "  leading spaces and trailing spaces  ",
    "Mr. Smith went to Washington D.C. on Jan. 3rd, 2024 at 10:30 a.m.",
    "e.g., i.e., etc., vs. -- all common abbreviations...",
    "Well... that's, um, interesting?! Really?!?",
    "A sentence with a hyphenated-word and an em\u2014dash and an en\u2013dash.",
    "Supercalifragilisticexpialidocious antidisestablishmentarianism",
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "The year 1999 was followed by 2000, then 2001.",
    "Call me at (555) 123-4567 or +1-800-FLOWERS.",
    "Email: first.last+tag@example.co.uk, web: https://example.com/path?q=1&r=two#frag",
    "RL post-training uses rewards; GRPO normalises them per group.",
    "Once upon a time, in a land far, far away, there lived a tokenizer.",
    "She said: \"It's 5 o'clock somewhere.\"",
    "'s 't 're 've 'm 'll 'd",
    "'S 'T 'RE 'VE 'M 'LL 'D 'Re 'vE 'lL",
    "rock'n'roll, o'clock, y'all, ma'am",
    "camelCaseWords and PascalCaseWords and snake_case_words and SCREAMING_CASE",
    "ALLCAPS lowercase Titlecase mIxEdCaSe",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z",
    "A.B.C.D.E.F.G.",
    "!!!???...,,,;;;:::",
    "Parentheses (like these) and [brackets] and {braces} and <angles>.",
    "50% off! Only $19.99 (was $29.99) -- save \u00a310 or \u20ac12.",
    "Tabs\tbetween\twords\tand\ttrailing\t",
    "Lines\nseparated\nby\nnewlines\n",
    "Windows\r\nline\r\nendings\r\n",
    "Old Mac\rline\rendings",
    "Paragraph one.\n\nParagraph two.\n\n\nParagraph three.",
    "Question: 2+2=? Answer: 4.",
    "The reward is 1.0 if the answer matches the label, else 0.0.",
    "Let x be the number of apples. Then 3x + 5 = 20, so x = 5.",
    "To be, or not to be, that is the question:",
    "Whether 'tis nobler in the mind to suffer",
]

CODE = [
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "import numpy as np\nx = np.arange(10)\nprint(x.sum())",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}",
    "#include <stdio.h>\nint main(void) { printf(\"hello\\n\"); return 0; }",
    "func encode(_ text: String) -> [Int] {\n    return []\n}",
    "let xs = [1, 2, 3].map { $0 * 2 }.filter { $0 > 2 }",
    "const f = async (x) => { await g(x); return x ?? null; };",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
    "<html><body><p class=\"x\">Hi &amp; bye</p></body></html>",
    "{\"key\": \"value\", \"list\": [1, 2.5, -3e10, true, null]}",
    "$ ls -la /tmp && echo \"done\" | grep -v error 2>&1 > /dev/null",
    "if [[ -z \"$VAR\" ]]; then\n  export VAR=default\nfi",
    "    indented with four spaces\n        and eight\n            and twelve",
    "\tindented\n\t\twith\n\t\t\ttabs",
    "x=1;y=2;z=x+y;print(z)",
    "a->b, a=>b, a<=b, a>=b, a!=b, a==b, a===b, a!==b, a<<=b, a>>>=b",
    "// comment\n/* block\n   comment */\n# hash comment\n-- sql comment",
    "fn main() {\n    let v: Vec<u32> = (0..10).collect();\n    println!(\"{:?}\", v);\n}",
    "class Foo(Bar):\n    \"\"\"Docstring.\"\"\"\n    def __init__(self, *args, **kwargs):\n        super().__init__(*args, **kwargs)\n",
    "@property\ndef name(self) -> str:\n    return self._name",
    "matrix[i][j] = matrix[i - 1][j - 1] + 1 if s[i] == t[j] else 0",
    "0x1F 0b1010 0o777 1_000_000 3.14159e-10 6.022E+23",
    "regex = r'(?i:\\d+)\\s*[a-z]{2,5}$'",
    "path = \"C:\\\\Users\\\\name\\\\file.txt\"",
    "```python\nprint('hi')\n```",
    "<|tool_call|> is not a real token here; <tool_call> might be.",
    "git commit -m \"Fix: handle empty input (#123)\"",
    "}}}}]]]])))){{{{[[[[((((",
    "----------------------------------------",
    "========================================",
    "________________________________________",
    "****************************************",
    "########################################",
    "........................................",
    "x" * 300,
    "ab" * 150,
    "\n".join("line %d: value = %d" % (i, i * i) for i in range(20)),
    "SELECT\n    a,\n    b\nFROM\n    t\nWHERE\n    a = 1\n    AND b = 'x';",
    "key1=value1\nkey2 = value 2\n[section]\nkey3=\"value 3\"",
    "    \n    \n    ",
]

CJK = [
    "\u4f60\u597d\uff0c\u4e16\u754c\uff01",
    "\u6211\u7231\u5317\u4eac\u5929\u5b89\u95e8\u3002",
    "\u673a\u5668\u5b66\u4e60\u662f\u4eba\u5de5\u667a\u80fd\u7684\u4e00\u4e2a\u5206\u652f\u3002",
    "\u4eca\u5929\u5929\u6c14\u5f88\u597d\uff0c\u6211\u4eec\u53bb\u516c\u56ed\u6563\u6b65\u5427\u3002",
    "\u5f3a\u5316\u5b66\u4e60\uff08RL\uff09\u7528\u4e8e\u5927\u8bed\u8a00\u6a21\u578b\u7684\u540e\u8bad\u7ec3\u3002",
    "\u6570\u5b66\u9898\uff1a\u5982\u679c x + 3 = 7\uff0c\u90a3\u4e48 x \u7b49\u4e8e\u591a\u5c11\uff1f",
    "\u3053\u3093\u306b\u3061\u306f\u3001\u4e16\u754c\uff01",
    "\u79c1\u306f\u65e5\u672c\u8a9e\u3092\u52c9\u5f37\u3057\u3066\u3044\u307e\u3059\u3002",
    "\u30ab\u30bf\u30ab\u30ca\u3068\u3072\u3089\u304c\u306a\u3068\u6f22\u5b57\u3092\u6df7\u305c\u305f\u6587\u7ae0\u3067\u3059\u3002",
    "\u30b3\u30f3\u30d4\u30e5\u30fc\u30bf\u30fc\u30fb\u30b5\u30a4\u30a8\u30f3\u30b9",
    "\uff8a\uff9d\uff76\uff78\uff76\uff80\uff76\uff85 halfwidth katakana",
    "\uc548\ub155\ud558\uc138\uc694, \uc138\uacc4!",
    "\ud55c\uad6d\uc5b4 \ud615\ud0dc\uc18c \ubd84\uc11d\uc740 \uc5b4\ub835\uc2b5\ub2c8\ub2e4.",
    "\u1100\u1161\u11a8 decomposed hangul jamo",
    "\u4e2d\u6587English\u6df7\u5408mixed\u6587\u672ctext",
    "\u7b2c1\u7ae0 \u7b2c2\u8282 \u7b2c3\u6761",
    "\u300c\u5f15\u7528\u300d\u3010\u62ec\u53f7\u3011\u300a\u4e66\u540d\u300b",
    "\u3000\u5168\u89d2\u7a7a\u683c\u3000\u3067\u3059\u3000",
    "\uff21\uff22\uff23\uff11\uff12\uff13\uff01\uff1f fullwidth",
    "\u9f8d\u9f98\u9f49 rare hanzi \u3400\u3401 \U00020000\U0002A6D6",
    "\u5317\u4eac\u5e02\u6d77\u6dc0\u533a\u4e2d\u5173\u6751\u5927\u885711\u53f7",
    "\u6625\u7720\u4e0d\u89c9\u6653\uff0c\u5904\u5904\u95fb\u557c\u9e1f\u3002\n\u591c\u6765\u98ce\u96e8\u58f0\uff0c\u82b1\u843d\u77e5\u591a\u5c11\u3002",
    "\u7684\u7684\u7684\u7684\u7684\u7684\u7684\u7684",
    "\u3042\u3044\u3046\u3048\u304a\u304b\u304d\u304f\u3051\u3053",
    "\u6771\u4eac\u90fd\u6e0b\u8c37\u533a 1-2-3",
    "\u4ed6\u8bf4\uff1a\u201c\u4f60\u597d\u201d\u3002",
    "\u5e74\u6708\u65e5\u65f6\u5206\u79d2",
    "\u2f00\u2f01\u2f02 kangxi radicals",
    "\u3131\u3134\u3137 compatibility jamo",
    "\u00a5100 \u5186 \u5143 \u20a9",
]

EMOJI = [
    "\U0001F600\U0001F601\U0001F602\U0001F923",
    "I love it \u2764\ufe0f\U0001F525\U0001F44D",
    "family: \U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466",
    "flags: \U0001F1EB\U0001F1F7 \U0001F1EF\U0001F1F5 \U0001F1FA\U0001F1F8",
    "skin tones: \U0001F44B\U0001F3FB\U0001F44B\U0001F3FF",
    "keycap: 1\ufe0f\u20e3 #\ufe0f\u20e3",
    "\U0001F9D1\u200d\U0001F4BB coding at 3am \u2615",
    "\U0001F3F3\ufe0f\u200d\U0001F308 \U0001F3F4\u200d\u2620\ufe0f",
    "emoji\U0001F600between\U0001F600words",
    "\U0001F600 \U0001F600  \U0001F600   \U0001F600",
    "\u2600\u2601\u2602\u2603\u2604",
    "\U0001F923\U0001F923\U0001F923\U0001F923\U0001F923\U0001F923\U0001F923\U0001F923",
    "\U0001FAE0 melting face (newer emoji)",
    "text-style \u263a\ufe0e vs emoji-style \u263a\ufe0f",
    "\U0001F44D\U0001F3FD\u200d\u2642\ufe0f",
    "\U0001F4AF% sure",
    "\U0001F680 launch in 3... 2... 1...",
    "\u00a9 \u00ae \u2122 \u2120",
    "\U0001F1E6",
    "\U0001F3FB",
]

RTL = [
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u0627\u0644\u0644\u063a\u0629 \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u062c\u0645\u064a\u0644\u0629 \u062c\u062f\u0627\u064b.",
    "\u0628\u0650\u0633\u0652\u0645\u0650 \u0627\u0644\u0644\u0651\u064e\u0647\u0650",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "\u05e2\u05b4\u05d1\u05b0\u05e8\u05b4\u05d9\u05ea \u05e2\u05dd \u05e0\u05b4\u05e7\u05bc\u05d5\u05bc\u05d3",
    "\u0633\u0644\u0627\u0645 \u062f\u0646\u06cc\u0627 (Persian)",
    "\u0627\u0631\u062f\u0648 \u0632\u0628\u0627\u0646 \u06c1\u06d2",
    "Mixed English \u0648\u0627\u0644\u0639\u0631\u0628\u064a\u0629 text",
    "\u0627\u0644\u0631\u0642\u0645 \u0661\u0662\u0663 \u0648 123",
    "\u05de\u05e1\u05e4\u05e8 42 \u05d1\u05e2\u05d1\u05e8\u05d9\u05ea",
    "\u200f\u0645\u0631\u062d\u0628\u0627\u200e hello \u200f",
    "\u202bembedded RTL\u202c and \u202aLTR\u202c",
    "\u2067isolate\u2069 \u2066marks\u2069",
    "\u0623\u0647\u0644\u0627\u064b \u0648\u0633\u0647\u0644\u0627\u064b\u060c \u0643\u064a\u0641 \u062d\u0627\u0644\u0643\u061f",
    "\ufdfd \ufefb ligatures",
    "\u0640\u0640\u0640 tatweel \u0640",
    "\u0710\u0712\u0713 Syriac",
    "\u0780\u0781\u0782 Thaana",
    "\u07ca\u07cb\u07cc NKo",
    "\u05d0\u05b8\u05d1\u05b8\u05d0 \u05d5\u05b0\u05d0\u05b4\u05de\u05b8\u05bc\u05d0",
]

COMBINING = [
    "cafe\u0301 vs caf\u00e9",
    "e\u0301e\u0300e\u0302e\u0308",
    "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034da\u036b\u0357\u0364\u0365\u034c\u0346\u0347l\u0305\u0303\u0336\u0328g\u0344\u0365o",
    "n\u0303 o\u0308 a\u030a c\u0327",
    "\u0915\u094d\u0937\u0924\u094d\u0930\u093f\u092f \u0928\u092e\u0938\u094d\u0924\u0947 \u0939\u093f\u0928\u094d\u0926\u0940",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a \u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22",
    "Ti\u1ebfng Vi\u1ec7t c\u00f3 d\u1ea5u",
    "Tie\u0302\u0301ng Vie\u0323\u0302t decomposed",
    "\u1e9b\u0323 long s dot",
    "a\u0300\u0301\u0302\u0303\u0304\u0305\u0306\u0307\u0308\u0309",
    "\u0301 leading combining mark",
    " \u0301 combining after space",
    "\u0bb5\u0ba3\u0b95\u0bcd\u0b95\u0bae\u0bcd Tamil",
    "\u09ac\u09be\u0982\u09b2\u09be Bengali",
    "\u0c24\u0c46\u0c32\u0c41\u0c17\u0c41 Telugu",
    "\u0d2e\u0d32\u0d2f\u0d3e\u0d33\u0d02 Malayalam",
    "\u0a2a\u0a70\u0a1c\u0a3e\u0a2c\u0a40 Gurmukhi",
    "\u1780\u1798\u17d2\u1796\u17bb\u1787\u17b6 Khmer",
    "\u1019\u103c\u1014\u103a\u1019\u102c Myanmar",
    "\u0f56\u0f7c\u0f51\u0f0b\u0f61\u0f72\u0f42 Tibetan",
    "x\u20d7 vector arrow, a\u0332b\u0332 underline",
    "\u00c5ngstr\u00f6m \u212b (angstrom sign)",
    "\ufb01 \ufb02 ligatures, \u2460 \u2461 circled",
    "\u0130stanbul \u0131 dotless, \u00df Stra\u00dfe",
    "\u01c5 \u01c8 titlecase digraphs \u1e9e",
]

WHITESPACE = [
    "",
    " ",
    "  ",
    "   ",
    "    ",
    "\n",
    "\n\n",
    "\n\n\n\n",
    "\t",
    "\t\t",
    "\r\n",
    "\r\n\r\n",
    " \n",
    "\n ",
    " \n \n ",
    "a  b",
    "a   b",
    "a    b",
    "a\tb",
    "a\t\tb",
    "a \tb",
    "a\t b",
    "a\n b",
    "a \nb",
    "a \n b",
    "word   \n\n   word",
    "trailing spaces    ",
    "    leading spaces",
    "\u00a0non-breaking\u00a0space\u00a0",
    "\u2003em space\u2009thin space\u200ahair space",
    "\u200bzero\u200bwidth\u200bspace",
    "\u3000ideographic\u3000space",
    "\u2028line separator\u2029paragraph separator",
    "\u0085next line\u000bvertical tab\u000cform feed",
    "\u1680ogham\u202fnarrow nbsp\u205fmath space",
    " " * 100,
    "\n" * 50,
    "\t" * 20,
    " \t\n\r" * 10,
    "end with newline\n",
    "end with spaces and newline   \n",
    "a\n\n\nb\n\n\n\nc",
    "x \n\n y",
    "   \t   \t   ",
    "\n\t\n\t\n",
]

DIGITS = [
    "0",
    "7",
    "42",
    "123",
    "1234",
    "12345",
    "1234567890",
    "3.14159265358979",
    "-273.15",
    "1,000,000",
    "1 000 000",
    "2024-11-25T02:26:00Z",
    "192.168.0.1:8080",
    "v1.2.3-rc.4+build.567",
    "99 bottles of beer",
    "a1b2c3d4",
    "x2 + y2 = z2",
    " 1 2 3 4 5",
    "  12  34  ",
    "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669 Arabic-Indic",
    "\u06f1\u06f2\u06f3 Persian digits",
    "\u0966\u0967\u0968 Devanagari digits",
    "\uff10\uff11\uff12 fullwidth digits",
    "\u00b2\u00b3\u00b9 superscripts, \u2082\u2083 subscripts",
    "\u2160\u2161\u2162\u216b roman numerals",
    "\u00bd \u00bc \u2153 fractions",
    "\u2460\u2461\u2462 circled",
    "\U0001D7CE\U0001D7CF math digits",
    "31415926535897932384626433832795028841971693993751",
    "The answer is 42.",
    "$1,234.56",
    "1e10 1E-5 0.5e+3",
    "007 James",
    "12:30:45.678",
    "+49 (0) 30 1234567",
]

MISC = [
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u041a\u0430\u043a \u0434\u0435\u043b\u0430?",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac: \u03b1\u03b2\u03b3\u03b4\u03b5 \u03a9\u03c9",
    "\u10e5\u10d0\u10e0\u10d7\u10e3\u10da\u10d8 Georgian",
    "\u0540\u0561\u0575\u0565\u0580\u0565\u0576 Armenian",
    "\u12a0\u121b\u122d\u129b Ethiopic",
    "\u13e3\u13b3\u13a9 Cherokee",
    "\u1403\u14c4\u1483\u144e\u1450\u1466 Inuktitut",
    "\U00010330\U00010331 Gothic",
    "\U0001D400\U0001D401\U0001D402 math bold",
    "\u2200x\u2208\u211d: x\u00b2 \u2265 0 \u2227 \u221a4 = 2",
    "\u2211_{i=1}^{n} i = n(n+1)/2",
    "$\\frac{a}{b} + \\sqrt{x^2 + y^2}$",
    "\u2190\u2191\u2192\u2193\u2194 \u21d2 \u21d4",
    "\u2500\u2502\u250c\u2510\u2514\u2518 box drawing",
    "\u2588\u2593\u2592\u2591 blocks",
    "\u00bf\u00a1Hola! \u00bfQu\u00e9 tal?",
    "\u00c0 \u00e0 \u00c9 \u00e9 \u00d1 \u00f1 \u00dc \u00fc",
    "na\u00efve co\u00f6perate r\u00e9sum\u00e9 fa\u00e7ade",
    "Stra\u00dfe Gr\u00fc\u00dfe \u00c4pfel",
    "\u00e6 \u00f8 \u00e5 \u00c6 \u00d8 \u00c5",
    "\u0142\u00f3d\u017a \u017c\u00f3\u0142w \u0107ma",
    "\u010de\u0161tina \u0159e\u017e\u0148",
    "t\u00fcrk\u00e7e \u015f\u0131\u011f",
    "# Heading\n\n- item 1\n- item 2\n\n**bold** _italic_ `code`",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "> quote\n>> nested quote",
    "[link](https://example.com) ![img](a.png)",
    "user@host:~$ sudo apt-get install -y build-essential",
    "C++ C# F# .NET Node.js",
    "\u00a7 1.2 \u00b6 3 \u2020 \u2021",
    "\u201cSmart quotes\u201d and \u2018single\u2019 and \u00abguillemets\u00bb and \u201elow\u201c",
    "\u2026 ellipsis \u2022 bullet \u00b7 middle dot",
    "\u2018s \u2019s \u02bcs modifier apostrophe",
    "\u0000null\u0001soh\u0007bell\u001besc\u007fdel",
    "\u00adsoft\u00adhyphen",
    "\ufeffBOM at start",
    "\ufffd replacement char \ufffd\ufffd",
    "\\ud83d\\ude00 escaped surrogate pair as text",
    "\\uD800 lone high surrogate escape",
    "\\uDC00 lone low surrogate escape",
    "\\x{D800} \\u{DFFF} other escape styles",
    "\"\\ud83d\" inside quotes",
    "\ue000\uf8ff private use",
    "\U000F0000 supplementary private use",
    "\U0010FFFD last plane",
    "\ufff0\ufffe noncharacters-ish \uffff",
    "<|im_start", "im_start|>", "<|im_end|", "<think", "</think", "<\uff5cUser", "\uff5cAssistant\uff5c>",
    "< think >", "<THINK>", "<tool call>",
    "<|endoftext|", "|endoftext|>",
    "\u2581 lower one eighth block (SentencePiece marker)",
    "\u0120 G-dot (GPT-2 space marker) \u010a",
    "case folding: it'\u017f, he'\u212a, I'\u0130LL, we'\u0131ll, 'SS '\u00df",
]

LONG = [
    (
        "Reinforcement learning from human feedback (RLHF) and its successors train a policy to maximise a reward "
        "while staying close to a reference model. In group relative policy optimisation, several responses are "
        "sampled for each prompt, and each response's advantage is its reward minus the group's mean, divided by "
        "the group's standard deviation. No value network is needed. The loss clips the probability ratio between "
        "the new and old policies, as PPO does, and may add a KL penalty against the reference.\n\n"
        "Dynamic sampling drops groups whose rewards are all equal, since they carry no gradient signal. "
        "Over-sampling keeps the batch full. Token-level loss averaging weights long responses fairly."
    ),
    "\n".join(
        [
            "import torch",
            "",
            "def grpo_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-6) -> torch.Tensor:",
            "    r = rewards.view(-1, group_size)",
            "    mean = r.mean(dim=1, keepdim=True)",
            "    std = r.std(dim=1, keepdim=True)",
            "    return ((r - mean) / (std + eps)).view(-1)",
            "",
            "",
            "if __name__ == \"__main__\":",
            "    print(grpo_advantages(torch.tensor([1.0, 0.0, 1.0, 1.0]), 2))",
        ]
    ),
    (
        "\u4eba\u5de5\u667a\u80fd\uff08Artificial Intelligence\uff0c\u7b80\u79f0AI\uff09\u662f\u6307\u7531\u4eba\u5236\u9020\u51fa\u6765\u7684\u673a\u5668\u6240"
        "\u8868\u73b0\u51fa\u6765\u7684\u667a\u80fd\u3002\u901a\u5e38\u4eba\u5de5\u667a\u80fd\u662f\u6307\u901a\u8fc7\u666e\u901a\u8ba1\u7b97\u673a\u7a0b\u5e8f\u6765\u5448\u73b0\u4eba\u7c7b\u667a\u80fd"
        "\u7684\u6280\u672f\u3002\u5927\u8bed\u8a00\u6a21\u578b\u57282023\u5e74\u540e\u53d1\u5c55\u8fc5\u901f\uff0c\u4f8b\u5982 DeepSeek-R1 \u548c Qwen2.5\u3002"
    ),
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 8,
    ("The \u201cquick\u201d \U0001F98A jumped over 13 lazy \U0001F415s at 4:05pm\u2014twice! " * 5).strip(),
]


def generated(seed: int = 1234, count: int = 60) -> list:
    """Random mixtures of characters from many classes, to reach the corners the hand-written strings miss."""
    rng = random.Random(seed)
    pools = [
        "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " ", "  ", "\n", "\t", "\r\n",
        "'", "'s", "'LL", ".,;:!?", "()[]{}<>", "+-*/=%&|^~", "\"`@#$\\_",
        "\u00e9\u00e8\u00fc\u00f1\u00e7", "\u0301\u0308\u0327", "\u4e00\u4e8c\u4e09\u4eba\u5927",
        "\u3042\u3044\u30a2\u30a4", "\uac00\ub098", "\u0627\u0644\u0628", "\u05d0\u05d1",
        "\u0660\u0661\uff11\u00b2\u2160", "\U0001F600\U0001F44D\u2764\ufe0f", "\u200d", "\u00a0\u3000\u2003",
        "\u0915\u093f", "\u0e01\u0e34", "\u2200\u2211\u221e", "\u20ac\u00a3\u00a5",
    ]
    out = []
    for _ in range(count):
        n = rng.randint(1, 40)
        out.append("".join(rng.choice(rng.choice(pools)) if rng.random() < 0.5 else rng.choice(pools) for _ in range(n)))
    return out


def plain_corpus() -> list:
    """At least 300 strings without any tokenizer's special-token text."""
    strings = ENGLISH + CODE + CJK + EMOJI + RTL + COMBINING + WHITESPACE + DIGITS + MISC + LONG + generated()
    seen = set()
    unique = []
    for s in strings:
        if s not in seen:
            seen.add(s)
            unique.append(s)
    assert len(unique) >= 300, len(unique)
    return unique


def special_corpus(special_tokens: list, seed: int = 99) -> list:
    """Strings that put `special_tokens` (a tokenizer's atomic tokens) inside text in many contexts."""
    rng = random.Random(seed)
    out = []
    first = special_tokens[0]
    for token in special_tokens:
        out += [
            token,
            token + token,
            "a" + token + "b",
            " " + token + " ",
            "Hello " + token + " world",
            "Hello" + token + "world",
            "\n" + token + "\n",
            token + "\n\nText after.",
            "  " + token,
            token[:-1],
            token[1:],
        ]
    out += [
        "".join(special_tokens),
        " ".join(special_tokens),
        "\n".join(special_tokens),
        first + "user\nWhat is 2+2?" + first + "\n",
        "x" + first + first + "y" + first,
    ]
    for _ in range(30):
        parts = []
        for _ in range(rng.randint(2, 6)):
            r = rng.random()
            if r < 0.4:
                parts.append(rng.choice(special_tokens))
            elif r < 0.6:
                parts.append(rng.choice([" ", "\n", "  ", "\t", ""]))
            else:
                parts.append(rng.choice(ENGLISH + CJK + EMOJI)[: rng.randint(0, 20)])
        out.append("".join(parts))
    seen = set()
    unique = []
    for s in out:
        if s not in seen:
            seen.add(s)
            unique.append(s)
    return unique


if __name__ == "__main__":
    print(len(plain_corpus()), "plain strings")
