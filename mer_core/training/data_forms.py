"""Which inputs a sample table gives and which model presets they can feed.

A dataset comes in one of three forms: **frames** (every channel can be
made), **precomputed flow + apex images**, or **apex (and onset) images
only**. :func:`table_inputs` reads the form off the table's columns
(``frames``, ``flow_path``, ``apex_image_path``, ``onset_image_path``);
:func:`preset_fit` says whether a preset's channels can be made from it.
These are facts about tables; the choice of a preset (``auto`` included) is
made in one place, :mod:`mer_core.training.experiment`.

Channels from single images: flow from a flow image, or computed from onset +
apex images; ``diff`` needs onset and apex images; ``magnified_*`` needs a
sequence (Eulerian magnification filters over time), so on single images it
is the plain image and the run notes say so (:func:`input_notes`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import pandas as pd

from mer_core.datasets.registry import index_dataset
from mer_core.errors import ConfigError
from mer_core.preprocess.channels import FLOW_CHANNELS

INPUTS = ("frames", "flow", "apex", "onset")
EVM_NOTE = ("{ch}: magnification (EVM) needs a frame sequence; this dataset has single images, so {ch} is the "
            "plain {plain} image, unmagnified")


@dataclass(frozen=True)
class Fit:
    preset: str
    missing: tuple[str, ...]  # channels the table cannot give
    notes: tuple[str, ...]  # channels given by a fallback (EVM on single images)

    @property
    def ok(self) -> bool:
        return not self.missing

    @property
    def exact(self) -> bool:
        return self.ok and not self.notes


def table_inputs(table: pd.DataFrame) -> frozenset[str]:
    """The inputs every row of the table gives: {'frames'} or a subset of {'flow', 'apex', 'onset'}."""
    common: set[str] | None = None
    for row in table.itertuples(index=False):
        have = {"frames", "flow", "apex", "onset"} if len(getattr(row, "frames", ()) or ()) >= 2 else {
            name for name, col in (("flow", "flow_path"), ("apex", "apex_image_path"), ("onset", "onset_image_path"))
            if str(getattr(row, col, "") or "") not in ("", "nan")}
        common = have if common is None else common & have
    return frozenset(common or ())


def form_of(inputs: Iterable[str]) -> str:
    inputs = set(inputs)
    if "frames" in inputs:
        return "frames"
    if "flow" in inputs or {"apex", "onset"} <= inputs:  # flow is computed from onset + apex images
        return "flow+apex" if "apex" in inputs else "flow"
    return "apex"


def describe_inputs(inputs: Iterable[str]) -> str:
    """'this dataset has flow and apex images, no frames' and the like."""
    inputs = set(inputs)
    if "frames" in inputs:
        return "this dataset has frames (every input can be computed)"
    names = [n for n in ("flow", "apex", "onset") if n in inputs]
    if not names:
        return "this dataset gives no usable input (no frames, flow, apex or onset images)"
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"this dataset has {listed} images, no frames"


def _channel(ch: str, inputs: set[str]) -> tuple[bool, str]:
    """(can be made, fallback note or '')."""
    if "frames" in inputs:
        return True, ""
    if ch in FLOW_CHANNELS:
        return "flow" in inputs or {"apex", "onset"} <= inputs, ""
    if ch in ("apex", "onset"):
        return ch in inputs, ""
    if ch == "diff":
        return {"apex", "onset"} <= inputs, ""
    plain = ch.removeprefix("magnified_")
    if plain in inputs:
        return True, EVM_NOTE.format(ch=ch, plain=plain)
    return False, ""


def preset_fit(model: str, preset: str, inputs: Iterable[str]) -> Fit:
    from mer_core.models.registry import model_config  # lazy: loads torch (about 2 s)

    inputs = set(inputs)
    missing, notes = [], []
    for ch in model_config(model, preset).channels:
        ok, note = _channel(ch, inputs)
        if not ok:
            missing.append(ch)
        elif note:
            notes.append(note)
    return Fit(preset, tuple(missing), tuple(notes))


def fitting_presets(model: str, inputs: Iterable[str]) -> list[str]:
    from mer_core.models.registry import list_presets  # lazy: loads torch (about 2 s)

    inputs = set(inputs)
    return [p for p in list_presets(model) if preset_fit(model, p, inputs).ok]


CANONICAL_INPUTS: dict[str, frozenset[str]] = {
    "frames": frozenset(INPUTS), "flow+apex": frozenset({"flow", "apex"}), "apex": frozenset({"apex"}),
    "flow": frozenset({"flow"}),
}


def no_fit_message(model: str, preset: str, inputs: Iterable[str]) -> str:
    """One message: why the preset cannot be fed, and the presets (of this model, then of others) that fit."""
    from mer_core.models.registry import list_models, model_config  # lazy: loads torch (about 2 s)

    inputs = set(inputs)
    what = describe_inputs(inputs)
    if preset == "auto":
        head = f"model {model!r}: no preset can be fed from this dataset ({what})"
    else:
        fit = preset_fit(model, preset, inputs)
        channels = ", ".join(model_config(model, preset).channels)
        head = (f"preset {model}/{preset} needs channel(s) {channels}; {', '.join(fit.missing)} cannot be made: "
                f"{what} (flow needs a flow image or onset+apex images; 'diff' needs onset and apex images)")
    own = fitting_presets(model, inputs)
    if own:
        return f"{head}; presets of {model} that fit: {', '.join(own)} (or --preset auto)"
    others = [f"{m} ({', '.join(fitting_presets(m, inputs))})" for m in list_models() if m != model and fitting_presets(m, inputs)]
    return f"{head}; no preset of {model} fits; models that fit: {', '.join(others) or 'none'}"


def check_preset(model: str, preset: str, inputs: Iterable[str]) -> Fit:
    """The fit of a forced preset; ConfigError (one message listing the presets that fit) when it cannot be fed."""
    fit = preset_fit(model, preset, inputs)
    if not fit.ok:
        raise ConfigError(no_fit_message(model, preset, inputs))
    return fit


def input_notes(channels: Iterable[str], table: pd.DataFrame) -> list[str]:
    """Run notes on how the table feeds the channels (EVM on single images)."""
    inputs = set(table_inputs(table))
    return [note for ch in channels for ok, note in [_channel(ch, inputs)] if ok and note]


def dataset_inputs(dataset: str, options: dict[str, Any] | None = None) -> frozenset[str]:
    """The inputs a dataset gives, cheaply: the indexers of recordings give frames; a manifest, and the realism
    variant (whose form is an option), are read."""
    readable = {"manifest": ("root", "manifest", "dataset", "flow_encoding"),
                "synthetic-realism": ("form", "seed", "subjects")}
    if dataset not in readable:
        return frozenset(INPUTS)

    opts = {k: v for k, v in dict(options or {}).items() if k in readable[dataset]}
    return table_inputs(index_dataset(dataset, **opts))


def all_failed_message(model: str, preset: str, channels: Iterable[str], table: pd.DataFrame, report: pd.DataFrame) -> str:
    """What to say when every clip failed preprocessing: the first error and the presets that would fit."""
    first = report.iloc[0] if len(report) else None
    errors = (report["error"].astype(str).str.replace(r"^\S+: ", "", regex=True).value_counts()
              if len(report) and "error" in report.columns else pd.Series(dtype=int))
    cause = f"{errors.index[0]} ({errors.iloc[0]} clip(s))" if len(errors) else "unknown error"
    inputs = table_inputs(table)
    fits = fitting_presets(model, inputs)
    hint = (f"presets of {model} that fit this dataset ({describe_inputs(inputs)}): {', '.join(fits)} (or --preset auto)"
            if fits else no_fit_message(model, "auto", inputs))
    sid = f" first: {first['sample_id']}" if first is not None and "sample_id" in report.columns else ""
    return (f"every one of the {len(table)} clips failed preprocessing for {model}/{preset} "
            f"(channels {', '.join(channels)}); most common error: {cause};{sid}. {hint}")
