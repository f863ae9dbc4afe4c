"""Gopher quality and repetition rules: Rae et al. 2021, "Scaling Language Models: Methods, Analysis
& Insights from Training Gopher", Appendix A.1.1 and Table A1, as datatrove implements them
(``GopherQualityFilter``, ``GopherRepetitionFilter``: the reference for every definition, default,
rule order and reason; datatrove's reasons are listed next to ours in each class docstring).

Words
-----
Datatrove splits text into words with spaCy's blank English tokenizer (``split_into_words(text,
"en")``, whitespace tokens dropped), and every word rule depends on that split: punctuation is a word
of its own (``"Hello,"`` is ``Hello`` and ``,``), so it counts in the totals that the hash, ellipsis
and alphabetic-word ratios divide by; contractions are split (``don't`` -> ``do n't``), hyphens
between letters are words (``well-known`` -> ``well - known``), URLs stay whole, and the n-grams of
the repetition rules are sequences of these words. A plain regex is not close enough: with
``\\w+|[^\\w\\s]+`` as the words, 2,621 of the 3,010 real-crawl documents get another word count,
and the keep/reject decisions agree with datatrove's on only 97.3% (quality) and 96.1% (repetition).

``spacy_en_words`` therefore re-implements spaCy's tokenizer for whole batches, with no Python per
document or per word. Compiled passes (Numba, ``filters/gopher_words.py``) over the batch's UTF-8
bytes cut the whitespace chunks (Python's ``str.isspace``), keep the plain words (letters and digits
only: most chunks) whole, and run every other distinct chunk, once, through spaCy's special cases
(its 1,347 contractions, abbreviations and emoticons, embedded and checked against spaCy by the
tests), its prefix/suffix loop with the special-case checks in spaCy's order, its URL match (the
one regex pass, on the cores with a "."), its infix rules, and its second pass that re-merges
special cases split by the affix rules (``word):`` is ``word`` and ``):``). The kernels read their
character classes from a table the regex engine fills from the class definitions below, and follow
a Polars formulation of the same rules (``_tokenize_chunks``: vectorized rounds of the affix loop
over the chunks still changing; Rust's regex has no look-around, so the infix context is consumed
and each rule runs twice), which the tests hold them to. On the 3,010 documents of
``../shared/data/crawl`` the word lists equal spaCy's for all but one document. What differs, all rare:

* spaCy's second pass matches the special cases over the whole token sequence, spaces included;
  a match that spans a space is never applied but, like any match, blocks the ones overlapping it,
  and so on down a chain. We apply the matches inside each chunk, left to right, so in a chain
  (``:):)``, five apostrophes of wiki markup, ``[ :)``) we merge some tokens that spaCy leaves
  apart: one document of the real crawl, 32 of 20,000 random strings of punctuation, emoticons,
  URLs, contractions and letters (the only class of difference that fuzzing found);
* letter classes are spaCy's ALPHA ranges; its lower/upper-case classes are ALPHA's ``\\p{Ll}`` /
  ``\\p{Lu}`` letters plus the uncased scripts (5 code points differ);
* the URL pattern drops spaCy's look-aheads that refuse private IP addresses (such an address is one
  word either way); a chunk with more than 12 stacked affixes is peeled in bulk, without the
  special-case checks between the affixes.

Deliberate differences from datatrove
-------------------------------------
* Language awareness (``gopher_quality``): the English word rules do not apply to text in a script
  written without spaces (by the ``lang`` column when the batch has one, else by script); see
  ``GopherQualityFilter``. ``spaceless_threshold=None`` (and no ``lang`` column) gives datatrove's
  behaviour. On the real crawl this is the only source of disagreement: 1,120 of the 3,010
  documents (Chinese, Japanese, a few Burmese and Thai) that datatrove rejects by English rules
  and we keep.
* Duplicated n-grams are compared as word sequences; datatrove compares them joined *without*
  spaces, so ``("ab", "c")`` equals ``("a", "bc")`` there. Two different word lists only glue to the
  same string where the tokenizer split the same characters differently (LaTeX, CJK): on the real
  crawl that changes the duplicated-n-gram characters of 4 documents, and no decision.
* n-grams are compared by a 64-bit hash of their words (a collision, about 1e-7 for a 2-million-word
  document, would merge two n-grams); lines and paragraphs exactly.
* A threshold set to None turns its rule off; datatrove also turns a rule off with 0, which here is
  an ordinary threshold. Where datatrove would divide by zero (no words or no lines, with the
  word-count rule off) the ratio rules here do not fire.

Agreement with datatrove on all 3,010 documents of the real crawl (``python -m
bench.filters_agreement``): gopher_repetition 100%, the same reason for every document both
reject; gopher_quality the same with ``spaceless_threshold=None``, and 62.8% keep/reject with the
language-aware defaults, every difference being a space-less-script document exempt from the word
rules.
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass
import threading
from functools import lru_cache
from typing import ClassVar

import numpy as np
import polars as pl
import pyarrow as pa

from filters.base import RuleFilter, active_mask, scatter, set_column
from filters.text import LINE_BREAK, PY_WHITESPACE, SPACELESS_CHAR, SPACY_PUNCT, SPACY_QUOTES

# --- character classes ----------------------------------------------------------------------------


def _x(char: str) -> str:
    return f"\\x{{{ord(char):X}}}"


def _chars(chars) -> str:
    """The body of a regex character class holding exactly ``chars`` (every char escaped)."""
    return "".join(_x(c) for c in sorted(set(chars)))


def _literal(text: str) -> str:
    return "".join(_x(c) for c in text)


def _alternation(strings) -> str:
    # Longest first is not needed: each use anchors at the end of the string, where the regex
    # engine backtracks through the alternatives in order, as Python's does.
    return "|".join(_literal(s) for s in strings)


def _ranges(spec: str) -> str:
    parts = []
    for item in spec.split():
        lo, _, hi = item.partition("-")
        parts.append(f"\\x{{{lo}}}" + (f"-\\x{{{hi}}}" if hi else ""))
    return "".join(parts)


_CHUNK = r"[^\s\x1c-\x1f]+"

# spaCy's character classes (spacy/lang/char_classes.py, spaCy 3.x, MIT licence).
_SPACY_PUNCT = list(SPACY_PUNCT)
_SPACY_QUOTES = list(SPACY_QUOTES)
_SPACY_CURRENCY = (
    "$ £ € ¥ ฿ US$ C$ A$ ₽ ﷼ ₴ ₠ ₡ ₢ ₣ ₤ ₥ ₦ ₧ ₨ ₩ ₪ ₫ € ₭ ₮ ₯ ₰ "
    "₱ ₲ ₳ ₴ ₵ ₶ ₷ ₸ ₹ ₺ ₻ ₼ ₽ ₾ ₿"
).split()
_SPACY_UNITS = (
    "km km² km³ m m² m³ dm dm² dm³ cm cm² cm³ mm mm² mm³ ha µm nm yd in ft "
    "kg g mg µg t lb oz m/s km/h kmh mph hPa Pa mbar mb MB kb KB gb GB tb "
    "TB T G M K % км км² км³ м м² м³ дм дм² дм³ см см² см³ мм мм² мм³ нм "
    "кг г мг м/с км/ч кПа Па мбар Кб КБ кб Мб МБ мб Гб ГБ гб Тб ТБ тб"  # (sic: no space)
    "كم كم² كم³ م م² م³ سم سم² سم³ مم مم² مم³ "
    "كم غرام جرام جم كغ ملغ كوب اكواب"
).split()
_SPACY_HYPHENS = "- – — -- --- —— ~".split()
# spaCy's "other symbols" (dingbats, emoji): code point ranges, hex.
_SPACY_ICONS = _ranges("""
A6 A9 AE B0 482 58D 58E 60E 60F 6DE 6E9 6FD 6FE 7F6 9FA B70 BF3-BF8 BFA C7F D4F D79 F01-F03 F13
F15-F17 F1A-F1F F34 F36 F38 FBE-FC5 FC7-FCC FCE FCF FD5-FD8 109E 109F 1390-1399 1940 19DE-19FF
1B61-1B6A 1B74-1B7C 2100 2101 2103-2106 2108 2109 2114 2116 2117 211E-2123 2125 2127 2129 212E
213A 213B 214A 214C 214D 214F 218A 218B 2195-2199 219C-219F 21A1 21A2 21A4 21A5 21A7-21AD
21AF-21CD 21D0 21D1 21D3 21D5-21F3 2300-2307 230C-231F 2322-2328 232B-237B 237D-239A 23B4-23DB
23E2-2426 2440-244A 249C-24E9 2500-25B6 25B8-25C0 25C2-25F7 2600-266E 2670-2767 2794-27BF
2800-28FF 2B00-2B2F 2B45 2B46 2B4D-2B73 2B76-2B95 2B98-2BC8 2BCA-2BFE 2CE5-2CEA 2E80-2E99
2E9B-2EF3 2F00-2FD5 2FF0-2FFB 3004 3012 3013 3020 3036 3037 303E 303F 3190 3191 3196-319F
31C0-31E3 3200-321E 322A-3247 3250 3260-327F 328A-32B0 32C0-32FE 3300-33FF 4DC0-4DFF A490-A4C6
A828-A82B A836 A837 A839 AA77-AA79 FDFD FFE4 FFE8 FFED FFEE FFFC FFFD 10137-1013F 10179-10189
1018C-1018E 10190-1019B 101A0 101D0-101FC 10877 10878 10AC8 1173F 16B3C-16B3F 16B45 1BC9C
1D000-1D0F5 1D100-1D126 1D129-1D164 1D16A-1D16C 1D183 1D184 1D18C-1D1A9 1D1AE-1D1E8 1D200-1D241
1D245 1D300-1D356 1D800-1D9FF 1DA37-1DA3A 1DA6D-1DA74 1DA76-1DA83 1DA85 1DA86 1ECAC 1F000-1F02B
1F030-1F093 1F0A0-1F0AE 1F0B1-1F0BF 1F0C1-1F0CF 1F0D1-1F0F5 1F110-1F16B 1F170-1F1AC 1F1E6-1F202
1F210-1F23B 1F240-1F248 1F250 1F251 1F260-1F265 1F300-1F3FA 1F400-1F6D4 1F6E0-1F6EC 1F6F0-1F6F9
1F700-1F773 1F780-1F7D8 1F800-1F80B 1F810-1F847 1F850-1F859 1F860-1F887 1F890-1F8AD 1F900-1F90B
1F910-1F93E 1F940-1F970 1F973-1F976 1F97A 1F97C-1F9A2 1F9B0-1F9B9 1F9C0-1F9C2 1F9D0-1F9FF
1FA60-1FA6D
""")
# spaCy's ALPHA (the letters of the scripts it lists by hand), its "uncased" scripts (in both its
# lower- and upper-case classes), and ALPHA_LOWER / ALPHA_UPPER as ALPHA's Ll / Lu letters plus the
# uncased ones (equal to spaCy's classes but for 5 code points); as regex class bodies.
_UNCASED = _ranges("""
591-5F4 620-64A 66E-6D5 6E5-6FF 750-77F 8A0-8BD 900-9FF B80-CFF D80-DFF 1100-137F 2E80-2FDF
2FF0-30FF 31C0-31EF 3200-4DBF 4E00-9FFF AC00-D7AF F900-FAFF FB1D-FBB1 FBD3-FD3D FD50-FDC7
FDF0-FDFB FE30-FE4F FE70-FEFC 1EE00-1EEBB 1F200-1F2FF 20000-2A6DF 2A700-2EBEF 2F800-2FA1F
""")
_ALPHA = _ranges("""
41-5A 61-7A C0-D6 D8-F6 F8-1BF 1C4-2AF 386 388-38A 38C 38E-38F 391-3A9 3AC-3AF 3B1-3C9 3CC-3CE
400-401 403-40A 40C-40D 410-451 453-45A 45C-45D 490-491 496-497 4A2-4A3 4AE-4AF 4BA-4BB 4D8-4D9
4E8-4E9 1D00-1D25 1D6B-1D77 1D79-1D9A 1E00-1EFF 2C60-2C7B 2C7E-2C7F A722-A76F A771-A787 A78B-A78E
A790-A7B9 A7FA AB30-AB5A AB60-AB64 FF21-FF3A FF41-FF5A
""") + _UNCASED
_ALPHA_LOWER = rf"[{_ALPHA}&&\p{{Ll}}]{_UNCASED}"
_ALPHA_UPPER = rf"[{_ALPHA}&&\p{{Lu}}]{_UNCASED}"

# Prefixes: spaCy tries them at the start in order; apart from "+" (not before a digit) and the
# multi-character "..+", "US$", "C$", "A$", each is one character, so order does not matter.
_PREFIX_SINGLE = _chars(
    ["§", "%", "=", "—", "–"] + _SPACY_PUNCT + _SPACY_QUOTES + [c for c in _SPACY_CURRENCY if len(c) == 1]
)
_PREFIX = rf"^(?:\.\.+|US\$|C\$|A\$|[{_PREFIX_SINGLE}{_SPACY_ICONS}]|\+(?:[^0-9]|$))"
# Suffixes: spaCy's search() returns the leftmost start among alternatives all anchored at the end,
# i.e. the longest suffix; the ones with a look-behind are matched with their context consumed and
# the suffix captured, and the longest of the three candidates wins.
_SUFFIX_SINGLE = _chars(_SPACY_PUNCT + _SPACY_QUOTES + ["—", "–"])
_SUFFIX_FIXED = rf"(?:\.\.+|……|['’][sS]|[{_SUFFIX_SINGLE}{_SPACY_ICONS}])$"
_SUFFIX_AFTER_DIGIT = rf"[0-9](\+|{_alternation(_SPACY_CURRENCY)}|{_alternation(_SPACY_UNITS)})$"
_DOT_CONTEXT = _chars(list("0123456789%²-+|(?:)") + _SPACY_PUNCT + _SPACY_QUOTES) + _ALPHA_LOWER
_SUFFIX_DOT = rf"(?:°[FfCcKk]|[{_DOT_CONTEXT}]|[{_ALPHA_UPPER}][{_ALPHA_UPPER}])(\.)$"
# Infixes (English): split points inside what is left after the affixes.
_INFIX_PLAIN = rf"(\.\.+|…|[{_SPACY_ICONS}])"
_QUOTE_CHARS = _chars(_SPACY_QUOTES)
_INFIX_CONTEXT = [  # (pattern with context consumed as groups 1 and 3, the infix as group 2), in spaCy's order
    r"([0-9])([+\-*^])([0-9\-])",
    rf"([{_ALPHA_LOWER}{_QUOTE_CHARS}])(\.)([{_ALPHA_UPPER}{_QUOTE_CHARS}])",
    rf"([{_ALPHA}])(,)([{_ALPHA}])",
    rf"([{_ALPHA}0-9])({_alternation(_SPACY_HYPHENS)})([{_ALPHA}])",
    rf"([{_ALPHA}0-9])([:<>=/])([{_ALPHA}])",
]
_INFIX_ANY = rf"[.…,+\-*^:<>=/–—~{_SPACY_ICONS}]"
# spaCy's URL_MATCH (after Diego Perini's URL regex) without the look-aheads that exclude private IPs.
_HOST_CHAR = r"A-Za-z0-9\x{A1}-\x{FFFF}"
_URL = (
    r"^(?:[\w+\-.]{2,}://)?(?:\S+(?::\S*)?@)?(?:"
    r"(?:[1-9]\d?|1\d\d|2[01]\d|22[0-3])(?:\.(?:1?\d{1,2}|2[0-4]\d|25[0-5])){2}(?:\.(?:[1-9]\d?|1\d\d|2[0-4]\d|25[0-4]))"
    rf"|(?:(?:[{_HOST_CHAR}][{_HOST_CHAR}_\-]{{0,62}})?[{_HOST_CHAR}]\.)+(?:[{_ALPHA_LOWER}]{{2,63}})"
    r")(?::\d{2,5})?(?:[/?#]\S*)?$"
)
# Chunks with more stacked affixes than this are peeled in bulk (no special-case checks in between).
_MAX_AFFIX_ROUNDS = 12

# spaCy's English special cases (``spacy.blank("en").tokenizer.rules``, spaCy 3.8): the tokens of
# each entry, separated by \x1f, entries by \x1e; zlib + base85. The tokens of an entry concatenate to
# its key (spaCy enforces it). tests/test_gopher.py checks this table against the installed spaCy.
_SPECIAL_CASES_BLOB = (
    "c-m!}UymHc5x}35578UtW$!>9+n7Jb_)a7~Fb9}JF=9acSuL|;&%`_1&UT-RK|~@-Uh+<&@J6IOB7q_iA%!RBi$u-`;47rM{"
    "&mlswB21(-PKbyGuPeqvw!A(?tbBxZi&BJ>+{fJ<3p-G!|EKXyKec3KaXzNaCeiso7CN;?u}cvgIjL5Zn-<Zch4>NI3~D*r&"
    "doLx`RvCvE0D&5|-5^)KseqYgD1;$Q>N7ZsO&~tB<kvsD1p+>hU)y|M#C?udtx><S*Yo{_e?N|Ni*9pMLx^Ui|dK_fNk3_me"
    "OGfVDfs$q#QhoEi&OIJ>)2UBTkrl@+!t@2*~1tgE4-c1ZO@xq66KSEcVN^<9;|tJL?5^gTm;&q&`h)F)lkBOOUECS)N7H2xa"
    "vuO<C8)?Z8dXIcMj(m%`kXOsRp)<2i@&$0fwq<^0E&nNx!tbab~Uts+UN&f=tUr74vhwl2NR8HJ={PC#kY1DNdbv=!Gk@YVo"
    "{fn%BG3jqC53n3!xs(K)=mxe2R8oc4=|=^tr`(M+?$QBQsXk1Ft5l~Em$6*Iat+HdmJ=*zSl-6+9+r==cq|XGe2V3BEWdX*&"
    "<w4vx*KSRW@v>*XoDtbfd(FLfHr7?7HII~i?0r-KBW2*U!X@X;V(6K=a=xeddc0aZn~S7ueqD)M+K|!aNV@W?&!cB9lE2-?&"
    "z93I&nuIxTBBU(dX_MZH}vBcZ`qZ81H|46C-}=*uA`Z+5KvRPw-d$Vz-RcaE*6I;Q{t+*H}H=W3_L2P->;&Vf+5G)SX73->="
    "-S_dZna)^b?*oxAn))9%)K+uuXYn(Vn*EFZNf?iM@GDybKwmYG#pV3qV9C-GaVce_;YAEx?zyW#0bqI;-R>P^izVVUofWxG|"
    "<m>^1QD5#U_R^?9C@<3S7mL@!D8ywJXvFh0)X~`dwMMb`l#D@LUj}zYpwikgXpbJ&<6eRK-CfX$Zj;bZqsKi!gE#~AIZ9bcA"
    "Iv0KkuT-~Fg|GV6_7kkqCvrQL7GKKkbhF!Zv)gjB+a6!@8k@L?sd-en*Vg=4q$LkX78UtG5;<X#c=6ggh<RX>U;`hu((|b0u"
    "19U|L)WNYa+92UtzF>0Ks9@T5^fOOm?or}hS67nEq1a%T{zQ5TlJBycq$SmdbILDcczAKB;v?YGUYb+?xhuTQS&V9846-39-"
    "<^xY$Q7NSOj&gxE%FLW}Ae-*L#zK3fOs?qB_->PAQI4ivp#As>M1rNmIR2Vbx-V-_R)rbGo56d3w6tCYeJyT_jVo+~MEX=`M"
    "}q58;%)gH!zsP9r%H&5Oux#Oy~*4-sn`#`lT~9wT>){EVd4=%PFm6()L|ksW2riJ{s}%~Cr^Lyv^@udne>>2>^Dd;NTyD!h7"
    "Q%@wY#Z;X|D6Cc)_Ek%(Uy7`+vec@Cuxk+F6n-QPWo%Iqo%scCS5<^J!NKZ~$dMG4|iv9vgq9<ySICy7`ZJII7-G;DFQ}#`l"
    ">ieBcM-tscrBZKdz7@-Svn=cFNMnL3(=KqQr*M2KyNGoPk=#ioDb9o3Hwom92!&Rad=nDc6%+NQNue#P-b&lSTh&RbUQ5;Ms"
    "k)P@_pwTABv$)Wx4i7BKo0PQDrs^S$$>2D-CA5f-|}MXV~4Mto29hrrKbVhuV!i4ee0ZupUd!b9e%cKw!V4b&Z;vk-kq(m#q"
    ";P{gAefRL0aL@w)k6Oq49hCdp$eX_iGY4C0C{<Pei7e3R%26!-hS08*lY?mmcQZdyl7v-?R@?h0fnikNIxeW9}v$R_NQ^j!z"
    "ZR()~#m72TU8y0b}g-@6?x|J;Z%ZvfI}U7%*OkZWEflEfYK7q3DwJO9<2H0?>Ic6<?$qnR9F^fGrySj8Epys(?-DMlnw`=O="
    "JK!v4A>DAuFr}|Et{<7Zb*0hdFORlht5vfpU1Gi#8Hzr9(^CKfshSEbbN&M4mH7lQ+Dw2J>Z`nH*#1Xn6Q;|yj-XxpAI&~)T"
    "JBc=pdY)vPL#MDFiAF_pSrj(gG$7IJ3pr$whXjo@l#vFDG)y857HMb;olc+u1`RM20R{~)v{|Epg?V712rOI(EEIu-BAQWx8"
    "H-p(4P`7N88whGYs6He7#C`1F^mf}(rXQ1ocTXy_s6;SV|IQtZ6DZoYQ?7{(;O@m+Q6+Ch{q`DX!RIH87hv7RNht{RdLpr?7"
    "e;_zWhwQeI|bLnRxq5ynQBKJ`<lm6R)3%FFq5mpNZGc#OKe%&p#7id?x<FXX1;`#M@``ZuPEvcZCJFgL)l0s%dSk`OIJ2nZK"
    "r}YYVyNc<UT&&5_ovUeRz0u-2gJR?;~ZwADNCP>QgggjZ{9^)#?rqpCHeT9(tgSWatQPU~_x<%_)vL0avRDcFBmVC%fVlBmX"
    "Ft7;Blw&2!z!L8>Dt}6Cf3?@;3yW^m!6(^HSv$0TU_bLQwwMV9qpiokK4GKjy7F$(IP$HF%X;3Q8`u152CUHOSEp@rK)V8<O"
    "lf9+3y`|Q@rMA7Lmc6CUdrPf*OI_?OweBso>@BtKEp^^o>iOPM7kf*6VQ;C6y`|23OI_?Ob>}%wpQH2=qc0-#5})Vjys6n%;"
    "_?eI)R_E&N6Uo-;in;Z3&79Z_vXA;*S&R)?D&`+AI0&paC{WUM|ONPHQS2g<3bG8@o^zmY$Q7If1LV1n*Za>|Iz#()qmYe>K"
    "?O`nkh`3DNIcirdA45D}|}26sERAV{K=~dU9l}^~6{g2gbTMFV+{1i?yB>>*BEZ-U<Fr-247KJ#KF31|(wC(q`RWTDfK;nl}"
    "kz!OuBKGF-0c39BG3$fa18Pgt(^CZX<wOE=sH_&ahR{_@a$xN{#y_tBC2c=a(BuCT^kg)s7(!RMO5=UTz%dbhdk_f7$y@V$)"
    "pFrjN0Z#F1#0@CFCqY<pxP#V%`7Sd=E(oA!Z22<C@UT9-4w3)onMqg-CywIk2q0NOC+UN^yiWk}_#KgpXqY-W-#7&NIBj9pV"
    "fXfYo%Z-7{je*O}3|wv$Ty9Emxe;)=$>4I6!R2NSE;orKZipprge7jg%v#LJGunJM+hi`xSKEXv+reR0iNgIf`F)!FzD$0fL"
    "FIi0m3Zdp1XFeertBC~c7`cC!<5|&Q+9G>>G;Uf*^#AFOxX#h>@ue82vc^9DLciKoTuhARkG9~N#z_hrKnExR7+DSOVuQGnx"
    "k5ZI?GTsLG2h*b{SK4hABJ2lwE--JHeD4W6Dl2Wk;B@Q%u=0rtAz;c8n=I!jv6j%1$w5H^r3Q1XFf~DZ3e_><m+OiYYt8lzo"
    "b-*O+>WqqivfgeiN*ls#)I{NYE`FOnGr(Tnf>B8{b?{Jwj7-Mzl;o{oLJ9r}7c^7Z+^*V8GlPe;364t6~q>v}!Z^>TLWCnvX"
    "F&u#tm)Yi*Et!MYxa$=}<Q!}QKz0$~D^uMj#gUW63$G~x`z!7KI5_8-#bKEL(#HDp0;y4Iq916@hFlHPKGY*CshZ$xZ1Tzi>"
    "6$gWg!vrc03KfR}Dh>ry94<h`L80PMK*d36;h?l|C~4s!v~b9@aLBZ9nA5^RXyK4);jVH!<$$}A1MY+a?lK45We&KTbHJS-z"
    "#SvNogl!SA;29Yz?~sL`Zw<#Bfy;?z?~sLF9;BKBVS#?a)!k_ze0J1@(SfG{+3v1ywN{Dp?_ZKpD*a2FX*4YK>xhazlW8hf7"
    "1P3<@S}sBT^8)7Ye=?nC}JSd%^f#nDM>9>t@IcXONXM6ia8|wKM3t8EoMUv~mVrI>U7B47PZN+3Fc|`3#xwh0OQDl<x)Od!g"
    "ieq2znvBHs(f_d?0{g7Up!d@mGyFIFx}CK`)OG-@Uq%S<#%0vb8*jFxvs$vb1tJ0s_t(elhV%QIunGvhqZjFwzRO}=88d__y"
    "X;w1TsmV8A`zM>^xQIfBildq`BS1gjRsL5B9<ST0O6?5_x=gC(rlCO9n`HDsI6?5_xi{vXR*o!6Diw5@M1nflvd(psN6tEXF"
    "*ozAGVgdG|g1x9<FJ`b8=U^`uU@u+(d$9m}u>gBfz+NoCUR1CbORyIe>_r88k-=UxuongF#SHeMfW0VSFB;g3Gq4vk*o$+p7"
    "c<z48SF&?d$9m}QNdm;!Cn-w7a8nD1A9@xUd&)GGT4g-_Tmie#SHf19PC8{dr`q&EWuthuoov_FB;g32KJ(Wy_msXRInEduo"
    "o5VMFo2?gS|Khd$9m}@dDV31=x!P*gLP>qx1`@dgLChu%Hb1yX+mvi5d9B40d7$dIDhK1IG?IaNww+)hilK!GZ<|3i&`FA7s"
    "b}tqi4TVG=56oG=X%G(ynuK$cc0mR8WE70RU*6!L+rv7nF-c(DarY(W-V$crrq<O5!GK_DO4;tR9I7xLl@^Tii3<O5rWAwxb"
    "8$Oi@F1BHB0LOxK)2Lky(As;a01A}}ZkPkBC1A%<NkPig%fk8f)K|aWk59W{$GUNk;e2^g@=spAGJ_EMTz+|5R+h;)c8L)i@"
    "WS@b&&w%bTQ0z0H`wYlF1G>*Z-e+LG&p@%yz=eGVihTz1J_E%*0}S~fLp~752L<E<fqcM_4+Qc7K|WB(2MqbZARiFq1BQH{k"
    "PoJi4-E3b4Dx|NK2XR92Kj&?A7sb}0{NhTd?1hy81jKYJ|M^k3i*H`9~k5VhI~Mf4;b=+LOz&6J}}4!Gsp)9`9L8b7~}(n6_"
    "8;C5Uc=&6`-&JrmzC+&<J*BgvpT+^u!3off0)HB3w8wf}R$kI4pizxld2<cjCt7VvPZgl^a=L<TqyIHwy9_3*<Kn@*4&DjfD"
    "J0MSdeAztNE2$jEPG<Tonv8>h%`G~_qVkl$#?Z#3jLVnZ%}R=LMtyT{*tc<{eJ{^{`Y<8R&L?-sWfRcc=4<_&HdZtijO0Gt2"
    "(1Ixd#{8%~p551}V>4)!=^yG^#vHb0Bs)9?$Xe|7Hkdxp8H=j{+PE8v775#7Il-=mihKDvhwBezfRJDWSkg=vrjl-l*3M>5m"
    "A9V-`H2"
)


@lru_cache(maxsize=1)
def special_cases() -> dict[str, list[str]]:
    """spaCy's English special cases: chunk -> its tokens."""
    payload = zlib.decompress(base64.b85decode("".join(_SPECIAL_CASES_BLOB))).decode()
    entries = [entry.split("\x1f") for entry in payload.split("\x1e")]
    return {"".join(tokens): tokens for tokens in entries}


@lru_cache(maxsize=1)
def _special_table() -> tuple[pl.Series, pl.Series]:
    """Special cases as (chunk, its tokens in the wrapped form of ``_tokenize_chunks``). Keys with
    whitespace (" ", "\\n", "\\xa0", ...) can never be a chunk and are left out."""
    table = {key: _wrap(tokens) for key, tokens in special_cases().items() if not any(c.isspace() for c in key)}
    return pl.Series("key", list(table), dtype=pl.String), pl.Series("value", list(table.values()), dtype=pl.String)


@lru_cache(maxsize=1)
def _special_merges() -> tuple[list[str], list[str]]:
    """spaCy's second pass (``Tokenizer._apply_special_cases``): a special case that the affix rules
    split (``):``, ``a.``, ``''``) is matched again as a run of tokens inside one chunk and replaced by
    its special tokens. Here: (the affix tokens of each such key, its special tokens), both wrapped,
    longest first so that a leftmost-first replacement prefers the longest match as spaCy does."""
    keys, values = _special_table()
    # spaCy registers a key with its matcher only when a prefix, suffix or infix rule finds something in it.
    has_affix = pl.DataFrame({"s": keys}).select(
        _has_affix(pl.col("s"))
        | pl.col("s").str.contains(_INFIX_PLAIN)
        | pl.any_horizontal([pl.col("s").str.contains(pattern) for pattern in _INFIX_CONTEXT])
    ).to_series()
    split = _tokenize_chunks(keys, with_special_cases=False)
    pairs = [
        (pattern, value)
        for pattern, value, affix in zip(split.to_list(), values.to_list(), has_affix.to_list())
        if affix and pattern != value
    ]
    pairs.sort(key=lambda pair: -len(pair[0]))
    return [p for p, _ in pairs], [v for _, v in pairs]


def _wrap(tokens: list[str]) -> str:
    # Tokens are kept as one string per chunk, each token between two spaces: " a  b  c ". A chunk
    # holds no whitespace, so a space can only be a separator, and a run of tokens is matched as a
    # plain substring without ever matching part of a token.
    return "".join(f" {t} " for t in tokens)


def _is_special(expr: pl.Expr) -> pl.Expr:
    return expr.is_in(pl.lit(_special_table()[0]).implode())


def _has_affix(expr: pl.Expr) -> pl.Expr:
    """Whether a prefix or suffix rule finds something (the infix rules are not checked)."""
    return (
        expr.str.contains(_PREFIX)
        | expr.str.contains(_SUFFIX_FIXED)
        | expr.str.contains(_SUFFIX_AFTER_DIGIT)
        | expr.str.contains(_SUFFIX_DOT)
    )


def _longest_suffix(rest: pl.Expr) -> pl.Expr:
    candidates = [
        rest.str.extract(_SUFFIX_FIXED, 0),
        rest.str.extract(_SUFFIX_AFTER_DIGIT, 1),
        rest.str.extract(_SUFFIX_DOT, 1),
    ]
    lengths = [c.str.len_chars().fill_null(0) for c in candidates]
    longest = pl.max_horizontal(lengths)
    out = pl.when(longest == 0).then(pl.lit(None, dtype=pl.String))
    for candidate, length in zip(candidates, lengths):
        out = out.when(length == longest).then(candidate)
    return out.otherwise(pl.lit(None, dtype=pl.String))


def _peel_round(frame: pl.DataFrame, specials: bool) -> pl.DataFrame:
    """One turn of spaCy's ``Tokenizer._split_affixes`` loop over every row of ``frame`` (columns
    ``s``, ``pre``, ``suf``): returns it updated, ``more`` telling whether the loop goes on."""
    def special(expr):
        return _is_special(expr) if specials else pl.lit(False)

    s = pl.col("s")
    n = s.str.len_chars()
    frame = frame.with_columns(s.str.extract(_PREFIX, 0).alias("_p")).with_columns(
        pl.when(pl.col("_p").str.starts_with("+")).then(pl.lit("+")).otherwise(pl.col("_p")).alias("_p"),
    ).with_columns(
        pl.when(pl.col("_p").is_null()).then(s).otherwise(s.str.slice(pl.col("_p").str.len_chars())).alias("_rest"),
    ).with_columns(_longest_suffix(pl.col("_rest")).alias("_s"))
    p, rest, suffix = pl.col("_p"), pl.col("_rest"), pl.col("_s")
    plen, slen = p.str.len_chars().fill_null(0), suffix.str.len_chars().fill_null(0)
    minus_suf = s.str.slice(0, n - slen)
    case_a = p.is_not_null() & (rest != "") & special(rest)  # prefix off, the rest is a special case
    case_b = ~case_a & suffix.is_not_null() & (minus_suf != "") & special(minus_suf)  # same, suffix
    new_s = (
        pl.when(case_a).then(rest)
        .when(case_b).then(minus_suf)
        .when(p.is_not_null() & suffix.is_not_null()).then(rest.str.slice(0, n - plen - slen))
        .when(p.is_not_null()).then(rest)
        .when(suffix.is_not_null()).then(minus_suf)
        .otherwise(s)
    )
    frame = frame.with_columns(
        new_s.alias("s"),
        pl.when(p.is_not_null() & ~case_b).then(pl.col("pre") + " " + p + " ").otherwise(pl.col("pre")).alias("pre"),
        pl.when(suffix.is_not_null() & ~case_a).then(" " + suffix + " " + pl.col("suf")).otherwise(pl.col("suf")).alias("suf"),
        (~case_a & ~case_b & (p.is_not_null() | suffix.is_not_null())).alias("more"),
    )
    return frame.with_columns((pl.col("more") & (s != "") & ~special(s)).alias("more")).drop("_p", "_rest", "_s")


_BULK_PREFIX_TOKEN = rf"\.\.+|US\$|C\$|A\$|[{_PREFIX_SINGLE}{_SPACY_ICONS}]|\+"
_BULK_SUFFIX_TOKEN = rf"\.\.+|……|['’][sS]|[{_SUFFIX_SINGLE}{_SPACY_ICONS}]|\."
_BULK = rf"^((?:{_BULK_PREFIX_TOKEN})*)(.*?)((?:{_BULK_SUFFIX_TOKEN})*)$"


def _peel_bulk(frame: pl.DataFrame) -> pl.DataFrame:
    """Chunks still peeling after ``_MAX_AFFIX_ROUNDS``: strip the whole runs of affixes at once."""
    parts = pl.col("s").str.extract_groups(_BULK)
    frame = frame.with_columns(
        parts.struct.field("1").alias("_p"), parts.struct.field("2").alias("_core"), parts.struct.field("3").alias("_s")
    )
    return frame.with_columns(
        (pl.col("pre") + pl.col("_p").str.replace_all(_BULK_PREFIX_TOKEN, " $0 ")).alias("pre"),
        pl.col("_core").fill_null(pl.col("s")).alias("s"),
        (pl.col("_s").str.replace_all(_BULK_SUFFIX_TOKEN, " $0 ") + pl.col("suf")).alias("suf"),
    ).drop("_p", "_core", "_s")


def _split_infixes(core: pl.Expr) -> pl.Expr:
    out = core.str.replace_all(_INFIX_PLAIN, "  ${1}  ")
    for pattern in _INFIX_CONTEXT:
        # The context characters are consumed, so a second pass catches split points that shared
        # one with the previous match (a-b-c).
        out = out.str.replace_all(pattern, "${1}  ${2}  ${3}").str.replace_all(pattern, "${1}  ${2}  ${3}")
    return out


def _tokenize_chunks(chunks: pl.Series, with_special_cases: bool = True) -> pl.Series:
    """spaCy's English tokenizer on whitespace-free chunks: each chunk's tokens, wrapped (``_wrap``).
    The Polars formulation that the compiled kernels (``_tokenize_compiled``) follow step for step:
    it builds the second pass's table (``_special_merges``) and is the tests' reference."""
    keys, values = _special_table()
    special = _is_special if with_special_cases else (lambda expr: pl.lit(False))
    s = pl.col("s")
    frame = pl.DataFrame({"s": chunks}).with_row_index("i").with_columns(
        pre=pl.lit(""),
        suf=pl.lit(""),
        more=~special(s) & _has_affix(s),
    )
    finished = [frame.filter(~pl.col("more"))]
    todo = frame.filter(pl.col("more"))
    for _ in range(_MAX_AFFIX_ROUNDS):
        if todo.height == 0:
            break
        todo = _peel_round(todo, with_special_cases)
        finished.append(todo.filter(~pl.col("more")))
        todo = todo.filter(pl.col("more"))
    if todo.height:
        finished.append(_peel_bulk(todo))
    frame = pl.concat(finished, how="vertical_relaxed")
    # What is left of each chunk: a special case, a URL, split at its infixes, or one token. (Split
    # only the rows that need it: a when/then chain would run every branch on every row.)
    kind = pl.when(s == "").then(pl.lit(0))
    if with_special_cases:
        kind = kind.when(_is_special(s)).then(pl.lit(1))
    kind = kind.when(s.str.contains(_URL)).then(pl.lit(2)).when(s.str.contains(_INFIX_ANY)).then(pl.lit(3)).otherwise(pl.lit(2))
    frame = frame.with_columns(kind.alias("kind"))
    infix = frame.filter(pl.col("kind") == 3).with_columns(_split_infixes(s).alias("s"))
    frame = pl.concat([frame.filter(pl.col("kind") != 3), infix]).sort("i")
    tokens = (
        pl.when(pl.col("kind") == 0).then(pl.lit(""))
        .when(pl.col("kind") == 1).then(s.replace_strict(keys, values, default=None))
        .otherwise(" " + s + " ")
    )
    # Normalise to the wrapped form: every token between two spaces.
    out = (pl.col("pre") + tokens + pl.col("suf")).str.strip_chars(" ").str.replace_all(" +", "  ")
    out = pl.when(out == "").then(pl.lit("")).otherwise(" " + out + " ")
    if with_special_cases:
        patterns, replacements = _special_merges()
        out = out.str.replace_many(patterns, replacements, leftmost=True)
    return frame.select(out).to_series()


def spacy_en_words(text: pl.Series) -> pl.DataFrame:
    """The words of every document, as datatrove's ``split_into_words(text, "en")`` gives them
    (spaCy's blank English tokenizer, whitespace tokens dropped), in one long frame: ``doc`` (the row
    of ``text``, u32) and ``word``, in document then text order. Null text has no words."""
    word_doc, word_offsets, word_data = _assembled_words(text)
    return pl.DataFrame({"doc": pl.Series(word_doc, dtype=pl.UInt32), "word": _string_series(word_offsets, word_data)})


def _assembled_words(text: pl.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The compiled tokenizer's words: (document per word, byte offsets, bytes)."""
    from filters import gopher_words as kernels

    data, offsets = _utf8_buffers(text)
    # One compiled pass finds the chunks and tells the plain words (letters and digits only, which
    # no rule splits: most chunks) from the ones the tokenizer must see; each of those is
    # tokenized once, however often it occurs.
    doc, start, stop, hashes, needs = kernels.chunk_spans(data, offsets, _class_table(), *_special_keys())
    uid, first = kernels.distinct_spans(data, start, stop, hashes, needs)
    tok_offsets, tok_data = kernels.gather_spans(data, start[first], stop[first])
    tok_start, tok_stop, per_chunk = _tokenize_compiled(tok_data, tok_offsets)
    word_doc, word_offsets, word_data = kernels.assemble_words(
        data, doc, start, stop, uid, tok_data, tok_start, tok_stop, per_chunk
    )
    return word_doc, word_offsets, word_data


def _words_arrow(text: pl.Series) -> tuple[np.ndarray, pa.LargeStringArray]:
    """``spacy_en_words`` as (doc per word, the words as one Arrow string array over the
    tokenizer's own buffers: no copy)."""
    word_doc, word_offsets, word_data = _assembled_words(text)
    return word_doc, pa.LargeStringArray.from_buffers(len(word_offsets) - 1, pa.py_buffer(word_offsets), pa.py_buffer(word_data))


def spacy_en_word_counts(text: pl.Series) -> np.ndarray:
    """How many words ``spacy_en_words`` finds in each text (int64), without building the words:
    the same chunks and tokenizer, counted."""
    from filters import gopher_words as kernels

    data, offsets = _utf8_buffers(text)
    doc, start, stop, hashes, needs = kernels.chunk_spans(data, offsets, _class_table(), *_special_keys())
    uid, first = kernels.distinct_spans(data, start, stop, hashes, needs)
    tok_offsets, tok_data = kernels.gather_spans(data, start[first], stop[first])
    _, _, per_chunk = _tokenize_compiled(tok_data, tok_offsets)
    tokens = np.diff(per_chunk)
    per_span = np.where(uid < 0, 1, tokens[np.maximum(uid, 0)] if len(tokens) else 1)
    return np.bincount(doc, weights=per_span, minlength=len(text)).astype(np.int64)


def _tokenize_compiled(data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """spaCy's English tokenizer on whitespace-free chunks (a string column's bytes and offsets), as
    ``_tokenize_chunks`` does it, in compiled loops: the tokens' byte spans, and the offsets of each
    chunk's tokens among them. Only the URL match is a regex pass (on the cores with a ".")."""
    from filters import gopher_words as kernels

    classes = _class_table()
    cps, cp_offsets, byte_at = kernels.decode_spans(data, offsets)
    if len(cps) > kernels.MAX_CODE_POINTS:
        raise ValueError(f"a batch's distinct chunks hold {len(cps):,} code points; split the batch")
    special, units, merges = _kernel_tables()
    tok_lo, tok_hi, n_pre, n_suf, core_lo, core_hi = kernels.peel_affixes(cps, cp_offsets, classes, *special[:5], *units)
    # The URL rule only for the cores that can be a URL: it needs a ".".
    url = np.zeros(len(core_lo), dtype=bool)
    maybe = np.flatnonzero(kernels.has_dot(cps, core_lo, core_hi))
    if len(maybe):
        cores = _string_series(*kernels.gather_spans(data, byte_at[core_lo[maybe]], byte_at[core_hi[maybe]]))
        url[maybe] = cores.str.contains(_URL).to_numpy()
    lo, hi, per_chunk = kernels.finish_tokens(
        cps, cp_offsets, classes, tok_lo, tok_hi, n_pre, n_suf, core_lo, core_hi, url, *special, *merges
    )
    return byte_at[lo], byte_at[hi], per_chunk


def _code_points(strings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    cps = np.frombuffer("".join(strings).encode("utf-32-le"), dtype=np.uint32).astype(np.int32)
    return cps, np.concatenate([[0], np.cumsum([len(x) for x in strings])]).astype(np.int64)


def _string_lookup(strings: list[str]) -> tuple[np.ndarray, ...]:
    """A table of strings for the kernels' ``_find_string``: (filter, sorted hashes, string index per
    hash, code points, offsets)."""
    from filters import gopher_words as kernels

    cps, offsets = _code_points(strings)
    hashes = kernels.string_hashes(cps, offsets)
    order = np.argsort(hashes, kind="stable")
    may_hold = np.zeros(64 << 12, dtype=np.bool_)
    for s in strings:
        may_hold[kernels.filter_slot(ord(s[0]), len(s))] = True
    return may_hold, hashes[order], order.astype(np.int64), cps, offsets


@lru_cache(maxsize=1)
def _kernel_tables():
    """The special cases, units and second-pass merges as the kernels read them."""
    from filters import gopher_words as kernels

    keys = _special_table()[0].to_list()
    tokens = [special_cases()[key] for key in keys]
    special = _string_lookup(keys) + (
        np.concatenate([[0], np.cumsum([len(t) for t in tokens])]).astype(np.int64),
        np.array([len(x) for t in tokens for x in t], dtype=np.int64),
    )
    unit_strings = ["+"] + _SPACY_CURRENCY + _SPACY_UNITS
    units = _string_lookup(unit_strings) + (max(len(u) for u in unit_strings),)
    # Merges: each pattern's tokens (looked up by the hash of the first), and its special tokens.
    patterns, replacements = _special_merges()
    pattern_tokens = [[t for t in p.split(" ") if t] for p in patterns]
    replacement_tokens = [[t for t in r.split(" ") if t] for r in replacements]
    token_cps, token_offsets = _code_points([t for p in pattern_tokens for t in p])
    first_hash = kernels.string_hashes(*_code_points([p[0] for p in pattern_tokens]))
    order = np.lexsort((np.arange(len(first_hash)), first_hash))  # by hash, then pattern order
    merges = (
        first_hash[order], order.astype(np.int64),
        np.concatenate([[0], np.cumsum([len(p) for p in pattern_tokens])]).astype(np.int64),
        token_cps, token_offsets,
        np.concatenate([[0], np.cumsum([len(r) for r in replacement_tokens])]).astype(np.int64),
        np.array([len(t) for r in replacement_tokens for t in r], dtype=np.int64),
    )
    return special, units, merges


def _utf8_buffers(text: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """A string column's UTF-8 bytes and its offsets (one more than the rows; null is "")."""
    return _arrow_string_buffers(_as_large_string(text.fill_null("").rechunk().to_arrow()))


def _arrow_string_buffers(arr: pa.LargeStringArray) -> tuple[np.ndarray, np.ndarray]:
    """A large_string array's UTF-8 bytes and offsets (one more than the rows), no copy."""
    _, offsets, data = arr.buffers()
    offsets = np.frombuffer(offsets, dtype=np.int64)[arr.offset:arr.offset + len(arr) + 1]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    return data, offsets


def _string_series(offsets: np.ndarray, data: np.ndarray) -> pl.Series:
    arr = pa.LargeStringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data))
    return pl.Series(arr)


@lru_cache(maxsize=1)
def _class_table() -> np.ndarray:
    """The character classes of the compiled kernels (``filters.gopher_words``), one bit set per code
    point, computed by the regex engine from the same class definitions as the Polars path."""
    from filters import gopher_words as k

    return _class_bits({
        k.CLASS_SPACE: r"[\s\x1c-\x1f]",
        k.CLASS_PLAIN: r"[\p{L}\p{N}]",
        k.CLASS_PREFIX: f"[{_PREFIX_SINGLE}{_SPACY_ICONS}]",
        k.CLASS_SUFFIX: f"[{_SUFFIX_SINGLE}{_SPACY_ICONS}]",
        k.CLASS_DOT_CONTEXT: f"[{_DOT_CONTEXT}]",
        k.CLASS_UPPER: f"[{_ALPHA_UPPER}]",
        k.CLASS_LOWER_QUOTE: f"[{_ALPHA_LOWER}{_QUOTE_CHARS}]",
        k.CLASS_UPPER_QUOTE: f"[{_ALPHA_UPPER}{_QUOTE_CHARS}]",
        k.CLASS_ALPHA: f"[{_ALPHA}]",
        k.CLASS_ALPHA_DIGIT: f"[{_ALPHA}0-9]",
        k.CLASS_ICON: f"[{_SPACY_ICONS}]",
        k.CLASS_INFIX: _INFIX_ANY,
        k.CLASS_PUNCTUATION: f"[{_DATATROVE_PUNCTUATION}]",
        k.CLASS_LETTER: r"\p{L}",
        k.CLASS_SPACELESS: _SPACELESS_CHAR,
        k.CLASS_LETTER_MARK: r"[\p{L}\p{M}]",
    })


def _class_bits(classes: dict[int, str]) -> np.ndarray:
    """uint16 per code point: ``bit`` set where the one-character regex ``classes[bit]`` matches."""
    scalar = np.r_[np.arange(0, 0xD800), np.arange(0xE000, 0x110000)].astype(np.uint32)  # no surrogates
    every = pl.Series([scalar.tobytes().decode("utf-32-le")])
    table = np.zeros(0x110000, dtype=np.uint16)
    for bit, pattern in classes.items():
        # One pass over a string of every code point: what the class does not remove is outside it.
        left = every.str.replace_all(pattern, "").item()
        member = np.zeros(0x110000, dtype=bool)
        member[scalar] = True
        member[np.frombuffer(left.encode("utf-32-le"), dtype=np.uint32)] = False
        table[member] |= bit
    return table


@lru_cache(maxsize=1)
def _special_keys() -> tuple[np.ndarray, np.ndarray]:
    """The special-case keys as UTF-8 bytes and offsets (for ``gopher_words.chunk_spans``)."""
    return _utf8_buffers(_special_table()[0])


# The words a gopher stage tokenized travel to the next stage on the batch itself, in two
# transient columns (``__`` prefix: never written to kept/, rejected/ or the part files):
# ``__words`` (each judged row's words, as ``spacy_en_words`` splits its text) and ``__words_key``
# (a 64-bit hash and the byte length of the text they came from). gopher_quality and
# gopher_repetition read them for every row whose text is unchanged and tokenize only the rest (a
# stage in between may rewrite text: c4, normalize, pii), then write them for their judged rows.
WORDS_COLUMN = "__words"
WORDS_KEY_COLUMN = "__words_key"


def _text_keys(text: pl.Series) -> np.ndarray:
    text = text.fill_null("")
    with np.errstate(over="ignore"):
        return text.hash(seed=0x11D).to_numpy() ^ (text.str.len_bytes().to_numpy().astype(np.uint64) * _HASH_MULTIPLIER)


_CARRY = threading.local()  # the words handed in (``incoming``) and out (``outgoing``) for the batch being judged


def _as_large_string(arr) -> pa.LargeStringArray:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr if arr.type == pa.large_string() else arr.cast(pa.large_string())


def batch_words(text: pl.Series) -> tuple[pl.DataFrame, pa.LargeStringArray]:
    """The words of every row as (doc, word) in document then text order (and as an Arrow string
    array, the same words): reused from the words
    handed in with the batch where the row's text is unchanged (``__words_key`` matches), tokenized
    otherwise; the words (as a list per row) and keys are handed on to the next stage."""
    n = len(text)
    keys = _text_keys(text)
    incoming = getattr(_CARRY, "incoming", None)
    have = np.zeros(n, dtype=bool)
    if incoming is not None:
        in_keys, in_words = incoming
        have = (in_keys == keys) & in_words.is_valid().to_numpy(zero_copy_only=False)
    docs, arrays = [], []
    if have.any():
        reused = in_words if have.all() else in_words.filter(pa.array(have))
        docs.append(np.repeat(np.flatnonzero(have).astype(np.uint32), reused.value_lengths().fill_null(0).to_numpy()))
        arrays.append(_as_large_string(reused.flatten()))
    need = np.flatnonzero(~have)
    if len(need):
        doc, words = _words_arrow(text if len(need) == n else text.gather(need))
        docs.append(need.astype(np.uint32)[doc] if len(need) < n else doc.astype(np.uint32))
        arrays.append(words)
    doc = np.concatenate(docs) if len(docs) > 1 else docs[0]
    words = pa.concat_arrays(arrays) if len(arrays) > 1 else arrays[0]
    if len(docs) > 1:
        order = np.argsort(doc, kind="stable")
        doc, words = doc[order], words.take(pa.array(order))
    offsets = np.zeros(n + 1, dtype=np.int64)
    if not have.all():
        np.cumsum(np.bincount(doc, minlength=n), out=offsets[1:])
    # All reused: the batch already carries these words for these rows; nothing to hand on anew.
    _CARRY.outgoing = None if have.all() else (keys, pa.LargeListArray.from_arrays(pa.array(offsets), words))
    return pl.DataFrame({"doc": pl.Series(doc, dtype=pl.UInt32), "word": pl.Series(words)}), words


def judge_carrying_words(stage: RuleFilter, table: pa.Table) -> pa.Table:
    """``RuleFilter.__call__`` with the words handed in from the batch's ``__words`` columns (for
    the rows judged) and the stage's own words written back to them."""
    mask = active_mask(table)
    _CARRY.incoming = None
    _CARRY.outgoing = None
    if mask.any() and WORDS_COLUMN in table.column_names and WORDS_KEY_COLUMN in table.column_names:
        rows = pa.array(mask)
        words, keys = table.column(WORDS_COLUMN), table.column(WORDS_KEY_COLUMN)
        if not mask.all():
            words, keys = words.filter(rows), keys.filter(rows)
        words = words.combine_chunks() if isinstance(words, pa.ChunkedArray) else words
        _CARRY.incoming = (keys.fill_null(0).to_numpy(), words)
    try:
        out = RuleFilter.__call__(stage, table)
        outgoing = _CARRY.outgoing
    finally:
        _CARRY.incoming = _CARRY.outgoing = None
    if outgoing is None:
        return out
    keys, words = outgoing
    n = out.num_rows
    return set_column(set_column(out, WORDS_COLUMN, scatter(pa.nulls(n, words.type), mask, words)),
                      WORDS_KEY_COLUMN, scatter(pa.nulls(n, pa.uint64()), mask, pa.array(keys, pa.uint64())))


# --- shared by both stages ----------------------------------------------------------------------

# datatrove's PUNCTUATION_SET (datatrove/utils/text.py: PUNCTUATION plus TERMINAL_PUNCTUATION): a
# word made only of these is a "symbol" word. Code point ranges, hex.
_DATATROVE_PUNCTUATION = _ranges("""
0-8 B-1F 21-2F 3A-40 5B-60 7B-9F AB B4 BB 589 61D-61F 6D4 700-702 7F9 837 839 83D-83E 964-965
104A-104B 1362 1367-1368 166E 1735-1736 17D4-17D6 17D9-17DA 1803 1809 1944-1945 1AA8-1AAB
1B5A-1B5B 1B5E-1B5F 1B7D-1B7E 1C3B-1C3C 1C7E-1C7F 2013-2014 2019 201C-201E 2026 203C-203D
2047-2049 2236 2501 25BA 2E2E 2E3C 2E53-2E54 3001-3002 3008-300D 3010-3011 A4FF A60E-A60F A6F3
A6F7 A876-A877 A8CE-A8CF A92F A9C8-A9C9 AA5D-AA5F AAF0-AAF1 ABEB FE52 FE56-FE57 FF01 FF05
FF08-FF09 FF0C FF0E FF11 FF1A-FF1B FF1F FF5E FF61 10A56-10A57 10F55-10F59 10F86-10F89
11047-11048 110BE-110C1 11141-11143 111C5-111C6 111CD 111DE-111DF 11238-11239 1123B-1123C 112A9
1144B-1144C 115C2-115C3 115C9-115D7 11641-11642 1173C-1173E 11944 11946 11A42-11A43 11A9B-11A9C
11C41-11C42 11EF7-11EF8 11F43-11F44 16A6E-16A6F 16AF5 16B37-16B38 16B44 16E98 1BC9F 1DA88
""")
# str.splitlines() boundaries (\r\n counts once) and the whitespace that can sit inside a line.
_LINE_BREAK = LINE_BREAK
_INLINE_SPACE = r"[\t \x1f\xa0\u1680\u2000-\u200a\u202f\u205f\u3000]"
# Scripts written without spaces between words (the same set as filters/c4.py's detector).
_SPACELESS_CHAR = SPACELESS_CHAR

# Languages (ISO 639-1, as the langid stage writes them) that separate words with spaces, for which
# the word rules are meaningful: English and the European languages.
SPACE_SEPARATED_LANGUAGES = (
    "en", "de", "fr", "es", "it", "pt", "nl", "af", "lb", "sv", "da", "no", "nb", "nn", "is", "fi",
    "et", "lv", "lt", "pl", "cs", "sk", "sl", "hr", "sr", "bs", "hu", "ro", "bg", "mk", "ru", "uk",
    "be", "el", "sq", "ga", "cy", "gd", "br", "eu", "ca", "gl", "oc", "mt",
)
STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")  # datatrove's list


def _ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """numerator / denominator, null (no decision) where the denominator is 0."""
    return pl.when(denominator > 0).then(numerator / denominator).otherwise(None)


def _check_fraction(name: str, value, upper: float = 1.0) -> None:
    if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= upper):
        raise ValueError(f"{name} must be a number in [0, {upper}] or None, got {value!r}")


def _check_count(name: str, value) -> None:
    if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        raise ValueError(f"{name} must be a non-negative integer or None, got {value!r}")


def _check_languages(name: str, value) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = (value,)
    value = tuple(value)
    if not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{name} must be a list of language codes, got {value!r}")
    return value


def _spaced_script(frame: pl.DataFrame, threshold: float | None) -> pl.Series:
    """False where at least ``threshold`` of a text's letters (and marks) are Han, kana, Thai, Lao,
    Khmer, Myanmar or Tibetan: scripts written without spaces between words. (Letters only, so
    that the spaces, digits, punctuation and markup around a Chinese navigation menu do not make
    it look like English.) The counts are one compiled pass over the text (``script_counts``)."""
    if threshold is None:
        return pl.repeat(True, frame.height, eager=True)
    from filters import gopher_words as kernels

    chars, spaceless, letters = kernels.script_counts(*_utf8_buffers(frame.get_column("text")), _class_table())
    spaceless = spaceless.astype(np.float64)
    # letters <= characters: a share of all characters at the threshold settles it
    exempt = (spaceless > 0) & ((spaceless >= threshold * chars) | (spaceless >= threshold * letters))
    return pl.Series(~exempt)


def _unknown(lang: pl.Expr) -> pl.Expr:
    """No language: null, or langid's "und" (a text with nothing to identify)."""
    return lang.is_null() | (lang == "und")


def _scatter_counts(doc: np.ndarray, n_docs: int, weights: np.ndarray | None = None) -> np.ndarray:
    return np.bincount(doc, weights=weights, minlength=n_docs)[:n_docs]


# --- gopher_quality -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GopherQualityFilter(RuleFilter):
    """Gopher's quality rules (Rae et al. 2021, Appendix A.1.1 "Quality filtering"; thresholds from
    the paper, parameter names and rule order from datatrove's ``GopherQualityFilter``).

    Words are spaCy's English tokens (``spacy_en_words``: punctuation marks are words); a "symbol"
    word is made only of punctuation (datatrove's ``PUNCTUATION_SET``); lines are ``str.splitlines``.
    Reason codes, in the order they are tried (datatrove's reason in brackets):

    * ``gopher_quality.too_few_words`` (``gopher_short_doc``): fewer than ``min_doc_words`` (50)
      non-symbol words;
    * ``gopher_quality.too_many_words`` (``gopher_long_doc``): more than ``max_doc_words`` (100,000);
    * ``gopher_quality.mean_word_length_low`` / ``mean_word_length_high``
      (``gopher_below_avg_threshold`` / ``gopher_above_avg_threshold``): the mean length of the
      non-symbol words (characters) below ``min_avg_word_length`` (3) or above
      ``max_avg_word_length`` (10);
    * ``gopher_quality.hash_ratio`` (``gopher_too_many_hashes``): count of "#" per word (all words)
      above ``max_symbol_word_ratio`` (0.1);
    * ``gopher_quality.ellipsis_ratio`` (``gopher_too_many_ellipsis``): count of "..." plus "…" per
      word above ``max_symbol_word_ratio`` (0.1);
    * ``gopher_quality.bullet_lines`` (``gopher_too_many_bullets``): more than
      ``max_bullet_lines_ratio`` (0.9) of the lines start (after leading spaces) with "•" or "-";
    * ``gopher_quality.ellipsis_lines`` (``gopher_too_many_end_ellipsis``): more than
      ``max_ellipsis_lines_ratio`` (0.3) of the lines end (before trailing spaces) with "..." or "…";
    * ``gopher_quality.alpha_words`` (``gopher_below_alpha_threshold``): fewer than
      ``max_non_alpha_words_ratio`` (0.8; datatrove's name, a *minimum* fraction of words with a
      letter, as the paper's "80% of words contain at least one alphabetic character");
    * ``gopher_quality.stop_words`` (``gopher_enough_stop_words``): fewer than ``min_stop_words`` (2)
      distinct words of ``stop_words`` (the paper's the, be, to, of, and, that, have, with; matched
      case-sensitively, as datatrove does).

    A threshold of None turns its rule off (datatrove also turns a rule off with 0; here 0 is a
    threshold like any other).

    Language awareness (not in datatrove, which applies English rules to whatever it is given): the
    *word rules* (word count, mean word length, hash and ellipsis ratios, alphabetic words, stop
    words) assume words separated by spaces. When the batch has a ``lang`` column (the langid stage),
    they apply to documents whose ``lang`` is in ``word_rule_languages`` (default: English and the
    European languages), and the stop-word rule only to ``stop_word_languages`` (default English:
    the list is English). Without a ``lang`` column (or where it is null or "und") a document is
    exempt from the word rules when at least ``spaceless_threshold`` (0.5) of its letters are Han,
    kana, Thai, Lao, Khmer, Myanmar or Tibetan: the scripts of ``filters/c4.py``'s detector, which
    counts them over all characters instead (of the 1,100 documents of the real crawl's two Chinese
    shards it finds 841, letters find 1,077; the others are mostly navigation menus diluted by
    newlines, spaces and URLs). ``spaceless_threshold=None`` never exempts one (datatrove's
    behaviour). ``word_rule_languages=None`` ignores the ``lang`` column (the script decides);
    ``stop_word_languages=None`` applies the stop-word rule wherever the word rules apply. The line
    rules apply to every document.

    Annotations: ``gopher_quality_words`` (non-symbol words), ``gopher_quality_word_rules``
    (whether the word rules applied to the document), and each rule's metric as the rule computes
    it, so a report can draw how close to its threshold a document was:
    ``gopher_quality_mean_word_length``, ``_hash_ratio``, ``_ellipsis_ratio``,
    ``_bullet_lines_ratio``, ``_ellipsis_lines_ratio``, ``_alpha_words_ratio`` (float32; null where
    the denominator is 0) and ``gopher_quality_stop_words`` (distinct stop words).
    """

    name: ClassVar[str] = "gopher_quality"
    # datatrove tests these thresholds with ``if self.x and ...``: 0 turns a rule off there (config warns).
    zero_disables_in_datatrove: ClassVar[bool] = True
    optional_columns: ClassVar[tuple[str, ...]] = ("lang",)
    annotation_types: ClassVar[dict[str, pa.DataType]] = {
        "gopher_quality_words": pa.int64(),
        "gopher_quality_word_rules": pa.bool_(),
        "gopher_quality_mean_word_length": pa.float32(),
        "gopher_quality_hash_ratio": pa.float32(),
        "gopher_quality_ellipsis_ratio": pa.float32(),
        "gopher_quality_bullet_lines_ratio": pa.float32(),
        "gopher_quality_ellipsis_lines_ratio": pa.float32(),
        "gopher_quality_alpha_words_ratio": pa.float32(),
        "gopher_quality_stop_words": pa.int32(),
    }

    min_doc_words: int | None = 50
    max_doc_words: int | None = 100_000
    min_avg_word_length: float | None = 3
    max_avg_word_length: float | None = 10
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    max_non_alpha_words_ratio: float | None = 0.8
    min_stop_words: int | None = 2
    stop_words: tuple[str, ...] = STOP_WORDS
    word_rule_languages: tuple[str, ...] | None = SPACE_SEPARATED_LANGUAGES
    stop_word_languages: tuple[str, ...] | None = ("en",)
    spaceless_threshold: float | None = 0.5

    def __post_init__(self):
        _check_count("min_doc_words", self.min_doc_words)
        _check_count("max_doc_words", self.max_doc_words)
        if self.min_doc_words is not None and self.max_doc_words is not None and self.max_doc_words < self.min_doc_words:
            raise ValueError(f"need min_doc_words <= max_doc_words, got {self.min_doc_words}, {self.max_doc_words}")
        for name in ("min_avg_word_length", "max_avg_word_length"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise ValueError(f"{name} must be a non-negative number or None, got {value!r}")
        low, high = self.min_avg_word_length, self.max_avg_word_length
        if low is not None and high is not None and high < low:
            raise ValueError(f"need min_avg_word_length <= max_avg_word_length, got {low}, {high}")
        _check_fraction("max_symbol_word_ratio", self.max_symbol_word_ratio, upper=float("inf"))
        for name in ("max_bullet_lines_ratio", "max_ellipsis_lines_ratio", "max_non_alpha_words_ratio", "spaceless_threshold"):
            _check_fraction(name, getattr(self, name))
        _check_count("min_stop_words", self.min_stop_words)
        stop_words = self.stop_words
        if isinstance(stop_words, str) or not all(isinstance(w, str) and w for w in stop_words):
            raise ValueError(f"stop_words must be a list of words, got {stop_words!r}")
        stop_words = tuple(stop_words)
        if self.min_stop_words and len(set(stop_words)) < self.min_stop_words:
            distinct = len(set(stop_words))
            raise ValueError(f"min_stop_words={self.min_stop_words} cannot be met with {distinct} distinct stop_words")
        object.__setattr__(self, "stop_words", stop_words)
        object.__setattr__(self, "word_rule_languages", _check_languages("word_rule_languages", self.word_rule_languages))
        object.__setattr__(self, "stop_word_languages", _check_languages("stop_word_languages", self.stop_word_languages))

    def prepare(self, frame: pl.DataFrame) -> pl.DataFrame:
        from filters import gopher_words as kernels

        n = frame.height
        text = pl.col("text").fill_null("")
        words, words_arrow = batch_words(frame.get_column("text"))
        doc = words.get_column("doc").to_numpy()
        word_data, word_offsets = _arrow_string_buffers(words_arrow)
        # symbol words (punctuation only), their lengths, words with a letter: one compiled pass
        non_symbol, non_symbol_chars, alpha = kernels.word_counts(doc, word_offsets, word_data, _class_table(), n)
        is_stop = words.get_column("word").is_in(pl.Series(list(self.stop_words), dtype=pl.String).implode())
        stop = words.filter(is_stop).unique()  # distinct (document, stop word)
        frame = frame.with_columns(
            pl.Series("_words", _scatter_counts(doc, n).astype(np.int64)),
            pl.Series("_non_symbol", non_symbol),
            pl.Series("_non_symbol_chars", non_symbol_chars),
            pl.Series("_alpha", alpha),
            pl.Series("_stop", _scatter_counts(stop.get_column("doc").to_numpy(), n).astype(np.int64)),
            text.str.count_matches("#", literal=True).alias("_hashes"),
            text.str.count_matches(r"\.\.\.|…").alias("_ellipses"),
            # str.splitlines(): one line per break, plus the last one unless the text ends with a break
            (text.str.count_matches(_LINE_BREAK) + ~(text.str.contains(f"(?:{_LINE_BREAK})$") | (text == "")))
            .alias("_lines"),
            text.str.count_matches(f"(?:^|{_LINE_BREAK}){_INLINE_SPACE}*[•\\-]").alias("_bullet_lines"),
            text.str.count_matches(f"(?:\\.\\.\\.|…){_INLINE_SPACE}*(?:{_LINE_BREAK}|$)").alias("_ellipsis_lines"),
        )
        frame = frame.with_columns(_spaced_script(frame, self.spaceless_threshold).alias("_by_script"))
        return frame.with_columns(self._word_rules(frame).alias("_word_rules")).with_columns(
            (pl.col("_word_rules") & self._stop_word_rule(frame)).alias("_stop_rule")
        )

    def _word_rules(self, frame: pl.DataFrame) -> pl.Expr:
        """True where the word rules apply (see the class docstring)."""
        if "lang" not in frame.columns or self.word_rule_languages is None:
            return pl.col("_by_script")
        lang = pl.col("lang")
        return pl.when(_unknown(lang)).then(pl.col("_by_script")).otherwise(lang.is_in(list(self.word_rule_languages)))

    def _stop_word_rule(self, frame: pl.DataFrame) -> pl.Expr:
        if "lang" not in frame.columns or self.stop_word_languages is None:
            return pl.lit(True)
        lang = pl.col("lang")
        return _unknown(lang) | lang.is_in(list(self.stop_word_languages))

    def __call__(self, table: pa.Table) -> pa.Table:
        return judge_carrying_words(self, table)

    def rules(self) -> list[tuple[str, pl.Expr]]:
        words, non_symbol = pl.col("_words"), pl.col("_non_symbol")
        mean_length = _ratio(pl.col("_non_symbol_chars"), non_symbol)
        word_rules = pl.col("_word_rules")
        candidates = [
            ("too_few_words", self.min_doc_words, lambda t: word_rules & (non_symbol < t)),
            ("too_many_words", self.max_doc_words, lambda t: word_rules & (non_symbol > t)),
            ("mean_word_length_low", self.min_avg_word_length, lambda t: word_rules & (mean_length < t)),
            ("mean_word_length_high", self.max_avg_word_length, lambda t: word_rules & (mean_length > t)),
            ("hash_ratio", self.max_symbol_word_ratio, lambda t: word_rules & (_ratio(pl.col("_hashes"), words) > t)),
            ("ellipsis_ratio", self.max_symbol_word_ratio, lambda t: word_rules & (_ratio(pl.col("_ellipses"), words) > t)),
            ("bullet_lines", self.max_bullet_lines_ratio, lambda t: _ratio(pl.col("_bullet_lines"), pl.col("_lines")) > t),
            ("ellipsis_lines", self.max_ellipsis_lines_ratio, lambda t: _ratio(pl.col("_ellipsis_lines"), pl.col("_lines")) > t),
            ("alpha_words", self.max_non_alpha_words_ratio, lambda t: word_rules & (_ratio(pl.col("_alpha"), words) < t)),
            ("stop_words", self.min_stop_words, lambda t: pl.col("_stop_rule") & (pl.col("_stop") < t)),
        ]
        return [(rule, make(threshold)) for rule, threshold, make in candidates if threshold is not None]

    def annotations(self) -> dict[str, pl.Expr]:
        words = pl.col("_words")
        return {
            "gopher_quality_words": pl.col("_non_symbol"),
            "gopher_quality_word_rules": pl.col("_word_rules"),
            "gopher_quality_mean_word_length": _ratio(pl.col("_non_symbol_chars"), pl.col("_non_symbol")),
            "gopher_quality_hash_ratio": _ratio(pl.col("_hashes"), words),
            "gopher_quality_ellipsis_ratio": _ratio(pl.col("_ellipses"), words),
            "gopher_quality_bullet_lines_ratio": _ratio(pl.col("_bullet_lines"), pl.col("_lines")),
            "gopher_quality_ellipsis_lines_ratio": _ratio(pl.col("_ellipsis_lines"), pl.col("_lines")),
            "gopher_quality_alpha_words_ratio": _ratio(pl.col("_alpha"), words),
            "gopher_quality_stop_words": pl.col("_stop"),
        }


# --- gopher_repetition ----------------------------------------------------------------------------

_HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplying by it is a bijection mod 2**64
_DOC_MULTIPLIER = np.uint64(0xD6E8FEB86659FD93)


def _doc_key(doc: np.ndarray, gram: np.ndarray) -> np.ndarray:
    """One 64-bit key per (document, n-gram hash)."""
    with np.errstate(over="ignore"):
        return gram ^ (doc.astype(np.uint64) * _DOC_MULTIPLIER)


def duplicated_ngram_chars(
    doc: np.ndarray, gram: np.ndarray, position: np.ndarray, chars: np.ndarray, n: int, n_docs: int
) -> np.ndarray:
    """datatrove's ``find_all_duplicate(words, n)`` for every document at once.

    Inputs, one entry per n-gram, in text order: its document, a hash of its words, its start (the
    index of its first word in the batch, increasing) and its characters (the words joined without
    spaces). The n-grams that occur once in their document may be left out: they are never a
    duplicate. datatrove's loop walks the n-grams; one seen before adds its characters and makes
    the loop jump ``n`` words ahead, and the n-grams it jumps over are *not* added to the seen set.
    That loop, compiled (``gopher_words.duplicate_loop``: one pass, a hash table per document of
    the n-grams seen)."""
    from filters import gopher_words as kernels

    return kernels.duplicate_loop(
        doc.astype(np.int64), gram.astype(np.uint64), position.astype(np.int64), chars.astype(np.float64), n, n_docs
    )


def top_ngram_chars(
    doc: np.ndarray, gram: np.ndarray, position: np.ndarray, chars: np.ndarray, n_docs: int
) -> np.ndarray:
    """datatrove's ``find_top_duplicate``: the most frequent n-gram's length (words joined by
    spaces: ``chars``) times its count; among equally frequent ones, the first to appear (as
    ``Counter.most_common(1)`` picks it). Documents without n-grams: 0. (Compiled:
    ``gopher_words.top_ngram``, one pass counting in a hash table.)"""
    from filters import gopher_words as kernels

    return kernels.top_ngram(
        doc.astype(np.int64), gram.astype(np.uint64), position.astype(np.int64), chars.astype(np.float64), n_docs
    )


def _pairs(name: str, value) -> tuple[tuple[int, float], ...]:
    try:
        pairs = tuple((int(n), float(frac)) for n, frac in value)
        ok = all(float(n) == n_ and n_ >= 1 for (n, _), (n_, _) in zip(value, pairs))
    except (TypeError, ValueError):
        ok = False
    if not ok or not all(0 <= frac <= 1 for _, frac in pairs) or len({n for n, _ in pairs}) != len(pairs):
        raise ValueError(f"{name} must be a list of distinct (n >= 1, fraction in [0, 1]) pairs, got {value!r}")
    return pairs


@dataclass(frozen=True)
class GopherRepetitionFilter(RuleFilter):
    """Gopher's repetition rules (Rae et al. 2021, Appendix A.1.1 "Repetition removal", Table A1;
    definitions, rule order and defaults as datatrove's ``GopherRepetitionFilter``).

    Paragraphs: ``text.strip()`` split on ``\\n{2,}``; lines: ``text`` split on ``\\n+``; a paragraph
    or line is a duplicate when an identical one came before it in the document, and its characters
    are duplicate characters. Words: spaCy's English tokens (``spacy_en_words``), as for
    ``gopher_quality``. Every character fraction divides by ``len(text)`` (code points). Reason
    codes, in order (datatrove's reason in brackets where it differs):

    * ``gopher_repetition.empty`` (``empty``): the text is "" (datatrove rejects it here);
    * ``dup_para_frac``: duplicate paragraphs / paragraphs > ``dup_para_frac`` (0.30);
    * ``dup_para_char_frac``: duplicate-paragraph characters / characters > ``dup_para_char_frac`` (0.20);
    * ``dup_line_frac``: duplicate lines / lines > ``dup_line_frac`` (0.30);
    * ``dup_line_char_frac``: duplicate-line characters / characters > ``dup_line_char_frac`` (0.20);
    * ``top_{n}_gram``, n = 2, 3, 4: the most frequent word n-gram's characters (words joined by
      single spaces) times its count / characters > 0.20, 0.18, 0.16 (``top_n_grams``);
    * ``dup_{n}_gram`` (``duplicated_{n}_n_grams``), n = 5..10: characters (words joined without
      spaces) of the duplicate n-grams met by datatrove's left-to-right scan, which jumps over the
      ``n - 1`` n-grams overlapping each duplicate it counts / characters > 0.15, 0.14, 0.13, 0.12,
      0.11, 0.10 (``dup_n_grams``); see ``duplicated_ngram_chars``.

    A fraction of None turns its rule off. The rules apply to every language: they measure repeated
    text whatever the words are. (In a script written without spaces spaCy's "words" are the runs
    of text between spaces and punctuation, so an n-gram there is a longer passage, and it counts
    only when that whole passage repeats.)

    Differences from datatrove, by construction: lines and paragraphs are compared by a 64-bit
    hash and their byte length, n-grams by a 64-bit hash of their words (a collision, ~1e-7 for a 2-million-word document, would merge two n-grams); and datatrove
    compares duplicate n-grams by their words joined *without* spaces, so ``["ab", "c"]`` equals
    ``["a", "bc"]`` there and not here.
    """

    name: ClassVar[str] = "gopher_repetition"
    zero_disables_in_datatrove: ClassVar[bool] = True

    dup_line_frac: float | None = 0.3
    dup_para_frac: float | None = 0.3
    dup_line_char_frac: float | None = 0.2
    dup_para_char_frac: float | None = 0.2
    top_n_grams: tuple[tuple[float, ...], ...] = ((2, 0.2), (3, 0.18), (4, 0.16))
    dup_n_grams: tuple[tuple[float, ...], ...] = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))

    @property
    def annotation_types(self) -> dict[str, pa.DataType]:
        """Each rule's metric as a fraction of the document (float32), so a report can draw how close
        to its threshold a document was: ``gopher_repetition_dup_line_frac``, ``_dup_para_frac``,
        ``_dup_line_char_frac``, ``_dup_para_char_frac`` and, for the configured n,
        ``_top_{n}_gram`` and ``_dup_{n}_gram``."""
        names = ["dup_line_frac", "dup_para_frac", "dup_line_char_frac", "dup_para_char_frac"]
        names += [f"top_{n}_gram" for n, _ in self.top_n_grams] + [f"dup_{n}_gram" for n, _ in self.dup_n_grams]
        return {f"gopher_repetition_{name}": pa.float32() for name in names}

    def annotations(self) -> dict[str, pl.Expr]:
        chars = pl.col("_chars")
        out = {
            "gopher_repetition_dup_line_frac": _ratio(pl.col("_dup_lines"), pl.col("_lines")),
            "gopher_repetition_dup_para_frac": _ratio(pl.col("_dup_paragraphs"), pl.col("_paragraphs")),
            "gopher_repetition_dup_line_char_frac": _ratio(pl.col("_dup_line_chars"), chars),
            "gopher_repetition_dup_para_char_frac": _ratio(pl.col("_dup_paragraph_chars"), chars),
        }
        out.update({f"gopher_repetition_top_{n}_gram": _ratio(pl.col(f"_top_{n}"), chars) for n, _ in self.top_n_grams})
        out.update({f"gopher_repetition_dup_{n}_gram": _ratio(pl.col(f"_dup_{n}"), chars) for n, _ in self.dup_n_grams})
        return out

    def __post_init__(self):
        for name in ("dup_line_frac", "dup_para_frac", "dup_line_char_frac", "dup_para_char_frac"):
            _check_fraction(name, getattr(self, name))
        object.__setattr__(self, "top_n_grams", _pairs("top_n_grams", self.top_n_grams or ()))
        object.__setattr__(self, "dup_n_grams", _pairs("dup_n_grams", self.dup_n_grams or ()))

    def prepare(self, frame: pl.DataFrame) -> pl.DataFrame:
        n_docs = frame.height
        text = pl.col("text").fill_null("")
        frame = frame.with_columns(text.str.len_chars().alias("_chars"))
        # Paragraphs: the pieces of text.strip() between runs of 2+ newlines, i.e. the maximal runs
        # of non-newline text joined by single newlines (all non-empty; "" when the text is blank).
        # (Literal splits, then the empty pieces dropped: a regex extract is ~10x slower. Splitting
        # at "\n\n" leaves the rest of a longer run of newlines at the start of the next piece.)
        paragraphs = text.str.strip_chars(PY_WHITESPACE).str.split("\n\n")
        paragraphs = self._duplicates(frame, paragraphs, strip_newlines=True)
        # Lines: re.split("\n+", text): the non-empty runs, plus an empty line before a leading and
        # after a trailing newline (empty lines add to the duplicates, not to their characters).
        lines = self._duplicates(frame, text.str.split("\n"))
        empty_lines = text.str.starts_with("\n").cast(pl.Int64) + text.str.ends_with("\n").cast(pl.Int64)
        frame = frame.with_columns(
            paragraphs[0].clip(lower_bound=1).alias("_paragraphs"),
            paragraphs[1].alias("_dup_paragraphs"),
            paragraphs[2].alias("_dup_paragraph_chars"),
            lines[0].alias("_lines"),
            lines[1].alias("_dup_lines"),
            lines[2].alias("_dup_line_chars"),
        ).with_columns(
            (pl.col("_lines") + empty_lines).alias("_lines"),
            (pl.col("_dup_lines") + (empty_lines - 1).clip(lower_bound=0)).alias("_dup_lines"),
        )
        ngram_columns = self._ngram_chars(batch_words(frame.get_column("text"))[0], n_docs)
        return frame.with_columns(**{name: pl.Series(values) for name, values in ngram_columns.items()})

    @staticmethod
    def _duplicates(frame: pl.DataFrame, pieces: pl.Expr, strip_newlines: bool = False) -> tuple[pl.Series, pl.Series, pl.Series]:
        """Per document: how many non-empty pieces, how many repeat an earlier one, and their
        characters (``strip_newlines``: leading newlines are not part of a piece)."""
        n_docs = frame.height
        long = frame.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("doc"), pieces.alias("piece"))
        long = long.explode("piece")
        if strip_newlines:
            long = long.with_columns(pl.col("piece").str.strip_chars_start("\n"))
        long = long.filter(pl.col("piece") != "")
        doc = long.get_column("doc").to_numpy()
        # A piece repeats when its (document, 64-bit hash, byte length) came before: one u64 key
        # per piece instead of hashing (document, string) structs; a false match needs two pieces
        # of one document with equal length and hash (~1e-17 for a 10,000-line document).
        piece = long.get_column("piece")
        with np.errstate(over="ignore"):
            key = _doc_key(doc, piece.hash(seed=0x5EED).to_numpy() ^ (piece.str.len_bytes().to_numpy().astype(np.uint64) * _HASH_MULTIPLIER))
        repeat = ~pl.Series(key).is_first_distinct().to_numpy()
        chars = piece.filter(pl.Series(repeat)).str.len_chars().to_numpy().astype(np.float64)
        return (
            pl.Series(_scatter_counts(doc, n_docs).astype(np.int64)),
            pl.Series(_scatter_counts(doc[repeat], n_docs).astype(np.int64)),
            pl.Series(_scatter_counts(doc[repeat], n_docs, chars)),
        )

    def _ngram_chars(self, words: pl.DataFrame, n_docs: int) -> dict[str, np.ndarray]:
        """Per document and n: the top n-gram characters and the duplicated n-gram characters.

        Only n-grams that occur twice or more in their document can be a duplicate or beat the
        first n-gram to the top, and an n-gram can only repeat where its first n - 1 words do: so
        each n looks at the positions where the (n - 1)-gram repeats, a set that shrinks fast."""
        wanted = sorted({n for n, _ in self.top_n_grams} | {n for n, _ in self.dup_n_grams})
        if not wanted:
            return {}
        from filters import gopher_words as kernels

        doc = words.get_column("doc").to_numpy().astype(np.int64)
        lengths = words.get_column("word").str.len_chars().to_numpy().astype(np.int64)
        word_hash = words.get_column("word").hash(seed=0x5EED).to_numpy()
        cum_chars = np.concatenate([[0], np.cumsum(lengths)])
        per_doc = _scatter_counts(doc, n_docs).astype(np.int64)
        doc_start = np.cumsum(per_doc) - per_doc
        doc_end = (doc_start + per_doc)[doc]  # one past the last word of each word's document
        top, dup = dict(self.top_n_grams), dict(self.dup_n_grams)
        out = {}
        position = np.arange(len(doc), dtype=np.int64)  # where the (n - 1)-gram repeats
        gram = word_hash
        for n in range(1, max(wanted) + 1):
            if n > 1:  # extend each (n - 1)-gram by the next word
                keep = position + n <= doc_end[position]
                position = position[keep]
                with np.errstate(over="ignore"):
                    gram = gram[keep] * _HASH_MULTIPLIER + word_hash[position + n - 1]
            repeats = kernels.repeated(doc[position], gram)
            position, gram = position[repeats], gram[repeats]
            if n in top:
                chars = cum_chars[position + n] - cum_chars[position] + (n - 1)
                value = top_ngram_chars(doc[position], gram, position, chars, n_docs)
                # No n-gram repeats: the top one is the first, once.
                alone = (value == 0) & (per_doc >= n)
                first = doc_start[alone]
                value[alone] = cum_chars[first + n] - cum_chars[first] + (n - 1)
                out[f"_top_{n}"] = value
            if n in dup:
                chars = cum_chars[position + n] - cum_chars[position]
                out[f"_dup_{n}"] = duplicated_ngram_chars(doc[position], gram, position, chars, n, n_docs)
        return out

    def __call__(self, table: pa.Table) -> pa.Table:
        return judge_carrying_words(self, table)

    def rules(self) -> list[tuple[str, pl.Expr]]:
        chars = pl.col("_chars")
        rules = [("empty", chars == 0)]
        line_rules = [
            ("dup_para_frac", self.dup_para_frac, _ratio(pl.col("_dup_paragraphs"), pl.col("_paragraphs"))),
            ("dup_para_char_frac", self.dup_para_char_frac, _ratio(pl.col("_dup_paragraph_chars"), chars)),
            ("dup_line_frac", self.dup_line_frac, _ratio(pl.col("_dup_lines"), pl.col("_lines"))),
            ("dup_line_char_frac", self.dup_line_char_frac, _ratio(pl.col("_dup_line_chars"), chars)),
        ]
        rules += [(rule, value > threshold) for rule, threshold, value in line_rules if threshold is not None]
        rules += [(f"top_{n}_gram", _ratio(pl.col(f"_top_{n}"), chars) > frac) for n, frac in self.top_n_grams]
        rules += [(f"dup_{n}_gram", _ratio(pl.col(f"_dup_{n}"), chars) > frac) for n, frac in self.dup_n_grams]
        return rules
