"""PII redaction: e-mail addresses, IP addresses and phone numbers, over the whole batch at once.

The regexes take the shape of datatrove's ``PIIFormatter`` (e-mail: RFC 5322 ``atext`` local part
and dotted domain; IPv4: dotted quad of octets 0-255, only public addresses, as its
``public_ip_validator`` keeps them) and of Dolma's PII taggers (``dolma/taggers/pii.py``: the same
three types, ``|||EMAIL_ADDRESS|||``-style placeholders in OLMo's data, the false-positive contexts
ISBN/DOI/``#``), rewritten for Rust's regex engine (Polars): no look-around, so every
context test is a character consumed on each side of the match and written back.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from filters.base import Stage, judge_active

TYPES = ("email", "ip", "phone")
MODES = ("redact", "reject")
# The placeholders Dolma/OLMo write; OLMo's tokenizer (GPT-NeoX-20B + PII tokens, in
# ../shared/data/tokenizer) has each as one special token. None holds "@", a digit, a "." or a
# ":", so no pattern below can match inside one: redacting twice changes nothing.
PLACEHOLDERS = {"email": "|||EMAIL_ADDRESS|||", "ip": "|||IP_ADDRESS|||", "phone": "|||PHONE_NUMBER|||"}
ANNOTATIONS = {"email": "pii_emails", "ip": "pii_ips", "phone": "pii_phones"}

# --- e-mail --------------------------------------------------------------------------------------

# RFC 5322 atext minus ' / | (a quote or slash before an address is punctuation far more often than
# part of it, and | would let a placeholder grow into a local part); the first character is
# alphanumeric or _, so "-joe@" or "'joe@" redacts "joe@…" only. ASCII only: internationalized
# local parts (RFC 6531) are not matched.
_ATEXT = r"[A-Za-z0-9!#$%&*+=?^_`{}~\-]"
_LOCAL = rf"[A-Za-z0-9_]{_ATEXT}*(?:\.{_ATEXT}+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
# The first domain label must not be "<digits>x": "logo@2x.png" is a retina image, not an address.
_FIRST_LABEL = r"(?:[A-Za-z][A-Za-z0-9\-]{0,62}|[0-9]+(?:[A-WYZa-wyz\-][A-Za-z0-9\-]{0,61}|[Xx][A-Za-z0-9\-]{1,61})?)"
# An alphabetic TLD: "user@localhost" and "pkg@1.2.3" are not addresses.
_DOMAIN = rf"(?:{_FIRST_LABEL}\.(?:{_LABEL}\.)*[A-Za-z]{{2,63}}|\[[0-9]{{1,3}}(?:\.[0-9]{{1,3}}){{3}}\])"
EMAIL_RE = rf"{_LOCAL}@{_DOMAIN}"

# --- IPv4 ----------------------------------------------------------------------------------------

# Addresses that identify no one: IANA's special-purpose registry (RFC 6890 and successors).
# datatrove keeps only ``ipaddress.ip_address(x).is_global``; this is the same idea, written into the
# regex (Python 3.11's is_global also calls multicast and 192.0.0.0/24 global; they are not here).
NON_PUBLIC_V4 = (
    "0.0.0.0/8",  # "this network" (RFC 791)
    "10.0.0.0/8",  # private (RFC 1918)
    "100.64.0.0/10",  # shared address space, carrier-grade NAT (RFC 6598)
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local (RFC 3927)
    "172.16.0.0/12",  # private (RFC 1918)
    "192.0.0.0/24",  # IETF protocol assignments (RFC 6890)
    "192.0.2.0/24",  # TEST-NET-1, documentation (RFC 5737)
    "192.88.99.0/24",  # 6to4 relay anycast, deprecated (RFC 7526)
    "192.168.0.0/16",  # private (RFC 1918)
    "198.18.0.0/15",  # benchmarking (RFC 2544)
    "198.51.100.0/24",  # TEST-NET-2
    "203.0.113.0/24",  # TEST-NET-3
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and the broadcast address 255.255.255.255
)

# 0-255 without leading zeros ("010.1.1.1" and "01.02.03.04" are not matched).
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"


def _digits_range(lo: str, hi: str) -> str:
    """Regex for the decimal numbers lo..hi, both of the same length (leading digit may be 0 only
    below the top level)."""
    if len(lo) == 1:
        return lo if lo == hi else f"[{lo}-{hi}]"
    if lo[0] == hi[0]:
        return lo[0] + _digits_range(lo[1:], hi[1:])
    rest = len(lo) - 1
    parts = [lo[0] + _digits_range(lo[1:], "9" * rest)]
    if int(hi[0]) - int(lo[0]) > 1:
        middle = f"[{int(lo[0]) + 1}-{int(hi[0]) - 1}]" if int(hi[0]) - int(lo[0]) > 2 else str(int(lo[0]) + 1)
        parts.append(middle + "[0-9]" * rest)
    parts.append(hi[0] + _digits_range("0" * rest, hi[1:]))
    return "(?:" + "|".join(parts) + ")"


def _values_regex(values: list[int]) -> str:
    """Regex for a set of integers 0..255 (no leading zeros)."""
    runs: list[list[int]] = []
    for v in sorted(values):
        if runs and runs[-1][1] == v - 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    parts = []
    for lo, hi in runs:
        for width in range(len(str(lo)), len(str(hi)) + 1):  # split by digit count
            a, b = max(lo, 10 ** (width - 1) if width > 1 else 0), min(hi, 10**width - 1)
            parts.append(_digits_range(str(a), str(b)))
    return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"


@functools.lru_cache(maxsize=None)
def public_ipv4_regex() -> str:
    """A dotted quad outside ``NON_PUBLIC_V4``, as one regex (a trie over the octets)."""
    nets = [ipaddress.ip_network(n) for n in NON_PUBLIC_V4]

    def kind(prefix: tuple[int, ...]) -> str:
        net = ipaddress.ip_network(".".join(map(str, prefix + (0,) * (4 - len(prefix)))) + f"/{8 * len(prefix)}")
        if any(net.subnet_of(n) for n in nets):
            return "excluded"
        return "partial" if any(net.overlaps(n) for n in nets) else "public"

    def level(prefix: tuple[int, ...]) -> str:
        public, partial = [], []
        for v in range(256):
            k = kind(prefix + (v,))
            (public if k == "public" else partial if k == "partial" else []).append(v)
        tail = r"\." + r"\.".join([_OCTET] * (3 - len(prefix))) if len(prefix) < 3 else ""
        alternatives = [_values_regex(public) + tail] if public else []
        alternatives += [rf"{v}\." + level(prefix + (v,)) for v in partial]
        return "(?:" + "|".join(alternatives) + ")"

    return level(())


ANY_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"

# A dotted run that is a version or a section number, not an address: "version 1.2.3.4",
# "v. 8.8.8.8", "§ 4.3.2.1", "ISBN 1.2.3.4" (Dolma drops IP/phone matches near "isbn", "doi", "#"),
# and the same words in the languages of the crawl: "电脑版 2.6.0.18" (zh/ja 版 = version, edition;
# the software-download listings of Chinese web crawls are full of these), "버전", "версия"...
# Rust's regex has no look-behind, so these are masked first: the first dot becomes U+FDD0 (a
# noncharacter, "for internal use") and is put back after the IPs are replaced.
_GUARD_WORDS = (
    "v|ver|version|versions|release|build|firmware|fw|rev|revision|update|patch|sp|section|sec|chapter|ch"
    "|article|art|clause|para|paragraph|figure|fig|table|tab|step|isbn|doi"
    "|versión|versão|versao|versione|versie|verze|wersja|versiyon|версия|версии|версию|verzió"
)
VERSION_GUARD_RE = (
    rf"(?i)((?:(?:^|[^\w])(?:{_GUARD_WORDS})\.?|[§#№]|版本?|버전)[ \t]*[:：]?[ \t]*[0-9]{{1,3}})\.([0-9])"
)
_MASK = "\ufdd0"

# --- IPv6 ----------------------------------------------------------------------------------------

_H = r"[0-9a-fA-F]{1,4}"
# Every textual form (RFC 4291 2.2) except the bare "::" and the embedded-IPv4 forms.
ANY_IPV6 = (
    rf"(?:{_H}:){{7}}{_H}|(?:{_H}:){{1,7}}:|(?:{_H}:){{1,6}}:{_H}|(?:{_H}:){{1,5}}(?::{_H}){{1,2}}"
    rf"|(?:{_H}:){{1,4}}(?::{_H}){{1,3}}|(?:{_H}:){{1,3}}(?::{_H}){{1,4}}|(?:{_H}:){{1,2}}(?::{_H}){{1,5}}"
    rf"|{_H}:(?::{_H}){{1,6}}|::{_H}(?::{_H}){{0,6}}"
)
# Public: global unicast 2000::/3 minus documentation 2001:db8::/32 (RFC 3849). The first group is
# written in full (4 digits), which is also what rules out C++ "abc::def" and clock times.
_G = r"(?:3[0-9a-fA-F]{3}|2[1-9a-fA-F][0-9a-fA-F]{2}|20[1-9a-fA-F][0-9a-fA-F]|200[02-9a-fA-F])"  # 2000-3fff but 2001
_NOT_DB8 = (
    r"(?:[1-9a-fA-F][0-9a-fA-F]{3}|0[0-9a-ce-fA-CE-F][0-9a-fA-F]{2}|0[dD][0-9a-ac-fA-AC-F][0-9a-fA-F]|0[dD][bB][0-79a-fA-F]"
    r"|[0-9a-ce-fA-CE-F][0-9a-fA-F]{2}|[dD][0-9a-ac-fA-AC-F][0-9a-fA-F]|[dD][bB][0-79a-fA-F]|[0-9a-fA-F]{1,2})"
)


def _rest(groups: int) -> str:
    """The rest of an address after its first ``8 - groups`` groups: ``groups`` more, or fewer with ::."""
    return (
        rf"(?::{_H}){{{groups}}}|(?::{_H}){{1,{groups - 1}}}::(?:{_H}(?::{_H}){{0,{groups - 2}}})?"
        rf"|::{_H}(?::{_H}){{0,{groups - 2}}}"
    )


PUBLIC_IPV6 = rf"{_G}(?:{_rest(7)})|2001(?::{_NOT_DB8}(?:{_rest(6)})|::{_H}(?::{_H}){{0,5}})"

# --- phone numbers -------------------------------------------------------------------------------

_SEP = r"[ .\-\x{a0}]"
# North American numbering plan, separated: "(555) 123-4567", "555.123.4567", "+1 555 123 4567".
# Separators are required: a bare 10-digit run is an order number as often as a phone.
_NANP = rf"(?:\+?1{_SEP}?)?(?:\([0-9]{{3}}\){_SEP}?|[0-9]{{3}}{_SEP})[0-9]{{3}}{_SEP}[0-9]{{4}}"
# International, with its "+": "+44 20 7946 0958", "+49 (0)30 1234567", "+33 1 23 45 67 89".
_INTL = rf"\+[1-9][0-9]{{0,2}}{_SEP}?(?:\([0-9]{{1,4}}\){_SEP}?)?[0-9]{{1,4}}(?:{_SEP}?[0-9]{{2,4}}){{2,5}}"
# National with a trunk 0: French pairs "01 23 45 67 89", "020 7946 0958", "030/1234 5678".
_PAIRS0 = rf"0[1-9](?:{_SEP}[0-9]{{2}}){{4}}"
_TRUNK0 = r"0[0-9]{2,4}[ \-/][0-9]{3,4}[ \-][0-9]{3,4}"
_EXTENSION = r"(?:[ \t]*(?:[xX]|[eE]xt\.?|[eE]xtension)[ \t]*[0-9]{1,5})?"
PHONE_CORE = rf"(?:{_NANP}|{_INTL}|{_PAIRS0}|{_TRUNK0}){_EXTENSION}"


# Cheap supersets of the patterns, to pick the rows worth the full patterns (Rust's regex runs these
# at several GB/s: they start from a required literal or a short digit run).
IPV4_PREFILTER = r"[0-9]\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]"
PUBLIC_IPV6_PREFILTER = r"[23][0-9a-fA-F]{3}:"
IPV6_PREFILTER = r"::|[0-9a-fA-F]:[0-9a-fA-F]{0,4}:"
PHONE_PREFILTER = rf"[0-9]{{3}}{_SEP}[0-9]{{3}}|[0-9]{{2}}{_SEP}[0-9]{{2}}{_SEP}[0-9]{{2}}|\+[1-9]"


@dataclass(frozen=True)
class Contextual:
    """A pattern that must not touch a longer token: one character of context (or the text's edge)
    is consumed on each side, captured as ``pre``/``post`` and written back by the replacement.

    ``before``: the class the character before a match must be in. It never holds "|", the last
    character of every placeholder, so replacing one match never turns a neighbour glued to it
    ("555-123-4567(555) 123-4567") into a match: redaction stays idempotent.
    ``after``: what may follow, one character or (``lead`` then ``lead_then``) two, so a full stop
    after an address is fine but "1.2.3.4.5" is one token."""

    core: str
    before: str
    after: str
    lead: str
    lead_then: str = r"[^\w]"

    def first(self) -> str:
        return rf"(?P<pre>^|{self.before})(?:{self.core})(?P<post>$|{self.after}|{self.lead}(?:$|{self.lead_then}))"

    def next_to(self, placeholder: str) -> str:
        """Matches the first pass skipped because the previous match had consumed their leading
        context character ("8.8.8.8,1.1.1.1"): right after a placeholder and what it wrote back."""
        return (
            rf"(?P<pre>{re.escape(placeholder)}(?:{self.before}|{self.lead}{self.before}))(?:{self.core})"
            rf"(?P<post>$|{self.after}|{self.lead}(?:$|{self.lead_then}))"
        )


def email_pattern() -> str:
    return EMAIL_RE


def ipv4_pattern(public_only: bool) -> Contextual:
    # Not inside a longer dotted or alphanumeric run: "1.2.3.4.5", "v1.2.3.4", "1.2.3.4a" are not
    # addresses; a sentence's full stop after one is fine.
    core = public_ipv4_regex() if public_only else ANY_IPV4
    return Contextual(core, before=r"[^\w.|]", after=r"[^\w.]", lead=r"\.")


def ipv6_pattern(public_only: bool) -> Contextual:
    core = PUBLIC_IPV6 if public_only else ANY_IPV6
    return Contextual(core, before=r"[^\w:.|]", after=r"[^\w:.]", lead=r"[.:]", lead_then=r"[^\w:]")


def phone_pattern() -> Contextual:
    # Not inside a longer run of digits, dots, dashes or slashes (dates, versions, serials, paths).
    return Contextual(PHONE_CORE, before=r"[^\w+.\-/|]", after=r"[^\w.\-/]", lead=r"[.\-/]")


@dataclass(frozen=True)
class PIIRedaction(Stage):
    """Replace e-mail addresses, IP addresses and phone numbers with typed placeholders, or reject
    the documents that hold any.

    ``types`` (default all of ``email``, ``ip``, ``phone``) are found in that order, each over the
    text the previous one left, and replaced by ``|||EMAIL_ADDRESS|||``, ``|||IP_ADDRESS|||``,
    ``|||PHONE_NUMBER|||`` — the placeholders of Dolma (Soldaini et al. 2024) that OLMo's tokenizer
    holds as special tokens. ``mode="reject"`` leaves the text alone and rejects the documents with
    at least one match, reason ``pii.email``, ``pii.ip`` or ``pii.phone`` (the first type, in that
    order, that has one).

    What counts (see the module's patterns):

    * e-mail: ``local@domain.tld``, ASCII, an alphabetic TLD (datatrove's ``PIIFormatter`` shape);
      not ``logo@2x.png``, ``user@localhost``, ``pkg@1.2.3``.
    * IP: IPv4 dotted quads (octets 0-255, no leading zeros) and IPv6 in its textual forms. With
      ``public_ips_only`` (default, as datatrove's ``only_remove_public_ips``) private, loopback,
      link-local, CGNAT, multicast, reserved and documentation ranges are kept — 192.168.1.1 in a
      router manual identifies no one — and IPv6 is limited to global unicast 2000::/3.
      Version-number guards: a quad inside a longer dotted run ("1.2.3.4.5") or glued to a letter
      ("v1.2.3.4") is not an address, nor, with ``version_guard`` (default on), one right after a
      version/section word ("version 1.2.3.4", "§ 1.2.3.4", "ISBN", "DOI", "#"). Limit: a bare public-range version string with
      no such word ("upgraded to 4.7.2.1") is indistinguishable from an address and is redacted.
    * phone: North-American numbers with separators ("(555) 123-4567", "555.123.4567"), any
      number written with its international "+" prefix, and European national formats with a
      trunk 0 ("01 23 45 67 89", "020 7946 0958"), with an optional extension. Never a bare digit
      run (order numbers, timestamps), a date, an ISBN or a run glued to more digits, dots,
      dashes or slashes. Other national formats written without "+" are not found.

    Context: an IP or phone match must not touch a longer token — the character before it is not a
    word character, ``.`` (nor ``+ - /`` for phones, ``:`` for IPv6) and not ``|`` (the last
    character of every placeholder, so redacting one number never exposes a neighbour glued to it;
    the price: a number right after a bare ``|`` without a space is missed). Word characters are
    Unicode's, so a number glued to Chinese text ("安卓版1.1.4.2", "Android version 1.1.4.2") is
    not taken either.

    Annotations (int64, null where the type is not in ``types`` or the row was rejected before):
    ``pii_emails``, ``pii_ips`` (v4 and v6), ``pii_phones``: matches per document, counted as
    placeholders written (in reject mode too, on a scratch copy). Counting the placeholders rather
    than ``count_matches`` is exact even for matches sharing a separator ("8.8.8.8,1.1.1.1"), which
    the one-character context makes a second pass necessary for.
    """

    name = "pii"

    types: tuple[str, ...] = TYPES
    mode: str = "redact"
    public_ips_only: bool = True
    version_guard: bool = True

    def __post_init__(self):
        types = tuple(self.types)
        unknown = [t for t in types if t not in TYPES]
        if unknown or not types:
            raise ValueError(f"types must be a non-empty list of {', '.join(TYPES)}, got {list(self.types)!r}")
        object.__setattr__(self, "types", tuple(t for t in TYPES if t in types))
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")

    # -- the work over a Series of texts -------------------------------------------------------------

    def redact(self, texts: pl.Series) -> tuple[pl.Series, dict[str, np.ndarray]]:
        """(texts with the placeholders in, matches per document per type). Each type first picks
        its candidate rows with a cheap superset test, and runs its full patterns on those only."""
        counts: dict[str, np.ndarray] = {}
        s = texts
        for kind in self.types:
            found = np.zeros(len(s), dtype=np.int64)
            if kind == "email":
                s = self._replace(s, "@", [EMAIL_RE], PLACEHOLDERS[kind], found, literal=True)
            elif kind == "ip":
                s = self._replace(s, IPV4_PREFILTER, [ipv4_pattern(self.public_ips_only)], PLACEHOLDERS[kind], found,
                                  guard=self.version_guard)
                v6_prefilter = PUBLIC_IPV6_PREFILTER if self.public_ips_only else IPV6_PREFILTER
                s = self._replace(s, v6_prefilter, [ipv6_pattern(self.public_ips_only)], PLACEHOLDERS[kind], found)
            else:
                s = self._replace(s, PHONE_PREFILTER, [phone_pattern()], PLACEHOLDERS[kind], found)
            counts[kind] = found
        return s, counts

    @staticmethod
    def _replace(s: pl.Series, prefilter: str, patterns: list, placeholder: str, found: np.ndarray, *,
                 literal: bool = False, guard: bool = False) -> pl.Series:
        """Replace ``patterns`` in the rows ``prefilter`` selects; add the placeholders written to
        ``found``."""
        idx = s.str.contains(prefilter, literal=literal).fill_null(False).arg_true()
        if idx.len() == 0:
            return s
        sub = s.gather(idx)
        before = sub.str.count_matches(placeholder, literal=True)
        masked = None
        if guard:
            hit = sub.str.contains(VERSION_GUARD_RE) & ~sub.str.contains(_MASK, literal=True)
            masked = hit.fill_null(False).arg_true()
            sub = _on(sub, masked, lambda x: x.str.replace_all(VERSION_GUARD_RE, f"${{1}}{_MASK}${{2}}"))
        for pattern in patterns:
            if isinstance(pattern, Contextual):
                sub = _replace_contextual(pattern, placeholder)(sub)
            else:
                sub = sub.str.replace_all(pattern, placeholder)
        if masked is not None:
            sub = _on(sub, masked, lambda x: x.str.replace_all(_MASK, ".", literal=True))
        found[idx.to_numpy()] += (sub.str.count_matches(placeholder, literal=True) - before).fill_null(0).to_numpy()
        return s.clone().scatter(idx, sub)

    # -- the stage contract --------------------------------------------------------------------------

    def __call__(self, table: pa.Table) -> pa.Table:
        types = {ANNOTATIONS[kind]: pa.int64() for kind in TYPES}
        if self.mode != "redact":
            types["rejected_by"] = pa.string()
        return judge_active(table, self._judge, types)

    def _judge(self, rows: pa.Table) -> dict:
        new, found = self.redact(pl.Series("text", rows.column("text")))
        out = {ANNOTATIONS[kind]: pa.array(values) for kind, values in found.items()}
        if self.mode == "redact":
            out["text"] = new.to_arrow()
        else:
            reasons = pa.nulls(rows.num_rows, pa.string())
            for kind in reversed(self.types):  # the first type found wins
                reasons = pc.if_else(pa.array(np.asarray(found[kind]) > 0), pa.scalar(f"pii.{kind}"), reasons)
            out["rejected_by"] = reasons
        return out


def _on(s: pl.Series, idx: pl.Series, fn) -> pl.Series:
    """``fn`` applied to the rows at ``idx`` only."""
    if idx.len() == 0:
        return s
    return s.clone().scatter(idx, fn(s.gather(idx)))


def _replace_contextual(pattern: Contextual, placeholder: str):
    """Replace every match of a context-consuming pattern: a first pass, then a second for the
    matches whose leading context the previous match consumed. The second pattern starts with the
    placeholder literal, so it costs a memchr-speed scan; after it none is left (a skipped match sits
    between two that were not)."""
    template = f"${{pre}}{placeholder}${{post}}"
    first, second = pattern.first(), pattern.next_to(placeholder)

    def replace(s: pl.Series) -> pl.Series:
        return s.str.replace_all(first, template).str.replace_all(second, template)

    return replace
