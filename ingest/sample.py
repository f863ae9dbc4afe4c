"""A deterministic synthetic web crawl of mixed quality: crawlsift's bundled default corpus.

Why it exists: ``crawlsift run`` must work out of the box and the tests need input whose ground
truth is known, but no outside data may be downloaded or committed. So we make a crawl that has
what real crawls have (clean prose, navigation boilerplate, SEO spam, lorem ipsum, leaked
JS/CSS, repeated lines, exact and near duplicates, other languages and scripts, PII, empty and
enormous pages, corrupt lines) in both input formats the pipeline meets most (gzip JSONL and
Common Crawl style WARC), plus a ``labels.jsonl`` saying what every record is, so each filter
and the deduplication can be scored against it.

The English prose is real human text harvested from the docstrings of the running CPython's own
standard library (and its LICENSE); Chinese, Japanese and Korean come from CPython's
``test/cjkencodings/*-utf8.txt`` when present; the other languages are short sentences written
for this module. Nothing is fetched.

Output of ``write_sample(dir, docs, seed)``:

``crawl-NNNNN.jsonl.gz``
    One gzip stream per shard, at most ``shard_docs`` lines, each
    ``{"id": "doc-000000123", "text": ..., "url": "https://...", "date": "2024-05-06T07:08:09Z"}``.
    The number in the id is the record's index in the whole sample, so ids are unique but have
    gaps where records went to WARC. Corrupt lines are here too (never in WARC).
``crawl-NNNNN.warc.gz``
    WARC/1.0, every record its own gzip member (as Common Crawl does), at most ``shard_docs``
    pages per shard. Layout of a shard: one ``warcinfo`` record; then per page a ``request``
    record (``WARC-Concurrent-To`` names its response) and a ``response`` record
    (``application/http; msgtype=response``: ``HTTP/1.1 200 OK`` with
    ``Content-Type: text/html; charset=utf-8``, then the HTML page). After a shard's first page
    comes one ``metadata`` record, and after its 1st, 201st, 401st... page an ``image/png``
    request/response pair: records a reader must skip, not documents. ``WARC-Record-ID`` values
    are ``<urn:uuid:...>`` derived from (seed, record index, role); block and payload digests are
    SHA-1 in base32. The document text is exactly the ``<p>`` elements of the page's
    ``<article>``, HTML-unescaped, ``<br>`` read as a newline, joined by blank lines; the title,
    navigation, header, footer and scripts around it are page furniture.
``labels.jsonl``
    One line per record, in generation order: ``{"file", "source_id", "label", "dup_of",
    "jaccard", "lang"}``. ``source_id`` is the JSONL ``id`` or the response's ``WARC-Record-ID``
    (with its angle brackets, as WARC readers report it). Corrupt lines have ``source_id`` null,
    ``position`` (1-based line number in ``file``) and ``corruption`` (``truncated_json``,
    ``invalid_utf8`` or ``missing_text``). ``lang`` is an ISO 639 code: ``en``, the non-English
    languages, ``la`` for lorem ipsum, ``und`` for code debris and empty pages, null if corrupt.

Labels describe the document as generated. What a reader extracts from the WARC HTML also
contains the ``<h1>`` title (and navigation/footer unless it extracts main content only), so an
exact duplicate stored once as JSONL and once as WARC is identical here but not necessarily after
HTML-to-text extraction.
"""

from __future__ import annotations

import argparse
import ast
import base64
import functools
import hashlib
import html
import os
import random
import re
import struct
import sys
import sysconfig
import time
import uuid
import warnings
import zlib
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import orjson
import xxhash

# ---------------------------------------------------------------------------------------------
# The mix

# Share of each label in the sample; "clean" gets whatever is left (about 40 %). The proportions
# are a caricature of an unfiltered crawl, tilted so every filter has work at a few thousand docs.
PROPORTIONS = {
    "boilerplate": 0.09,
    "keyword_spam": 0.05,
    "lorem_ipsum": 0.03,
    "code_debris": 0.05,
    "repeated_lines": 0.05,
    "near_duplicate": 0.06,
    "exact_duplicate": 0.05,
    "non_english": 0.14,
    "pii": 0.06,
    "empty": 0.02,
    "very_long": 0.0002,
    "corrupt": 0.0003,
}
# (smallest sample size, least count): enough corrupt lines for one of each kind, and at least one
# very long document, once the sample is big enough for them not to dominate it.
MINIMUMS = {"corrupt": (100, 3), "very_long": (1000, 1)}
LABELS = ("clean", *PROPORTIONS)
CORRUPTIONS = ("truncated_json", "invalid_utf8", "missing_text")

CLEAN_WORDS = (80, 1500)
VERY_LONG_CHARS = (200_000, 500_000)
NEAR_DUP_RANGE = (0.5, 0.95)
SHINGLE = 5

_BLOCK = 10_000  # records planned (and reported to `progress`) at a time
_RESERVOIR = 512  # earlier clean documents kept to copy duplicates from
# (original shingles lost, new shingles) per substitution, insertion, deletion of one word
_EDIT_EFFECT = ((SHINGLE, SHINGLE), (SHINGLE - 1, SHINGLE), (SHINGLE, SHINGLE - 1))
_CODE_LINES = 2000  # pre-filled code fragments that code debris is drawn from
# zlib level 1: about 4x faster than the default 6 for ~15 % bigger files. At ~2.6 kB of text
# per document, deflate is a third of the generation time even so.
_GZIP_LEVEL = 1
_PNG_EVERY = 200  # pages between two image responses in a WARC shard
_EPOCH_2024 = 1_704_067_200
_SHARD_NAME = re.compile(r"crawl-\d{5}\.(?:jsonl|warc)\.gz")


# ---------------------------------------------------------------------------------------------
# English prose, harvested from the standard library

_STDLIB_SKIP_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "__pycache__"})
_REST_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`~?([^`<]*?)(?:\s*<[^>]*>)?`")
_REST_LITERAL = re.compile(r"``([^`]*)``")
_REST_INTERPRETED = re.compile(r"`([^`]*)`_?")
_REST_EMPHASIS = re.compile(r"(?<![\w*])\*{1,2}([^*\s][^*]*?)\*{1,2}(?![\w*])")
_PROSE_WORD = re.compile(r"[\"'(]*[A-Za-z][a-z]*(?:['-][a-z]+)*[.,;:!?)\"']*")
_NOT_PROSE_LINE_STARTS = (" ", "\t", ">>>", "...", "-", "*", "+", "|", "=", "#", ":")
_MAX_PARAGRAPH_WORDS = 300
_DEFINITIONS = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


@dataclass(frozen=True)
class ProsePool:
    """Prose paragraphs in a fixed order (consecutive ones come from the same docstring or
    module, so runs of them read as one text), their word counts, and a vocabulary of their
    lower-case words for edits."""

    paragraphs: tuple[str, ...]
    word_counts: tuple[int, ...]
    vocabulary: tuple[str, ...]


@functools.lru_cache(maxsize=1)
def prose_pool() -> ProsePool:
    """Build the English paragraph pool once per process (about 3 s: an ``ast`` parse of ~700
    stdlib files). Files are visited in sorted order so the pool, and so the sample, is the same
    on every run with the same Python."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [doc for path in _stdlib_sources(stdlib) for doc in _docstrings(path)]
    license_file = stdlib / "LICENSE.txt"
    if license_file.is_file():
        texts.append(license_file.read_text(encoding="utf-8", errors="replace"))
    paragraphs = tuple(dict.fromkeys(p for text in texts for p in prose_paragraphs(text)))
    if not paragraphs:
        raise RuntimeError(f"no prose found in the standard library at {stdlib}")
    vocabulary = sorted({w for p in paragraphs for w in p.lower().split() if w.isalpha() and len(w) > 2})
    return ProsePool(paragraphs, tuple(len(p.split()) for p in paragraphs), tuple(vocabulary))


def _stdlib_sources(stdlib: Path) -> list[Path]:
    """The stdlib's ``.py`` files, tests and third-party packages excluded, in sorted order."""
    found = []
    for directory, subdirs, files in os.walk(stdlib):
        subdirs[:] = sorted(d for d in subdirs if d not in _STDLIB_SKIP_DIRS)
        found.extend(Path(directory, f) for f in sorted(files) if f.endswith(".py"))
    return found


def _docstrings(path: Path) -> Iterator[str]:
    """Module, class and function docstrings of one source file, in source order; a file that
    does not parse on this Python contributes nothing. Only module, class and function bodies
    are searched (not every node, as ``ast.walk`` would), which halves the pool's build time and
    misses only definitions nested in ``if``/``try`` blocks."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences in old stdlib strings
            tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, UnicodeDecodeError, OSError):
        return
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        doc = ast.get_docstring(node)
        if doc:
            yield doc
        pending.extend(reversed([child for child in node.body if isinstance(child, _DEFINITIONS)]))


def prose_paragraphs(text: str) -> Iterator[str]:
    """The paragraphs of a docstring that read as prose: no code blocks, doctests, lists or
    tables; reST roles and literals reduced to their text; at least 8 words, 80 % of them plain
    words, ending like a sentence."""
    for block in re.split(r"\n\s*\n", text):
        lines = block.strip("\n").split("\n")
        if any(line.startswith(_NOT_PROSE_LINE_STARTS) or line.rstrip().endswith("::") for line in lines):
            continue
        paragraph = " ".join(" ".join(lines).split())
        for pattern in (_REST_ROLE, _REST_LITERAL, _REST_INTERPRETED, _REST_EMPHASIS):
            paragraph = pattern.sub(r"\1", paragraph)
        words = paragraph.split()
        if not 8 <= len(words) <= _MAX_PARAGRAPH_WORDS or paragraph[-1] not in ".!?":
            continue
        if sum(1 for w in words if _PROSE_WORD.fullmatch(w)) >= 0.8 * len(words):
            yield paragraph


# ---------------------------------------------------------------------------------------------
# Other languages

# Where CPython ships real CJK prose (the first paragraph of each file is the prose; later ones
# are encoder edge cases).
_CJK_FILES = {"gb2312-utf8.txt": "zh", "big5-utf8.txt": "zh", "euc_jp-utf8.txt": "ja", "euc_kr-utf8.txt": "ko"}
_CJK_JOINER = {"zh": "", "ja": "", "ko": " "}
_SENTENCE = re.compile(r"[^。！？!?.]+[。！？!?.]")

# Short everyday sentences written for this module, so every language has material even where
# the CJK test files are missing. Not translations of each other, not copied from anywhere.
_SENTENCES = {
    "zh": (
        "周末我们去公园散步，看到很多人在湖边钓鱼。",
        "图书馆每天早上九点开门，晚上八点关门。",
        "下雨以后，空气变得很清新。",
        "我奶奶每年春节都会包很多饺子。",
        "去上海的火车今天晚点了半个小时。",
        "学习一门新的语言需要每天坚持练习。",
        "秋天的时候，山上的树叶变成了红色和黄色。",
        "市政府计划明年在河边修一条新的自行车道。",
    ),
    "ja": (
        "週末は家族と一緒に近くの公園へ散歩に行きました。",
        "図書館は毎日午前九時から午後八時まで開いています。",
        "雨が上がると、空気がとても澄んで気持ちがよくなりました。",
        "祖母は毎年秋になると栗ご飯を作ってくれます。",
        "今朝の電車は事故のため三十分ほど遅れました。",
        "新しい言葉を覚えるには、毎日少しずつ練習するのが一番です。",
        "秋になると、山の木々が赤や黄色に色づきます。",
        "駅前に新しいパン屋ができて、朝から行列ができています。",
    ),
    "ko": (
        "주말에 가족과 함께 근처 공원에서 산책을 했습니다.",
        "도서관은 매일 오전 아홉 시부터 오후 여덟 시까지 문을 엽니다.",
        "비가 그친 뒤 공기가 아주 맑아졌습니다.",
        "할머니는 해마다 겨울이 오기 전에 김치를 담그십니다.",
        "새로운 언어를 배우려면 매일 조금씩 연습하는 것이 좋습니다.",
        "가을이 되면 산의 나무들이 빨갛고 노랗게 물듭니다.",
    ),
    "ru": (
        "В субботу мы поехали за город и весь день гуляли по лесу.",
        "Городская библиотека работает без выходных с десяти утра до восьми вечера.",
        "После дождя на улицах стало свежо, и в парке запели птицы.",
        "Моя бабушка каждое лето варит варенье из вишни и смородины.",
        "Поезд до Казани отправился точно по расписанию.",
        "Чтобы выучить новый язык, нужно заниматься понемногу, но каждый день.",
        "Осенью листья на клёнах становятся ярко-красными и жёлтыми.",
        "В школе открыли кружок робототехники для учеников младших классов.",
        "Зимой озеро замерзает, и дети катаются на коньках прямо у берега.",
        "Мы долго спорили о фильме, но так и не пришли к общему мнению.",
        "На рынке продают свежий хлеб, мёд и овощи с местных ферм.",
        "Вечером над рекой поднялся густой туман.",
    ),
    "de": (
        "Am Wochenende haben wir einen langen Spaziergang durch den Stadtpark gemacht.",
        "Die Bibliothek in der Altstadt ist montags bis samstags von neun bis achtzehn Uhr geöffnet.",
        "Nach dem Regen roch die Luft im Garten nach nasser Erde und frischem Gras.",
        "Meine Großmutter backt jeden Sonntag einen Apfelkuchen nach einem alten Familienrezept.",
        "Der Zug nach Hamburg hatte heute Morgen fast eine halbe Stunde Verspätung.",
        "Wer eine neue Sprache lernt, sollte jeden Tag ein wenig üben, statt einmal pro Woche stundenlang zu lernen.",
        "Im Herbst färben sich die Blätter der Buchen gelb, orange und tiefrot.",
        "Die Gemeinde plant, im nächsten Jahr einen neuen Radweg entlang des Flusses zu bauen.",
        "Das Konzert war ausverkauft, deshalb haben wir es uns im Radio angehört.",
        "Bitte schließen Sie das Fenster, bevor Sie am Abend das Büro verlassen.",
        "Kinder lernen am besten, wenn sie neugierig sein und selbst Fragen stellen dürfen.",
        "Auf dem Wochenmarkt gibt es frisches Gemüse direkt von den Bauern aus der Umgebung.",
    ),
    "fr": (
        "Ce matin, le marché du village était plein de fruits de saison et de fromages locaux.",
        "Nous avons pris le train de nuit pour rejoindre la côte avant le lever du soleil.",
        "La bibliothèque municipale propose des ateliers de lecture pour les enfants chaque mercredi.",
        "Après la pluie, les rues pavées de la vieille ville brillaient sous les lampadaires.",
        "Mon voisin répare de vieux vélos dans son garage et les donne aux étudiants du quartier.",
        "Il faut laisser reposer la pâte pendant une heure avant de la mettre au four.",
        "Le musée a ouvert une nouvelle salle consacrée à l'histoire de la navigation.",
        "Pendant les vacances, elle a appris à jouer quelques morceaux simples au piano.",
        "La mairie a décidé de planter deux cents arbres le long de l'avenue principale.",
        "On entendait au loin les cloches de l'église sonner midi.",
        "Ce livre raconte la vie d'une famille de pêcheurs pendant un hiver très rude.",
        "Les randonneurs se sont arrêtés au refuge pour boire un chocolat chaud.",
    ),
    "es": (
        "El sábado por la mañana fuimos al mercado a comprar pan, tomates y aceitunas.",
        "La biblioteca del barrio organiza talleres de escritura para jóvenes cada jueves.",
        "Después de la tormenta, el río bajaba con mucha más agua de lo habitual.",
        "Mi abuela siempre dice que la mejor sopa se prepara sin prisas.",
        "El tren hacia Valencia salió con veinte minutos de retraso por una avería.",
        "Los estudiantes presentaron un proyecto para reducir el consumo de energía en la escuela.",
        "En verano, las plazas del pueblo se llenan de gente hasta muy tarde.",
        "Aprender a tocar la guitarra requiere paciencia y un poco de práctica diaria.",
        "El ayuntamiento ha abierto un nuevo parque con columpios y una pequeña fuente.",
        "Desde la ventana se veían las montañas cubiertas de nieve.",
        "Este museo guarda una colección de mapas antiguos de la costa atlántica.",
        "Cuando terminó la reunión, todos salieron a tomar un café en la terraza.",
    ),
    "ar": (
        "ذهبنا إلى السوق صباح يوم الجمعة لشراء الخبز والفاكهة.",
        "تفتح المكتبة العامة أبوابها كل يوم من الساعة التاسعة صباحا حتى المساء.",
        "بعد المطر أصبح الهواء باردا ونقيا.",
        "تحب جدتي أن تحكي لنا القصص القديمة في ليالي الشتاء.",
        "تأخر القطار نصف ساعة بسبب عطل في الإشارات.",
        "يحتاج تعلم لغة جديدة إلى الصبر والممارسة اليومية.",
        "زرعت البلدية مئات الأشجار على جانبي الطريق الرئيسي.",
        "قرأت كتابا جميلا عن تاريخ الملاحة في البحر الأبيض المتوسط.",
        "يلعب الأطفال كرة القدم في الحديقة بعد انتهاء الدروس.",
        "شربنا الشاي بالنعناع وتحدثنا حتى وقت متأخر.",
        "افتتح المتحف قاعة جديدة للمخطوطات القديمة.",
        "من النافذة نرى الجبال والوادي الأخضر.",
    ),
    "hi": (
        "रविवार की सुबह हम बाज़ार से ताज़ी सब्ज़ियाँ और फल खरीदने गए।",
        "शहर का पुस्तकालय हर दिन सुबह नौ बजे से शाम सात बजे तक खुला रहता है।",
        "बारिश के बाद हवा ठंडी और साफ़ हो गई।",
        "मेरी दादी हर साल गर्मियों में आम का अचार बनाती हैं।",
        "दिल्ली जाने वाली ट्रेन आज आधा घंटा देर से चली।",
        "नई भाषा सीखने के लिए रोज़ थोड़ा अभ्यास करना ज़रूरी है।",
        "बच्चे स्कूल के बाद मैदान में क्रिकेट खेलते हैं।",
        "नगर निगम ने नदी के किनारे नया पार्क बनाने की योजना बनाई है।",
        "शाम को हमने छत पर बैठकर चाय पी और बातें कीं।",
        "इस किताब में एक छोटे से गाँव के किसानों की कहानी है।",
        "सर्दियों में पहाड़ों पर बर्फ़ गिरती है और रास्ते बंद हो जाते हैं।",
        "संग्रहालय में पुराने सिक्कों की एक नई प्रदर्शनी लगी है।",
    ),
}
_SENTENCE_JOINER = {"zh": "", "ja": ""}  # the rest separate sentences with a space


@functools.lru_cache(maxsize=1)
def foreign_sentences() -> dict[str, tuple[str, ...]]:
    """Sentences per non-English language: the module's own plus, where CPython ships them, the
    prose sentences of its CJK codec test files."""
    sentences = {lang: list(own) for lang, own in _SENTENCES.items()}
    cjk_dir = Path(sysconfig.get_paths()["stdlib"], "test", "cjkencodings")
    for name, lang in _CJK_FILES.items():
        path = cjk_dir / name
        if path.is_file():
            first_paragraph = path.read_text(encoding="utf-8").strip().split("\n\n")[0]
            flat = _CJK_JOINER[lang].join(line.strip() for line in first_paragraph.splitlines())
            sentences[lang].extend(s.strip(" \u3000") for s in _SENTENCE.findall(flat))
    return {lang: tuple(dict.fromkeys(s for s in found if s)) for lang, found in sentences.items()}


# ---------------------------------------------------------------------------------------------
# Low-quality material

_BOILERPLATE_LINES = (
    "Home", "About us", "About", "Contact", "Contact us", "Privacy Policy", "Terms of use",
    "Terms & Conditions", "Log in", "Sign up", "Register", "My account", "Cart (0)", "Search",
    "Menu", "Skip to content", "Cookie settings", "Accept all cookies", "Manage preferences",
    "Subscribe to our newsletter", "Follow us", "Facebook", "Twitter", "Instagram", "LinkedIn",
    "YouTube", "Share", "Print", "Email", "Read more", "Load more", "Next »", "« Previous",
    "Back to top", "Sitemap", "Careers", "Press", "Help", "FAQ", "Support", "Shipping & Returns",
    "Accessibility", "Advertise with us", "Imprint", "Blog", "News", "Events", "Shop",
    "Gift cards", "Store locator", "Language: English", "Powered by WordPress",
    "All rights reserved.", "Posted in Uncategorized", "Leave a comment", "Related posts",
    "Categories", "Archives", "Tags", "Home › Blog › News", "Show more", "Close",
)
_BOILERPLATE_SENTENCES = (
    "© 2024 {site}. All rights reserved.",
    "Copyright © 2009–2024 {site} Ltd. All rights reserved.",
    "We use cookies to improve your experience on our website. By continuing to browse, you agree to our use of cookies.",
    "Page {n} of {m}",
    "{n} comments",
    "Sign up for the {site} newsletter and never miss an update.",
)
_SPAM_TOPICS = (
    ("cheap flights", "cheap hotels", "best deals", "last minute deals", "cheap flights to paris",
     "hotel booking", "discount travel", "all inclusive holidays", "cheap car rental"),
    ("payday loans", "fast loans online", "bad credit loans", "instant approval", "low interest",
     "credit card deals", "loans no credit check", "cash advance"),
    ("buy cheap", "free shipping", "best price", "discount shoes", "designer bags sale",
     "outlet online", "cheap watches", "cheap sneakers", "replica watches"),
    ("online casino", "free spins", "casino bonus", "best slots", "no deposit bonus",
     "win real money", "poker online", "sports betting tips"),
    ("seo services", "buy backlinks", "cheap seo", "rank first on google", "website traffic",
     "increase followers", "buy followers", "seo agency"),
)
_LOREM_WORDS = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut "
    "labore et dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris "
    "nisi aliquip ex ea commodo consequat duis aute irure in reprehenderit voluptate velit esse "
    "cillum fugiat nulla pariatur excepteur sint occaecat cupidatat non proident sunt culpa qui "
    "officia deserunt mollit anim id est laborum integer nec odio praesent libero cursus ante "
    "dapibus diam nibh vestibulum sapien porttitor mauris massa fusce"
).split()
_LOREM_OPENING = "Lorem ipsum dolor sit amet, consectetur adipiscing elit."
# %V% a variable, %ID% a class or element id, %N% a number.
_CODE_FRAGMENTS = (
    'function(){var %V%=document.getElementById("%ID%");if(%V%){%V%.style.display="none";}}',
    ".%ID%{display:none}",
    ".%ID% .item{margin:0 auto;padding:%N%px;float:left}",
    '<div class="col-md-%N% %ID%-wrapper">',
    "</div></div></div>",
    "window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}",
    "@media (max-width:%N%px){.%ID%{width:100%!important}}",
    'var _gaq=_gaq||[];_gaq.push(["_setAccount","UA-%N%-1"]);',
    "})();",
    'if(typeof jQuery!=="undefined"){jQuery(".%ID%").hide();}',
    '{"@context":"https://schema.org","@type":"WebPage","name":"%ID%"}',
    '<span class="%ID%" data-id="%N%"></span>',
    "document.write('<img src=\"/pixel.gif?r=%N%\" width=\"1\" height=\"1\">');",
    "<!-- %ID% start -->",
    "return false;}",
    '@font-face{font-family:"%ID%";src:url(/fonts/%ID%.woff2) format("woff2")}',
    "for(var %V%=0;%V%<%N%;%V%++){a[%V%]=b[%V%]^c;}",
    "&nbsp;&nbsp;|&nbsp;",
    "<a href=\"javascript:void(0)\" onclick=\"toggle('%ID%')\">",
    '$(document).ready(function(){$("#%ID%").slideToggle(%N%);});',
    'var %V%=new XMLHttpRequest();%V%.open("GET","/api/%ID%?page=%N%",true);',
    ".btn-%ID%:hover{background-color:#%N%;border-radius:4px}",
)
_CODE_IDS = ("header", "nav", "menu", "sidebar", "footer", "promo", "banner", "modal", "cookie", "slider", "widget", "ad-slot")
_CODE_VARS = ("a", "b", "e", "i", "n", "t", "el", "obj", "_0x3f2a", "cb")
_STOCK_REPEATS = (
    "Click here to read more.", "Add to cart", "Sold out", "Posted by admin", "This item is no longer available.",
    "Free shipping on orders over $50", "Loading...", "Share this article", "Reply", "Quote",
)

# Fictional or documentation-reserved values: realistic for a PII detector, nobody's real data.
_FIRST_NAMES = ("anna", "ben", "carla", "david", "elena", "farid", "grace", "hiro", "ines", "jonas", "kofi", "lena")
_LAST_NAMES = ("smith", "garcia", "mueller", "rossi", "novak", "kim", "okafor", "silva", "dubois", "tanaka")
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")
_PII_SENTENCES = (
    "For questions, email {email} or call {phone}.",
    "You can reach me at {email}.",
    "Contact: {name} <{email}>, phone {phone}.",
    "Our office number is {phone}; outside the US dial {intl}.",
    "The server at {ipv4} stopped responding, so traffic moved to {ipv6}.",
    "Log entry: connection from {ipv4} refused.",
    "Call us on {intl} (Monday to Friday).",
    "The admin console listens on {ipv6} and {ipv4}.",
)

# ---------------------------------------------------------------------------------------------
# URLs and pages

_SITE_WORDS = ("blue", "daily", "north", "open", "river", "silver", "urban", "green", "bright", "little", "old", "quiet")
_SITE_NOUNS = ("falcon", "garden", "notes", "press", "journal", "forum", "market", "harbor", "atlas", "bakery", "lab", "review")
_TLDS = {
    "en": ("com", "org", "net", "co.uk", "io"), "de": ("de", "at"), "fr": ("fr", "be"), "es": ("es", "mx"),
    "ru": ("ru",), "zh": ("cn", "com.tw"), "ja": ("jp",), "ko": ("kr",), "ar": ("sa", "eg", "ae"), "hi": ("in",),
}
_SECTIONS = ("news", "blog", "articles", "forum", "shop", "docs", "reviews", "stories")
_NAV_ITEMS = ("Home", "News", "Blog", "Shop", "About", "Contact", "Events", "Forum", "Help", "Archive", "Careers", "Press")
_RTL = frozenset({"ar"})


class Draft(NamedTuple):
    """A generated document before it is placed in a file: the text and its ground truth.
    (A named tuple: one is made per record, and a frozen dataclass costs twice as much.)"""

    text: str
    lang: str
    dup_of: str | None = None
    jaccard: float | None = None


def _shingle_set(words: list[str]) -> set[tuple[str, ...]]:
    """Word 5-gram shingles of lower-cased, whitespace-split words: the measure near duplicates
    are built to (FineWeb's MinHash deduplication uses word 5-grams)."""
    return set(zip(*(words[i:] for i in range(SHINGLE))))


# ---------------------------------------------------------------------------------------------
# Composing documents


class _Composer:
    """Draws documents of each label from one seeded ``random.Random``, and keeps a bounded
    reservoir of earlier clean documents that duplicates are copied from."""

    def __init__(self, rng: random.Random, pool: ProsePool, foreign: dict[str, tuple[str, ...]]):
        self.rng = rng
        self.pool = pool
        self.foreign = foreign
        self.foreign_langs = tuple(sorted(foreign))
        self.reservoir: list[tuple[str, str]] = []
        self.clean_seen = 0
        self.corrupt_seen = 0
        self._random = rng.random
        self.code_lines = tuple(self._code_line() for _ in range(_CODE_LINES))
        self.make = {
            "clean": self.clean, "boilerplate": self.boilerplate, "keyword_spam": self.keyword_spam,
            "lorem_ipsum": self.lorem_ipsum, "code_debris": self.code_debris,
            "repeated_lines": self.repeated_lines, "near_duplicate": self.near_duplicate,
            "exact_duplicate": self.exact_duplicate, "non_english": self.non_english, "pii": self.pii,
            "empty": self.empty, "very_long": self.very_long,
        }

    # ``random.Random``'s choice/randrange/randint cost ~0.5 us a call in Python-level argument
    # handling; these are called millions of times, so they are done from ``random()`` directly.

    def _pick(self, seq):
        return seq[int(self._random() * len(seq))]

    def _below(self, n: int) -> int:
        return int(self._random() * n)

    def _between(self, low: int, high: int) -> int:
        """An integer in ``low..high``, both included."""
        return low + int(self._random() * (high - low + 1))

    def remember(self, source_id: str, text: str) -> None:
        """Offer a clean document to the reservoir (Vitter's algorithm R: a uniform sample of all
        clean documents so far, in bounded memory)."""
        self.clean_seen += 1
        if len(self.reservoir) < _RESERVOIR:
            self.reservoir.append((source_id, text))
        else:
            slot = self._below(self.clean_seen)
            if slot < _RESERVOIR:
                self.reservoir[slot] = (source_id, text)

    # -- English prose

    def prose(self, low: int, high: int) -> str:
        """Paragraphs totalling ``low``..``high`` words (log-normal, median ~330), taken as a few
        runs of consecutive pool paragraphs. Several runs from random places, rather than one,
        keep two documents from sharing most of their text, since the pool (~1 MB) is reused
        across the sample."""
        rng, paragraphs, counts = self.rng, self.pool.paragraphs, self.pool.word_counts
        target = min(high, max(low, int(rng.lognormvariate(5.8, 0.7))))
        chosen: dict[int, None] = {}  # paragraph indices in order; a paragraph is used only once
        words = 0
        while True:
            start = self._below(len(paragraphs))
            for i in range(start, min(start + self._between(2, 8), len(paragraphs))):
                if i in chosen:
                    break
                if words + counts[i] > high:
                    if words >= low:
                        return "\n\n".join(map(paragraphs.__getitem__, chosen))
                    continue
                chosen[i] = None
                words += counts[i]
                if words >= target:
                    return "\n\n".join(map(paragraphs.__getitem__, chosen))

    def clean(self) -> Draft:
        return Draft(self.prose(*CLEAN_WORDS), "en")

    def very_long(self) -> Draft:
        """Hundreds of kB of consecutive prose (wrapping around the pool), as a whole manual or
        forum dump on one page would be."""
        paragraphs = self.pool.paragraphs
        target = self._between(*VERY_LONG_CHARS)
        chosen, size, i = [], 0, self._below(len(paragraphs))
        while size < target:
            chosen.append(paragraphs[i % len(paragraphs)])
            size += len(chosen[-1]) + 2
            i += 1
        return Draft("\n\n".join(chosen), "en")

    def pii(self) -> Draft:
        """Prose with sentences carrying e-mail addresses, US and international phone numbers and
        IPv4/IPv6 addresses appended to some of its paragraphs."""
        paragraphs = self.prose(80, 600).split("\n\n")
        for _ in range(self._between(1, 5)):
            i = self._below(len(paragraphs))
            paragraphs[i] += " " + self._pii_sentence()
        return Draft("\n\n".join(paragraphs), "en")

    def _pii_sentence(self) -> str:
        pick = self._pick
        first, last = pick(_FIRST_NAMES), pick(_LAST_NAMES)
        line = self._below(100)
        return pick(_PII_SENTENCES).format(
            name=f"{first.title()} {last.title()}",
            email=f"{first}.{last}{self._below(100)}@{pick(_EMAIL_DOMAINS)}",
            phone=pick((f"(202) 555-01{line:02d}", f"202-555-01{line:02d}", f"+1 415 555 01{line:02d}")),
            intl=pick((f"+44 20 7946 0{line:03d}", f"+33 1 99 00 {line:02d} {self._below(100):02d}",
                             f"+61 491 570 {line:03d}", f"+49 30 {self._between(10**6, 10**7 - 1)}")),
            ipv4=pick((f"192.0.2.{self._between(1, 254)}", f"198.51.100.{self._between(1, 254)}",
                             f"203.0.113.{self._between(1, 254)}", f"10.{self._below(256)}.{self._below(256)}.{self._between(1, 254)}")),
            ipv6=f"2001:db8:{self._below(1 << 16):x}:{self._below(1 << 16):x}::{self._between(1, 0xFFFF):x}",
        )

    # -- duplicates

    def _original(self) -> tuple[str, str]:
        return self._pick(self.reservoir)

    def exact_duplicate(self) -> Draft:
        source_id, text = self._original()
        return Draft(text, "en", source_id, 1.0)

    def near_duplicate(self) -> Draft:
        """An earlier clean document with word substitutions, insertions and deletions that bring
        the 5-gram shingle Jaccard with the original to a target drawn from NEAR_DUP_RANGE.

        Edits sit 5 words apart and at least 4 from either end, so each replaces a known number
        of shingles: 5 by 5 new ones for a substitution, 4 by 5 for an insertion, 5 by 4 for a
        deletion. Edits are drawn until that count model puts the Jaccard at or below the target
        (never below the range), then made, and the Jaccard is measured on the result: that
        measured value is what is recorded. A repeated phrase in the original can make the model
        miss; an edit that lands outside the range is redone from another original."""
        low, high = NEAR_DUP_RANGE
        while True:
            source_id, text = self._original()
            target = low + self._random() * (high - low)
            words = _words(text)
            lower = text.lower().split()  # aligned with words (see _words)
            original = _shingle_set(lower)
            offset = self._below(SHINGLE)
            positions = range(SHINGLE - 1 + offset, len(words) - SHINGLE + 1, SHINGLE)
            rolls = _edit_rolls(len(original), target, low, len(positions), self._random)
            for i, roll in zip(sorted(self.rng.sample(positions, len(rolls)), reverse=True), rolls):
                # back to front, so that an insertion or deletion never shifts a later position
                _edit(words, lower, i, roll, self._pick(self.pool.vocabulary))
            edited = _shingle_set(lower)
            inter = len(original & edited)
            similarity = inter / (len(original) + len(edited) - inter)
            if low <= similarity <= high:
                return Draft(" ".join(words).replace("\n\n ", "\n\n"), "en", source_id, similarity)

    # -- other languages

    def non_english(self) -> Draft:
        """Distinct sentences of one language in paragraphs of 2 to 5: a language-ID test, not
        a repetition one (the sentence pools are small, so documents share sentences)."""
        lang = self._pick(self.foreign_langs)
        sentences, joiner = self.foreign[lang], _SENTENCE_JOINER.get(lang, " ")
        chosen = self.rng.sample(sentences, self._between(3, min(14, len(sentences))))
        paragraphs = []
        while chosen:
            size = self._between(2, 5)
            paragraphs.append(joiner.join(chosen[:size]))
            del chosen[:size]
        return Draft("\n\n".join(paragraphs), lang)

    # -- low quality

    def boilerplate(self) -> Draft:
        """Menus, footers and cookie notices: blocks of short lines."""
        rng = self.rng
        site = self.site_name()
        blocks = []
        for _ in range(self._between(2, 6)):
            lines = rng.choices(_BOILERPLATE_LINES, k=self._between(3, 15))
            if rng.random() < 0.5:
                lines.append(self._pick(_BOILERPLATE_SENTENCES).format(site=site, n=self._between(1, 9), m=self._between(10, 40)))
            blocks.append("\n".join(lines))
        return Draft("\n\n".join(blocks), "en")

    def keyword_spam(self) -> Draft:
        """SEO keyword stuffing: one topic's phrases repeated as a run-on, a tag list or a title bar."""
        rng = self.rng
        phrases = rng.choices(self._pick(_SPAM_TOPICS), k=self._between(40, 300))
        style = self._below(3)
        if style == 0:
            return Draft(" ".join(phrases), "en")
        if style == 1:
            return Draft("Tags: " + ", ".join(phrases), "en")
        rows = [" | ".join(phrases[i : i + 6]).title() for i in range(0, len(phrases), 6)]
        return Draft("\n".join(rows), "en")

    def lorem_ipsum(self) -> Draft:
        rng = self.rng
        paragraphs = []
        for p in range(self._between(1, 6)):
            sentences = [self._lorem_sentence() for _ in range(self._between(3, 8))]
            if p == 0 and rng.random() < 0.8:
                sentences[0] = _LOREM_OPENING
            paragraphs.append(" ".join(sentences))
        return Draft("\n\n".join(paragraphs), "la")

    def _lorem_sentence(self) -> str:
        rng = self.rng
        words = rng.choices(_LOREM_WORDS, k=self._between(6, 16))
        if len(words) > 8 and rng.random() < 0.4:
            words[self._between(3, len(words) - 3)] += ","
        return " ".join(words).capitalize() + "."

    def code_debris(self) -> Draft:
        """Script, style and markup that leaked into the text of a badly extracted page."""
        fragments = self.rng.choices(self.code_lines, k=self._between(10, 120))
        return Draft(self._pick(("\n", "", " ")).join(fragments), "und")

    def _code_line(self) -> str:
        """One code fragment with its placeholders filled (made up front: a pool of them is
        cheaper to draw from than filling templates per document)."""
        return (
            self._pick(_CODE_FRAGMENTS)
            .replace("%V%", self._pick(_CODE_VARS))
            .replace("%ID%", self._pick(_CODE_IDS))
            .replace("%N%", str(self._between(1, 1200)))
        )

    def repeated_lines(self) -> Draft:
        """A handful of lines (stock phrases or prose sentences) cycled many times."""
        rng = self.rng
        lines = []
        for _ in range(self._between(1, 4)):
            if rng.random() < 0.5:
                lines.append(self._pick(_STOCK_REPEATS))
            else:
                lines.append(" ".join(self._pick(self.pool.paragraphs).split()[:20]))
        repeats = self._between(20, 150)
        return Draft("\n".join(lines[i % len(lines)] for i in range(repeats)), "en")

    def empty(self) -> Draft:
        return Draft(self._pick(("", " ", "\n\n", " \t\n ", "\u00a0")), "und")

    # -- record furniture

    def site_name(self) -> str:
        return self._pick(_SITE_WORDS).title() + self._pick(_SITE_NOUNS).title()

    def url(self, lang: str, index: int) -> str:
        pick = self._pick
        host = f"www.{pick(_SITE_WORDS)}{pick(_SITE_NOUNS)}.{pick(_TLDS.get(lang, _TLDS['en']))}"
        return f"https://{host}/{pick(_SECTIONS)}/{index:x}-{pick(_SITE_NOUNS)}.html"

    def page(self, draft: Draft, url: str) -> bytes:
        """The HTML page a crawler would have fetched for this document."""
        nav = self.rng.sample(_NAV_ITEMS, self._between(4, 8))
        return html_page(draft.text, draft.lang, url, self.site_name(), nav, self.rng.getrandbits(32))

    def timestamp(self) -> int:
        """A crawl time in 2024 (UTC seconds)."""
        return _EPOCH_2024 + int(self._random() * 366 * 86400)

    def corrupt_line(self, index: int) -> tuple[bytes, str]:
        """A raw JSONL line that is not a readable document, and its kind; the kinds take turns
        so that any three corrupt lines cover all of them."""
        kind = CORRUPTIONS[self.corrupt_seen % len(CORRUPTIONS)]
        self.corrupt_seen += 1
        record = {"id": _doc_id(index), "text": self.prose(80, 200), "url": self.url("en", index), "date": _iso(self.timestamp())}
        if kind == "truncated_json":
            line = orjson.dumps(record).decode()
            return line[: len(line) // 2].encode() + b"\n", kind  # a prefix of an object never parses
        if kind == "invalid_utf8":
            head, _, tail = orjson.dumps(record).partition(b". ")
            return head + b". \xff\xfe" + tail + b"\n", kind  # bytes that start no UTF-8 sequence
        del record["text"]
        return orjson.dumps(record) + b"\n", kind


def _words(text: str) -> list[str]:
    """The words of a ``prose`` text (what duplicates copy: single-space separated words,
    paragraphs joined by a blank line), the last word of a paragraph carrying the paragraph
    break, so that ``" ".join(words).replace("\\n\\n ", "\\n\\n")`` gives the text back and
    ``words[i]`` is ``text.lower().split()[i]`` but for case."""
    return text.replace("\n\n", "\n\n ").split(" ")


def _edit_rolls(shingles: int, target: float, floor: float, room: int, random: Callable[[], float]) -> list[float]:
    """Draw edit kinds (a roll each, see ``_edit``) until the count model puts the Jaccard of
    ``shingles`` original shingles at or below ``target``, stopping early rather than go below
    ``floor`` or past ``room`` edits."""
    inter = union = shingles
    rolls: list[float] = []
    while inter > target * union and len(rolls) < room:
        roll = random()
        lost, new = _EDIT_EFFECT[0 if roll < 0.6 else 1 if roll < 0.8 else 2]
        if inter - lost < floor * (union + new):
            break
        inter, union = inter - lost, union + new
        rolls.append(roll)
    return rolls


def _edit(words: list[str], lower: list[str], i: int, roll: float, word: str) -> None:
    """One edit at word ``i`` (``word`` is lower case), mirrored in ``lower``: substitute (60 %),
    insert before (20 %) or delete (20 %). A paragraph break stays where it was."""
    if roll < 0.6:
        words[i] = word + "\n\n" if words[i].endswith("\n") else word
        lower[i] = word
    elif roll < 0.8:
        words.insert(i, word)
        lower.insert(i, word)
    else:
        if words[i].endswith("\n"):
            words[i - 1] += "\n\n"
        del words[i], lower[i]


def _doc_id(index: int) -> str:
    return f"doc-{index:09d}"


def _iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


# ---------------------------------------------------------------------------------------------
# The plan: which label each record gets


def label_counts(docs: int) -> dict[str, int]:
    """Exact number of records per label for a sample of ``docs`` records: each proportion
    rounded down, the minimums applied, clean takes the rest."""
    counts = {label: int(share * docs) for label, share in PROPORTIONS.items()}
    for label, (from_docs, least) in MINIMUMS.items():
        if docs >= from_docs:
            counts[label] = max(counts[label], least)
    return {"clean": docs - sum(counts.values()), **counts}


def _plan(counts: dict[str, int], docs: int, rng: random.Random) -> Iterator[list[str]]:
    """Labels in record order, a shuffled block at a time. Every block holds its pro-rata share
    of each label (cumulative rounding), so the mix is even across the sample and shards and
    only one block is ever in memory. The first record is clean so duplicates always have an
    original to copy."""
    planned = dict.fromkeys(counts, 0)
    for start in range(0, docs, _BLOCK):
        end = min(start + _BLOCK, docs)
        block: list[str] = []
        for label, total in counts.items():
            if label != "clean":
                due = total * end // docs
                block += [label] * (due - planned[label])
                planned[label] = due
        block += ["clean"] * (end - start - len(block))
        rng.shuffle(block)
        if start == 0 and "clean" in block:
            first = block.index("clean")
            block[0], block[first] = block[first], block[0]
        yield block


# ---------------------------------------------------------------------------------------------
# Writers


class _Shards:
    """Numbered files ``crawl-NNNNN<suffix>`` of at most ``limit`` entries each. Each is written
    under a ``.tmp`` name and renamed when complete, so a crash never leaves a truncated shard
    that looks finished."""

    suffix = ""

    def __init__(self, directory: Path, limit: int):
        self.directory = directory
        self.limit = limit
        self.names: list[str] = []
        self.count = 0
        self._file = None

    def _entry(self) -> str:
        """Account for one more entry, opening the next shard when the current one is full."""
        if self._file is None or self.count >= self.limit:
            self._finish()
            self.names.append(f"crawl-{len(self.names):05d}{self.suffix}")
            self._file = open(self.directory / (self.names[-1] + ".tmp"), "wb")
            self.count = 0
            self._opened()
        self.count += 1
        return self.names[-1]

    def _opened(self) -> None:
        """Hook: a new shard file was just opened."""

    def _flush(self) -> None:
        """Hook: write what is buffered for the current shard."""

    def _finish(self) -> None:
        if self._file is not None:
            self._flush()
            self._file.close()
            self._file = None
            name = self.names[-1]
            os.replace(self.directory / (name + ".tmp"), self.directory / name)

    def close(self) -> None:
        self._finish()

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            (self.directory / (self.names[-1] + ".tmp")).unlink(missing_ok=True)


class _JsonlShards(_Shards):
    """gzip JSONL shards: one gzip stream per file, lines compressed in batches."""

    suffix = ".jsonl.gz"

    def _opened(self) -> None:
        self._gzip = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: gzip framing, mtime 0
        self._lines: list[bytes] = []

    def write(self, line: bytes) -> tuple[str, int]:
        """Append one raw line (with its newline); returns (file name, 1-based line number)."""
        name = self._entry()
        self._lines.append(line)
        if len(self._lines) >= 1024:
            self._file.write(self._gzip.compress(b"".join(self._lines)))
            self._lines = []
        return name, self.count

    def _flush(self) -> None:
        self._file.write(self._gzip.compress(b"".join(self._lines)) + self._gzip.flush())


class _WarcShards(_Shards):
    """Common Crawl style WARC shards; see the module docstring for the layout."""

    suffix = ".warc.gz"

    def __init__(self, directory: Path, limit: int, seed: int):
        super().__init__(directory, limit)
        self.seed = seed

    def _record_id(self, *key: object) -> str:
        """A stable ``<urn:uuid:...>`` from the seed and the record's role, not uuid4()."""
        digest = xxhash.xxh3_128_digest(":".join(map(str, ("crawlsift-sample", self.seed, *key))).encode())
        return f"<urn:uuid:{uuid.UUID(bytes=digest, version=4)}>"

    def _record(self, headers: list[tuple[str, str]], block: bytes) -> None:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers)
        record = f"WARC/1.0\r\n{head}Content-Length: {len(block)}\r\n\r\n".encode() + block + b"\r\n\r\n"
        self._file.write(_gzip_member(record))

    def _opened(self) -> None:
        name = self.names[-1]
        self.warcinfo_id = self._record_id("warcinfo", name)
        fields = (
            "software: crawlsift-sample (synthetic crawl, ingest/sample.py)\r\n"
            "format: WARC File Format 1.0\r\n"
            "conformsTo: https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.0/\r\n"
            f"isPartOf: crawlsift-sample-seed-{self.seed}\r\n"
            "robots: classic\r\n"
        ).encode()
        self._record(
            [("WARC-Type", "warcinfo"), ("WARC-Date", _iso(_EPOCH_2024)), ("WARC-Filename", name),
             ("WARC-Record-ID", self.warcinfo_id), ("Content-Type", "application/warc-fields"),
             ("WARC-Block-Digest", _sha1(fields))],
            fields,
        )

    def write_page(self, index: int, url: str, ts: int, page: bytes) -> tuple[str, str]:
        """A request/response pair for one page, plus this shard's extra non-document records;
        returns (file name, response WARC-Record-ID)."""
        name = self._entry()
        response_id = self._exchange(index, url, ts, page, "text/html; charset=utf-8")
        if self.count == 1:
            self._metadata(index, url, ts, response_id)
        if self.count % _PNG_EVERY == 1:
            host = url.split("/")[2]
            self._exchange(f"{index}:png", f"https://{host}/static/img/logo-{index:x}.png", ts, _tiny_png(), "image/png")
        return name, response_id

    def _exchange(self, key: object, url: str, ts: int, payload: bytes, content_type: str) -> str:
        request_id, response_id = self._record_id("request", key), self._record_id("response", key)
        date = _iso(ts)
        host, _, path = url.split("://", 1)[1].partition("/")
        request = (
            f"GET /{path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: crawlsift-sample/1.0\r\n"
            "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
            "Accept-Encoding: identity\r\n\r\n"
        ).encode()
        self._record(
            [("WARC-Type", "request"), ("WARC-Date", date), ("WARC-Record-ID", request_id),
             ("WARC-Target-URI", url), ("WARC-Concurrent-To", response_id),
             ("WARC-Warcinfo-ID", self.warcinfo_id), ("Content-Type", "application/http; msgtype=request"),
             ("WARC-Block-Digest", _sha1(request))],
            request,
        )
        http_head = (
            f"HTTP/1.1 200 OK\r\nDate: {formatdate(ts, usegmt=True)}\r\nServer: nginx\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        ).encode()
        block = http_head + payload
        self._record(
            [("WARC-Type", "response"), ("WARC-Date", date), ("WARC-Record-ID", response_id),
             ("WARC-Target-URI", url), ("WARC-Warcinfo-ID", self.warcinfo_id),
             ("Content-Type", "application/http; msgtype=response"),
             ("WARC-Block-Digest", _sha1(block)), ("WARC-Payload-Digest", _sha1(payload))],
            block,
        )
        return response_id

    def _metadata(self, index: int, url: str, ts: int, response_id: str) -> None:
        fields = f"fetchTimeMs: {100 + index % 900}\r\ncharset-detected: UTF-8\r\n".encode()
        self._record(
            [("WARC-Type", "metadata"), ("WARC-Date", _iso(ts)), ("WARC-Record-ID", self._record_id("metadata", index)),
             ("WARC-Target-URI", url), ("WARC-Concurrent-To", response_id),
             ("WARC-Warcinfo-ID", self.warcinfo_id), ("Content-Type", "application/warc-fields"),
             ("WARC-Block-Digest", _sha1(fields))],
            fields,
        )


def _gzip_member(data: bytes) -> bytes:
    """``data`` as one gzip member (mtime 0, so the bytes depend only on ``data``)."""
    gzip = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, 31)
    return gzip.compress(data) + gzip.flush()


def _sha1(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


@functools.lru_cache(maxsize=1)
def _tiny_png() -> bytes:
    """A valid 1x1 grey PNG: binary payload a reader must recognise as not a document."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b"")


def html_page(text: str, lang: str, url: str, site: str, nav: list[str], tag: int) -> bytes:
    """A realistic page around the document: head with title and analytics script, header, nav
    menu, the text as ``<p>`` paragraphs of ``<article>`` (single newlines as ``<br>``), footer
    with copyright and cookie notice, scripts. ``tag`` varies the asset hashes."""
    title = html.escape(" ".join(text[:200].split()[:8]) or "Untitled")
    paragraphs = "\n".join(
        "<p>" + html.escape(p, quote=False).replace("\n", "<br>\n") + "</p>" for p in text.split("\n\n")
    )
    direction = ' dir="rtl"' if lang in _RTL else ""
    menu = "".join(f'<li><a href="/{item.lower()}/">{item}</a></li>' for item in nav)
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}"{direction}>\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title} | {site}</title>\n"
        f'<link rel="canonical" href="{url}">\n<link rel="stylesheet" href="/assets/site.{tag:08x}.css">\n'
        "<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}"
        f'gtag("js",new Date());gtag("config","G-{tag % 99991:05d}");</script>\n'
        "</head>\n<body>\n"
        f'<header class="site-header"><a class="logo" href="/">{site}</a>'
        '<form class="search" action="/search"><input type="search" name="q" placeholder="Search"></form></header>\n'
        f'<nav class="main-nav"><ul>{menu}</ul></nav>\n'
        f'<main id="content">\n<article>\n<h1>{title}</h1>\n{paragraphs}\n</article>\n</main>\n'
        f'<footer class="site-footer"><p>&copy; 2024 {site}. All rights reserved.</p>'
        '<p id="cookie-banner" class="cookie-notice" hidden>We use cookies to improve your experience. '
        'By continuing to browse this site you accept our <a href="/cookies/">cookie policy</a>.</p>'
        '<ul class="legal"><li><a href="/privacy/">Privacy Policy</a></li><li><a href="/terms/">Terms of use</a></li></ul>'
        "</footer>\n"
        f'<script src="/assets/app.{tag:08x}.js" defer></script>\n'
        '<script>document.addEventListener("DOMContentLoaded",function(){var b=document.getElementById("cookie-banner");'
        'if(b&&!localStorage.getItem("consent")){b.hidden=false;}});</script>\n'
        "</body>\n</html>\n"
    ).encode()


class _Labels:
    """``labels.jsonl``, streamed, renamed into place when complete."""

    def __init__(self, directory: Path):
        self.path = directory / "labels.jsonl"
        self._file = open(self.path.with_suffix(".jsonl.tmp"), "wb", buffering=1 << 20)

    def write(self, entry: dict) -> None:
        self._file.write(orjson.dumps(entry) + b"\n")

    def close(self) -> None:
        self._file.close()
        os.replace(self.path.with_suffix(".jsonl.tmp"), self.path)

    def abort(self) -> None:
        self._file.close()
        self.path.with_suffix(".jsonl.tmp").unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Entry points


def write_sample(
    output_dir: str | os.PathLike,
    docs: int = 5000,
    seed: int = 0,
    *,
    warc_fraction: float = 0.2,
    shard_docs: int = 100_000,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Write a synthetic crawl of ``docs`` records (documents plus corrupt lines) to
    ``output_dir``; the same (docs, seed, warc_fraction, shard_docs) gives byte-identical files
    on the same Python. About ``warc_fraction`` of the documents go to WARC, the rest (and all
    corrupt lines) to JSONL. Shards of an earlier, larger sample in the same folder are removed.
    ``progress`` is called with the number of records written so far, every 10 000 records.

    Returns ``{"files": [...], "labels_file": "labels.jsonl", "documents": N, "corrupt_records": n,
    "labels": {label: count}, "seed": seed}``.
    """
    if docs < 0 or shard_docs < 1 or not 0.0 <= warc_fraction <= 1.0:
        raise ValueError(f"need docs >= 0, shard_docs >= 1, 0 <= warc_fraction <= 1 (got {docs}, {shard_docs}, {warc_fraction})")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = label_counts(docs)
    rng = random.Random(seed)
    composer = _Composer(rng, prose_pool(), foreign_sentences())
    jsonl, warc, labels = _JsonlShards(out, shard_docs), _WarcShards(out, shard_docs, seed), _Labels(out)
    writers = (jsonl, warc, labels)
    try:
        index = 0
        for block in _plan(counts, docs, rng):
            for label in block:
                labels.write(_write_record(composer, jsonl, warc, index, label, warc_fraction))
                index += 1
            if progress is not None:
                progress(index)
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    for writer in writers:
        writer.close()
    files = sorted(jsonl.names + warc.names)
    _remove_stale_shards(out, keep=set(files))
    return {
        "files": files,
        "labels_file": labels.path.name,
        "documents": docs - counts["corrupt"],
        "corrupt_records": counts["corrupt"],
        "labels": counts,
        "seed": seed,
    }


def _write_record(composer: _Composer, jsonl: _JsonlShards, warc: _WarcShards, index: int, label: str, warc_fraction: float) -> dict:
    """Generate record ``index`` of the given label, write it, and return its labels.jsonl entry."""
    rng = composer.rng
    if label == "corrupt":
        line, kind = composer.corrupt_line(index)
        name, position = jsonl.write(line)
        return {"file": name, "source_id": None, "label": label, "dup_of": None, "jaccard": None, "lang": None,
                "position": position, "corruption": kind}
    draft = composer.make[label]()
    url, ts = composer.url(draft.lang, index), composer.timestamp()
    if rng.random() < warc_fraction:
        name, source_id = warc.write_page(index, url, ts, composer.page(draft, url))
    else:
        source_id = _doc_id(index)
        name, _ = jsonl.write(orjson.dumps({"id": source_id, "text": draft.text, "url": url, "date": _iso(ts)}) + b"\n")
    if label == "clean":
        composer.remember(source_id, draft.text)
    return {"file": name, "source_id": source_id, "label": label, "dup_of": draft.dup_of,
            "jaccard": draft.jaccard, "lang": draft.lang}


def _remove_stale_shards(directory: Path, keep: set[str]) -> None:
    """Delete ``crawl-NNNNN.{jsonl,warc}.gz`` files a previous, larger sample left behind, so the
    folder holds exactly this sample. Only names this module writes are touched."""
    for path in directory.iterdir():
        if _SHARD_NAME.fullmatch(path.name) and path.name not in keep:
            path.unlink()


def main(argv: list[str] | None = None) -> int:
    """``python -m ingest.sample --output DIR [--docs N] [--seed S]``: write a sample, print one line."""
    parser = argparse.ArgumentParser(prog="python -m ingest.sample", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="folder to write the shards and labels.jsonl into")
    parser.add_argument("--docs", type=int, default=5000, help="records to generate (default 5000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--warc-fraction", type=float, default=0.2, help="share of documents written as WARC (default 0.2)")
    parser.add_argument("--shard-docs", type=int, default=100_000, help="records per shard at most (default 100000)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        manifest = write_sample(args.output, args.docs, args.seed, warc_fraction=args.warc_fraction, shard_docs=args.shard_docs)
    except ValueError as exc:
        parser.error(str(exc))
    elapsed = time.perf_counter() - started
    print(
        f"{args.output}: {manifest['documents']} documents + {manifest['corrupt_records']} corrupt records "
        f"in {len(manifest['files'])} shards, seed {args.seed}, {elapsed:.1f} s ({args.docs / max(elapsed, 1e-9):,.0f} records/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
