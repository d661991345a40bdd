"""Training-step time with PyTorch's default (for-loop) Adam/AdamW against the fused kernel, per model preset.

    .venv/bin/python benchmarks/bench_fused_optimizer.py [--steps 60] [--threads 1]

One process, one thread (as each fold of the process executor runs), a batch of the preset's size and input
shape, random data; median of ``--steps`` steps after 10 warm-up steps, each variant from the same
initial weights. Measures the whole step (forward, backward, optimiser), in milliseconds.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from mer_core.models.registry import create_model, model_config, train_defaults

CASES = [("dense_attention", "cpu_motion"), ("ststnet", "cpu"), ("linear", "cpu")]


def step_ms(name: str, preset: str, fused: bool, steps: int) -> float:
    torch.manual_seed(0)
    cfg = model_config(name, preset, num_classes=3)
    model = create_model(name, preset, num_classes=3)
    train = train_defaults(name, preset)
    batch = int(train["batch_size"])
    x = torch.randn(batch, len(cfg.channels), cfg.input_size, cfg.input_size)
    y = torch.randint(0, 3, (batch,))
    if getattr(model, "prefers_channels_last", False):
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    cls = torch.optim.AdamW if train["optimizer"] == "adamw" else torch.optim.Adam
    opt = cls(model.parameters(), lr=1e-3, weight_decay=float(train.get("weight_decay", 0.0)), fused=fused or None)
    times = []
    for i in range(steps + 10):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if i >= 10:
            times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print("| model | preset | optimiser | for-loop ms/step | fused ms/step | saved |")
    print("|---|---|---|---:|---:|---:|")
    for name, preset in CASES:
        loop, fused = step_ms(name, preset, False, args.steps), step_ms(name, preset, True, args.steps)
        print(f"| {name} | {preset} | {train_defaults(name, preset)['optimizer']} | {loop:.1f} | {fused:.1f} | "
              f"{1 - fused / loop:.0%} |")


if __name__ == "__main__":
    main()
