"""MFDAN / STSTNet benchmark: cost per sample, parameters, optional LOSO ablations.

    .venv/bin/python benchmarks/bench_mfdan.py                 # timings + parameters
    .venv/bin/python benchmarks/bench_mfdan.py --ablation      # + LOSO ablations (needs the engine)

Writes bench_out/mfdan.json. Timings: forward+backward (training mode, one
optimiser-free step) per sample at batch 16 on this CPU with the number of
threads given (default 1, the machine is shared), the median over
``--seconds`` of steps after warm-up (:func:`mer_core.benchmarking.bench.step_seconds`,
torch.utils.benchmark). The ablations run the full model, no flow-driven
attention, no DropKey and cross-entropy instead of focal loss under LOSO on
the default synthetic set with the same seed, through
``mer_core.training.engine.run_experiment``.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mer_core.benchmarking.bench import step_seconds  # noqa: E402
from mer_core.models import create_model, list_presets, train_defaults  # noqa: E402
from mer_core.store.db import RunStore  # noqa: E402
from mer_core.training.engine import run_experiment  # noqa: E402
from mer_core.training.experiment import resolve_experiment  # noqa: E402

ABLATIONS: dict[str, dict[str, Any]] = {
    "full": dict(model_options={}, loss="focal"),
    "no_flow_attention": dict(model_options={"flow_attention": False}, loss="focal"),
    "no_dropkey": dict(model_options={"dropkey": 0.0}, loss="focal"),
    "ce_loss": dict(model_options={}, loss="ce"),
}


def time_model(name: str, preset: str, batch: int, seconds: float) -> dict[str, Any]:
    """Forward+backward and forward-only milliseconds per sample (medians) and parameter count."""
    torch.manual_seed(0)
    model = create_model(name, preset)
    cfg = model.config
    train = step_seconds(model, batch, seconds, optimizer=False)
    infer = step_seconds(model, batch, seconds, train=False)
    return dict(model=name, preset=preset, input_size=cfg.input_size, channels=list(cfg.channels),
                params=sum(p.numel() for p in model.parameters()), batch=batch,
                train_ms_per_sample=1000 * statistics.median(train) / batch,
                infer_ms_per_sample=1000 * statistics.median(infer) / batch, train_defaults=train_defaults(name, preset))


def run_ablations(epochs: int | None, seed: int, save: Any) -> dict[str, Any]:
    defaults = train_defaults("mfdan", "cpu")
    out: dict[str, Any] = {}
    for label, change in ABLATIONS.items():
        fields = dict(protocol="loso", seed=seed, epochs=epochs or defaults["epochs"], **change)
        cfg = resolve_experiment("synthetic", "mfdan", "cpu", overrides=fields)  # the rest: the preset's
        t0 = time.perf_counter()
        result = run_experiment(cfg)
        out[label] = dict(config=cfg.to_dict(), seconds=time.perf_counter() - t0, result=_summarise(result))
        print(label, json.dumps(out[label]["result"]), f"{out[label]['seconds']:.0f}s", flush=True)
        save(out)
    return out


def _summarise(result: Any) -> dict[str, Any]:
    """Headline metrics of a finished run (``run_experiment`` returns its id)."""
    with RunStore() as store:
        run = store.get_run(str(result))
    summary = run.get("summary", {})
    pooled = summary.get("pooled", {})
    oracle = summary.get("oracle", {})
    return dict(run_id=str(result), status=run.get("status"), uf1=pooled.get("uf1"), uar=pooled.get("uar"),
                accuracy=pooled.get("accuracy"), oracle_uf1=oracle.get("uf1"), oracle_uar=oracle.get("uar"),
                n_folds=run.get("n_folds"), n_samples=run.get("n_samples"), wall_time=run.get("wall_time"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=2.0, help="measured seconds per model, preset and pass")
    ap.add_argument("--ablation", action="store_true", help="also run the LOSO ablations (minutes)")
    ap.add_argument("--epochs", type=int, default=None, help="ablation epochs (default: the cpu preset's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-timings", action="store_true", help="keep the timings already in --out")
    ap.add_argument("--out", default=str(ROOT / "bench_out" / "mfdan.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = dict(machine=platform.processor() or platform.machine(), threads=args.threads,
                                  torch=torch.__version__, timings=[])
    if out.exists():  # keep what this run does not redo
        previous = json.loads(out.read_text())
        if args.no_timings:
            report = previous
        elif not args.ablation:
            report.update({k: v for k, v in previous.items() if k.startswith("ablation")})

    def save(ablations: dict[str, Any] | None = None) -> None:
        if ablations is not None:
            report["ablations"] = ablations
        out.write_text(json.dumps(report, indent=1, default=str))

    for name in ("mfdan", "ststnet") if not args.no_timings else ():
        for preset in list_presets(name):
            row = time_model(name, preset, args.batch, args.seconds)
            report["timings"].append(row)
            print(f"{name:8s} {preset:10s} params={row['params']:>9,d}  "
                  f"train {row['train_ms_per_sample']:.2f} ms/sample  infer {row['infer_ms_per_sample']:.2f} ms/sample",
                  flush=True)
    save()
    if args.ablation:
        report["ablation_epochs"] = args.epochs or train_defaults("mfdan", "cpu")["epochs"]
        save(run_ablations(args.epochs, args.seed, save))
    print("wrote", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
