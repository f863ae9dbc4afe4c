"""The progress board's actor class, in a module of its own: the actor's worker process imports
only this (not the driver's Polars / Arrow / filter imports), so it starts in a fraction of the time
on a machine where every core is busy."""

from __future__ import annotations

from collections import defaultdict


class ProgressBoard:
    """What the workers post as batches pass (the reader: how far into each file; the sink: the
    batch's counts and stage seconds), fire and forget, for the progress line only; the account
    itself travels in the stats rows. Runs as a zero-CPU Ray actor."""

    def __init__(self):
        self.read_bytes: dict[int, int] = {}
        self.documents = self.kept = self.unreadable = 0
        self.stage_seconds: dict[str, float] = defaultdict(float)

    def read(self, index: int, bytes_read: int | None) -> None:
        if bytes_read is not None:
            self.read_bytes[index] = max(self.read_bytes.get(index, 0), bytes_read)

    def wrote(self, documents: int, kept: int, unreadable: int, stage_seconds: dict) -> None:
        self.documents += documents
        self.kept += kept
        self.unreadable += unreadable
        for name, seconds in stage_seconds.items():
            self.stage_seconds[name] += seconds

    def snapshot(self) -> dict:
        return {"bytes_read": sum(self.read_bytes.values()), "documents": self.documents, "kept": self.kept,
                "unreadable": self.unreadable, "stage_seconds": dict(self.stage_seconds)}
