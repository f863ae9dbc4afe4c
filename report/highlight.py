"""The part of a rejected document that triggered its rule, as character spans to highlight.

Only rules whose trigger can be located in the text get spans (repeated lines and paragraphs, the
most repeated n-gram, lines ending in an ellipsis, curly brackets, "lorem ipsum", "javascript",
policy phrases, lines without terminal punctuation, short lines). Whole-document rules (language,
word count, sentence count) get none: the page shows their metric value instead."""

from __future__ import annotations

import re
from collections import Counter

MAX_SPANS = 40
_WORD = re.compile(r"\S+")
_POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
_TERMINAL = (".", "!", "?", '"', "'", "”", "’", "…", "。", "！", "？")


def _lines(text: str):
    start = 0
    for line in text.split("\n"):
        yield start, line
        start += len(line) + 1


def _repeated_blocks(text: str, sep: str) -> list[tuple[int, int]]:
    blocks, start = [], 0
    for block in text.split(sep):
        blocks.append((start, block))
        start += len(block) + len(sep)
    seen = Counter(b.strip() for _, b in blocks if b.strip())
    return [(s, s + len(b)) for s, b in blocks if b.strip() and seen[b.strip()] > 1]


def _top_ngram(text: str, n: int) -> list[tuple[int, int]]:
    words = [(m.start(), m.end(), m.group().lower()) for m in _WORD.finditer(text)]
    if len(words) < n:
        return []
    grams = Counter(tuple(w[2] for w in words[i:i + n]) for i in range(len(words) - n + 1))
    gram, count = grams.most_common(1)[0]
    if count < 2:
        return []
    spans = []
    i = 0
    while i <= len(words) - n:
        if tuple(w[2] for w in words[i:i + n]) == gram:
            spans.append((words[i][0], words[i + n - 1][1]))
            i += n
        else:
            i += 1
    return spans


def _find_all(text: str, needles) -> list[tuple[int, int]]:
    low = text.lower()
    spans = []
    for needle in needles:
        for m in re.finditer(re.escape(needle), low):
            spans.append((m.start(), m.end()))
    return sorted(spans)


def spans(reason: str, text: str, params: dict | None = None) -> list[tuple[int, int]]:
    """Character spans of ``text`` that triggered ``reason`` (``<stage>.<rule>``); [] when the rule
    judges the document as a whole."""
    params = params or {}
    stage, _, rule = reason.partition(".")
    out: list[tuple[int, int]] = []
    if rule in ("dup_line_frac", "dup_line_char_frac", "char_dup_ratio") or stage == "line_dedup":
        out = _repeated_blocks(text, "\n")
    elif rule in ("dup_para_frac", "dup_para_char_frac"):
        out = _repeated_blocks(text, "\n\n")
    elif m := re.fullmatch(r"(?:top|dup)_(\d+)_gram", rule):
        out = _top_ngram(text, int(m.group(1)))
    elif rule == "ellipsis_lines":
        out = [(s + len(line.rstrip()) - 3, s + len(line.rstrip())) if line.rstrip().endswith("...")
               else (s + len(line.rstrip()) - 1, s + len(line.rstrip()))
               for s, line in _lines(text) if line.rstrip().endswith(("...", "…"))]
    elif rule == "bullet_lines":
        out = [(s, s + len(line)) for s, line in _lines(text) if line.lstrip().startswith(("•", "-", "*", "●", "·"))]
    elif rule == "curly_bracket":
        out = [(m.start(), m.end()) for m in re.finditer(r"[{}]", text)]
    elif rule == "lorem_ipsum":
        out = _find_all(text, ["lorem ipsum"])
    elif rule == "javascript":
        out = _find_all(text, ["javascript"])
    elif rule == "policy":
        out = _find_all(text, _POLICY)
    elif rule == "line_punct_ratio":
        out = [(s, s + len(line)) for s, line in _lines(text) if line.strip() and not line.rstrip().endswith(_TERMINAL)]
    elif rule == "short_line_ratio":
        limit = int(params.get("short_line_length", 30))
        out = [(s, s + len(line)) for s, line in _lines(text) if line.strip() and len(line) <= limit]
    elif rule == "symbol_word_ratio":
        out = _find_all(text, ["#", "...", "…"])
    return out[:MAX_SPANS]
