"""Studies: a named grid of arms (model x preset x options) x seeds on one dataset and protocol.

Each cell of the grid is an ordinary run, submitted through the job queue
(:func:`mer_core.jobs.queue.submit`) with a config resolved by
:func:`mer_core.training.experiment.resolve_experiment`, so a cell runs on any
executor (Ray included) and resumes like any job. The store keeps the study's
definition and, per cell, the job and run ids (``studies``/``study_cells``).

A study file (``mer study submit study.toml``)::

    name = "mfdan-ablation"
    dataset = "synthetic"        # every arm's dataset (an arm may repeat it, not change it)
    protocol = "loso"
    seeds = [0, 1, 2]            # default [0, 1, 2]
    [options]                    # ExperimentConfig keys shared by every arm
    epochs = 2
    [[arms]]
    name = "MFDAN"
    model = "mfdan"
    preset = "cpu"               # default auto: the CPU preset the dataset's inputs can feed
    [[arms]]
    name = "MFDAN without DropKey"
    model = "mfdan"
    [arms.model_options]
    dropkey = 0.0

Refused, with a message naming the arm: one arm, arms on different datasets,
no seed, a repeated seed, two arms with the same name or the same config, an
arm whose config does not resolve (unknown model or preset, an option the
model lacks, a class set the dataset does not offer) or, with ``check``, whose
preset the dataset cannot feed (the job plan fails).

**Spotting studies.** On a long-video dataset (``mer datasets list``, e.g.
``synthetic-long``) the arms are spotters: ``spotter = "motion_curve"`` or
``"learned"`` instead of ``model``, and ``options`` are
:class:`mer_core.spotting.loso.SpotConfig` keys (``iou``, ``stabilise``,
``recognise``; the study's ``[options]`` may also hold ``dataset_options`` and
``root``, which an arm may not change: every arm spots the same videos)::

    name = "spotters"
    dataset = "synthetic-long"   # the default when every arm is a spotter
    seeds = [0, 1, 2]
    [options.dataset_options]    # the indexer's options, shared by every arm
    subjects = 4
    [[arms]]
    name = "motion curve"
    spotter = "motion_curve"
    [[arms]]
    name = "learned"
    spotter = "learned"

Each cell is a spotting job (:func:`mer_core.jobs.queue.submit_spotting` of a
``SpotConfig`` with the cell's seed), recorded in ``study_cells`` like a
recognition cell, so submit, show, resume, cancel, export and the Study page
work alike. The report (:func:`mer_core.evaluation.study_stats.analyse_spotting`)
gives per arm the mean +- sd over seeds of the pooled micro, macro and overall
F1 each run stored, the chance F1 of its intervals placed at random
(:func:`mer_core.spotting.chance.run_chance`) and the paired test over
subjects on the per-subject F1 the runs stored. The motion curve uses no
seed: its cells repeat one figure, and the table says "deterministic" rather
than showing an sd of 0. Refused too: a study mixing spotting and recognition
arms, a spotter on a recognition dataset or a model on a long-video one, a
protocol other than LOSO, an option SpotConfig lacks (named). MLflow export
and the time preview are for recognition studies only.
"""
from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from mer_core.config import ExperimentConfig
from mer_core.errors import MerError
from mer_core.evaluation.mlflow_export import log_study
from mer_core.evaluation.study_stats import analyse, analyse_spotting
from mer_core.evaluation.study_table import paper_table
from mer_core.jobs import plan as job_plan, queue
from mer_core.spotting.indexers import is_long_dataset, list_long_datasets
from mer_core.store.db import RunStore
from mer_core.store.jobs import ACTIVE

# The model registry and the experiment resolution are imported in the functions that resolve a cell:
# they load torch (about 2 s of CPU), which `mer study show`, `list` and `export` never need.

DEFAULT_SEEDS = (0, 1, 2)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ +-]{0,79}$")
_ARM_KEYS = {"name", "model", "preset", "dataset", "options", "model_options", "spotter"}
_SPOT_ARM_KEYS = {"name", "spotter", "dataset", "options"}
SPOTTING, RECOGNITION = "spotting", "recognition"  # StudySpec.kind
# SpotConfig keys a spotting study sets: every arm spots the same videos (dataset options in the study's [options])
_SPOT_STUDY_ONLY = ("dataset_options", "root")
_SPOT_FIXED = ("dataset", "seed", "spotter")  # the study's dataset, the cell's seed, the arm's spotter
_STUDY_KEYS = {"name", "dataset", "protocol", "seeds", "options", "arms", "description"}


@dataclass(frozen=True)
class Arm:
    """One method of a study: a model at a preset with options (ExperimentConfig keys and model options)."""

    name: str
    model: str
    preset: str = "auto"  # resolved like every command's (mer_core.training.experiment)
    options: Mapping[str, Any] = field(default_factory=dict)  # a spotting arm: SpotConfig keys
    model_options: Mapping[str, Any] = field(default_factory=dict)
    dataset: str = ""  # '' = the study's
    spotter: str = ""  # a spotting arm's spotter (motion_curve | learned); then model and preset are ''


@dataclass(frozen=True)
class StudySpec:
    name: str
    dataset: str
    arms: tuple[Arm, ...]
    protocol: str = "loso"
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    options: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def kind(self) -> str:
        """'spotting' when an arm is a spotter (:func:`validate` refuses a mix), else 'recognition'."""
        return SPOTTING if any(a.spotter for a in self.arms) else RECOGNITION

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["arms"] = [{k: v for k, v in dataclasses.asdict(a).items() if v not in ("", {})} for a in self.arms]
        data["seeds"] = list(self.seeds)
        return data


# --- reading a definition ---------------------------------------------------------
def parse_study(data: Mapping[str, Any], *, where: str = "study") -> StudySpec:
    """A StudySpec from a mapping (a parsed TOML file, a form); unknown keys are errors."""
    if not isinstance(data, Mapping):
        raise MerError(f"{where}: expected a table of study keys, got {type(data).__name__}")
    unknown = sorted(set(data) - _STUDY_KEYS)
    if unknown:
        raise MerError(f"{where}: unknown key(s) {unknown}; valid keys: {', '.join(sorted(_STUDY_KEYS))}")
    arms_in = data.get("arms") or []
    if not isinstance(arms_in, (list, tuple)):
        raise MerError(f"{where}: 'arms' must be a list of tables ([[arms]] in TOML)")
    arms = tuple(_parse_arm(a, i, where) for i, a in enumerate(arms_in))
    seeds = data.get("seeds", list(DEFAULT_SEEDS))
    if not isinstance(seeds, (list, tuple)) or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise MerError(f"{where}: seeds={seeds!r}: expected a list of integers, e.g. [0, 1, 2]")
    default = "synthetic-long" if arms and all(a.spotter for a in arms) else "synthetic"
    dataset = str(data.get("dataset") or (arms[0].dataset if arms else "") or default)
    options = data.get("options") or {}
    if not isinstance(options, Mapping):
        raise MerError(f"{where}: 'options' must be a table of ExperimentConfig keys")
    return StudySpec(name=str(data.get("name", "")).strip(), dataset=dataset, arms=arms,
                     protocol=str(data.get("protocol", "loso")), seeds=tuple(seeds), options=dict(options),
                     description=str(data.get("description", "")))


def _parse_arm(data: Any, index: int, where: str) -> Arm:
    label = f"{where}: arm {index + 1}"
    if not isinstance(data, Mapping):
        raise MerError(f"{label}: expected a table with name, model, preset")
    label = f"{where}: arm {data.get('name', index + 1)!r}"
    unknown = sorted(set(data) - _ARM_KEYS)
    if unknown:
        raise MerError(f"{label}: unknown key(s) {unknown}; valid keys: {', '.join(sorted(_ARM_KEYS))}")
    if data.get("spotter") and data.get("model"):
        raise MerError(f"{label}: names both a model and a spotter; a recognition arm has model = ..., a spotting "
                       "arm spotter = ...")
    if not data.get("model") and not data.get("spotter"):
        raise MerError(f"{label}: no model given (or spotter, for a spotting study on a long-video dataset)")
    for key in ("options", "model_options"):
        if not isinstance(data.get(key, {}), Mapping):
            raise MerError(f"{label}: {key!r} must be a table")
    if data.get("spotter"):
        wrong = sorted(set(data) - _SPOT_ARM_KEYS)
        if wrong:
            raise MerError(f"{label}: a spotting arm takes no {wrong}; its keys: {', '.join(sorted(_SPOT_ARM_KEYS))}")
        return Arm(name=str(data.get("name") or data["spotter"]).strip(), model="", preset="",
                   options=dict(data.get("options", {})), dataset=str(data.get("dataset", "")),
                   spotter=str(data["spotter"]))
    name = str(data.get("name") or data["model"]).strip()
    return Arm(name=name, model=str(data["model"]), preset=str(data.get("preset", "auto")),
               options=dict(data.get("options", {})), model_options=dict(data.get("model_options", {})),
               dataset=str(data.get("dataset", "")))


def load_study_file(path: str | Path) -> StudySpec:
    """Read a study TOML file; errors name the file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MerError(f"{path}: cannot read the study file ({exc.strerror or exc})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MerError(f"{path}: not a valid TOML study file ({exc})") from exc
    return parse_study(data, where=str(path))


def ablation_arms(model: str, preset: str = "cpu", components: Sequence[str] | None = None) -> list[Arm]:
    """The full model plus one arm per component switched off ("<model> without <component>").

    A component is a model option that is on at the preset: a boolean that is
    true, or a drop/regularisation rate above 0 (DropKey, drop path). ``None``
    takes every such option.
    """
    from mer_core.models.registry import model_config  # lazy: loads torch (about 2 s)

    cfg = model_config(model, preset)
    offable = {f.name: (False if isinstance(getattr(cfg, f.name), bool) else 0.0)
               for f in dataclasses.fields(cfg) if f.name not in ("num_classes", "input_size", "channels")
               and (getattr(cfg, f.name) is True or ("drop" in f.name and isinstance(getattr(cfg, f.name), float)
                                                      and getattr(cfg, f.name) > 0))}
    chosen = list(offable) if components is None else list(components)
    missing = [c for c in chosen if c not in offable]
    if missing:
        raise MerError(f"model {model!r} preset {preset!r}: cannot ablate {missing}; components that are on: "
                       f"{', '.join(offable) or 'none'}")
    arms = [Arm(name=model, model=model, preset=preset)]
    arms += [Arm(name=f"{model} without {c}", model=model, preset=preset, model_options={c: offable[c]})
             for c in chosen]
    return arms


# --- validation ---------------------------------------------------------------------
def cell_config(spec: StudySpec, arm: Arm, seed: int) -> Any:
    """The cell's config: an ExperimentConfig, or for a spotting arm a SpotConfig (:func:`spot_config`)."""
    if arm.spotter:
        return spot_config(spec, arm, seed)
    from mer_core.training.experiment import resolve_experiment  # lazy: loads torch (about 2 s)

    overrides = {**dict(spec.options), **dict(arm.options), "protocol": spec.protocol, "seed": int(seed)}
    return resolve_experiment(arm.dataset or spec.dataset, arm.model, arm.preset, overrides=overrides,
                              model_options=arm.model_options or None)


def spot_config(spec: StudySpec, arm: Arm, seed: int) -> Any:
    """A spotting arm's SpotConfig for ``seed``: the study's options, then the arm's; unknown keys named."""
    from mer_core.spotting.loso import SpotConfig  # lazy: loads scikit-learn and scipy (about 1 s)

    valid = sorted(f.name for f in dataclasses.fields(SpotConfig) if f.name not in _SPOT_FIXED)
    for where, options, refused in (("the study's [options]", spec.options, _SPOT_FIXED),
                                    ("its options", arm.options, _SPOT_FIXED + _SPOT_STUDY_ONLY)):
        fixed = sorted(set(options) & set(refused))
        if fixed:
            raise MerError(f"{where}: {fixed} cannot be set here ("
                           + ("every arm spots the same videos: set them in the study's [options]"
                              if set(fixed) <= set(_SPOT_STUDY_ONLY) else
                              "the dataset is the study's, the seed each cell's, the spotter the arm's") + ")")
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise MerError(f"{where}: unknown spotting option(s) {unknown}; valid: {', '.join(valid)}")
    return SpotConfig(**{**dict(spec.options), **dict(arm.options), "dataset": spec.dataset, "spotter": arm.spotter,
                         "seed": int(seed)})


def _check_kind(spec: StudySpec) -> None:
    """One kind of arm per study, on a dataset of that kind (spotting: a long-video dataset, LOSO)."""
    spotting = spec.kind == SPOTTING
    for arm in spec.arms:
        if bool(arm.spotter) != spotting:
            first = next(a for a in spec.arms if a.spotter)
            raise MerError(f"arm {arm.name!r} is a recognition arm (model {arm.model!r}) but arm {first.name!r} is "
                           "a spotting arm: a study compares spotters or recognition models, not both")
    long = is_long_dataset(spec.dataset)
    if spotting and not long:
        raise MerError(f"arm {spec.arms[0].name!r} is a spotter but dataset {spec.dataset!r} is not a long-video "
                       f"dataset; spotting studies use one of: {', '.join(list_long_datasets())}")
    if not spotting and long and spec.arms:
        raise MerError(f"arm {spec.arms[0].name!r} is a recognition arm (model {spec.arms[0].model!r}) but "
                       f"{spec.dataset!r} is a long-video dataset: its arms are spotters (spotter = \"motion_curve\" "
                       "or \"learned\")")
    if spotting and spec.protocol != "loso":
        raise MerError(f"study {spec.name!r}: protocol {spec.protocol!r}: spotting is scored under LOSO only "
                       "(protocol = \"loso\", the default)")


def validate(spec: StudySpec, *, check: Callable[[Any], Any] | None = None) -> dict[str, list[Any]]:
    """{arm name: one resolved config per seed}; MerError naming the arm (or the seeds) when refused."""
    if not _NAME.match(spec.name or ""):
        raise MerError(f"study name {spec.name!r}: expected 1-80 letters, digits, spaces or ._+- "
                       "(starting with a letter or digit)")
    if len(spec.arms) < 2:
        only = f" (only {spec.arms[0].name!r})" if spec.arms else ""
        raise MerError(f"study {spec.name!r} has {len(spec.arms)} arm{only}: a study compares at least two arms; "
                       "for one method use `mer submit`")
    if not spec.seeds:
        raise MerError(f"study {spec.name!r}: zero seeds; give at least one (default {list(DEFAULT_SEEDS)})")
    repeated = sorted({s for s in spec.seeds if list(spec.seeds).count(s) > 1})
    if repeated:
        raise MerError(f"study {spec.name!r}: seed(s) {repeated} repeated in {list(spec.seeds)}; each seed once")
    _check_kind(spec)
    configs: dict[str, list[Any]] = {}
    seen: dict[str, str] = {}
    for arm in spec.arms:
        if arm.dataset and arm.dataset != spec.dataset:
            raise MerError(f"arm {arm.name!r} is on dataset {arm.dataset!r} but the study is on {spec.dataset!r}: "
                           "every arm of a study uses the same dataset")
        if arm.name in configs:
            raise MerError(f"arm {arm.name!r} appears twice; give each arm its own name")
        try:
            cells = [cell_config(spec, arm, s) for s in spec.seeds]
        except MerError as exc:
            raise MerError(f"arm {arm.name!r}: {exc}") from exc
        key = cells[0].to_json() if arm.spotter else cells[0].stable_hash()
        if key in seen:
            what = "spotter and options" if arm.spotter else "model, preset and options"
            raise MerError(f"arm {arm.name!r} is a duplicate of arm {seen[key]!r} (same {what})")
        seen[key] = arm.name
        if check is not None and not (arm.spotter and configs):  # every arm spots the same videos: one check
            try:
                check(cells[0])
            except MerError as exc:
                what = "be spotted" if arm.spotter else f"feed preset {arm.preset!r} of {arm.model!r}"
                raise MerError(f"arm {arm.name!r}: the dataset {spec.dataset!r} cannot {what}: {exc}") from exc
        configs[arm.name] = cells
    return configs


def plan_check(config: Any) -> Any:
    """The deep check of an arm: index the dataset and resolve the model input (the job plan); for a spotting
    arm, index the long-video dataset and split it into LOSO folds (what its job does first)."""
    if not isinstance(config, ExperimentConfig):
        from mer_core.spotting.loso import load_dataset, spot_folds  # lazy: loads scikit-learn and scipy (about 1 s)

        return spot_folds(load_dataset(config))
    return job_plan.plan(config)


# --- submitting and managing ----------------------------------------------------------
def submit_study(spec: StudySpec, *, store: RunStore, start: bool = True,
                 check: Callable[[Any], Any] | None = None) -> pd.DataFrame:
    """Validate, store the definition, queue every cell; returns the cells."""
    configs = validate(spec, check=check)
    store.create_study(spec.name, dataset=spec.dataset, protocol=spec.protocol, definition=spec.to_dict())
    for arm in spec.arms:
        for seed, config in zip(spec.seeds, configs[arm.name]):
            _submit_cell(store, spec.name, arm.name, seed, config)
    if start:
        queue.kick(store)
    return store.study_cells(spec.name)


def _submit_cell(store: RunStore, study: str, arm: str, seed: int, config: Any) -> str:
    name = f"{study} / {arm} / seed {seed}"
    if isinstance(config, ExperimentConfig):
        job_id = queue.submit(config, store=store, name=name, start=False)
    else:  # a spotting arm's SpotConfig
        job_id = queue.submit_spotting(config, store=store, name=name, start=False)
    store.set_study_cell(study, arm, seed, job_id=job_id, run_id=queue.get_job(store, job_id)["run_id"])
    return job_id


def load_spec(store: RunStore, name: str) -> StudySpec:
    return parse_study(store.get_study(name)["definition"], where=f"study {name!r}")


def stored_kind(study: Mapping[str, Any]) -> str:
    """'spotting' or 'recognition' of a stored study row (its definition read as stored, not re-validated)."""
    arms = (study.get("definition") or {}).get("arms") or []
    return SPOTTING if any(isinstance(a, Mapping) and a.get("spotter") for a in arms) else RECOGNITION


def cancel_study(store: RunStore, name: str) -> dict[str, int]:
    """Cancel every queued or running cell; returns {new status: count}."""
    counts: dict[str, int] = {}
    for cell in store.study_cells(name).itertuples():
        if cell.job_id and cell.job_status in ("queued", *ACTIVE):
            status = queue.cancel(store, cell.job_id)
            counts[status] = counts.get(status, 0) + 1
    return counts


def resume_study(store: RunStore, name: str, *, start: bool = True) -> dict[str, int]:
    """Re-queue failed and cancelled cells (their finished folds are kept) and submit cells never queued."""
    from mer_core.training.experiment import check_executor  # lazy: loads torch (about 2 s)

    spec = load_spec(store, name)
    for options in (spec.options, *(arm.options for arm in spec.arms)):  # refused before any cell is re-queued
        check_executor(str(options.get("executor", "")))
    cells = store.study_cells(name)
    have = {(c.arm, int(c.seed)) for c in cells.itertuples() if c.job_id}
    counts = {"resumed": 0, "submitted": 0}
    for cell in cells.itertuples():
        if cell.job_id and cell.job_status in ("failed", "cancelled"):
            queue.resume(store, cell.job_id, start=False)
            counts["resumed"] += 1
    for arm in spec.arms:
        for seed in spec.seeds:
            if (arm.name, int(seed)) not in have:
                _submit_cell(store, name, arm.name, seed, cell_config(spec, arm, seed))
                counts["submitted"] += 1
    if start:
        queue.kick(store)
    return counts


def study_inputs(store: RunStore, name: str) -> dict[str, Any]:
    """What the statistics need: the definition and, per cell, its run row, predictions and epochs
    (a spotting study: its spotting run, with the summary the run stored, and its chance scores)."""
    study = store.get_study(name)
    if stored_kind(study) == SPOTTING:
        return _spot_inputs(store, study)
    cells = []
    for c in store.study_cells(name).to_dict("records"):
        has = bool(c["run_id"]) and store.has_run(c["run_id"])
        run = store.get_run(c["run_id"]) if has else None
        cells.append({**c, "run": run,
                      "predictions": store.predictions(c["run_id"]) if has else pd.DataFrame(),
                      "epochs": store.epochs(c["run_id"]) if has else pd.DataFrame()})
    arms = [a["name"] for a in study["definition"].get("arms", [])]
    return {"study": study, "arms": arms, "cells": cells}


def _spot_inputs(store: RunStore, study: dict[str, Any]) -> dict[str, Any]:
    from mer_core.spotting.chance import run_chance  # lazy: loads scipy (about 1 s)
    from mer_core.spotting.spotters import make_spotter  # lazy: loads scipy (about 1 s)

    arms = [a for a in study["definition"].get("arms", []) if isinstance(a, Mapping)]
    spotter = {str(a.get("name") or a.get("spotter")): str(a.get("spotter") or "") for a in arms}
    cells = []
    for c in store.study_cells(study["name"]).to_dict("records"):
        has = bool(c["run_id"]) and store.has_spot_run(c["run_id"])
        run = store.get_spot_run(c["run_id"]) if has else None
        done = bool(run) and run["status"] == "done"
        kind = spotter.get(str(c["arm"])) or (run or {}).get("spotter") or ""
        cells.append({**c, "run": run, "chance": run_chance(store, c["run_id"]) if done else None,
                      "deterministic": bool(kind) and not make_spotter(kind).uses_seed})
    return {"study": study, "arms": list(spotter), "cells": cells}


def study_report(store: RunStore, name: str, **options: Any) -> Any:
    """The study's statistics (:class:`mer_core.evaluation.study_stats.StudyReport`; a spotting study's:
    :func:`mer_core.evaluation.study_stats.analyse_spotting`, which takes no bootstrap)."""
    data = study_inputs(store, name)
    if stored_kind(data["study"]) == SPOTTING:
        options.pop("n_boot", None)  # no bootstrap interval for spotting F1
        return analyse_spotting(data["cells"], arms=data["arms"], name=name, **options)
    return analyse(data["cells"], arms=data["arms"], name=name, **options)


def study_to_mlflow(store: RunStore, name: str, *, tracking_uri: str | None = None, n_boot: int = 1000) -> Any:
    """Log the study to MLflow (:func:`mer_core.evaluation.mlflow_export.log_study`): the parent run gets the
    paper table as Markdown, CSV and LaTeX, each complete cell a child run with its run's config."""
    if stored_kind(store.get_study(name)) == SPOTTING:
        raise MerError(f"study {name!r} is a spotting study: MLflow export covers recognition studies only; "
                       f"export its table with `mer study export {name} --format md|csv|latex`")
    data = study_inputs(store, name)
    report = analyse(data["cells"], arms=data["arms"], name=name, n_boot=n_boot)
    if report.table.empty or not report.cells["complete"].any():
        raise MerError(f"study {name!r} has no complete cell to log to MLflow; see `mer study show {name}`")
    configs = {str(c["run_id"]): (c["run"] or {}).get("config") or {} for c in data["cells"] if c["run"]}
    tables = {f"{name}.{ext}": paper_table(report, fmt) for fmt, ext in (("md", "md"), ("csv", "csv"),
                                                                        ("latex", "tex"))}
    return log_study(report, data["study"]["definition"], configs, tables, tracking_uri=tracking_uri)


def preview(spec: StudySpec, plan_fn: Callable[[ExperimentConfig], Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """What submitting ``spec`` queues: {"jobs", "seconds", "arms": [{"name", "model", "epochs", "seconds",
    "pretrain", "pretrain_epochs"}...]} (``pretrain``: the macro data set the arm pre-trains on, "" for none).

    Each arm's config is resolved as its cells' are (its own preset's epochs
    unless the study's options set them); its time is the job plan's estimate
    (``plan_fn``, default :func:`mer_core.jobs.plan.plan`) for one seed, and
    every seed costs the same. ``seconds`` is the sum over all cells, as if
    they ran one after another.
    """
    if spec.kind == SPOTTING:
        raise MerError(f"study {spec.name!r} is a spotting study: the time preview covers recognition studies only")
    if plan_fn is None:
        plan_fn = job_plan.plan
    arms, total = [], 0.0
    seed = spec.seeds[0] if spec.seeds else 0
    for arm in spec.arms:
        cfg = cell_config(spec, arm, seed)
        seconds = float(plan_fn(cfg)["estimated_seconds"])
        arms.append({"name": arm.name, "model": cfg.model, "epochs": int(cfg.epochs), "seconds": seconds,
                     "pretrain": cfg.pretrain, "pretrain_epochs": int(cfg.pretrain_epochs)})
        total += seconds * len(spec.seeds)
    return {"jobs": len(spec.arms) * len(spec.seeds), "seconds": total, "arms": arms}
