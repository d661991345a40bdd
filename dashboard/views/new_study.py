"""New study: several arms x several seeds on one dataset, queued as ordinary jobs.

Arms are picked from the registered models and their presets, or filled by
"ablate one component" (the full model plus one arm per component switched
off). Submit validates the whole grid with the library (one arm, duplicate
arms, repeated seeds... are refused with a message naming the arm) and queues
every cell through dashboard.writes; the Study page follows it.
"""
from __future__ import annotations

import json
from typing import Any

import streamlit as st

from dashboard import reads, widgets, writes
from dashboard.widgets import plain
from mer_core.config import PROTOCOLS
from mer_core.datasets.registry import list_datasets
from mer_core.errors import MerError
from mer_core.models.registry import list_models, list_presets

K_NAME = "ns_name"
K_DATASET = "ns_dataset"
K_PROTOCOL = "ns_protocol"
K_SEEDS = "ns_seeds"
K_EPOCHS = "ns_epochs"
K_SAME_EPOCHS = "ns_same_epochs"
PRETRAIN_MODELS = ("dense_attention",)  # models whose description promises transfer learning
K_MODE = "ns_mode"
K_ARMS = "ns_arms"
K_ABL_MODEL = "ns_ablate_model"
K_ABL_PRESET = "ns_ablate_preset"
K_ABL_ARMS = "ns_ablate_arms"
K_SUBMIT = "ns_submit"
K_DONE = "ns_submitted"
MODES = ("pick arms", "ablate one component")


def parse_seeds(text: str) -> list[int]:
    """'0, 1, 2' -> [0, 1, 2]; a value that is no integer is a MerError naming it."""
    seeds = []
    for part in text.replace(";", ",").split(","):
        if part.strip():
            try:
                seeds.append(int(part.strip()))
            except ValueError:
                raise MerError(f"seed {part.strip()!r}: expected whole numbers separated by commas") from None
    return seeds


def picked_arms(presets: dict[str, list[str]]) -> list[dict[str, Any]]:
    choices = [f"{m} / {p}" for m, ps in presets.items() for p in ps]
    chosen = st.multiselect("arms (model / preset)", choices, key=K_ARMS,
                            help="each arm is run with every seed; pick two or more")
    arms = []
    for choice in chosen:
        model, preset = choice.split(" / ")
        arms.append({"name": model if preset == "cpu" else f"{model} ({preset})", "model": model, "preset": preset})
    return arms


def ablated_arms(presets: dict[str, list[str]]) -> list[dict[str, Any]]:
    left, right = st.columns(2)
    models = list(presets)
    model = left.selectbox("model to ablate", models, index=models.index("mfdan") if "mfdan" in models else 0,
                           key=K_ABL_MODEL)
    preset = right.selectbox("preset", presets[model], key=K_ABL_PRESET)
    try:
        arms = reads.ablation_arms(model, preset)
    except MerError as exc:
        st.error(plain(exc))
        return []
    names = [a["name"] for a in arms]
    keep = st.multiselect("arms (the full model and one per component switched off)", names, default=names,
                          key=f"{K_ABL_ARMS}_{model}_{preset}")
    return [{k: v for k, v in a.items() if v not in ("", {})} for a in arms if a["name"] in keep]


def _prefill() -> None:
    """Defaults from a link (``?arms=model/preset,...&dataset=...&protocol=...``, e.g. from Compare), once."""
    qp = st.query_params
    if qp.get("arms") and K_ARMS not in st.session_state:
        presets = {m: list_presets(m) for m in list_models()}
        arms = [a.strip().replace("/", " / ") for a in str(qp["arms"]).split(",") if a.strip()]
        st.session_state[K_ARMS] = [a for a in arms if a.split(" / ")[0] in presets
                                    and a.split(" / ")[-1] in presets[a.split(" / ")[0]]]
    if qp.get("dataset") in list_datasets() and K_DATASET not in st.session_state:
        st.session_state[K_DATASET] = qp["dataset"]
    if qp.get("protocol") in PROTOCOLS and K_PROTOCOL not in st.session_state:
        st.session_state[K_PROTOCOL] = qp["protocol"]


def _preview(definition: dict[str, Any]) -> None:
    """The number of jobs and the estimated time, with each arm's epochs, before anything is queued."""
    out = reads.study_preview(json.dumps(definition))
    if "error" in out:
        st.caption(plain(f"No preview yet: {out['error']}"))
        return
    arms, seeds = len(definition["arms"]), len(definition["seeds"])
    st.info(plain(f"{out['jobs']} jobs ({arms} arm(s) x {seeds} seed(s)), estimated {widgets.duration(out['seconds'])} "
                  "run one after another (preprocessing included; a busy machine takes longer)."),
            icon=":material/schedule:")
    own = not definition["options"].get("epochs")
    st.caption(plain(" · ".join(f"{a['name']}: {a['epochs']} epochs" + (" (its preset's)" if own else "")
                                + f", about {widgets.duration(a['seconds'])} per seed" for a in out["arms"])))
    for a in out["arms"]:
        if a["model"] in PRETRAIN_MODELS:
            st.caption(plain(f"{a['name']}: " + (f"pre-trained on {a['pretrain']} for {a['pretrain_epochs']} epochs "
                                                 "before every fold (transfer learning)" if a["pretrain"] else
                                                 "no pre-training: trained from scratch (its paper preset pre-trains "
                                                 "on macro-expressions)")))


def render() -> None:
    st.title("New study")
    _prefill()
    st.caption("A study runs several arms (model x preset x options) with several seeds on the same data and "
               "folds, then compares them over subjects. Every cell is an ordinary background job.")
    c1, c2, c3 = st.columns(3)
    name = c1.text_input("study name", key=K_NAME, placeholder="e.g. mfdan-ablation")
    datasets = list_datasets()
    dataset = c2.selectbox("dataset", datasets, index=datasets.index("synthetic") if "synthetic" in datasets else 0,
                           key=K_DATASET)
    protocol = c3.selectbox("protocol", list(PROTOCOLS), key=K_PROTOCOL)
    c4, c5 = st.columns(2)
    seeds_text = c4.text_input("seeds", value="0, 1, 2", key=K_SEEDS, help="comma-separated; default three seeds")
    same = c5.checkbox("one epochs value for every arm", key=K_SAME_EPOCHS,
                       help="off: each arm trains for its own preset's epochs (as a single run of it would)")
    epochs = c5.number_input("epochs for every arm", min_value=1, max_value=500, value=20, key=K_EPOCHS) if same else None
    mode = st.radio("arms", MODES, horizontal=True, key=K_MODE)
    presets = {m: list_presets(m) for m in list_models()}
    arms = picked_arms(presets) if mode == MODES[0] else ablated_arms(presets)
    options = {"epochs": int(epochs)} if epochs else {}
    try:
        seeds = parse_seeds(seeds_text)
    except MerError as exc:
        st.error(plain(exc), icon=":material/block:")
        seeds = []
    if arms and seeds:
        _preview({"name": name.strip() or "preview", "dataset": dataset, "protocol": protocol, "seeds": seeds,
                  "options": options, "arms": arms})
    if st.button("Submit study", type="primary", key=K_SUBMIT):
        try:
            definition = {"name": name.strip(), "dataset": dataset, "protocol": protocol,
                          "seeds": parse_seeds(seeds_text), "options": options, "arms": arms}
            st.session_state[K_DONE] = (definition["name"], writes.submit_study(definition))
        except MerError as exc:
            st.error(plain(exc), icon=":material/block:")
    if K_DONE in st.session_state:
        study, n = st.session_state[K_DONE]
        st.success(plain(f"Study {study!r} queued: {n} jobs."), icon=":material/check_circle:")
        widgets.page_link("study", "Open the study", icon=":material/science:", query_params={reads.QP_STUDY: study})
