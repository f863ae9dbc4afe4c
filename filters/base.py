"""The stage contract.

A stage is a name, its parameters (dataclass fields, each with the published default) and a
function ``pyarrow.Table -> pyarrow.Table`` that keeps the row count and order and is
deterministic. A filter never drops a row: it sets ``rejected_by`` to ``<stage>.<rule>`` for the
first of its rules that rejects a document, and only looks at rows nobody rejected yet.

``RuleFilter`` is the shape most heuristics take: subclasses return Polars expressions (one per
rule, in order) over the still-kept documents; the base class evaluates them over the whole batch
at once and writes the reason codes back. No Python loop per document.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from filters.text import spaceless_by_script


class Stage:
    """Base of every stage. Subclasses are frozen dataclasses whose fields are the parameters."""

    name: ClassVar[str]
    # What one worker running this stage needs. A stage that holds a model sets ``stateful`` so
    # the plan runs it in an actor pool that loads the model once per worker.
    stateful: ClassVar[bool] = False
    num_cpus: ClassVar[float] = 1
    num_gpus: ClassVar[float] = 0

    def setup(self) -> None:
        """Load models or other heavy state; called once per worker before the first batch."""

    def __call__(self, table: pa.Table) -> pa.Table:
        raise NotImplementedError

    @classmethod
    def parameters(cls) -> dict[str, dataclasses.Field]:
        return {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]

    def params(self) -> dict:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


def active_mask(table: pa.Table) -> np.ndarray:
    """Rows still to be judged: not rejected, not unreadable, not skipped."""
    return pc.is_null(table.column("rejected_by")).to_numpy(zero_copy_only=False)


class RuleFilter(Stage):
    """A stage made of named reject rules evaluated in order over the kept documents."""

    # Annotation columns this stage adds, name -> Arrow type; computed by ``annotations``.
    annotation_types: ClassVar[dict[str, pa.DataType]] = {}
    # Columns besides ``text`` that ``prepare`` reads when the batch has them (e.g. ``lang`` from the
    # langid stage); one the batch lacks is not passed, so ``prepare`` checks ``frame.columns``.
    optional_columns: ClassVar[tuple[str, ...]] = ()

    def prepare(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Add the helper columns the rules read (counts, ratios). Default: none."""
        return frame

    def rules(self) -> list[tuple[str, pl.Expr]]:
        """(rule name, boolean expression true where the document is rejected), in order."""
        raise NotImplementedError

    def annotations(self) -> dict[str, pl.Expr]:
        return {}

    def __call__(self, table: pa.Table) -> pa.Table:
        mask = active_mask(table)
        rows = np.flatnonzero(mask)
        reasons = pa.nulls(table.num_rows, pa.string())
        annotations = {name: pa.nulls(table.num_rows, t) for name, t in self.annotation_types.items()}
        if len(rows):
            columns = ["text"] + [c for c in self.optional_columns if c in table.column_names]
            judged = table.select(columns) if len(rows) == table.num_rows else table.select(columns).take(rows)
            frame = self.prepare(pl.from_arrow(judged))
            reason = pl.lit(None, dtype=pl.String)
            for rule, expr in reversed(self.rules()):
                reason = pl.when(expr).then(pl.lit(f"{self.name}.{rule}")).otherwise(reason)
            out = frame.select(reason.alias("reason"), **self.annotations())
            reasons = scatter(reasons, mask, out.get_column("reason").to_arrow())
            for name, t in self.annotation_types.items():
                annotations[name] = scatter(annotations[name], mask, out.get_column(name).to_arrow().cast(t))
        rejected = pc.coalesce(table.column("rejected_by"), reasons)
        table = table.set_column(table.schema.get_field_index("rejected_by"), "rejected_by", rejected)
        for name, values in annotations.items():
            table = set_column(table, name, values)
        return table


def scatter(base: pa.Array, mask: np.ndarray, values: pa.Array) -> pa.Array:
    """``base`` with its masked rows replaced by ``values`` (one per True in ``mask``, in order).
    Types ``replace_with_mask`` lacks a kernel for (fixed-size lists) go through ``take``."""
    values = pa.array(values) if not isinstance(values, (pa.Array, pa.ChunkedArray)) else values
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    values = values.cast(base.type)
    if mask.all():
        return values
    try:
        return pc.replace_with_mask(base, pa.array(mask), values)
    except pa.ArrowNotImplementedError:
        index = np.full(len(mask), -1, dtype=np.int64)
        index[mask] = np.arange(int(mask.sum()))
        scattered = values.take(pa.array(index, mask=index < 0))
        return scattered if base.null_count == len(base) else pc.if_else(pa.array(mask), scattered, base)


def judge_active(table: pa.Table, compute, types: dict[str, pa.DataType], columns: tuple[str, ...] = ("text",)) -> pa.Table:
    """The pattern every stage that is not a ``RuleFilter`` repeats: take the rows nobody rejected
    yet (``active_mask``; only ``columns``), let ``compute(rows) -> {column: values for those
    rows}`` judge them, and scatter each column back with nulls on the other rows. A returned
    ``rejected_by`` is coalesced with the table's (an earlier rejection stands); a returned column
    of the table not named in ``types`` (``text``, rewritten) keeps its values on the other rows;
    every column in ``types`` is written, as nulls when no row is active, so all batches share one
    schema."""
    mask = active_mask(table)
    out = {name: pa.nulls(table.num_rows, t) for name, t in types.items()}
    if mask.any():
        rows = table.select(list(columns))
        computed = compute(rows if mask.all() else rows.filter(pa.array(mask)))
        for name, values in computed.items():
            if name in out:
                base = out[name]
            elif name in table.column_names:
                base = table.column(name).combine_chunks()
            else:
                raise KeyError(f"judge_active: {name!r} is neither in types nor a column of the table")
            out[name] = scatter(base, mask, values)
    if "rejected_by" in out:
        rejected = pc.coalesce(table.column("rejected_by"), out.pop("rejected_by"))
        table = table.set_column(table.schema.get_field_index("rejected_by"), "rejected_by", rejected)
    for name, values in out.items():
        table = set_column(table, name, values)
    return table


def set_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    index = table.schema.get_field_index(name)
    if index >= 0:
        return table.set_column(index, name, values)
    return table.append_column(name, values)


class GlobalStage(Stage):
    """A stage whose decision needs the whole corpus (deduplication), in three steps:

    1. ``map`` (streaming, per batch): annotate the still-kept documents with the keys the decision
       needs (a text hash, MinHash band keys), in columns named after the stage;
    2. a global reduce (``reduce_plan`` in dedup/, run by the driver on Ray): from the keys of
       every document to the set of rejected ids, never gathering documents on one process;
    3. ``apply`` (streaming, per batch): mark the rejected ids.

    The driver runs the stages before it, writes their output once, reduces, then streams that
    output through ``apply`` and the stages after it. Order between documents is (input file
    index, row in file): "the first" duplicate is the first in input order.
    """

    is_global: ClassVar[bool] = True
    # True when a partition's ``decide`` yields edges between documents (order keys ``a``, ``b``
    # and ids ``a_id``, ``b_id``) whose connected components are the clusters: ``resolve`` turns
    # their members into decisions.
    resolves_globally: ClassVar[bool] = False
    # About how many rows ``shuffle_rows`` makes per document: sizes the reduce partitions.
    shuffle_rows_per_document: ClassVar[float] = 1
    # True when ``apply`` must run on every part, with ``decisions=None`` where nothing was
    # decided (it rewrites or drops columns that ``map`` added).
    apply_always: ClassVar[bool] = False

    def map(self, table: pa.Table) -> pa.Table:
        raise NotImplementedError

    def key_columns(self) -> list[str]:
        """The columns ``map`` adds that the reduce reads."""
        raise NotImplementedError

    def shuffle_rows(self, keys: pa.Table) -> pa.Table:
        """Key rows (id, _file, _seq and ``key_columns``) -> the rows to shuffle, with a uint64
        ``_pkey``: rows with equal ``_pkey`` meet in one reduce partition."""
        raise NotImplementedError

    def decide(self, rows: pa.Table) -> pa.Table:
        """One partition's rows -> decisions (id, _file, rejected_by, annotations), or edges
        when ``resolves_globally``."""
        raise NotImplementedError

    def resolve(self, members: pa.Table) -> pa.Table:
        """One partition of cluster members (``order``, ``root``, ``id``, ``root_id``; ``root``
        the smallest order key of the member's cluster) -> decisions."""
        raise NotImplementedError

    # What the CLI's plan line says the reduce is.
    reduce_description: ClassVar[str] = "hash shuffle on disk, Ray tasks"

    def reduce_here(self, fs, parts: list[str], work_dir: str, file_keys: dict[int, str], report) -> int | None:
        """A reduce that needs no shuffle (one number over every document, e.g. a quantile): do
        it here, write ``<work_dir>/decisions/<file key>/`` and return the rejections. None (the
        default): the hash-shuffle reduce."""
        return None

    def verify_threshold(self) -> float | None:
        """For a stage that ``resolves_globally``: the true Jaccard of two documents'
        ``shingle_sets`` that a candidate edge between them must reach before it may merge their
        clusters (the reduce then runs the verification join, dedup/verify.py). None: every
        candidate edge merges."""
        return None

    def shingle_sets(self, texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Texts -> their shingle sets as ``(offsets, hashes)`` (int64 offsets, sorted unique
        uint64 hashes per document): the sets ``verify_threshold`` compares."""
        raise NotImplementedError

    def apply(self, table: pa.Table, decisions: pa.Table) -> pa.Table:
        """Mark the rows whose id is in ``decisions`` (columns id, rejected_by, and the stage's
        annotation columns) as rejected, if nothing rejected them before."""
        if decisions.num_rows == 0 or table.num_rows == 0:
            return table
        position = pc.index_in(table.column("id"), value_set=decisions.column("id"))
        hit = pc.and_(pc.is_valid(position), pc.is_null(table.column("rejected_by")))
        taken = {name: decisions.column(name).take(pc.fill_null(position, 0)) for name in decisions.column_names if name != "id"}
        for name, values in taken.items():
            base = table.column(name) if name in table.column_names else pa.nulls(table.num_rows, values.type)
            merged = pc.if_else(hit, values, base)
            table = set_column(table, name, merged)
        return table


class LanguageAwareFilter(RuleFilter):
    """A ``RuleFilter`` that (1) also hands ``prepare`` the ``lang`` column when the table has one
    and the stage's ``word_languages`` parameter is set (``lang`` is not copied otherwise), and (2)
    may rewrite ``text``: when
    ``rewrite_column`` names a column that ``prepare`` adds, its value replaces ``text`` on the rows
    this stage judged and kept. Rows rejected (now or before) keep their text."""

    rewrite_column: ClassVar[str | None] = None
    # Columns besides ``text`` that ``prepare`` reads when the batch has them (``lang``, from langid).
    optional_columns: ClassVar[tuple[str, ...]] = ("lang",)

    def _input_columns(self, table: pa.Table) -> list[str]:
        optional = self.optional_columns if getattr(self, "word_languages", None) is not None else ()
        return ["text"] + [c for c in optional if c in table.column_names]

    def spaceless(self, text: pl.Expr, frame_columns: list[str], by_script: pl.Expr | None = None) -> pl.Expr:
        """Where the word rules are off: by the ``lang`` column when it is given and the stage lists
        ``word_languages`` (a language not listed is exempt; a null ``lang`` falls back to the
        script), else by script (``spaceless_threshold``; ``by_script`` if already computed)."""
        if by_script is None:
            by_script = spaceless_by_script(text, getattr(self, "spaceless_threshold", None))
        languages = getattr(self, "word_languages", None)
        if languages is None or "lang" not in frame_columns:
            return by_script
        lang = pl.col("lang")
        return pl.when(lang.is_null()).then(by_script).otherwise(~lang.is_in(list(languages)))

    def __call__(self, table: pa.Table) -> pa.Table:
        mask = active_mask(table)
        rows = np.flatnonzero(mask)
        n = table.num_rows
        reasons = pa.nulls(n, pa.string())
        annotations = {name: pa.nulls(n, t) for name, t in self.annotation_types.items()}
        text = None
        if len(rows):
            judged = table.select(self._input_columns(table))
            if len(rows) != n:
                judged = judged.take(rows)
            frame = self.prepare(pl.from_arrow(judged))
            reason = pl.lit(None, dtype=pl.String)
            for rule, expr in reversed(self.rules()):
                reason = pl.when(expr).then(pl.lit(f"{self.name}.{rule}")).otherwise(reason)
            extra = {"_rewrite": pl.col(self.rewrite_column)} if self.rewrite_column else {}
            out = frame.select(reason.alias("reason"), **self.annotations(), **extra)
            reason_values = out.get_column("reason").to_arrow()
            reasons = scatter(reasons, mask, reason_values)
            for name, t in self.annotation_types.items():
                annotations[name] = scatter(annotations[name], mask, out.get_column(name).to_arrow().cast(t))
            if self.rewrite_column:
                kept_here = out.get_column("reason").is_null()
                if kept_here.any():
                    rewrite_mask = np.zeros(n, dtype=bool)
                    rewrite_mask[rows[kept_here.to_numpy()]] = True
                    old = table.column("text")
                    new = out.filter(kept_here).get_column("_rewrite").to_arrow().cast(old.type)
                    text = pc.replace_with_mask(old.combine_chunks(), pa.array(rewrite_mask), new)
        rejected = pc.coalesce(table.column("rejected_by"), reasons)
        table = table.set_column(table.schema.get_field_index("rejected_by"), "rejected_by", rejected)
        if text is not None:
            table = table.set_column(table.schema.get_field_index("text"), "text", text)
        for name, values in annotations.items():
            table = set_column(table, name, values)
        return table


def check_language_params(stage) -> None:
    """Shared validation of ``word_languages`` and ``spaceless_threshold`` (c4, fineweb)."""
    languages = stage.word_languages
    if languages is not None:
        if isinstance(languages, str) or not all(isinstance(x, str) and x for x in languages):
            raise ValueError(f"word_languages must be a list of language codes (e.g. ['en', 'de']), got {languages!r}")
        object.__setattr__(stage, "word_languages", tuple(languages))
    threshold = stage.spaceless_threshold
    if threshold is not None and not (0 < threshold <= 1):
        raise ValueError(f"spaceless_threshold must be in (0, 1], or null to disable, got {threshold}")
