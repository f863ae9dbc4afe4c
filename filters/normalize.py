"""Text normalization: control characters, Unicode normal form, mojibake, whitespace.

A rewriting stage, not a filter: it never rejects. It rewrites ``text`` of the documents nobody has
rejected yet and records how much it changed each one.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass
from typing import Callable

import numpy as np
import polars as pl
import pyarrow as pa

from filters.base import Stage, judge_active

FORMS = ("NFC", "NFD", "NFKC", "NFKD")
ENGINES = ("columnar", "ftfy")
# Passes of the mojibake repair (each pass re-checks only the rows the previous one changed). Two
# suffice for text that was mis-decoded twice ("Ã¢â‚¬â„¢" -> "â€™" -> "’"); deeper nesting is left
# partly repaired.
MOJIBAKE_PASSES = 4

# --- control characters ------------------------------------------------------------------------

# CR LF, lone CR (old Mac), VT and FF (Word's manual line break, page break) are line breaks: they
# become "\n" rather than vanish and glue two lines together.
_LINE_BREAKS = r"\r\n?|[\x0b\x0c]"
_C0 = r"\x00-\x08\x0e-\x1f\x7f"  # C0 controls and DEL, except \t \n (and \v \f \r, folded above)
_C1 = r"\x{80}-\x{9f}"
_BOM = r"\x{feff}"  # byte-order mark / zero-width no-break space
_ZERO_WIDTH = r"\x{200b}-\x{200d}\x{2060}"  # ZWSP, ZWNJ, ZWJ, word joiner


def _char_class(spans: str) -> str:
    return f"[{spans}]"


# --- Unicode normalization quick check -----------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _maybe_unnormalized_class(form: str) -> str:
    """A regex class holding every character that can make a string not in ``form``: characters
    not in the form on their own, non-starters (canonical reordering) and, for the composed forms,
    every character that can be the second of a canonical composition (UAX #15's Quick_Check
    No/Maybe, a superset of it). A string with none of them is already in the form, so only the
    rows that hold one are normalized. Built once per process from Python's Unicode tables
    (Unicode 14 in Python 3.11)."""
    chars: set[int] = set()
    composed = form in ("NFC", "NFKC")
    for cp in range(0x80, 0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        c = chr(cp)
        if unicodedata.combining(c) or not unicodedata.is_normalized(form, c):
            chars.add(cp)
        if composed:
            decomposition = unicodedata.decomposition(c)
            if decomposition and not decomposition.startswith("<"):
                parts = decomposition.split()
                if len(parts) == 2:
                    chars.add(int(parts[1], 16))
    ranges: list[list[int]] = []
    for cp in sorted(chars):
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return "[" + "".join(f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in ranges) + "]"


# --- mojibake: UTF-8 read as Windows-1252 / Latin-1 ---------------------------------------------

# Each byte 0x80-0xBF (a UTF-8 continuation byte) as it appears after a wrong decode: its
# Windows-1252 character, or the C1 control of the same number (Latin-1, and the five bytes
# Windows-1252 leaves undefined, as ftfy's "sloppy-windows-1252" reads them).
_CONTINUATION: dict[str, int] = {}
for _b in range(0x80, 0xC0):
    _CONTINUATION[chr(_b)] = _b
    try:
        _CONTINUATION[bytes([_b]).decode("cp1252")] = _b
    except UnicodeDecodeError:
        pass
_CONT = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in sorted(_CONTINUATION)) + "]"
# A UTF-8 lead byte read as Latin-1 (U+00C2-U+00F4), followed by as many continuation characters as
# it announces.
MOJIBAKE_RE = rf"[\x{{c2}}-\x{{df}}]{_CONT}|[\x{{e0}}-\x{{ef}}]{_CONT}{{2}}|[\x{{f0}}-\x{{f4}}]{_CONT}{{3}}"
# Continuation characters that also follow letters in correct text: an all-caps "CAFÉ…" or "L’ÉTÉ’",
# a lowercase "café…”". A sequence made only of these (after a lead other than Â Ã Ð Ñ) is not
# evidence of mojibake on its own.
_AMBIGUOUS = set("\u00a0\u2019\u2018\u201d\u201c\u201a\u201e\u2026\u2013\u2014\u00ab\u00bb\u2039\u203a\u00b7\u2022\u00b0\u00b4\u00a9\u00ae\u2122")
# Leads whose two-character sequences are mojibake whatever follows: Â Ã (all of Latin-1), Ð Ñ
# (Cyrillic). ftfy's badness heuristic singles out the same leads.
_STRONG_LEADS = set("\u00c2\u00c3\u00d0\u00d1")


def _decode_sequence(seq: str) -> tuple[str | None, bool]:
    """(the character ``seq`` is the mojibake of, or None; whether ``seq`` alone is evidence)."""
    try:
        fixed = bytes([ord(seq[0])] + [_CONTINUATION[c] for c in seq[1:]]).decode("utf-8")
    except (UnicodeDecodeError, KeyError):
        return None, False
    if len(seq) == 2 and seq[0] in _STRONG_LEADS:
        return fixed, True
    return fixed, any(c not in _AMBIGUOUS for c in seq[1:])


def repair_mojibake_columnar(texts: pl.Series) -> pl.Series:
    """Repair UTF-8 text that was decoded as Windows-1252 or Latin-1, over a batch at once.

    Finds every candidate sequence (a lead character U+00C2-U+00F4 and the continuation characters
    it needs), decodes each *distinct* sequence once in Python (a batch holds a few hundred distinct
    ones however many documents it has), and rewrites the documents that hold at least one
    unambiguous sequence with one Aho-Corasick pass (``str.replace_many``). In such a document every
    sequence that decodes to valid UTF-8 is repaired, the ambiguous ones too; a document whose only
    candidates are ambiguous (``café…”``) is left alone.
    """
    candidates = texts.str.contains(MOJIBAKE_RE).fill_null(False)
    if not candidates.any():
        return texts
    idx = candidates.arg_true()
    spans = (
        pl.DataFrame({"row": idx, "span": texts.gather(idx).str.extract_all(MOJIBAKE_RE)})
        .explode("span")
        .drop_nulls("span")
    )
    mapping: dict[str, str] = {}
    evidence: list[str] = []
    for seq in spans.get_column("span").unique().to_list():
        fixed, strong = _decode_sequence(seq)
        if fixed is not None:
            mapping[seq] = fixed
            if strong:
                evidence.append(seq)
    if not evidence:
        return texts
    rows = spans.filter(pl.col("span").is_in(evidence)).get_column("row").unique().sort()
    fixed = texts.gather(rows).str.replace_many(mapping, leftmost=True)
    return texts.clone().scatter(rows, fixed)


def repair_mojibake_ftfy(texts: pl.Series) -> pl.Series:
    """ftfy's own ``fix_encoding`` (all the encodings ftfy knows) on the rows with any non-ASCII
    character; a per-document Python call, so markedly slower than the columnar repair."""
    import ftfy

    idx = texts.str.contains(r"[^\x00-\x7f]").fill_null(False).arg_true()
    if idx.len() == 0:
        return texts
    sub = texts.gather(idx)
    fixed = pl.Series([None if t is None else ftfy.fix_encoding(t) for t in sub.to_list()], dtype=pl.String)
    return texts.clone().scatter(idx, fixed)


def _on_rows(s: pl.Series, candidates: pl.Series, fn: Callable[[pl.Series], pl.Series]) -> pl.Series:
    """``fn`` applied to the candidate rows only."""
    idx = candidates.fill_null(False).arg_true()
    if idx.len() == 0:
        return s
    return s.clone().scatter(idx, fn(s.gather(idx)))


def _length_change(before: pl.Series, after: pl.Series) -> np.ndarray:
    return (before.str.len_chars().cast(pl.Int64) - after.str.len_chars().cast(pl.Int64)).abs().fill_null(0).to_numpy()


# --- the stage ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Normalize(Stage):
    """Clean the text without judging it: control characters, Unicode normal form, mojibake (opt.),
    whitespace. Never rejects; rewrites ``text`` of the rows nobody rejected yet.

    Steps, in this order (each one only touches the rows it can change, found by a cheap columnar
    check first):

    1. ``remove_controls``: CR LF, lone CR, VT and FF become ``\\n``; C0 controls and DEL (except
       ``\\t`` and ``\\n``), C1 controls (U+0080-U+009F) and U+FEFF (byte-order mark) are deleted —
       ftfy's ``remove_control_chars`` set, plus C1, which ftfy keeps only as a mojibake clue.
       ``remove_zero_width`` also deletes U+200B-U+200D and U+2060 (off by default: ZWJ builds emoji
       sequences, ZWNJ is spelling in Persian and Indic scripts). Soft hyphens are kept.
    2. ``form``: Unicode normalization (Polars ``str.normalize``), default NFC (canonical composition,
       lossless; W3C's Character Model recommends NFC for text on the web); NFKC also folds
       compatibility characters (ligatures, full-width forms, superscripts); None skips the step.
       Only rows holding a character outside the Quick_Check "Yes" set are normalized.
    3. ``fix_mojibake`` (off by default): UTF-8 that was decoded as Windows-1252 or Latin-1 ("Ã©" ->
       "é", "â€™" -> "’", "ðŸ˜€" -> "😀"). ``mojibake_engine="columnar"`` (default) repairs it over
       the batch (see ``repair_mojibake_columnar``); ``"ftfy"`` calls ``ftfy.fix_encoding`` per
       document on the non-ASCII rows (ftfy must be importable; it is not a runtime dependency).
       C1 controls are deleted only after the repair (they are part of the mojibake), and repaired
       rows are normalized again; the repair repeats until the rows stop changing (at most
       ``MOJIBAKE_PASSES``).
       Limits of the columnar repair, against ftfy: only Windows-1252/Latin-1 (not MacRoman,
       Windows-1250/1251/1253/1257), per sequence rather than per document (a document with one
       clear sequence gets every decodable sequence repaired; one whose only candidates are
       ambiguous punctuation after an accented letter — "café…”" — is left alone), and no repair
       of sequences whose U+00A0 was turned into a space (ftfy's ``restore_byte_a0``) or lost
       (``replace_lossy_sequences``).
    4. ``collapse_spaces``: a run of two or more spaces/tabs inside a line (after its first
       non-blank character) becomes one space; leading indentation is kept (code, verse) and a lone
       tab is left as it is.
    5. ``strip_trailing_spaces``: spaces and tabs at the end of each line are deleted.
    6. ``collapse_blank_lines``: two or more consecutive blank lines (three or more newlines, blank
       lines holding only spaces/tabs included) become one blank line.
    7. ``strip_document``: leading and trailing whitespace of the whole document is deleted, so a
       whitespace-only document becomes empty (and ``length`` then rejects it).

    The result is idempotent: normalizing a normalized text changes nothing.

    Annotation ``normalize_chars_changed`` (int64, null for rows rejected before): characters
    removed or added, summed over the steps, i.e. ``sum |len before - len after|`` per step, in
    code points. A control character deleted counts 1, a run of n spaces collapsed n-1, a mojibake
    sequence repaired its length minus one, an NFC composition 1; a same-length substitution (a lone
    CR turned into LF, an NFC singleton) counts 0, so 0 means "nothing removed or added", not
    "byte-identical".
    """

    name = "normalize"

    form: str | None = "NFC"
    remove_controls: bool = True
    remove_zero_width: bool = False
    fix_mojibake: bool = False
    mojibake_engine: str = "columnar"
    collapse_spaces: bool = True
    strip_trailing_spaces: bool = True
    collapse_blank_lines: bool = True
    strip_document: bool = True

    def __post_init__(self):
        if self.form is not None and self.form not in FORMS:
            raise ValueError(f"form must be one of {', '.join(FORMS)} or null, got {self.form!r}")
        if self.mojibake_engine not in ENGINES:
            raise ValueError(f"mojibake_engine must be one of {', '.join(ENGINES)}, got {self.mojibake_engine!r}")
        if self.fix_mojibake and self.mojibake_engine == "ftfy":
            try:
                import ftfy  # noqa: F401
            except ImportError:
                raise ValueError("mojibake_engine 'ftfy' needs the ftfy package (pip install ftfy), which is not installed") from None

    def setup(self) -> None:
        if self.form is not None:
            _maybe_unnormalized_class(self.form)  # ~0.5 s of Unicode tables, once per worker

    # -- the pipeline over one Polars Series of texts ----------------------------------------------

    def normalize(self, texts: pl.Series) -> tuple[pl.Series, np.ndarray]:
        """(normalized texts, characters removed or added per row) for a Series of texts."""
        changed = np.zeros(len(texts), dtype=np.int64)

        def step(s: pl.Series, candidates: pl.Series | None, fn: Callable[[pl.Series], pl.Series]) -> pl.Series:
            """Apply ``fn`` to the candidate rows (all rows when None) and count the change."""
            if candidates is None:
                new = fn(s)
                changed[:] += _length_change(s, new)
                return new
            idx = candidates.fill_null(False).arg_true()
            if idx.len() == 0:
                return s
            sub = s.gather(idx)
            new = fn(sub)
            changed[idx.to_numpy()] += _length_change(sub, new)
            return s.clone().scatter(idx, new)

        s = texts
        if self.remove_controls:
            s = step(s, s.str.contains_any(["\r", "\x0b", "\x0c"]), lambda x: x.str.replace_all(_LINE_BREAKS, "\n"))
        # Steps 1 and 2 share one scan: the rows holding a control character or a character that
        # may not be in the normal form (a few percent of web text) are the only ones rewritten.
        controls = self._controls(c1=not self.fix_mojibake)
        unnormalized = _maybe_unnormalized_class(self.form) if self.form is not None else ""
        if controls or unnormalized:
            either = controls[:-1] + unnormalized[1:] if controls and unnormalized else controls or unnormalized
            idx = s.str.contains(either).fill_null(False).arg_true()
            if idx.len():
                sub = s.gather(idx)
                rows = idx.to_numpy()
                if controls:
                    new = sub.str.replace_all(controls, "")
                    changed[rows] += _length_change(sub, new)
                    sub = new
                if unnormalized:
                    new = _on_rows(sub, sub.str.contains(unnormalized), self._normal_form)
                    changed[rows] += _length_change(sub, new)
                    sub = new
                s = s.clone().scatter(idx, sub)
        if self.fix_mojibake:
            s = self._mojibake(s, changed)
        if self.collapse_spaces:
            s = step(s, s.str.contains_any(["  ", " \t", "\t ", "\t\t"]), lambda x: x.str.replace_all(r"([^ \t\n])[ \t]{2,}", "${1} "))
        if self.strip_trailing_spaces:
            has = s.str.contains_any([" \n", "\t\n"]) | s.str.ends_with(" ") | s.str.ends_with("\t")
            s = step(s, has, lambda x: x.str.replace_all(r"[ \t]+(\n|$)", "${1}"))
        if self.collapse_blank_lines:
            has = s.str.contains(r"\n[ \t]*\n[ \t]*\n")
            s = step(s, has, lambda x: x.str.replace_all(r"\n[ \t]*\n(?:[ \t]*\n)+", "\n\n"))
        if self.strip_document:
            s = step(s, None, lambda x: x.str.strip_chars())
        return s, changed

    def _controls(self, c1: bool) -> str:
        """The class of characters step 1 deletes ('' when none)."""
        spans = (_C0 + _BOM + (_C1 if c1 else "")) if self.remove_controls else ""
        spans += _ZERO_WIDTH if self.remove_zero_width else ""
        return _char_class(spans) if spans else ""

    def _normal_form(self, texts: pl.Series) -> pl.Series:
        return texts.str.normalize(self.form)  # type: ignore[arg-type]

    def _mojibake(self, s: pl.Series, changed: np.ndarray) -> pl.Series:
        """Repair, then delete the control characters left over (C1 among them) and renormalize;
        again on the rows that changed, until none does."""
        repair = repair_mojibake_ftfy if self.mojibake_engine == "ftfy" else repair_mojibake_columnar
        controls = self._controls(c1=True)
        unnormalized = _maybe_unnormalized_class(self.form) if self.form is not None else None
        idx = pl.Series("idx", np.arange(len(s)), dtype=pl.UInt32)
        for _ in range(MOJIBAKE_PASSES):
            sub = s.gather(idx)
            new = repair(sub)
            if controls:
                new = _on_rows(new, new.str.contains(controls), lambda x: x.str.replace_all(controls, ""))
            moved = (sub != new).fill_null(False)
            if unnormalized is not None:
                # Rows the repair or the deletion left alone were normalized already (step 2).
                new = _on_rows(new, moved, lambda x: _on_rows(x, x.str.contains(unnormalized), self._normal_form))
                moved = (sub != new).fill_null(False)
            if not moved.any():
                break
            changed[idx.to_numpy()] += _length_change(sub, new)
            s = s.clone().scatter(idx, new)
            idx = idx.filter(moved)
        return s

    # -- the stage contract --------------------------------------------------------------------------

    def __call__(self, table: pa.Table) -> pa.Table:
        return judge_active(table, self._judge, {"normalize_chars_changed": pa.int64()})

    def _judge(self, rows: pa.Table) -> dict:
        new, changed = self.normalize(pl.Series("text", rows.column("text")))
        return {"text": new.to_arrow(), "normalize_chars_changed": pa.array(changed)}
