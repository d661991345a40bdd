"""``mer run`` (and its short forms ``mer loso`` and ``mer train``), ``mer runs``, ``mer show``, ``mer models``.

``mer run`` runs one experiment in this process under ``--protocol`` (loso by
default, composite, kfold or holdout) with a progress bar, stores it, and
prints the pooled metrics and a per-subject table. ``mer loso`` and ``mer
train`` are ``mer run`` with the protocol fixed to loso and holdout; they stay
because the README, the pages and people's scripts use them, and are left out
of ``mer --help``.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import signal
import sys
import threading
import time
from typing import Any, Iterator

from tqdm import tqdm

from mer_core.config import EXECUTORS, LOSSES, OPTIMIZERS, PROTOCOLS, SELECTION, ExperimentConfig
from mer_core.errors import ConfigError, MerError
from mer_core.evaluation.metrics import per_group
from mer_core.keyvalue import parse_pairs
from mer_core.store.db import RunStore
from mer_core.store.folders import check_id


def add_experiment_args(p: argparse.ArgumentParser, *, protocol_default: str | None) -> None:
    """Options shared by every command that builds an ExperimentConfig.

    Every default is None (or empty): an option not given leaves the value to
    the ``--config`` file, then to the preset (see mer_core.training.experiment).
    """
    p.add_argument("--dataset", help="dataset name (mer datasets list); default synthetic")
    p.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE",
                   help="indexer option, e.g. subjects=4 for a small synthetic set (repeatable)")
    p.add_argument("--model", help="model name (see `mer models`); default baseline")
    p.add_argument("--preset", help="model preset: auto (default: the CPU preset that fits the dataset's inputs), "
                   "or a name from `mer models` (cpu, cpu_flow_apex, cpu_apex, paper...)")
    p.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="override a model config field (repeatable)")
    if protocol_default is None:
        p.add_argument("--protocol", choices=PROTOCOLS, help="default loso")
    p.add_argument("--class-set", help="class set (default: the dataset's)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", choices=OPTIMIZERS)
    p.add_argument("--loss", choices=LOSSES)
    p.add_argument("--selection", choices=SELECTION,
                   help="epoch choice, never on the test subject: fixed (default), early_stop (validation subjects "
                        "from the training ones), nested (inner folds of the training subjects, --set nested_folds=K)")
    p.add_argument("--flow", choices=("dis", "tvl1", "farneback"), help="optical flow method")
    p.add_argument("--input-size", type=int, help="input size in pixels (default: the model's)")
    p.add_argument("--pretrain", default=None, help="macro dataset for pre-training (DenseAttention)")
    p.add_argument("--seed", type=int)
    p.add_argument("--final-model", action="store_true", default=None,
                   help="after the LOSO, also train one model on every subject (stored beside the folds, never "
                        "evaluated; `mer predict` uses it); same as --set final_model=true")
    p.add_argument("--executor", choices=EXECUTORS)
    p.add_argument("--workers", type=int)
    p.add_argument("--device")
    p.add_argument("--config", help="JSON file with config keys (command-line options override it)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config key, e.g. --set focal_gamma=1.5 (repeatable); weight averaging: --set average=ema "
                        "(ema_decay=0.99) or average=swa (swa_epochs=5); several models per fold, their "
                        "probabilities averaged: --set seeds_per_fold=3")
    p.add_argument("--resume", metavar="RUN_ID", help="continue an unfinished run")
    p.add_argument("--name", default="", help="a label for the run")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


_FLAGS = ("class_set", "epochs", "batch_size", "lr", "optimizer", "loss", "selection", "seed", "executor", "workers",
          "device", "pretrain", "final_model")  # config keys given by the option of the same name
_PRE_FLAGS = {"flow_method": "flow", "input_size": "input_size"}  # preprocess key -> option


def explicit_choices(args: argparse.Namespace, protocol: str | None = None) -> dict[str, Any]:
    """What the command line asks for: the overrides, --config file < options < --set.

    An option and a ``--set`` (or two ``--set``) of the same key with different values contradict each other:
    ConfigError naming both, never the last one silently winning. The ``--config`` file is a base that options
    override by design, so it contradicts nothing.
    """
    from mer_core.training.experiment import load_config_file  # lazy: loads torch (about 2 s)

    overrides: dict[str, Any] = load_config_file(args.config) if args.config else {}
    given: dict[str, tuple[Any, str]] = {}  # key (preprocess.x for a sub-key) -> (value, how it was given)

    def give(key: str, value: Any, how: str) -> None:
        if key in given and not _same(given[key][0], value):
            raise ConfigError(f"{given[key][1]} contradicts {how}; give {key} once")
        given.setdefault(key, (value, how))

    flags = {key: getattr(args, key) for key in _FLAGS if getattr(args, key, None) is not None}
    if protocol:  # the command's own protocol (mer loso, mer train)
        give("protocol", protocol, f"mer {getattr(args, 'command', '') or protocol} (protocol={protocol})")
        flags["protocol"] = protocol
    elif getattr(args, "protocol", None):
        flags["protocol"] = args.protocol
    for key in ("dataset", "model", "preset"):
        if getattr(args, key, None) is not None:
            flags[key] = getattr(args, key)
    for key, value in flags.items():
        if key != "protocol" or not protocol:
            shown = "" if isinstance(value, bool) else f" {value}"
            give(key, value, f"--{key.replace('_', '-')}{shown}")
    pre = {k: getattr(args, a) for k, a in _PRE_FLAGS.items() if getattr(args, a, None) is not None}
    for key, value in pre.items():
        give(f"preprocess.{key}", value, f"--{_PRE_FLAGS[key].replace('_', '-')} {value}")
    for item in args.set:  # one at a time, so that a key given twice with two values is seen
        for key, value in parse_pairs([item], ExperimentConfig, "--set").items():
            if key == "preprocess" and isinstance(value, dict):
                for sub, v in value.items():
                    give(f"preprocess.{sub}", v, f"--set preprocess.{sub}={item.partition('=')[2].strip()}")
            else:
                give(key, value, f"--set {item.strip()}")
    for what, attr in (("dataset_options", "dataset_option"), ("model_options", "model_option")):
        for item in getattr(args, attr, None) or []:
            sub = item.partition("=")[0].strip()
            value = parse_pairs([item], None, f"--{attr.replace('_', '-')}")[sub]
            given_table = given.get(what)
            if given_table is not None and isinstance(given_table[0], dict) and sub in given_table[0] \
                    and not _same(given_table[0][sub], value):
                raise ConfigError(f"--{attr.replace('_', '-')} {item.strip()} contradicts {given_table[1]}; "
                                  f"give {what}.{sub} once")
    settings = parse_pairs(args.set, ExperimentConfig, "--set")
    for layer in (flags, {"preprocess": pre} if pre else {}, settings):
        for key, value in layer.items():
            if key == "preprocess" and isinstance(value, dict) and isinstance(overrides.get(key), dict):
                overrides[key] = {**overrides[key], **value}
            else:
                overrides[key] = value
    return overrides


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


def config_from_args(args: argparse.Namespace, protocol: str | None = None) -> ExperimentConfig:
    """The resolved config: preset defaults < --config file < options < --set (never argparse defaults)."""
    from mer_core.models.registry import model_spec  # lazy: loads torch (about 2 s)
    from mer_core.training.experiment import resolve_experiment  # lazy: loads torch (about 2 s)

    overrides = explicit_choices(args, protocol)
    dataset, model = overrides.get("dataset", "synthetic"), overrides.get("model", "baseline")
    preset = overrides.get("preset", "auto")
    return resolve_experiment(
        dataset, model, preset, overrides=overrides,
        dataset_options=parse_pairs(args.dataset_option, None, "--dataset-option"),
        model_options=parse_pairs(args.model_option, model_spec(model).config_cls, "--model-option"),
    )


class ProgressPrinter:
    """tqdm bars: one per stage (preprocess, pretrain), then one over folds with epoch and loss."""

    UNITS = {"preprocess": "clip", "pretrain": "epoch", "final_model": "epoch"}

    def __init__(self) -> None:
        self.bar = None
        self.stages: dict[str, Any] = {}

    def __call__(self, e: dict[str, Any]) -> None:
        kind = e.get("event")
        if kind == "stage":
            name = str(e.get("stage", "stage"))
            bar = self.stages.get(name)
            if bar is None:
                bar = self.stages[name] = tqdm(total=e["total"], desc=name, unit=self.UNITS.get(name, "step"),
                                               file=sys.stderr, leave=False)
            bar.update(e["done"] - bar.n)
            if "loss" in e:
                bar.set_postfix_str(f"loss {e['loss']:.3f}", refresh=False)
        elif kind in ("fold_start", "epoch", "fold_done"):
            for bar in self.stages.values():
                bar.close()
            if self.bar is None:
                self.bar = tqdm(total=e["n_folds"], desc="folds", unit="fold", file=sys.stderr)
            if kind == "epoch":
                self.bar.set_postfix_str(f"fold {e['fold'] + 1} epoch {int(e['epoch'])}/{e['epochs']} "
                                         f"loss {e['train_loss']:.3f}", refresh=False)
            elif kind == "fold_done":
                self.bar.update(e["done"] - self.bar.n)
        elif kind == "note":
            tqdm.write(f"note: {e.get('message', '')}", file=sys.stderr)
        elif kind == "done" and self.bar is not None:
            self.bar.close()

    def close(self) -> None:
        for bar in [*self.stages.values(), self.bar]:
            if bar is not None:
                bar.close()


def print_run(run_id: str, as_json: bool = False) -> None:
    with RunStore() as store:
        run = store.get_run(run_id)
        pred = store.predictions(run_id)
    summary = run["summary"]
    if as_json:
        print(json.dumps({"run_id": run_id, "status": run["status"], "summary": summary}, indent=1))
        return
    pooled = summary.get("pooled", {})
    print(f"\nrun {run_id}  [{run['status']}]  {run['model']} on {run['dataset']} ({run['protocol']}, "
          f"{run['n_samples']} clips, {run['n_folds']} folds, {run['wall_time']:.0f} s)")
    for note in run["notes"]:
        print(f"  note: {note}")
    if not pooled:
        print("  no finished fold yet")
        return
    print(f"  pooled over folds:   UF1 {pooled['uf1']:.4f}   UAR {pooled['uar']:.4f}   accuracy {pooled['accuracy']:.4f}")
    fa = summary.get("fold_averaged", {})
    print(f"  fold-averaged (not comparable with pooled): UF1 {fa.get('uf1', float('nan')):.4f}   "
          f"UAR {fa.get('uar', float('nan')):.4f}")
    if "oracle" in summary:
        o = summary["oracle"]
        print(f"  oracle epoch (diagnostic, test-selected; NOT a result): UF1 {o['uf1']:.4f}   UAR {o['uar']:.4f}")
    print("  per class:  " + "   ".join(f"{c}: F1 {pooled['f1'][c]:.3f} recall {pooled['recall'][c]:.3f}"
                                      for c in run["classes"]))
    for part, s in summary.get("per_part", {}).items():
        print(f"  part {part:10s} UF1 {s['uf1']:.4f}  UAR {s['uar']:.4f}  n={s['n']}")
    table = per_group(pred, run["classes"], "subject").sort_values("uf1", ascending=False)
    print("\n  per subject (UF1 over the classes the subject shows):")
    print("  " + table.to_string(index=False, float_format=lambda v: f"{v:.3f}").replace("\n", "\n  "))


def cmd_experiment(args: argparse.Namespace, protocol: str | None = None) -> int:
    if args.resume:
        _check_resumable(args.resume)  # before the engine's imports: a refusal is quick
        config = resume_config(args, protocol)
    else:
        config = config_from_args(args, protocol)
    from mer_core.training.engine import run_experiment  # lazy: loads torch and scikit-learn (about 2 s)

    progress = None if args.json else ProgressPrinter()
    try:
        with _signals_interrupt():
            run_id = run_experiment(config, run_id=args.resume, progress=progress, name=args.name)
    finally:
        if progress is not None:
            progress.close()  # an error message then starts on a clean line, not glued to a bar
    with RunStore() as store:
        run, done = store.get_run(run_id), len(store.completed_folds(run_id))
    if run["status"] == "cancelled":
        print(f"\nmer: run {run_id} stopped ({run['error'] or 'interrupted'}) with {done}/{run['n_folds']} folds "
              f"stored; continue it with `mer {args.command} --resume {run_id}`", file=sys.stderr)
        return 130
    print_run(run_id, args.json)
    return 0


def resume_config(args: argparse.Namespace, protocol: str | None = None) -> ExperimentConfig:
    """``--resume ID``: the run's stored config. Options given with it must agree with that config;
    any that differ are a ConfigError naming each key, its stored value and the value given."""
    from mer_core.models.registry import model_spec  # lazy: loads torch (about 2 s)

    with RunStore() as store:
        stored = ExperimentConfig.from_json(store.get_run(args.resume)["config_json"])
    overrides = explicit_choices(args, protocol)
    data = stored.to_dict()
    for key, value in overrides.items():
        if key == "preset" and value == "auto":
            continue  # 'auto' chose the stored preset when the run started
        if key == "preprocess" and isinstance(value, dict):
            data["preprocess"] = {**data["preprocess"], **value}
        else:
            data[key] = value
    dataset_options = parse_pairs(args.dataset_option, None, "--dataset-option")
    data["dataset_options"] = {**dict(data.get("dataset_options") or {}), **dataset_options}
    model_cls = model_spec(str(data.get("model") or stored.model)).config_cls
    model_options = parse_pairs(args.model_option, model_cls, "--model-option")
    data["model_options"] = {**dict(data.get("model_options") or {}), **model_options}
    wanted = ExperimentConfig.from_dict(data).to_dict()
    have = stored.to_dict()
    differ = [(f"preprocess.{k}", have["preprocess"][k], v) for k, v in wanted.pop("preprocess").items()
              if v != have["preprocess"][k]]
    differ = [(k, have[k], v) for k, v in wanted.items() if k != "preprocess" and v != have[k]] + differ
    if differ:
        shown = ", ".join(f"{k}={old!r} (given {new!r})" for k, old, new in differ)
        raise ConfigError(f"--resume {args.resume}: the run was made with {shown}; leave these options out "
                          f"(--resume {args.resume} alone continues it with its stored config), or start a new run")
    return stored


def _check_resumable(run_id: str) -> None:
    """``--resume ID`` names a stored run; an unknown or malformed id is an error, never a new run."""
    try:
        check_id(run_id)
    except MerError as exc:
        raise ConfigError(f"--resume: {exc}") from None
    with RunStore() as store:
        if not store.has_run(run_id):
            raise ConfigError(f"--resume {run_id!r}: no such run in {store.path}; `mer runs` lists the stored runs")
        store.check_run_free(run_id)  # another live process trains it: refused, naming its pid and heartbeat


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP stop an in-process run like Ctrl-C: the run is closed as cancelled, not left running."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")

    old = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def cmd_runs(args: argparse.Namespace) -> int:
    with RunStore() as store:
        store.mark_stale()  # jobs and runs whose process died
        runs = store.list_runs()
    if args.json:
        print(runs.to_json(orient="records", indent=1))
        return 0
    if runs.empty:
        print("no runs stored yet; start one with `mer loso --dataset synthetic --model baseline`")
        return 0
    runs = runs.assign(created=[time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) for t in runs["created"]],
                       folds=[f"{d}/{n}" for d, n in zip(runs["folds_done"], runs["n_folds"])])
    cols = ["id", "status", "dataset", "model", "protocol", "folds", "uf1", "uar", "created"]
    print(runs[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-"))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    print_run(args.run_id, args.json)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    # lazy: loads torch (about 2 s)
    from mer_core.models.registry import list_models, model_config, model_spec, provenance_summary
    from mer_core.training.experiment import model_forms  # lazy: loads torch (about 2 s)

    for name in list_models():
        spec = model_spec(name)
        print(f"{name}: {spec.description}")
        print("  preset auto: " + ", ".join(f"{form} -> {p}" for form, p in model_forms(name).items()))
        for preset in spec.presets:
            cfg = model_config(name, preset)
            print(f"  preset {preset}: input {cfg.input_size}px, channels {', '.join(cfg.channels)}")
            for line in provenance_summary(name, preset):
                print(f"    {line}")
        if args.verbose:
            print("  options: " + ", ".join(f.name for f in dataclasses.fields(spec.config_cls)))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run an experiment in this process and store it: --protocol loso (default), "
                       "composite, kfold or holdout; `mer loso` / `mer train` fix it to loso / holdout")
    add_experiment_args(p, protocol_default=None)
    p.set_defaults(handler=cmd_experiment)

    # the short forms: no help= keeps them out of `mer --help` (argparse prints help=SUPPRESS as '==SUPPRESS==')
    for name, protocol, what in (("loso", "loso", "a leave-one-subject-out evaluation"),
                                 ("train", "holdout", "one train/test split on held-out subjects (a quick demo)")):
        p = sub.add_parser(name, description=f"mer run --protocol {protocol}: {what} in this process, stored as a run")
        add_experiment_args(p, protocol_default=protocol)
        p.set_defaults(handler=lambda a, protocol=protocol: cmd_experiment(a, protocol))

    p = sub.add_parser("runs", help="list stored runs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_runs)

    p = sub.add_parser("show", help="print a stored run's metrics and per-subject table")
    p.add_argument("run_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_show)

    p = sub.add_parser("models", help="list registered models and their presets")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(handler=cmd_models)
