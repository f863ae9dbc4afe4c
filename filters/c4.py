"""C4's clean-up rules (Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a
Unified Text-to-Text Transformer", JMLR 21(140), §2.2), as datatrove's ``C4QualityFilter``
implements them (datatrove/pipeline/filters/c4_filters.py, the reference for every default and
reason code here).

C4 is a *rewriting* filter: most of its rules remove lines, not documents. The stage therefore
writes the cleaned text back into ``text`` for the documents it keeps, and says how much it removed.
The whole stage is columnar: the judged documents' lines are exploded into one long frame (one row
per line, with the document's index), every line rule is a Polars expression over that frame, and
the kept lines are joined back per document with a ``group_by``. No Python loop per document.

This module also holds what ``filters/fineweb.py`` shares with it: Python-compatible whitespace and
line splitting, the space-less-script detector, and ``LanguageAwareFilter`` (a ``RuleFilter`` that
also reads the ``lang`` column and may rewrite ``text``).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from filters.base import LanguageAwareFilter, check_language_params
from filters.text import (LINE_BREAK, NON_WS, PY_WHITESPACE, SPACELESS_CHAR, SPACY_LOWER, SPACY_PUNCT, SPACY_QUOTES,
                          SPACY_QUOTES_CLASS, SPACY_UPPER, WS, char_class, literal, masked, spaceless_by_script)

# --- C4 constants (datatrove/pipeline/filters/c4_filters.py) ------------------------------------

CITATION_REGEX = r"\[\d*\]|\[edit\]|\[citation needed\]"
END_PUNCTUATION = ".?!\"'"
ELLIPSIS = "..."
POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
# Lines in a space-less script may also end with these (full-width and CJK sentence ends and the
# closing quotes that follow them); C4 only knew ASCII.
SPACELESS_END_PUNCTUATION = END_PUNCTUATION + "。！？｡．」』”’"

# --- sentence counting: spaCy's English sentencizer, emulated with regexes ----------------------
#
# datatrove counts a kept line's sentences with spaCy (blank "en" + "sentencizer"): the sentencizer
# starts a new sentence at the first non-punctuation token after a token that is one of its
# punct_chars ("." "!" "?" ...). Whether a "." is a token of its own is the tokenizer's business:
# its suffix rule splits a final "." after a digit, a lowercase letter, "%²-+", spaCy's punctuation
# or quotes, or two capitals; its infix rule splits "lower.Upper"; its exceptions ("Mr.", "e.g.",
# "a." ... "z.", months, US states ...) keep the period. We mark each "." / "!" / "?" the
# tokenizer would split off with \x01 (exceptions become \x02, a plain word), then count boundaries:
# a mark, any punctuation/space, then a character that is neither.
# Character classes from spacy/lang/char_classes.py and spacy/lang/punctuation.py (spaCy 3.x).

# English tokenizer exceptions ending in "." (spacy/lang/en/tokenizer_exceptions.py + base; the
# "°C." family is left out: the prefix rule splits "°" off first, so spaCy never applies them).
_SPACY_EN_PERIOD_EXCEPTIONS = (
    "Adm. Ak. Ala. Apr. Ariz. Ark. Aug. Bros. Calif. Co. Colo. Conn. Corp. D.C. Dec. Del. Dr. E.G. "
    "E.g. Feb. Fla. Ga. Gen. Gov. I.E. I.e. Ia. Id. Ill. Inc. Ind. Jan. Jr. Jul. Jun. Kan. Kans. Ky. "
    "La. Ltd. Mar. Mass. Md. Messrs. Mich. Minn. Miss. Mo. Mont. Mr. Mrs. Ms. Mt. N.C. N.D. N.H. "
    "N.J. N.M. N.Y. Neb. Nebr. Nev. Nov. Oct. Okla. Ore. Pa. Ph.D. Prof. Rep. Rev. S.C. Sen. Sep. "
    "Sept. St. Tenn. Va. Wash. Wis. a.m. co. e.g. i.e. p.m. v.s. vs. ä. ö. ü."
).split() + [f"{c}." for c in "abcdefghijklmnopqrstuvwxyz"]
_SENTENCE_ENDS = "!?。？！।؟۔"  # sentencizer punct_chars that the tokenizer always splits off

# An exception is a whole token: at the start of a whitespace-separated chunk after any prefixes,
# or after an infix split ("D-Mich.", "N/m."; spaCy re-merges special cases after splitting).
_PREFIXES = char_class(SPACY_PUNCT + SPACY_QUOTES + "§%=—–+$£€¥")
_EXCEPTION_RE = (
    f"(^|{WS}|[\\-/])({_PREFIXES}*)"
    + "(?:"
    + "|".join(sorted((literal(e) for e in _SPACY_EN_PERIOD_EXCEPTIONS), key=len, reverse=True))
    + r"|\d{1,2}[ap]\.m\.)"
)
# spaCy keeps a URL whole (no infix split); only its last character matters for the suffix rule.
_URL_RE = r"(?:[hH][tT][tT][pP][sS]?://|www\.)\S*([\w/])"
_INFIX_RE = rf"([{SPACY_LOWER}{SPACY_QUOTES_CLASS}])\.([{SPACY_UPPER}{SPACY_QUOTES_CLASS}])"
_CLOSE = "[" + char_class(SPACY_PUNCT + SPACY_QUOTES + "—–")[1:-1] + r"\p{So}]*"
_SUFFIX_LEFT = (
    rf"[0-9{SPACY_LOWER}{char_class('%²-+' + SPACY_PUNCT + SPACY_QUOTES)[1:-1]}]|[{SPACY_UPPER}][{SPACY_UPPER}]|°[FfCcKk]"
)
_SUFFIX_PERIOD_RE = rf"({_SUFFIX_LEFT})\.({_CLOSE})({WS}|$)"
# A "." standing alone (". . ." as three tokens), or after prefixes ("=."). Run twice: a match eats
# the space the next one needs.
_LONE_PERIOD_RE = rf"(^|{WS})({_PREFIXES}*)\.({_CLOSE})({WS}|$)"
# "!" "?" ...: split off at the end of a chunk, before closing punctuation or an ellipsis.
_SENTENCE_END_RE = char_class(_SENTENCE_ENDS) + rf"([.{_CLOSE[1:]})({WS}|$)"
# A chunk spaCy reads as a bare host name (URL_MATCH: labels of letters/digits/U+00A1..U+FFFF joined
# by ".", then a top-level domain of >= 2 lowercase-or-uncased letters) is one token: no infix split.
_HOST_RE = (
    rf"(^|{WS})({_PREFIXES}*)(?:[A-Za-z0-9\x{{a1}}-\x{{ffff}}][A-Za-z0-9\x{{a1}}-\x{{ffff}}_\-]*\.)+"
    rf"[{SPACY_LOWER}]+([{SPACY_LOWER}])({_CLOSE})({WS}|$)"
)
_BOUNDARY_RE = r"\x01[\p{P}\s\x01]*[^\p{P}\s\x01]"
# Space-less lines: every sentence-final mark counts, whatever surrounds it.
_SPACELESS_BOUNDARY_RE = char_class("。！？｡．!?") + r"[\p{P}\s]*[^\p{P}\s]"


_INFIX_CANDIDATE_RE = rf"[{SPACY_LOWER}{SPACY_QUOTES_CLASS}]\.[{SPACY_UPPER}{SPACY_QUOTES_CLASS}]"


def sentence_counts(lines: pl.DataFrame, line: str, spaceless: str) -> pl.Series:
    """Sentences in each line (column ``line`` of ``lines``), as spaCy's English sentencizer counts
    them (see above); on rows where the boolean column ``spaceless`` holds, one more than the
    sentence-final marks (。！？...) followed by more text. Each rewrite runs only on the lines it can
    change (a URL rule on lines with "http"/"www.", host and infix rules on lines with a
    letter.letter), since every pass is a scan of the text."""
    frame = lines.select(pl.col(line).alias("_l"), pl.col(spaceless).alias("_sl"))
    text = pl.col("_l")

    def rewrite(frame: pl.DataFrame, mask: pl.Expr, *steps: tuple[str, str]) -> pl.DataFrame:
        expr = text
        for pattern, replacement in steps:
            expr = expr.str.replace_all(pattern, replacement)
        return frame.with_columns(pl.coalesce(masked(frame, mask, expr, None), text).alias("_l"))

    spaced = ~pl.col("_sl")
    frame = rewrite(frame, spaced & text.str.contains(r"[\x01\x02]"), (r"[\x01\x02]", "\x03"))
    frame = rewrite(frame, spaced & text.str.contains_any(["http", "www."], ascii_case_insensitive=True), (_URL_RE, "\x02${1}"))
    frame = rewrite(frame, spaced, (_EXCEPTION_RE, "${1}${2}\x02"))
    frame = rewrite(
        frame,
        spaced & text.str.contains(_INFIX_CANDIDATE_RE),
        (_HOST_RE, "${1}${2}\x02${3}${4}${5}"),
        (_HOST_RE, "${1}${2}\x02${3}${4}${5}"),
        (_INFIX_RE, "${1}\x01${2}"),
    )
    frame = rewrite(
        frame,
        spaced,
        (_SUFFIX_PERIOD_RE, "${1}\x01${2}${3}"),
        (_LONE_PERIOD_RE, "${1}${2}\x01${3}${4}"),
        (_LONE_PERIOD_RE, "${1}${2}\x01${3}${4}"),
        (_SENTENCE_END_RE, "\x01${1}${2}"),
    )
    original = lines.get_column(line)
    return frame.select(
        pl.when(pl.col("_sl"))
        .then(pl.lit(original).str.count_matches(_SPACELESS_BOUNDARY_RE) + 1)
        .otherwise(text.str.count_matches(_BOUNDARY_RE) + 1)
        .alias("sentences")
    ).to_series()


# --- the stage -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class C4Filter(LanguageAwareFilter):
    """C4's line clean-up and document rules (Raffel et al. 2020, §2.2), as datatrove's
    ``C4QualityFilter`` applies them; the cleaned text replaces ``text`` on the documents kept.

    Every line of the document (``str.splitlines`` boundaries: \\n, \\r\\n, \\r, \\v, \\f,
    \\x1c-\\x1e, \\x85, U+2028, U+2029) is stripped and then, in datatrove's order:

    1. dropped if one of its words (whitespace-separated) is longer than ``max_word_length``;
    2. cleared of Wikipedia citation marks (``[1]``, ``[edit]``, ``[citation needed]``) when
       ``remove_citations``;
    3. dropped if it does not end in terminal punctuation (``. ? ! " '``) or ends in ``...``
       (``filter_no_terminal_punct``);
    4. dropped if it has fewer than ``min_words_per_line`` words (counted before step 2);
    5. **rejects the document** (``c4.lorem_ipsum``) if it contains "lorem ipsum"
       (``filter_lorem_ipsum``);
    6. dropped if it contains "javascript" (``filter_javascript``);
    7. **rejects the document** (``c4.curly_bracket``) if it contains "{" (``filter_curly_bracket``);
    8. dropped if it contains one of the policy phrases ("terms of use", "privacy policy", "cookie
       policy", "uses cookies", "use of cookies", "use cookies") (``filter_policy``);
    9. kept otherwise, and its sentences counted.

    Substring tests are case-insensitive (ASCII, as the phrases are). Steps 5 and 7 look only at
    lines that survived steps 1-4, and the earlier such line decides between the two reasons, as
    datatrove returns at the first. Then **the document is rejected** (``c4.too_few_sentences``)
    if its kept lines hold fewer than ``min_num_sentences`` sentences (an empty document too).
    Otherwise ``text`` becomes the kept lines joined by "\\n", stripped.

    Reason codes (datatrove's): ``c4.lorem_ipsum``, ``c4.curly_bracket``, ``c4.too_few_sentences``.

    Annotations (null on rows rejected before this stage): ``c4_lines_removed`` (lines the line
    rules dropped, over the whole document), ``c4_chars_removed`` (characters by which the text
    shrank), ``c4_sentences`` (sentences in the kept lines; null when ``min_num_sentences == -1``).
    On a document this stage rejects, the text is left as it was and the counts say what the line
    rules would have removed.

    Defaults, all from datatrove's ``C4QualityFilter``, which follows the paper (terminal
    punctuation, >= 3 words per line, >= 5 sentences, "javascript", "lorem ipsum", "{") and TFDS's
    ``c4_utils.py`` (1000-character words, citations, policy lines). ``-1`` disables
    ``min_num_sentences``, ``min_words_per_line`` and ``max_word_length`` as in datatrove.
    datatrove's ``split_paragraph=False`` (judge spaCy sentences instead of lines) is not offered:
    the paper and C4 judge lines. (FineWeb's recipe runs this filter with
    ``filter_no_terminal_punct=False``, leaving the punctuation question to ``fineweb``.)

    **Words and sentences.** Words are maximal runs of non-whitespace (Python's ``str.split``, as
    datatrove counts them here). datatrove counts a kept line's sentences with spaCy's English
    sentencizer; we emulate its tokenizer's decisions on "." "!" "?" with regexes
    (``sentence_counts``: suffix, infix, exception and host-name rules from spaCy 3's English
    tokenizer). On the real crawl 99.96% of kept lines get spaCy's exact count. Known differences:
    spaCy's Cyrillic/Latin lowercase lists are narrower than Unicode's ``Ll``; special cases merged
    after unusual infix splits; "?" used as mojibake for a space.

    **Space-less scripts.** Chinese, Japanese, Thai (and Lao, Khmer, Myanmar, Tibetan) put no spaces
    between words, so C4's English rules would delete all of them. A line is *space-less* when at
    least ``spaceless_threshold`` of its characters are in those scripts (or, when ``word_languages``
    is given and the table has a ``lang`` column, when its document's ``lang`` is not listed; a null
    ``lang`` falls back to the script test). On a space-less line: ``min_words_per_line`` and
    ``max_word_length`` do not apply; the terminal-punctuation test also accepts 。！？｡． and the
    closing quotes 」』”’; sentences are one more than the sentence-final marks (。！？｡．!?) that
    text follows. All other rules apply unchanged. ``spaceless_threshold=None`` (and no
    ``word_languages``) gives datatrove's behaviour on every line. The defaults
    ``spaceless_threshold=0.5`` (most of the line) and ``word_languages=None`` are crawlsift's: no
    published recipe covers these scripts (mC4 dropped C4's line rules altogether).
    """

    name = "c4"
    annotation_types = {"c4_lines_removed": pa.int64(), "c4_chars_removed": pa.int64(), "c4_sentences": pa.int64()}
    rewrite_column = "_c4_text"

    remove_citations: bool = True
    filter_no_terminal_punct: bool = True
    min_num_sentences: int = 5
    min_words_per_line: int = 3
    max_word_length: int = 1000
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True
    word_languages: tuple[str, ...] | None = None
    spaceless_threshold: float | None = 0.5

    def __post_init__(self):
        for name in ("min_num_sentences", "min_words_per_line"):
            if getattr(self, name) < -1:
                raise ValueError(f"{name} must be >= 0, or -1 to disable; got {getattr(self, name)}")
        if self.max_word_length != -1 and self.max_word_length < 1:
            raise ValueError(f"max_word_length must be >= 1, or -1 to disable; got {self.max_word_length}")
        check_language_params(self)

    def prepare(self, frame: pl.DataFrame) -> pl.DataFrame:
        frame = frame.with_columns(pl.col("text").fill_null("")).with_row_index("_doc")
        has_lang = "lang" in frame.columns
        pieces = frame.select(
            "_doc",
            *(["lang"] if has_lang else []),
            pl.col("text").str.replace_all(LINE_BREAK, "\n").str.split("\n").alias("_line"),
            # Lines can only be space-less in a document holding such a script at all.
            (pl.col("text").str.contains(SPACELESS_CHAR) if self.spaceless_threshold is not None else pl.lit(False)).alias(
                "_any_sl"
            ),
        )
        # str.splitlines() yields no empty last line for a text ending in a break (or for "").
        n_lines = pieces.select(
            "_doc", (pl.col("_line").list.len() - (pl.col("_line").list.last() == "").cast(pl.UInt32)).alias("_n_lines")
        )
        lines = pieces.explode("_line").with_row_index("_ln")
        stripped = pl.col("_line").str.strip_chars(PY_WHITESPACE)
        lines = lines.select("_doc", "_ln", "_any_sl", stripped.alias("_s"), *(["lang"] if has_lang else []))
        by_script = masked(lines, pl.col("_any_sl"), spaceless_by_script(pl.col("_s"), self.spaceless_threshold), False)
        lines = lines.with_columns(by_script.alias("_by_script"))
        spaceless = self.spaceless(pl.col("_s"), lines.columns, by_script=pl.col("_by_script"))
        clean = pl.col("_s").str.replace_all(CITATION_REGEX, "") if self.remove_citations else pl.col("_s")
        lines = lines.with_columns(spaceless.alias("_sl"), clean.alias("_c")).drop("lang", "_any_sl", "_by_script", strict=False)

        sl, c = pl.col("_sl"), pl.col("_c")
        false = pl.lit(False)
        if self.max_word_length != -1:
            # Only a line longer than the limit can hold such a word: test those alone.
            limit = self.max_word_length
            long_line = pl.col("_s").str.len_chars() > limit
            # (Longest word via extract_all: a counted repetition like \S{1001} defeats the regex DFA.)
            longest = pl.col("_s").str.extract_all(f"{NON_WS}+").list.eval(pl.element().str.len_chars()).list.max()
            too_long_word = ~sl & masked(lines, long_line, longest > limit, False)
        else:
            too_long_word = false
        if self.filter_no_terminal_punct:
            ends = pl.when(sl).then(c.str.contains(char_class(SPACELESS_END_PUNCTUATION) + "$")).otherwise(
                c.str.contains(char_class(END_PUNCTUATION) + "$")
            )
            no_terminal = ~ends | c.str.ends_with(ELLIPSIS)
        else:
            no_terminal = false
        if self.min_words_per_line > 0:
            # "at least m words" as a regex that stops at the m-th word, cheaper than counting all.
            enough = NON_WS + "+" + f"(?:{WS}+{NON_WS}+){{{self.min_words_per_line - 1}}}"
            too_few_words = ~sl & ~pl.col("_s").str.contains(enough)
        else:
            too_few_words = false
        survives = ~(too_long_word | no_terminal | too_few_words)
        lorem = c.str.contains_any(["lorem ipsum"], ascii_case_insensitive=True) if self.filter_lorem_ipsum else false
        javascript = c.str.contains_any(["javascript"], ascii_case_insensitive=True) if self.filter_javascript else false
        curly = c.str.contains("{", literal=True) if self.filter_curly_bracket else false
        policy = c.str.contains_any(list(POLICY_SUBSTRINGS), ascii_case_insensitive=True) if self.filter_policy else false
        # Materialize each flag once (an expression used in several outputs is evaluated for each).
        lines = lines.with_columns(
            survives.alias("_survives"), lorem.alias("_has_lorem"), javascript.alias("_has_js"), curly.alias("_has_curly"),
            policy.alias("_has_policy"),
        )
        survives, lorem, javascript, curly, policy = (
            pl.col(name) for name in ("_survives", "_has_lorem", "_has_js", "_has_curly", "_has_policy")
        )
        lines = lines.with_columns(
            (survives & lorem).alias("_lorem"),
            (survives & ~lorem & ~javascript & curly).alias("_curly"),
            (survives & ~lorem & ~javascript & ~curly & ~policy).alias("_kept"),
        )

        kept = lines.filter(pl.col("_kept"))
        if self.min_num_sentences != -1:
            # A line without a sentence-final mark is one sentence: count only the others.
            marks = kept.select(c.str.contains(char_class(_SENTENCE_ENDS + "。！？｡．."))).to_series()
            counted = sentence_counts(kept.filter(marks), "_c", "_sl")
            sentences = pl.repeat(1, kept.height, dtype=pl.UInt32, eager=True).scatter(marks.arg_true(), counted).alias("_sentences")
        else:
            sentences = pl.lit(None, dtype=pl.UInt32).alias("_sentences")
        per_doc = kept.with_columns(sentences).group_by("_doc").agg(
            c.str.join("\n").alias("_kept_text"), pl.len().alias("_n_kept"), pl.col("_sentences").sum()
        )
        hits = (
            lines.filter(pl.col("_lorem") | pl.col("_curly"))
            .group_by("_doc")
            .agg(
                pl.col("_ln").filter(pl.col("_lorem")).min().alias("_first_lorem"),
                pl.col("_ln").filter(pl.col("_curly")).min().alias("_first_curly"),
            )
        )
        frame = (
            frame.join(n_lines, on="_doc", how="left", maintain_order="left")
            .join(per_doc, on="_doc", how="left", maintain_order="left")
            .join(hits, on="_doc", how="left", maintain_order="left")
        )
        new_text = pl.col("_kept_text").fill_null("").str.strip_chars(PY_WHITESPACE)
        return frame.with_columns(
            new_text.alias("_c4_text"),
            pl.col("_n_kept").fill_null(0),
            pl.col("_sentences").fill_null(0) if self.min_num_sentences != -1 else pl.col("_sentences"),
        )

    def rules(self) -> list[tuple[str, pl.Expr]]:
        lorem, curly = pl.col("_first_lorem"), pl.col("_first_curly")
        return [
            ("lorem_ipsum", lorem.is_not_null() & (curly.is_null() | (lorem < curly))),
            ("curly_bracket", curly.is_not_null()),
            ("too_few_sentences", pl.col("_sentences") < self.min_num_sentences),
        ]

    def annotations(self) -> dict[str, pl.Expr]:
        return {
            "c4_lines_removed": pl.col("_n_lines").cast(pl.Int64) - pl.col("_n_kept").cast(pl.Int64),
            "c4_chars_removed": pl.col("text").str.len_chars().cast(pl.Int64) - pl.col("_c4_text").str.len_chars().cast(pl.Int64),
            "c4_sentences": pl.col("_sentences").cast(pl.Int64),
        }


