"""Compile the Numba kernels once and leave them in Numba's on-disk cache.

``gopher_repetition`` and ``gopher_quality`` count words and n-grams with Numba kernels
(``filters/gopher_words.py``, ``cache=True``); compiling them takes 20-60 s on first use, which on a
fresh machine landed, silently, inside the first run's worker. ``make install`` runs this module
once, and ``crawlsift run`` runs it (saying so) when the cache is missing or older than the source,
before Ray starts, so workers load the compiled kernels from the cache.

    python -m filters.warmup
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

KERNEL_SOURCES = (Path(__file__).with_name("gopher_words.py"),)
STAGES_WITH_KERNELS = ("gopher_repetition", "gopher_quality")


def kernels_cached() -> bool:
    """Whether Numba's cache holds kernels compiled from the current source of every kernel module."""
    for source in KERNEL_SOURCES:
        index = list((source.parent / "__pycache__").glob(f"{source.stem}.*.nbi"))
        if not index or min(p.stat().st_mtime for p in index) < source.stat().st_mtime:
            return False
    return True


def warm_up() -> float:
    """Run the kernel-backed stages on a small batch (compiling and caching every kernel they use);
    returns the seconds it took."""
    from filters.gopher import GopherQualityFilter, GopherRepetitionFilter
    from ingest.schema import batch_of

    start = time.perf_counter()
    text = "The quick brown fox jumps over the lazy dog. It was not amused!\n" * 4 + "# heading\n- item one\n..."
    batch = batch_of([text, "短い文章です。" * 20, "", "word " * 60])
    GopherRepetitionFilter()(batch)
    GopherQualityFilter()(batch)
    return time.perf_counter() - start


def main() -> int:
    seconds = warm_up()
    print(f"Numba kernels compiled and cached in {seconds:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
