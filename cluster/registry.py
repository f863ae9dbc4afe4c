"""Stages by config name. Later stages register here; a name not listed is a config error."""

from __future__ import annotations

from dedup.exact import ExactDedup
from dedup.lines import LineDedup
from dedup.near import MinHashDedup
from filters.base import Stage
from filters.c4 import C4Filter
from filters.decontam import Decontaminate
from filters.fineweb import FineWebFilter
from filters.gopher import GopherQualityFilter, GopherRepetitionFilter
from filters.langid import LanguageID
from filters.length import LengthFilter
from filters.lists import URLFilter, WordFilter
from filters.model_classifier import ModelClassifier
from filters.normalize import Normalize
from filters.pii import PIIRedaction
from filters.quality import QualityClassifier
from filters.tokens import TokenCount

STAGES: dict[str, type[Stage]] = {
    cls.name: cls
    for cls in (
        Normalize,
        LengthFilter,
        URLFilter,
        WordFilter,
        Decontaminate,
        PIIRedaction,
        GopherRepetitionFilter,
        GopherQualityFilter,
        C4Filter,
        FineWebFilter,
        LanguageID,
        QualityClassifier,
        ModelClassifier,
        ExactDedup,
        MinHashDedup,
        LineDedup,
        TokenCount,
    )
}


def stage_class(name: str) -> type[Stage]:
    try:
        return STAGES[name]
    except KeyError:
        raise KeyError(f"unknown stage {name!r} (known: {', '.join(sorted(STAGES))})") from None
