"""``python -m bench.gpu``: every GPU path in one prepared run, figures written under ``--out``.

1. ``train lm`` bf16 (autocast, SDPA, optional ``torch.compile``) at ``small`` (~125M) and ``base``
   (~350M) through Ray Train, one worker per GPU: steady-state tokens/s and MFU per GPU (6N + 12LdT
   FLOPs per token over the dense bf16 peak of the card, see ``train/loop.py``);
2. ``train classifier`` (MiniLM) on the TurkuNLP register data: fine-tuning wall time and macro-F1;
3. ``model_classifier`` inference docs/s on the real crawl (``bench.model_classifier --device cuda``).

On a machine without a GPU, ``--device cpu --arch tiny`` runs the same script end to end (how it is
checked before it is given device time).

    python -m bench.gpu --out $OUT [--device cuda] [--archs small,base] [--steps 60] [--compile]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def _lm(arch: str, out: Path, device: str, steps: int, context: int, batch: int, compile_: bool) -> dict:
    from train.lm import LMConfig, train_lm

    inputs = sorted(str(p) for p in (DATA / "crawl" / "jsonl").iterdir())
    cfg = LMConfig(input=inputs, output=str(out / f"lm_{arch}"), arch=arch, device=device, context=context, batch_size=batch,
                   max_steps=steps, log_every=max(1, steps // 6), eval_every=steps, checkpoint_every=steps, compile=compile_,
                   tokenizer=str(DATA / "tokenizer" / "gpt-neo-test-tokenizer.json"), overwrite=True, quiet=True, lr=3e-4)
    start = time.perf_counter()
    final = train_lm(cfg)
    metrics = [json.loads(line) for line in (out / f"lm_{arch}" / "metrics.jsonl").read_text().splitlines()]
    steady = metrics[1:] or metrics
    row = {"arch": arch, "context": context, "batch_per_gpu": batch, "steps": steps, "wall_s": round(time.perf_counter() - start, 1),
           "tokens_per_s": statistics.median(m["tokens_per_s"] for m in steady), "eval_loss": final["eval_loss"],
           "world_size": metrics[-1]["world_size"]}
    if "mfu" in metrics[-1]:
        row["mfu"] = statistics.median(m["mfu"] for m in steady)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--archs", default="small,base")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--context", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--classifier-epochs", type=int, default=3)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import ray

    from train.lm import quiet_data_progress

    ray.init(include_dashboard=False, logging_level="ERROR")
    quiet_data_progress()
    results: dict = {"device": args.device, "lm": []}
    if args.device == "cuda":
        import torch

        results["gpu"] = torch.cuda.get_device_name(0)
    for arch in args.archs.split(","):
        try:
            results["lm"].append(_lm(arch, out, args.device, args.steps, args.context, args.batch_size, args.compile))
        except Exception as exc:  # noqa: BLE001 - one failing size must not cost the other figures
            results["lm"].append({"arch": arch, "error": f"{type(exc).__name__}: {exc}"[:500]})
        (out / "gpu.json").write_text(json.dumps(results, indent=2))

    from train.finetune import ClassifierConfig, train_classifier

    reg = DATA / "multilingual" / "turkunlp_register"
    c = ClassifierConfig(input=[str(reg / "SvCORE_dev.tsv"), str(reg / "FrCORE_dev.tsv")], output=str(out / "classifier"),
                         label_field="label", label_pattern="[A-Z]+", multi_label="drop", epochs=args.classifier_epochs,
                         max_length=256, lr=1e-4, device=args.device, quiet=True)
    start = time.perf_counter()
    try:
        report = train_classifier(c)
        results["classifier"] = {"wall_s": round(time.perf_counter() - start, 1), "macro_f1": report["macro_f1"],
                                 "majority_macro_f1": report["majority_baseline"]["macro_f1"], "accuracy": report["accuracy"]}
    except Exception as exc:  # noqa: BLE001
        results["classifier"] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    (out / "gpu.json").write_text(json.dumps(results, indent=2))
    ray.shutdown()

    docs = "10000" if args.device == "cuda" else "200"
    proc = subprocess.run([sys.executable, "-m", "bench.model_classifier", "--device", args.device, "--docs", docs],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    results["model_classifier"] = {"returncode": proc.returncode, "stdout_tail": proc.stdout[-3000:],
                                   "stderr_tail": proc.stderr[-1500:]}
    (out / "gpu.json").write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if k != "model_classifier"}, indent=2))
    print(proc.stdout[-2000:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
