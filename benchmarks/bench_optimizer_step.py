"""AdamW's per-tensor update against its multi-tensor ("foreach") and fused updates, per model: same result, less time?

    .venv/bin/python benchmarks/bench_optimizer_step.py            # about 2 minutes on 2 cores

On a CPU, PyTorch's AdamW defaults to a Python loop over the parameter tensors;
``foreach=True`` updates them in a few multi-tensor calls, ``fused=True`` in one
kernel. For each model at its motion preset (``cpu_motion``, else ``cpu``), with
one torch thread:

* ``identical``: whether the parameters after ``--steps`` training steps (the
  same seed, batches and dropout draws) are bit for bit those of the per-tensor
  loop, else ``max_abs_diff``;
* ``step_ms``: a whole training step (forward, backward, AdamW) at the preset's
  batch size, and ``opt_ms``: the optimiser step alone; the median of
  ``--rounds`` interleaved rounds (each ``time_calls``, torch.utils.benchmark).

Writes ``benchmarks/results/optimizer_step_cpu-2core.json`` (``--out``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mer_core.benchmarking.bench import time_calls  # noqa: E402
from mer_core.models import create_model, list_models, list_presets, train_defaults  # noqa: E402


ARMS = {"per_tensor": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def _setup(model_name: str, preset: str, arm: str) -> tuple[torch.nn.Module, torch.optim.Optimizer, int]:
    torch.manual_seed(0)
    model = create_model(model_name, preset).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=5e-4, **ARMS[arm])
    return model, opt, int(train_defaults(model_name, preset)["batch_size"])


def _batches(model: torch.nn.Module, batch: int, n: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    cfg, gen = model.config, torch.Generator().manual_seed(1)
    return [(torch.randn(batch, cfg.in_channels, cfg.input_size, cfg.input_size, generator=gen),
             torch.randint(0, cfg.num_classes, (batch,), generator=gen)) for _ in range(n)]


def _stepper(model: torch.nn.Module, opt: torch.optim.Optimizer, batches: list) -> Callable[[], None]:
    state = {"i": 0}

    def step() -> None:
        x, y = batches[state["i"] % len(batches)]
        state["i"] += 1
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return step


def parameters_after(model_name: str, preset: str, arm: str, steps: int) -> torch.Tensor:
    model, opt, batch = _setup(model_name, preset, arm)
    step = _stepper(model, opt, _batches(model, batch))
    torch.manual_seed(5)  # the same dropout and DropKey draws for every arm
    for _ in range(steps):
        step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def same_as_per_tensor(model_name: str, preset: str, steps: int) -> dict[str, Any]:
    ref = parameters_after(model_name, preset, "per_tensor", steps)
    out = {}
    for arm in ("foreach", "fused"):
        other = parameters_after(model_name, preset, arm, steps)
        out[arm] = {"identical": bool(torch.equal(ref, other)), "max_abs_diff": float((ref - other).abs().max())}
    return out


def timings(model_name: str, preset: str, rounds: int, seconds: float) -> dict[str, Any]:
    arms = {}
    for arm in ARMS:
        model, opt, batch = _setup(model_name, preset, arm)
        step = _stepper(model, opt, _batches(model, batch))
        for _ in range(5):
            step()
        arms[arm] = (step, opt.step)
    step_ms: dict[str, list[float]] = {k: [] for k in arms}
    opt_ms: dict[str, list[float]] = {k: [] for k in arms}
    for _ in range(rounds):  # interleaved: a busy spell of the machine hits both arms
        for name, (step, opt_step) in arms.items():
            step_ms[name].append(1000 * statistics.median(time_calls(step, seconds)))
            opt_ms[name].append(1000 * statistics.median(time_calls(opt_step, seconds / 4)))
    out: dict[str, Any] = {"batch": batch}
    for name in arms:
        out[name] = {"step_ms": round(statistics.median(step_ms[name]), 2),
                     "opt_ms": round(statistics.median(opt_ms[name]), 3),
                     "step_ms_rounds": [round(v, 2) for v in step_ms[name]]}
    for arm in ("foreach", "fused"):
        out[arm]["step_saving"] = round(1 - out[arm]["step_ms"] / out["per_tensor"]["step_ms"], 3)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=None, help="default: every registered model")
    ap.add_argument("--steps", type=int, default=50, help="training steps of the identity check")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0, help="minimum seconds per timed block")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "optimizer_step_cpu-2core.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = {}
    for name in args.models or list_models():
        preset = "cpu_motion" if "cpu_motion" in list_presets(name) else "cpu"
        row = {"preset": preset, **timings(name, preset, args.rounds, args.seconds)}
        for arm, same in same_as_per_tensor(name, preset, args.steps).items():
            row[arm].update(same)
        rows[name] = row
        per = row["per_tensor"]
        print(f"{name}/{preset}: step {per['step_ms']} ms, optimiser {per['opt_ms']} ms per tensor; " + "; ".join(
            f"{arm} {row[arm]['step_ms']} ms ({100 * row[arm]['step_saving']:.0f}% less), optimiser "
            f"{row[arm]['opt_ms']} ms, identical={row[arm]['identical']}" for arm in ("foreach", "fused")), flush=True)
    report = {"torch": torch.__version__, "threads": 1, "machine": platform.machine(), "cpus": os.cpu_count(),
              "load_1min_at_end": round(os.getloadavg()[0], 2), "steps": args.steps, "models": rows}
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
