"""``crawlsift audit``: placeholder entry point, replaced by the audit job."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    print("crawlsift: error: audit is not built yet", file=sys.stderr)
    return 2
