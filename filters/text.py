"""Text primitives the filters share: Python's whitespace and line breaks as regexes, spaCy's
punctuation and quote classes, the test for scripts written without spaces, and regex helpers.

One definition each, so that c4, fineweb, gopher, quality and the MinHash shingler agree on what a
space, a line or a space-less script is."""

from __future__ import annotations

import polars as pl

# Python's str.isspace() set: Unicode White_Space plus the information separators \x1c-\x1f, which
# str.split()/str.strip() also treat as whitespace. Rust's \s is White_Space only.
PY_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000"
)
WS = r"[\s\x1c-\x1f]"
NON_WS = r"[^\s\x1c-\x1f]"
# The boundaries str.splitlines() splits on (\r\n counts once).
LINE_BREAK = r"\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]"
# Scripts written without spaces between words: a whitespace split finds no words in them.
SPACELESS_SCRIPTS = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}\p{Tibetan}"
SPACELESS_CHAR = f"[{SPACELESS_SCRIPTS}]"

# spaCy's character classes (spacy/lang/char_classes.py, spaCy 3.x, MIT licence): LIST_PUNCT and
# LIST_QUOTES, one character each.
SPACY_PUNCT = "…,:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪"
SPACY_QUOTES = "'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉〈〉⟦⟧"

# spaCy's ALPHASPACY_LOWER / ALPHASPACY_UPPER: cased letters plus its "uncased" ranges (Ethiopic, Bengali,
# Hebrew, Arabic/Persian, Sinhala, Devanagari, Kannada, Tamil, Telugu, Hangul, kana, CJK), which count
# as both (spacy/lang/char_classes.py, _uncased, converted to Rust regex escapes).
_UNCASED = (
    r"\x{1200}-\x{137F}\x{0980}-\x{09FF}\x{0591}-\x{05F4}\x{FB1D}-\x{FB4F}"
    r"\x{0620}-\x{064A}\x{066E}-\x{06D5}\x{06E5}-\x{06FF}\x{0750}-\x{077F}"
    r"\x{08A0}-\x{08BD}\x{FB50}-\x{FBB1}\x{FBD3}-\x{FD3D}\x{FD50}-\x{FDC7}"
    r"\x{FDF0}-\x{FDFB}\x{FE70}-\x{FEFC}\x{1EE00}-\x{1EEBB}\x{0D80}-\x{0DFF}"
    r"\x{0900}-\x{097F}\x{0C80}-\x{0CFF}\x{0B80}-\x{0BFF}\x{0C00}-\x{0C7F}"
    r"\x{AC00}-\x{D7AF}\x{1100}-\x{11FF}\x{3040}-\x{309F}\x{30A0}-\x{30FF}\x{30FC}"
    r"\x{4E00}-\x{62FF}\x{6300}-\x{77FF}\x{7800}-\x{8CFF}\x{8D00}-\x{9FFF}"
    r"\x{3400}-\x{4DBF}\x{20000}-\x{215FF}\x{21600}-\x{230FF}\x{23100}-\x{245FF}"
    r"\x{24600}-\x{260FF}\x{26100}-\x{275FF}\x{27600}-\x{290FF}\x{29100}-\x{2A6DF}"
    r"\x{2A700}-\x{2B73F}\x{2B740}-\x{2B81F}\x{2B820}-\x{2CEAF}\x{2CEB0}-\x{2EBEF}"
    r"\x{2E80}-\x{2EFF}\x{2F00}-\x{2FDF}\x{2FF0}-\x{2FFF}\x{3000}-\x{303F}"
    r"\x{31C0}-\x{31EF}\x{3200}-\x{32FF}\x{3300}-\x{33FF}\x{F900}-\x{FAFF}"
    r"\x{FE30}-\x{FE4F}\x{1F200}-\x{1F2FF}\x{2F800}-\x{2FA1F}"
)
SPACY_LOWER = r"\p{Ll}" + _UNCASED
SPACY_UPPER = r"\p{Lu}" + _UNCASED


def char_class(chars: str, negate: bool = False) -> str:
    """A regex character class of exactly these characters (each as a \\x{..} escape, so that no
    character can be read as class syntax)."""
    body = "".join(f"\\x{{{ord(c):x}}}" for c in dict.fromkeys(chars))
    return f"[{'^' if negate else ''}{body}]"


def literal(text: str) -> str:
    return "".join(f"\\x{{{ord(c):x}}}" for c in text)


def spaceless_by_script(text: pl.Expr, threshold: float | None) -> pl.Expr:
    """True where at least ``threshold`` of the characters (all of them, spaces and punctuation
    included) belong to a script written without spaces (Han, Hiragana, Katakana, Thai, Lao,
    Khmer, Myanmar, Tibetan). ``threshold=None``: never (every text gets the word rules)."""
    if threshold is None:
        return pl.lit(False)
    # One count per text (an expression used twice is evaluated twice); the floor keeps "" out.
    return text.str.count_matches(SPACELESS_CHAR) >= (threshold * text.str.len_chars()).clip(lower_bound=1e-9)


def masked(frame: pl.DataFrame, mask: pl.Expr, expr: pl.Expr, default) -> pl.Series:
    """``expr`` evaluated only on the rows of ``frame`` where ``mask`` holds, ``default`` elsewhere
    (Polars evaluates every branch of a when/then on every row; this does not)."""
    subset = frame.with_row_index("_masked_row").filter(mask).select("_masked_row", expr.alias("_masked_value"))
    values = subset.get_column("_masked_value")
    out = pl.repeat(default, frame.height, eager=True)
    if values.dtype != out.dtype and len(values):
        out = out.cast(values.dtype)
    if len(values):
        out = out.scatter(subset.get_column("_masked_row"), values)
    return out


# The quote characters as the body of a regex class (no brackets).
SPACY_QUOTES_CLASS = char_class(SPACY_QUOTES)[1:-1]
