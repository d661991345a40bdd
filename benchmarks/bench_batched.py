"""Fold-batched executor benchmark (issue 16): per-fold step cost per K, and LOSO wall time per executor.

1. Step cost: one optimiser step of K STSTNet folds (CPU preset, batch 32, 28 px) through
   ``batched.vmapped_step`` (K stacked models, one vmapped forward/backward), reported as
   milliseconds per fold-step, against the plain single-model ``TrainState.step``; and the
   other way of batching the issue names, K folds packed by hand into one model (grouped
   convolutions, one BatchNorm over K x 16 channels, a batched head), measured the same way.
   ``op_share``: where the CPU time of one plain step goes (torch.profiler, self CPU per op),
   which says whether a step is per-call overhead (what batching removes) or arithmetic.
   ``layout_cost``: one thread, the former three-stream STSTNet against the fused one, NCHW
   and channels-last, and the max pool kernel in both layouts (what made the CPU step cheaper).
2. LOSO: a composite-sized synthetic set (68 subjects, ~7 clips each) trained by
   ``sequential`` (torch on ``--threads`` threads), ``process`` (2 workers, 1 thread each) and
   ``batched``, with the same short schedule, reporting wall time and pooled UF1/UAR.

Usage::

    .venv/bin/python benchmarks/bench_batched.py [--epochs 3] [--ks 1 4 16 68] [--skip-loso]

Writes ``benchmarks/results/batched_<device>.json``. Runs use a private cache
(``bench_out/cache``) so they never touch your runs.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("MER_CACHE", str(ROOT / "bench_out" / "cache"))
sys.path.insert(0, str(ROOT))

COMPOSITE = {"subjects": 68, "clips_per_subject": 7, "size": 64, "frames": 16}


def step_cost(k: int, steps: int, reps: int) -> dict:
    """Median (min, max) ms per fold-step of K folds stepped together, over ``reps`` timings of ``steps`` steps."""
    import numpy as np
    import torch

    from mer_core.config import ExperimentConfig
    from mer_core.models.registry import create_model
    from mer_core.training import batched, trainer as tr

    cfg = ExperimentConfig(model="ststnet", optimizer="adam", lr=1e-3, batch_size=32, augment=False)
    y = np.arange(64) % 3
    runs = []
    for i in range(k):
        torch.manual_seed(i)
        st = tr.TrainState.create(create_model("ststnet"), cfg, y, 3, ("flow_u", "flow_v", "strain"),
                                  torch.device("cpu"))
        run = batched.FoldRun(None, cfg, st, None, None, None, None, None,  # type: ignore[arg-type]
                              dict(st.model.named_parameters()), dict(st.model.named_buffers()))
        run.sums = [torch.zeros((), dtype=torch.float64) for _ in range(3)]
        runs.append(run)
    xs = [torch.randn(32, 3, 28, 28) for _ in range(k)]
    ys = [torch.randint(0, 3, (32,)) for _ in range(k)]
    batched.vmapped_step(runs, xs, ys)  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(steps):
            batched.vmapped_step(runs, xs, ys)
        times.append((time.perf_counter() - t0) / steps / k * 1e3)
    return {"k": k, "ms_per_fold_step": round(statistics.median(times), 2), "min": round(min(times), 2),
            "max": round(max(times), 2), "path": "TrainState.step" if k == 1 else "vmap(functional_call)"}


def packed_cost(k: int, steps: int, reps: int) -> dict:
    """ms per fold-step of K STSTNet-shaped folds packed by hand: conv(3K -> 16K, groups=K), BN(16K), max pool,
    average pool and a batched head (einsum), one Adam over the packed tensors. Same arithmetic as K models."""
    import torch
    import torch.nn.functional as F

    b, c = 32, 16
    x, y = torch.randn(k, b, 3, 28, 28), torch.randint(0, 3, (k, b))
    w = (torch.randn(k * c, 3, 3, 3) * 0.1).requires_grad_()
    bias, gamma, beta = (torch.zeros(k * c).requires_grad_(), torch.ones(k * c).requires_grad_(),
                         torch.zeros(k * c).requires_grad_())
    mean, var = torch.zeros(k * c), torch.ones(k * c)
    head_w, head_b = (torch.randn(k, c * 25, 3) * 0.01).requires_grad_(), torch.zeros(k, 3).requires_grad_()
    opt = torch.optim.Adam([w, bias, gamma, beta, head_w, head_b], 1e-3)

    def step() -> None:
        opt.zero_grad()
        h = F.conv2d(x.permute(1, 0, 2, 3, 4).reshape(b, k * 3, 28, 28), w, bias, padding=1, groups=k).relu_()
        h = F.max_pool2d(F.batch_norm(h, mean, var, gamma, beta, training=True), 3, 3, 1)
        h = F.adaptive_avg_pool2d(h, 5).view(b, k, c * 25)
        logits = torch.einsum("bkf,kfc->kbc", h, head_w) + head_b[:, None]
        (F.cross_entropy(logits.reshape(k * b, 3), y.reshape(-1), reduction="sum") / b).backward()
        opt.step()

    step()
    times, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            step()
        times.append((time.perf_counter() - t0) / steps / k * 1e3)
        cpu.append((time.process_time() - c0) / steps / k * 1e3)
    return {"k": k, "ms_per_fold_step": round(statistics.median(times), 2), "min": round(min(times), 2),
            "max": round(max(times), 2), "cpu_ms_per_fold_step": round(statistics.median(cpu), 2),
            "path": "packed by hand (grouped conv)"}


def layout_cost(steps: int, reps: int) -> list[dict]:
    """One thread, one STSTNet training step (batch 32, Adam): the former three-stream layout in NCHW, the
    fused single convolution in NCHW, and the fused convolution with channels-last input (what the trainer
    now feeds it); then a 3x3/3 max pool forward + backward on 32 x 16 x 28 x 28 in both layouts."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from mer_core.models.registry import create_model

    class PerStream(nn.Module):  # the layout before commit f314eee, written out
        def __init__(self) -> None:
            super().__init__()
            self.streams = nn.ModuleList(nn.Sequential(nn.Conv2d(3, f, 3, padding=1), nn.ReLU(inplace=True),
                                                       nn.BatchNorm2d(f), nn.MaxPool2d(3, 3, 1)) for f in (3, 5, 8))
            self.pool, self.head = nn.AdaptiveAvgPool2d(5), nn.Linear(400, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.pool(torch.cat([s(x) for s in self.streams], 1)).flatten(1))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    x, y = torch.randn(32, 3, 28, 28), torch.randint(0, 3, (32,))

    def timed(fn) -> dict:
        fn()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            times.append((time.perf_counter() - t0) / steps * 1e3)
        return {"ms": round(statistics.median(times), 2), "min": round(min(times), 2), "max": round(max(times), 2)}

    def training_step(model: nn.Module, xb: torch.Tensor):
        opt = torch.optim.Adam(model.parameters(), 1e-3)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), y).backward()
            opt.step()
        return step

    rows = []
    try:
        cl = x.contiguous(memory_format=torch.channels_last)
        for what, model, xb in (("three streams, NCHW (before)", PerStream(), x),
                                ("one fused convolution, NCHW", create_model("ststnet"), x),
                                ("one fused convolution, channels-last input (now)", create_model("ststnet"), cl)):
            rows.append({"what": what, "threads": 1, **timed(training_step(model, xb))})
        act = torch.relu(torch.randn(32, 16, 28, 28))
        for what, a in (("max pool 3x3/3 forward + backward, NCHW", act),
                        ("max pool 3x3/3 forward + backward, channels-last",
                         act.contiguous(memory_format=torch.channels_last))):
            a = a.clone().requires_grad_()
            rows.append({"what": what, "threads": 1, **timed(lambda a=a: F.max_pool2d(a, 3, 3, 1).sum().backward())})
    finally:
        torch.set_num_threads(threads)
    return rows


def op_share(steps: int = 20) -> list[dict]:
    """Self CPU share per op of ``steps`` plain STSTNet steps (batch 32): the top 8 and the rest."""
    import numpy as np
    import torch
    from torch.profiler import profile

    from mer_core.config import ExperimentConfig
    from mer_core.models.registry import create_model
    from mer_core.training import trainer as tr

    cfg = ExperimentConfig(model="ststnet", optimizer="adam", lr=1e-3, batch_size=32, augment=False)
    st = tr.TrainState.create(create_model("ststnet"), cfg, np.arange(33) % 3, 3, ("flow_u", "flow_v", "strain"),
                              torch.device("cpu"))
    x, y = torch.randn(32, 3, 28, 28), torch.randint(0, 3, (32,))
    st.step(x, y)
    with profile() as prof:
        for _ in range(steps):
            st.step(x, y)
    rows = [(e.key, e.self_cpu_time_total) for e in prof.key_averages()]
    total = sum(t for _, t in rows) or 1.0
    rows.sort(key=lambda r: -r[1])
    top = [{"op": k, "share": round(t / total, 3), "ms_per_step": round(t / steps / 1e3, 3)} for k, t in rows[:8]]
    rest = sum(t for _, t in rows[8:])
    return top + [{"op": "(all other ops)", "share": round(rest / total, 3), "ms_per_step": round(rest / steps / 1e3, 3)}]


def loso(executor: str, epochs: int, threads: int) -> dict:
    import torch

    from mer_core.store.db import RunStore
    from mer_core.training.engine import run_experiment
    from mer_core.training.experiment import resolve_experiment

    torch.set_num_threads(threads)
    over = {"executor": executor, "workers": 2 if executor == "process" else 1, "epochs": epochs,
            "dataset_options": COMPOSITE, "record_oracle": False}
    cfg = resolve_experiment("synthetic", "ststnet", "cpu", overrides=over)
    t0 = time.perf_counter()
    rid = run_experiment(cfg)
    wall = time.perf_counter() - t0
    with RunStore() as store:
        run = store.get_run(rid)
    return {"executor": executor, "workers": over["workers"], "threads": threads, "epochs": epochs,
            "wall_s": round(wall, 2), "uf1": run["uf1"], "uar": run["uar"], "n_samples": run["n_samples"],
            "n_folds": run["n_folds"], "status": run["status"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="LOSO epochs (the CPU preset trains 30)")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 4, 16, 68])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-loso", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    report: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                "torch": torch.__version__, "device": "cpu", "threads": args.threads,
                                "load_avg_at_start": os.getloadavg()[0]},
                    "model": "ststnet (cpu preset, batch 32, 28 px)", "step_cost": []}
    out = ROOT / "benchmarks" / "results" / "batched_cpu.json"

    def save() -> None:  # after every measurement, so an interrupted run keeps what it measured
        report["machine"]["load_avg_at_end"] = os.getloadavg()[0]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")

    for k in args.ks:
        report["step_cost"].append(step_cost(k, args.steps, args.reps))
        print(report["step_cost"][-1], flush=True)
        save()
    report["packed_cost"] = [packed_cost(k, args.steps, args.reps) for k in args.ks]
    print(report["packed_cost"], flush=True)
    report["op_share"] = op_share()
    print(report["op_share"], flush=True)
    report["layout_cost"] = layout_cost(max(args.steps, 20), args.reps)
    print(report["layout_cost"], flush=True)
    save()
    if not args.skip_loso:
        report["loso"] = {"dataset": {"name": "synthetic", **COMPOSITE}, "runs": []}
        # a warm-up run fills the preprocessing cache, so every executor below trains on cached arrays
        loso("sequential", 1, args.threads)
        for executor in ("sequential", "process", "batched"):
            report["loso"]["runs"].append(loso(executor, args.epochs, args.threads))
            print(report["loso"]["runs"][-1], flush=True)
            save()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
