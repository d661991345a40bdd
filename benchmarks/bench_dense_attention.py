"""DenseAttention benchmark: speed and size per preset, and the transfer/EVM ablation.

    .venv/bin/python benchmarks/bench_dense_attention.py              # timing only (~1 min)
    .venv/bin/python benchmarks/bench_dense_attention.py --ablation   # + 4 LOSO runs on the synthetic set

Timing: forward+backward (training step without the optimiser) and forward-only
(eval) time per sample at each preset on this CPU, with ``--threads`` torch
threads, the median over ``--seconds`` of batches after warm-up
(:func:`mer_core.benchmarking.bench.step_seconds`, torch.utils.benchmark), at the
preset's own training batch size; parameter counts. Also a whole training step
(forward, backward, AdamW) and what that alone costs a 68-fold LOSO of the real
composite's size (442 clips, so about 436 training clips a fold) on two
single-thread workers at the preset's epochs: the floor under the LOSO's wall
time, before evaluation, storage and data handling. Ablation: LOSO on the default synthetic set with the same seed and
epochs, with and without macro pre-training on ``synthetic-macro`` and with
the EVM-magnified apex or the plain apex (the difference channel is kept in
both, so "without EVM" removes only the magnification). Pre-training runs
once per input variant and is shared by every fold (and cached). Results go to
``bench_out/dense_attention.json``.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mer_core.benchmarking.bench import step_seconds  # noqa: E402
from mer_core.models import create_model, model_config, train_defaults  # noqa: E402
from mer_core.store.db import RunStore  # noqa: E402
from mer_core.training.engine import run_experiment  # noqa: E402
from mer_core.training.experiment import resolve_experiment  # noqa: E402
from mer_core.training.pretrain import pretrain_for_experiment  # noqa: E402


def time_preset(preset: str, seconds: float) -> dict[str, Any]:
    torch.manual_seed(0)
    model = create_model("dense_attention", preset)
    cfg = model.config
    train = train_defaults("dense_attention", preset)
    batch = int(train["batch_size"])
    out: dict[str, Any] = {}
    for name, train_mode in (("fwd_bwd", True), ("fwd", False)):
        times = step_seconds(model, batch, seconds, train=train_mode, optimizer=False)
        out[f"{name}_ms_per_sample"] = round(1000 * statistics.median(times) / batch, 3)
        out[f"{name}_blocks"] = len(times)
    step = statistics.median(step_seconds(model, batch, seconds, train=True, optimizer=True))
    steps_per_fold = int(train["epochs"]) * math.ceil(436 / batch)
    out.update(step_ms=round(1000 * step, 2), steps_per_fold=steps_per_fold,
               loso68_steps_seconds_2_workers=round(step * steps_per_fold * 68 / 2))
    out.update(
        params=sum(p.numel() for p in model.parameters()),
        input=[cfg.in_channels, cfg.input_size, cfg.input_size],
        channels=list(cfg.channels),
        block_layers=list(cfg.block_layers),
        growth_rate=cfg.growth_rate,
        batch=batch,
        seconds=seconds,
    )
    return out


def run_ablation(epochs: int, pretrain_epochs: int, seed: int, executor: str, workers: int, lr: float,
                 batch_size: int) -> list[dict[str, Any]]:
    """Four LOSO runs (pre-training x EVM) through the project's engine."""
    default = model_config("dense_attention", "cpu").channels
    no_evm = tuple("apex" if c == "magnified_apex" else c for c in default)
    rows = []
    for evm, channels in ((True, default), (False, no_evm)):
        for macro in ("", "synthetic-macro"):
            cfg = resolve_experiment("synthetic", "dense_attention", "cpu", overrides=dict(
                epochs=epochs, lr=lr, batch_size=batch_size,
                optimizer="adamw", loss="ce", seed=seed, executor=executor, workers=workers, device="cpu",
                pretrain=macro, pretrain_epochs=pretrain_epochs, freeze="none", backbone_lr_mult=1.0,
                preprocess=dict(channels=list(channels)), record_oracle=True,
            ))
            label = f"{'pretrain' if macro else 'scratch'} / {'EVM' if evm else 'no EVM'}"
            t0 = time.time()
            ckpt = pretrain_for_experiment(cfg, log=lambda m: print(f"  [{label}] {m}"))
            t_pre = time.time() - t0
            run_id = run_experiment(cfg, name=f"dense_attention ablation: {label}")
            wall = time.time() - t0
            with RunStore() as store:
                run = store.get_run(run_id)
            summary = run.get("summary") or {}
            pooled, oracle = summary.get("pooled", {}), summary.get("oracle", {}) or {}
            row = dict(label=label, pretrain=macro or None, evm=evm, channels=list(channels), run_id=run_id,
                       uf1=pooled.get("uf1"), uar=pooled.get("uar"), accuracy=pooled.get("accuracy"),
                       oracle_uf1_diagnostic=oracle.get("uf1"), status=run.get("status"),
                       pretrain_seconds=round(t_pre, 1), wall_seconds=round(wall, 1),
                       checkpoint=str(ckpt) if ckpt else None)
            print(f"{label:24s} UF1 {row['uf1']}  UAR {row['uar']}  ({row['wall_seconds']} s)")
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="cpu,paper")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    ap.add_argument("--seconds", type=float, default=3.0, help="measured seconds per preset and pass")
    ap.add_argument("--ablation", action="store_true", help="also run the 4 LOSO ablation runs")
    ap.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs per fold (ablation)")
    ap.add_argument("--lr", type=float, default=2e-3, help="fine-tuning learning rate (ablation)")
    ap.add_argument("--batch-size", type=int, default=16, help="fine-tuning batch size (ablation)")
    ap.add_argument("--pretrain-epochs", type=int, default=30, help="macro pre-training epochs (ablation)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--executor", default="sequential")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", default="bench_out/dense_attention.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out_path = Path(args.out)
    result: dict[str, Any] = json.loads(out_path.read_text()) if out_path.exists() else {}
    result.update(
        model="dense_attention",
        machine=dict(cpu=platform.processor() or platform.machine(), threads=args.threads, torch=torch.__version__),
        timing=result.get("timing", {}),  # presets not timed now keep their last figures
    )
    for preset in [p.strip() for p in args.presets.split(",") if p.strip()]:
        t = time_preset(preset, args.seconds)
        result["timing"][preset] = t
        print(f"{preset:10s} params {t['params']:>10,d}  batch {t['batch']}  fwd+bwd {t['fwd_bwd_ms_per_sample']:6.2f} "
              f"ms/sample  fwd {t['fwd_ms_per_sample']:6.2f} ms/sample  step {t['step_ms']:7.1f} ms  "
              f"68-fold LOSO steps alone {t['loso68_steps_seconds_2_workers']} s  input {t['input']}")
    if args.ablation:
        result["ablation"] = dict(
            dataset="synthetic", protocol="loso", epochs=args.epochs, pretrain_epochs=args.pretrain_epochs,
            lr=args.lr, batch_size=args.batch_size, seed=args.seed, selection="fixed (last epoch)",
            rows=run_ablation(args.epochs, args.pretrain_epochs, args.seed, args.executor, args.workers,
                              args.lr, args.batch_size),
        )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
