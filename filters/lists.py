"""User-supplied block lists: URL domains/substrings/regexes, and flagged words.

List files hold one entry per line; blank lines and lines whose first non-blank character is ``#``
are skipped (an entry itself may hold ``#``: a URL fragment, a regex). UTF-8, optionally gzipped
(``.gz``). They are read once, when the stage is built (on the driver, so a missing file is a
one-line config error before any work), and travel to the workers inside the pickled stage.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from filters.base import Stage, scatter, set_column, active_mask


def load_list(path: str, what: str) -> list[str]:
    """The entries of a list file; ValueError naming the path if it cannot be read."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"{what}: list file not found: {path}")
    try:
        opener = gzip.open if p.suffix == ".gz" else open
        with opener(p, "rt", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what}: cannot read list file {path}: {exc}") from None
    return [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]


def _entries(stage: str, field: str, inline, path: str | None) -> list[str]:
    if isinstance(inline, str):  # a lone string in YAML where a list was meant
        raise ValueError(f"{stage}.{field} must be a list of strings, got {inline!r}")
    entries = [str(e).strip() for e in inline if str(e).strip()]
    if path is not None:
        entries += load_list(path, f"{stage}.{field}_file")
    return list(dict.fromkeys(entries))  # de-duplicated, first-seen order: deterministic


def _frozen(stage, **values) -> None:
    for key, value in values.items():
        object.__setattr__(stage, key, value)


def _digest(*lists: list[str]) -> str:
    body = "\x1e".join("\x1f".join(entries) for entries in lists)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]


class _ListParams:
    """``params()`` of a stage whose lists may come from files: the parameters plus a digest of
    the entries loaded, so that a run's fingerprint (what a rerun must match to resume) changes
    when a list file's contents do, not only when its path does."""

    def params(self) -> dict:
        params = super().params()  # type: ignore[misc]
        if any(getattr(self, f.name) for f in self.parameters().values() if f.name.endswith("_file")):  # type: ignore[attr-defined]
            params["lists_sha256"] = self._lists_digest  # type: ignore[attr-defined]
        return params


def _judge(stage: Stage, table: pa.Table, column: str, rules, annotation_types: dict[str, pa.DataType]) -> pa.Table:
    """RuleFilter's evaluation, over any column: ``rules(series)`` gets that column's values for
    the rows nobody rejected yet and returns ((rule name, boolean Series) in order, {annotation
    name: Series}); the first rule that holds names the reason."""
    mask = active_mask(table)
    rows = np.flatnonzero(mask)
    reasons = pa.nulls(table.num_rows, pa.string())
    annotations = {name: pa.nulls(table.num_rows, t) for name, t in annotation_types.items()}
    if len(rows):
        values = table.column(column)
        series = pl.Series(column, values if len(rows) == table.num_rows else values.take(rows))
        judged, extra = rules(series)
        reason = pl.Series("reason", [None] * len(series), dtype=pl.String)
        for rule, hit in reversed(judged):
            reason = pl.select(pl.when(hit.fill_null(False)).then(pl.lit(f"{stage.name}.{rule}")).otherwise(reason)).to_series()
        reasons = scatter(reasons, mask, reason.to_arrow())
        for name, t in annotation_types.items():
            annotations[name] = scatter(annotations[name], mask, extra[name].to_arrow().cast(t))
    rejected = pc.coalesce(table.column("rejected_by"), reasons)
    table = table.set_column(table.schema.get_field_index("rejected_by"), "rejected_by", rejected)
    for name, values in annotations.items():
        table = set_column(table, name, values)
    return table


# --- URLs ----------------------------------------------------------------------------------------

# scheme://userinfo@host:port/...: the host, or an IPv6 literal in brackets. Without "//" the
# text before the first ":" is a host with a port ("example.com:8080/x"), not a scheme.
HOST_RE = r"^(?:(?:[A-Za-z][A-Za-z0-9+.\-]*:)?//)?(?:[^/?#@]*@)?(\[[^\]/?#]*\]|[^/?#:@]*)"


def normalize_domain(entry: str) -> list[str]:
    """A block-list entry as the hosts it names: lower case, no scheme, path, port or user, no
    leading ``*.``/``.`` or trailing dot; an internationalized name in both its Unicode and its
    punycode (IDNA) form, since URLs carry either."""
    e = entry.strip().lower()
    if "://" in e:
        e = e.split("://", 1)[1]
    for stop in "/?#":
        e = e.split(stop, 1)[0]
    e = e.rsplit("@", 1)[-1]
    if not e.startswith("["):
        e = e.split(":", 1)[0]
    e = e.lstrip("*.").rstrip(".")
    if not e:
        return []
    forms = [e]
    if not e.isascii():
        try:
            forms.append(e.encode("idna").decode("ascii"))
        except UnicodeError:
            pass
    elif "xn--" in e:
        try:
            forms.append(e.encode("ascii").decode("idna"))
        except UnicodeError:
            pass
    return forms


def url_hosts(urls: pl.Series) -> pl.Series:
    return urls.str.strip_chars().str.extract(HOST_RE, 1).str.to_lowercase().str.strip_chars_end(".")


def _check_regex(stage: str, pattern: str) -> None:
    try:
        pl.Series([""], dtype=pl.String).str.contains(pattern)
    except Exception as exc:  # Polars raises ComputeError with the parser's message
        first = str(exc).strip().splitlines()
        raise ValueError(f"{stage}: invalid regex {pattern!r} (Rust regex syntax): {' '.join(first[:4])}") from None


@dataclass(frozen=True)
class URLFilter(_ListParams, Stage):
    """Reject documents whose URL is on a block list.

    * ``domains`` / ``domains_file``: a host and all its subdomains — ``example.com`` blocks
      ``example.com``, ``www.example.com`` and ``a.b.example.com``, not ``notexample.com``
      (the way UT1/Blacklists and C4/RefinedWeb's URL block lists are applied). Entries may be
      written as hosts, ``*.host`` or full URLs; matching is case-insensitive, IDNA-aware.
      Reason ``url_filter.domain``.
    * ``substrings`` / ``substrings_file``: any URL containing one (Aho-Corasick over the batch,
      ASCII-case-insensitive unless ``case_sensitive_substrings``). Reason ``url_filter.substring``.
    * ``regexes`` / ``regexes_file``: Rust-syntax regexes (Polars), searched anywhere in the URL
      (anchor with ``^``/``$``), compiled into one alternation. Reason ``url_filter.regex``.

    * ``blocklist: ut1``: the UT1 blacklists' ``adult`` category (Université Toulouse 1 Capitole;
      4.56M domains and 19.6k URLs, snapshot v0.3.0) as shipped inside the ``datatrove`` wheel
      on PyPI, the list FineWeb's ``URLFilter`` applies: a host whose domain or a parent domain
      is listed (``url_filter.domain``), or a URL listed without its scheme (``url_filter.url``;
      datatrove compares the URL with its scheme to entries without one, so its URL rule never
      fires). Loaded once per worker process from the installed package (never pickled into
      tasks), hashed to 64 bits and looked up by binary search. The lists are published under
      CC BY-SA 4.0 by UT1; datatrove's code is Apache-2.0.
    * ``fineweb_url_words``: FineWeb's word rules on the URL, with datatrove's bundled lists: a
      banned word among the URL's alphanumeric runs (``url_filter.banned_word``; case-sensitive
      as datatrove), at least ``soft_word_threshold`` (2) distinct soft-banned words
      (``url_filter.soft_banned_words``), a banned sub-word inside the URL lower-cased with
      everything but letters and digits removed (``url_filter.banned_subword``).

    Rules apply in that order (domain, url, words, then substrings and regexes); inline lists and
    files add up. A document with a null URL is kept: nothing says where it came from. With every
    list empty the stage keeps everything.
    """

    name = "url_filter"

    domains: tuple[str, ...] = ()
    domains_file: str | None = None
    substrings: tuple[str, ...] = ()
    substrings_file: str | None = None
    regexes: tuple[str, ...] = ()
    regexes_file: str | None = None
    case_sensitive_substrings: bool = False
    blocklist: str | None = None
    fineweb_url_words: bool = False
    soft_word_threshold: int = 2

    def __post_init__(self):
        if self.blocklist not in (None, "ut1"):
            raise ValueError(f"url_filter.blocklist: {self.blocklist!r} is not a bundled list (known: ut1)")
        if (self.blocklist or self.fineweb_url_words) and datatrove_assets() is None:
            raise ValueError("url_filter: the UT1 list and FineWeb's URL words ship inside the datatrove package; "
                             "pip install datatrove")
        domains = _entries(self.name, "domains", self.domains, self.domains_file)
        substrings = _entries(self.name, "substrings", self.substrings, self.substrings_file)
        regexes = _entries(self.name, "regexes", self.regexes, self.regexes_file)
        for pattern in regexes:
            _check_regex(self.name, pattern)
        hosts = sorted({form for d in domains for form in normalize_domain(d)})
        _frozen(
            self,
            domains=tuple(self.domains),
            substrings=tuple(self.substrings),
            regexes=tuple(self.regexes),
            _hosts=pl.Series("hosts", hosts, dtype=pl.String),
            _max_labels=max((h.count(".") + 1 for h in hosts), default=0),
            _substrings=substrings,
            _regex="|".join(f"(?:{r})" for r in regexes) if regexes else None,
            _lists_digest=_digest(domains, substrings, regexes),
        )

    def setup(self) -> None:
        """Load the bundled lists once per worker process (1-2 s for UT1's 4.56M domains)."""
        if self.blocklist:
            _ut1()
        if self.fineweb_url_words:
            _fineweb_words()

    def rules(self, urls: pl.Series) -> tuple[list[tuple[str, pl.Series]], dict]:
        rules: list[tuple[str, pl.Series]] = []
        hosts = url_hosts(urls) if len(self._hosts) or self.blocklist else None
        if len(self._hosts) or self.blocklist:
            hit = self._domain_hit(hosts) if len(self._hosts) else pl.Series([False] * len(urls))
            if self.blocklist:
                hit = hit | _bundled_domain_hit(hosts)
            rules.append(("domain", hit))
            rules.append(("url", _bundled_url_hit(urls)))
        if self.fineweb_url_words:
            rules += _fineweb_url_word_rules(urls, self.soft_word_threshold)
        if self._substrings:
            rules.append(("substring", urls.str.contains_any(self._substrings, ascii_case_insensitive=not self.case_sensitive_substrings)))
        if self._regex is not None:
            rules.append(("regex", urls.str.contains(self._regex)))
        return rules, {}

    def _domain_hit(self, hosts: pl.Series) -> pl.Series:
        listed = self._hosts.implode()
        return pl.Series(parent_domain_hit(hosts, lambda names: names.is_in(listed).fill_null(False).to_numpy()))

    def __call__(self, table: pa.Table) -> pa.Table:
        return _judge(self, table, "url", self.rules, {})


# --- the bundled lists (datatrove's wheel) -------------------------------------------------------

_BUNDLED: dict[str, object] = {}  # per worker process: the lists, loaded on first use


def datatrove_assets() -> Path | None:
    """The ``assets`` folder of the installed datatrove package (UT1 lists, FineWeb's URL words)."""
    import importlib.util

    spec = importlib.util.find_spec("datatrove")
    if spec is None or not spec.origin:
        return None
    assets = Path(spec.origin).parent / "assets"
    return assets if (assets / UT1_ARCHIVE).is_file() else None


UT1_ARCHIVE = "url_filterblacklistsv0_3_0.tar.gz"


def _hash64(values: pl.Series) -> np.ndarray:
    return values.hash(seed=17).to_numpy()


def _ut1() -> tuple[np.ndarray, np.ndarray]:
    """(sorted hashes of the listed domains, sorted hashes of the listed URLs)."""
    if "ut1" not in _BUNDLED:
        import tarfile

        with tarfile.open(datatrove_assets() / UT1_ARCHIVE, "r:gz") as tar:
            members = {m.name.rsplit("/", 1)[-1]: m for m in tar.getmembers()}
            lists = {}
            for name in ("domains", "urls"):
                raw = tar.extractfile(members[name]).read()
                lists[name] = pl.Series(raw.decode("utf-8", "replace").split("\n")).str.strip_chars()
                lists[name] = lists[name].filter(lists[name].str.len_bytes() > 0)
        domains = lists["domains"].str.to_lowercase().str.strip_chars_end(".")
        _BUNDLED["ut1"] = (np.sort(_hash64(domains)), np.sort(_hash64(lists["urls"])))
    return _BUNDLED["ut1"]


def _in_sorted(values: np.ndarray, table: np.ndarray) -> np.ndarray:
    at = np.searchsorted(table, values)
    return table[np.minimum(at, len(table) - 1)] == values


def parent_domain_hit(hosts: pl.Series, listed) -> np.ndarray:
    """Where the host or one of its parent domains is listed (``listed``: names -> bool array, null
    names False): strip one leading label at a time, a vectorized pass per level."""
    hit = listed(hosts)
    depth = int(hosts.str.count_matches(".", literal=True).max() or 0)
    for labels_off in range(1, depth + 1):
        hit |= listed(hosts.str.splitn(".", labels_off + 1).struct.field(f"field_{labels_off}"))
    return hit


def _bundled_domain_hit(hosts: pl.Series) -> pl.Series:
    domains, _ = _ut1()
    return pl.Series(parent_domain_hit(hosts, lambda names: _in_sorted(_hash64(names), domains) & names.is_not_null().to_numpy()))


def _bundled_url_hit(urls: pl.Series) -> pl.Series:
    _, listed = _ut1()
    bare = urls.str.strip_chars().str.replace(r"^[A-Za-z][A-Za-z0-9+.\-]*://", "")
    return pl.Series(_in_sorted(_hash64(bare), listed) & bare.is_not_null().to_numpy())


def _fineweb_words() -> tuple[list[str], list[str], list[str]]:
    """datatrove's banned words, soft-banned words and banned sub-words, normalised as it does."""
    if "words" not in _BUNDLED:
        import re

        def read(name: str) -> list[str]:
            lines = (datatrove_assets() / name).read_text(encoding="utf-8").splitlines()
            return sorted({re.sub(r"[^a-zA-Z0-9]+", "", x).lower() for x in lines if x and x[0] != "#"} - {""})

        _BUNDLED["words"] = (read("banned_words.txt"), read("soft_banned_words.txt"), read("banned_subwords.txt"))
    return _BUNDLED["words"]


def _fineweb_url_word_rules(urls: pl.Series, soft_threshold: int) -> list[tuple[str, pl.Series]]:
    banned, soft, subwords = _fineweb_words()
    words = urls.str.extract_all(r"[a-zA-Z0-9]+").list.unique()
    frame = pl.DataFrame({"w": words})
    hard = frame.select(pl.col("w").list.eval(pl.element().is_in(banned)).list.any()).to_series()
    soft_count = frame.select(pl.col("w").list.eval(pl.element().is_in(soft)).list.sum()).to_series()
    squeezed = urls.str.replace_all(r"[^a-zA-Z0-9]+", "").str.to_lowercase()
    return [("banned_word", hard), ("soft_banned_words", soft_count >= soft_threshold),
            ("banned_subword", squeezed.str.contains_any(subwords))]


# --- flagged words -------------------------------------------------------------------------------

_PUNCT = r"[^\w\s]"


def _canonical(lowered: pl.Series) -> pl.Series:
    """Lower-cased text as " tok  tok  tok ": tokens are runs of word characters or single
    punctuation marks, each flanked by its own spaces so that adjacent matches do not share one."""
    spaced = lowered.str.replace_all(_PUNCT, " $0 ").str.strip_chars().str.replace_all(r"\s+", "  ")
    return pl.select(pl.concat_str(pl.lit(" "), spaced, pl.lit(" "))).to_series()


def _regex_literal(token: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else f"\\x{{{ord(c):x}}}" for c in token)


def _screen_regex(lowered: pl.Series) -> str | None:
    """One case-insensitive regex matching wherever an entry's token sequence occurs (and in a few
    more places); None if Rust's regex will not compile it (size limit on huge lists)."""
    frame = pl.DataFrame({"token": lowered.str.extract_all(r"\w+|[^\w\s]")}).with_columns(
        word=pl.col("token").list.eval(pl.element().str.contains(r"^\w"))
    )
    alternatives = []
    for tokens, words in zip(frame.get_column("token").to_list(), frame.get_column("word").to_list()):
        if not tokens:
            continue
        body = _regex_literal(tokens[0])
        for prev, tok, prev_word, word in zip(tokens, tokens[1:], words, words[1:]):
            body += (r"\s+" if prev_word and word else r"\s*") + _regex_literal(tok)
        # An ASCII boundary only next to an ASCII word character (it never holds next to "ü").
        head = r"(?-u:\b)" if words[0] and tokens[0][0].isascii() else ""
        tail = r"(?-u:\b)" if words[-1] and tokens[-1][-1].isascii() else ""
        alternatives.append(head + body + tail)
    if not alternatives:
        return None
    pattern = "(?i)(?:" + "|".join(sorted(set(alternatives), key=len, reverse=True)) + ")"
    try:
        pl.Series([""], dtype=pl.String).str.contains(pattern)
    except Exception:
        return None
    return pattern


@dataclass(frozen=True)
class WordFilter(_ListParams, Stage):
    """Reject documents with flagged words (a block list such as LDNOOBW's).

    Matching is whole-word and case-insensitive (Unicode lower case): an entry matches where its
    words appear as whole tokens, in order, whatever the whitespace between them — ``ass`` matches
    "Ass!" but not "class"; ``blow job`` matches "BLOW  JOB". Punctuation is its own token, so
    ``g-spot`` and ``s&m`` work as entries (and ``s&m`` also matches "s & m"). This is C4's
    badwords rule (the entry flanked by non-word characters, Raffel et al. 2020; datatrove's
    ``C4BadWordsFilter``) made countable. ``whole_word=False`` matches entries as substrings
    instead, which is what C4 does for Chinese, Japanese and Thai, written without spaces.
    All of it is columnar: one compiled regex of every entry picks the candidate rows over the
    whole batch (Aho-Corasick ``contains_any`` instead for substring mode or a list too large for
    one regex), then those rows are tokenized and counted with Aho-Corasick (``extract_many``).

    Rules, in order:

    * ``max_flagged_ratio`` (default 0.0): reject when flagged words / words > the ratio, words
      being runs of word characters (``\\w+``) and the flagged ones the words of the matched
      entries. The default 0 rejects any document with one flagged word, as C4 does (its
      ``badwords`` filter removes every page containing a word of the list); set it to e.g. 0.01
      for a ratio rule in the style of Gopher's and Dolma's ratio filters, or to null to use
      the count alone. Reason ``word_filter.flagged_ratio``.
    * ``min_flagged_count`` (default null = off): reject when the number of matched entries is at
      least this. Reason ``word_filter.flagged_count``.

    Annotations: ``word_filter_count`` (matched entries, non-overlapping, longest first) and
    ``word_filter_ratio``. With ``whole_word=False`` on unspaced scripts a whole sentence is one
    "word", so use the count (or the default ratio 0) there.
    """

    name = "word_filter"
    annotation_types = {"word_filter_count": pa.int64(), "word_filter_ratio": pa.float64()}

    words: tuple[str, ...] = ()
    words_file: str | None = None
    max_flagged_ratio: float | None = 0.0
    min_flagged_count: int | None = None
    whole_word: bool = True

    def __post_init__(self):
        if self.max_flagged_ratio is None and self.min_flagged_count is None:
            raise ValueError("word_filter needs max_flagged_ratio or min_flagged_count (or both)")
        if self.max_flagged_ratio is not None and not 0 <= self.max_flagged_ratio < 1:
            raise ValueError(f"max_flagged_ratio must be in [0, 1), got {self.max_flagged_ratio}")
        if self.min_flagged_count is not None and self.min_flagged_count < 1:
            raise ValueError(f"min_flagged_count must be >= 1, got {self.min_flagged_count}")
        entries = pl.Series("words", _entries(self.name, "words", self.words, self.words_file), dtype=pl.String)
        lowered = entries.str.to_lowercase()
        if self.whole_word:
            patterns = _canonical(lowered)
            keep = patterns.str.strip_chars() != ""
            patterns, lowered = patterns.filter(keep), lowered.filter(keep)
        else:
            patterns = lowered
        frame = (
            pl.DataFrame({"pattern": patterns, "lowered": lowered})
            # The words each entry stands for in the ratio ("$$$", with none, is counted apart).
            .with_columns(words=pl.col("lowered").str.count_matches(r"\w+").cast(pl.Int64))
            .unique("pattern", keep="first", maintain_order=True)
            .sort(pl.col("pattern").str.len_bytes(), descending=True, maintain_order=True)  # longest first
        )
        lowered_entries = frame.get_column("lowered")
        # The rows worth tokenizing: a screen that every match passes, run over the whole batch.
        # For whole words, one regex of all entries (word tokens joined by \s+, punctuation by \s*,
        # case-insensitive) between ASCII word boundaries: Unicode \b would push Rust's regex off its
        # DFA (hundreds of times slower on non-ASCII text), and an ASCII boundary is looser, so the
        # screen only lets a few extra rows through to the exact tokenized count.
        screen_regex = _screen_regex(lowered_entries) if self.whole_word and len(frame) else None
        # Otherwise (substrings, or a list too large for one regex) Aho-Corasick over one token of
        # each entry: its longest, a punctuation mark before a letter on ties ("s&m" -> "&").
        if self.whole_word:
            tokens = lowered_entries.str.extract_all(r"\w+|[^\w\s]").to_list()
            screen = [max(t, key=lambda tok: (len(tok), not tok.isalnum())) if t else e
                      for t, e in zip(tokens, lowered_entries.to_list())]
        else:
            screen = lowered_entries.to_list()
        longest = list(dict.fromkeys(screen))
        _frozen(
            self,
            words=tuple(self.words),
            _patterns=frame.get_column("pattern").to_list(),
            _pattern_words=dict(zip(frame.get_column("pattern").to_list(), frame.get_column("words").to_list())),
            # Entries without a word character ("$$$") count as one word, in the total too.
            _wordless=frame.filter(pl.col("words") == 0).get_column("pattern").to_list(),
            _prefilter=longest,
            _prefilter_ascii=all(p.isascii() for p in longest),
            _screen=screen_regex,
            _lists_digest=_digest(entries.to_list()),
        )

    def rules(self, texts: pl.Series) -> tuple[list[tuple[str, pl.Series]], dict]:
        n = len(texts)
        count = np.zeros(n, dtype=np.int64)
        ratio = np.zeros(n, dtype=np.float64)
        if self._patterns:
            # Without the regex screen: ASCII-only tokens can be screened on the raw text (ASCII
            # case folding), others need the Unicode lower case first. (Characters whose lower case
            # is ASCII — the Kelvin sign — are that screen's only blind spot.)
            if self._screen is not None:
                candidates = texts.str.contains(self._screen)
            elif self._prefilter_ascii:
                candidates = texts.str.contains_any(self._prefilter, ascii_case_insensitive=True)
            else:
                candidates = texts.str.to_lowercase().str.contains_any(self._prefilter)
            idx = candidates.fill_null(False).arg_true()
            if idx.len():
                sub = texts.gather(idx)
                lowered = sub.str.to_lowercase()
                haystack = _canonical(lowered) if self.whole_word else lowered
                matches = haystack.str.extract_many(self._patterns, leftmost=True)
                hits = matches.list.len().fill_null(0).cast(pl.Int64)
                flagged = matches.list.eval(pl.element().replace_strict(self._pattern_words, return_dtype=pl.Int64)).list.sum().fill_null(0)
                words = sub.str.count_matches(r"\w+").fill_null(0).cast(pl.Int64)
                if self._wordless:
                    wordless = matches.list.eval(pl.element().is_in(self._wordless)).list.sum().fill_null(0).cast(pl.Int64)
                    flagged, words = flagged + wordless, words + wordless
                rows = idx.to_numpy()
                count[rows] = hits.to_numpy()
                f, w = flagged.to_numpy().astype(np.float64), words.to_numpy().astype(np.float64)
                ratio[rows] = np.divide(f, w, out=np.zeros(len(w)), where=w > 0)
        count_s, ratio_s = pl.Series(count), pl.Series(ratio)
        rules = []
        if self.max_flagged_ratio is not None:
            rules.append(("flagged_ratio", ratio_s > self.max_flagged_ratio))
        if self.min_flagged_count is not None:
            rules.append(("flagged_count", count_s >= self.min_flagged_count))
        return rules, {"word_filter_count": count_s, "word_filter_ratio": ratio_s}

    def __call__(self, table: pa.Table) -> pa.Table:
        return _judge(self, table, "text", self.rules, self.annotation_types)
