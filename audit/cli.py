"""``crawlsift audit``: audit a labeled fine-tuning set for label noise, leakage between splits and
imbalance; write audit.parquet / audit.json / audit.html and, on request, a cleaned set with its
account. Everything is checked before any work: bad input is one line and exit 2."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from audit.clean import FIXES, SCOPES
from audit.noise import MODELS, RULES, SCORES
from train.labeled import add_labeled_flags


class AuditInputError(ValueError):
    """Bad input or options: printed as one ``crawlsift: error:`` line, exit 2."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="crawlsift audit", description=__doc__.split("\n")[0])
    add_labeled_flags(p, multi_label_default="drop", split_help="leaks are looked for across them")
    p.add_argument("--write-clean", metavar="DIR", help="write the cleaned set and its account here")
    p.add_argument("--fix", choices=FIXES, default="drop", help="what the cleaned set does with flagged rows (default drop)")
    p.add_argument("--fix-scope", choices=SCOPES, default="large",
                   help="large (default): fix only flags whose given label is a class with at least the mean share "
                        "of rows (1/classes); all: every flag")
    p.add_argument("--fix-min-prob", type=float, default=0.0, metavar="P",
                   help="fix only flagged rows whose suggested label has probability >= P (default 0: every flag)")
    p.add_argument("--folds", type=int, default=5, help="K of the K-fold cross-validation (default 5)")
    p.add_argument("--model", choices=MODELS, default="linear", help="the out-of-fold model (default linear; linear+e5 ranks label issues best and needs crawlsift[e5]; finetune fine-tunes the encoder per fold, for a GPU)")
    p.add_argument("--encoder", metavar="DIR",
                   help="a local Hugging Face encoder for --model encoder / finetune (default: the bundled MiniLM; "
                        "e.g. the model/ that crawlsift train classifier wrote)")
    p.add_argument("--finetune-epochs", type=int, default=3, metavar="N", help="--model finetune: epochs per fold (default 3)")
    p.add_argument("--rule", choices=RULES, default="prune_by_noise_rate", help="cleanlab's filter_by (default prune_by_noise_rate)")
    p.add_argument("--score", choices=SCORES, default="self_confidence", help="cleanlab's label-quality score")
    p.add_argument("--label-map", metavar="JSON", help='rename labels, e.g. \'{"Narrative": "NA"}\'')
    p.add_argument("--no-langid", action="store_true", help="skip the language-per-class check")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        from audit.run import AuditConfig, run_audit

        config = AuditConfig.from_args(args)
        start = time.monotonic()
        summary = run_audit(config)
    except ValueError as exc:  # AuditInputError, TrainInputError (a ValueError) and config checks
        print(f"crawlsift: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(format_summary(summary, Path(args.output), time.monotonic() - start))
    return 0


def format_summary(s: dict, out: Path, seconds: float) -> str:
    n = s["noise"]
    lines = [
        f"audit: {s['rows']:,} rows, {s['coverage']['classes']} classes ({seconds:.1f}s)",
        f"  label issues: {n['issues']:,} flagged ({n['issue_share']:.1%}), out-of-fold accuracy {n['oof_accuracy']:.3f}",
        f"  duplicates: {s['leakage']['duplicate_rows']:,} rows in {s['leakage']['clusters']:,} clusters; "
        f"{s['leakage']['leaked_rows']:,} leaked rows, {s['leakage']['label_conflict_rows']:,} with conflicting labels",
        f"  imbalance ratio {s['coverage']['imbalance_ratio']:.1f}; too small: {', '.join(s['coverage']['too_small_classes']) or 'none'}",
        f"  -> {out / 'audit.parquet'}, {out / 'audit.json'}, {out / 'audit.html'}",
    ]
    if s.get("clean"):
        a = s["clean"]
        lines.append(f"  cleaned: kept {a['kept']:,}, relabelled {a['relabelled']:,}, dropped {a['dropped']:,} -> {a['path']}")
    return "\n".join(lines)


def _json_arg(text: str | None, flag: str) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AuditInputError(f"{flag}: not JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise AuditInputError(f"{flag}: expected a JSON object of old -> new label")
    return {str(k): str(v) for k, v in value.items()}
