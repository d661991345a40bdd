"""MFDAN training-step cost: the window attention's masking, former against current.

The 4 x 3 synthetic study spends two thirds of its time in MFDAN, and an MFDAN step on
the CPU preset spends most of its time in the window attentions' elementwise work, not in
matrix products. This script measures, on one thread (as each worker of the process
executor runs):

1. ``ops``: the elementwise pieces of one stage-0 attention of the CPU preset (logits of
   shape (256, 2, 16, 16) at batch 16): a boolean ``masked_fill`` against an addition of
   the same size, and a DropKey mask drawn as ``rand_like(logits) < rate`` against
   :func:`mer_core.models.swin_flow.dropkey_additive`.
2. ``step``: one training step (forward, backward, Adan step) of MFDAN's CPU preset at
   batch 16, with the attention as it is now (``current``) and with the former forward
   (``former``: boolean shift mask, ``rand_like`` DropKey, row check, ``masked_fill``),
   patched in for the measurement only. Both share weights and input.

Each figure is the median over ``--repeats`` timings (interleaved former / current, so a
busy neighbour slows both), of ``--steps`` steps each, after warm-up.

    .venv/bin/python benchmarks/bench_mfdan_step.py [--repeats 7] [--steps 20] [--out PATH]

Writes ``benchmarks/results/mfdan_step_<device>.json`` by default.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mer_core.models import create_model, model_config  # noqa: E402
from mer_core.models import swin_flow  # noqa: E402


def former_forward(self, q_tokens, kv_tokens, allowed):
    """The attention forward before the additive masks (kept here to measure against)."""
    b, t, c = kv_tokens.shape
    hd = c // self.heads
    q = self.q(q_tokens).view(b, t, self.heads, hd).transpose(1, 2)
    k, v = self.kv(kv_tokens).view(b, t, 2, self.heads, hd).permute(2, 0, 3, 1, 4)
    scale = torch.clamp(self.logit_scale, max=swin_flow.LOGIT_SCALE_MAX).exp()
    logits = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)) * scale
    logits = logits + self._bias(t)
    blocked = None
    if allowed is not None:
        blocked = (~allowed).repeat(b // allowed.shape[0], 1, 1)[:, None]
    if self.training and self.dropkey > 0:
        drop = torch.rand_like(logits) < self.dropkey
        all_dropped = (drop | blocked).all(-1, keepdim=True) if blocked is not None else drop.all(-1, keepdim=True)
        drop = drop & ~all_dropped
        blocked = drop if blocked is None else (drop | blocked)
    if blocked is not None:
        logits = logits.masked_fill(blocked, float("-inf"))
    attn = logits.softmax(-1)
    return self.proj((attn @ v).transpose(1, 2).reshape(b, t, c))


def _time(fn, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e3


def _interleaved(fns: dict, n: int, repeats: int) -> dict[str, dict[str, float]]:
    for fn in fns.values():  # warm-up
        _time(fn, max(2, n // 5))
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            samples[k].append(_time(fn, n))
    return {k: {"median_ms": round(statistics.median(v), 4), "min_ms": round(min(v), 4),
                "max_ms": round(max(v), 4)} for k, v in samples.items()}


def op_costs(repeats: int) -> dict:
    shape = (256, 2, 16, 16)  # stage 0 of the CPU preset at batch 16: 256 windows, 2 heads, 16 tokens
    logits = torch.randn(shape)
    mask = torch.rand(shape) < 0.3
    additive = torch.zeros(shape).masked_fill(mask, swin_flow.DROPKEY_OFFSET)
    fns = {
        "masked_fill": lambda: logits.masked_fill(mask, float("-inf")),
        "add": lambda: logits + additive,
        "rand_like_lt": lambda: torch.rand_like(logits) < 0.3,
        "dropkey_additive": lambda: swin_flow.dropkey_additive(logits, 0.3),
    }
    return {"shape": list(shape), **_interleaved(fns, 200, repeats)}


def step_costs(steps: int, repeats: int) -> dict:
    from pytorch_optimizer import Adan

    cfg = model_config("mfdan", "cpu", num_classes=3)
    torch.manual_seed(0)
    model = create_model("mfdan", "cpu", num_classes=3).train()
    x = torch.randn(16, len(cfg.channels), cfg.input_size, cfg.input_size)
    y = torch.randint(0, 3, (16,))
    opt = Adan(model.parameters(), lr=1e-4)
    current = swin_flow.CosineWindowAttention.forward

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    def with_forward(fwd):
        def run():
            swin_flow.CosineWindowAttention.forward = fwd
            try:
                step()
            finally:
                swin_flow.CosineWindowAttention.forward = current
        return run

    out = _interleaved({"former": with_forward(former_forward), "current": with_forward(current)}, steps, repeats)
    out["speedup"] = round(out["former"]["median_ms"] / out["current"]["median_ms"], 2)
    return {"preset": "cpu", "batch": 16, "input_size": cfg.input_size, **out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "mfdan_step_cpu-2core.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    result = {"benchmark": "bench_mfdan_step", "threads": 1, "torch": torch.__version__,
              "machine": platform.processor() or platform.machine(),
              "ops": op_costs(args.repeats), "step": step_costs(args.steps, args.repeats)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
