"""New experiment: choose data, model and hyperparameters, check them, queue a background job.

Nothing trains here: Submit writes a row to the jobs table and kicks the
scheduler, which starts a worker process (see mer_core.jobs.queue); the Jobs
page follows it live. Defaults come from the chosen model's preset (its
config dataclass and ``train_defaults``), so switching model resets them.
Every field is validated before submit with the library's own checks
(ExperimentConfig, the model config, the dataset indexer); a message appears
under the field at fault and Submit stays disabled.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

import streamlit as st

from dashboard import glossary, reads, reads_models, widgets, writes
from dashboard.widgets import plain
from mer_core.config import (AVERAGES, CLASS_BALANCE, EXECUTORS, FLOW_METHODS, FREEZE, LOSSES, OPTIMIZERS,
                             PROTOCOLS, SCHEDULERS, SELECTION, ExperimentConfig)
from mer_core.datasets.allowed import check_browser_path
from mer_core.datasets.classes import class_set_words
from mer_core.datasets.registry import dataset_info, list_datasets
from mer_core.errors import ConfigError, MerError
from mer_core.keyvalue import parse_lines
from mer_core.models.registry import (
    list_models, list_presets, model_config, model_spec, provenance_summary, train_defaults,
)
from mer_core.training.experiment import choose_preset, resolve_experiment, resolve_model_config
from mer_core.training.macro import macro_datasets

K_DATASET = "ne_dataset"
K_MODEL = "ne_model"
K_PRESET = "ne_preset"
K_SUBMIT = "ne_submit"
K_LAST_JOB = "ne_last_job"
K_ASK = "ne_ask_duplicate"  # (config hash, ids of queued/running jobs with that config) awaiting "Submit anyway"
K_AGAIN = "ne_submit_anyway"
K_FINAL = "ne_final_model"
PRETRAIN_MODELS = ("dense_attention",)  # models with the macro pre-training stage (mer_core.training.pretrain)
CHANNELS = ("flow_u", "flow_v", "strain", "onset", "apex", "diff", "magnified_apex", "magnified_onset")


def key(name: str, model: str, preset: str) -> str:
    """Widget key of a model-dependent field: a new model or preset gets fresh defaults."""
    return f"ne_{name}_{model}_{preset}"


def parse_options(text: str) -> dict[str, Any]:
    """Indexer options, one ``KEY=VALUE`` per line, typed like ``--dataset-option``; ConfigError names the line."""
    return parse_lines(text, None, "dataset options")


def field_errors(data_dict: dict[str, Any]) -> dict[str, str]:
    """Check each key alone against ExperimentConfig, then all together; field -> message."""
    errors: dict[str, str] = {}
    for k, v in data_dict.items():
        items = v.items() if k == "preprocess" else [(None, v)]
        for sub, value in items:
            probe = {k: {sub: value}} if sub else {k: value}
            try:
                ExperimentConfig.from_dict(probe)
            except MerError as exc:
                errors[f"preprocess.{sub}" if sub else k] = str(exc)
    if not errors:
        try:
            ExperimentConfig.from_dict(data_dict)
        except MerError as exc:
            match = re.match(r"([\w.]+)=", str(exc))
            errors[match.group(1) if match else "config"] = str(exc)
    if "preprocess.evm_high" in errors and "preprocess.evm_low" not in errors:
        errors["preprocess.evm_low"] = errors.pop("preprocess.evm_high")
    return errors


K_CLONED = "ne_cloned"
CLONED_FIELDS = ("epochs", "batch_size", "lr", "optimizer", "scheduler", "loss", "class_balance", "selection",
                 "nested_folds", "average", "ema_decay", "swa_epochs", "seeds_per_fold")


def apply_clone() -> None:
    """``?clone=RUN`` (the Runs page's Clone link): prefill the form's widgets from that run's config, once."""
    rid = st.query_params.get(reads.QP_CLONE)
    if not rid or st.session_state.get(K_CLONED) == rid:
        return
    st.session_state[K_CLONED] = rid
    cfg = reads.run_config(rid)
    if cfg is None:
        st.warning(plain(f"Run {rid!r} is not in the store: nothing to clone."))
        return
    model, preset, ss = cfg["model"], cfg["preset"], st.session_state
    ss[K_DATASET], ss[K_MODEL], ss[f"{K_PRESET}_{model}"] = cfg["dataset"], model, preset
    ss[f"ne_class_set_{cfg['dataset']}"], ss["ne_protocol"], ss["ne_seed"] = cfg["class_set"], cfg["protocol"], cfg["seed"]
    for name in CLONED_FIELDS:
        if name in cfg:  # a run stored before a key existed had its default
            ss[key(name, model, preset)] = cfg[name]
    ss[K_FINAL] = bool(cfg.get("final_model", False))  # a run stored before final_model existed had none
    st.info(plain(f"Prefilled from run {rid}: dataset, model, preset, protocol, seed, training settings and "
                  "the final-model choice."))


def _section_data(v: dict[str, Any], slots: dict[str, Any]) -> None:
    st.subheader("Data")
    names = list_datasets()
    c1, c2, c3 = st.columns(3)
    dataset = c1.selectbox("dataset", names, index=names.index("synthetic") if "synthetic" in names else 0,
                           key=K_DATASET)
    info = dataset_info(dataset)
    c1.caption(info.description)
    sets = list(info.class_sets)
    v["class_set"] = c2.selectbox("class set", sets, index=sets.index(info.default_class_set)
                                  if info.default_class_set in sets else 0, key=f"ne_class_set_{dataset}",
                                  format_func=class_set_words)
    v["protocol"] = c3.selectbox("protocol", PROTOCOLS, key="ne_protocol",
                                 help=glossary.tip("LOSO", note="loso: one fold per subject (the honest default)"))
    if v["protocol"] == "kfold":
        v["folds"] = int(c3.number_input("folds (k)", value=5, step=1, key="ne_folds"))
        slots["folds"] = c3.empty()
    if v["protocol"] == "holdout":
        v["holdout_fraction"] = c3.slider("share of subjects tested", 0.05, 0.95, 0.25, key="ne_holdout")
    default_opts = "manifest=" if dataset == "manifest" else ""
    text = st.text_area("dataset options (KEY=VALUE per line)", value=default_opts, key=f"ne_options_{dataset}",
                        height=68, help="passed to the indexer, e.g. manifest=/path/manifest.csv (or a folder "
                                        "holding one CSV), flow_encoding=minmax, or subjects=4")
    slots["dataset"] = st.empty()
    v["dataset"] = dataset
    try:
        v["dataset_options"] = parse_options(text)
    except ConfigError as exc:
        v["dataset_options"] = {}
        v["_options_error"] = str(exc)


def _section_model(v: dict[str, Any], slots: dict[str, Any]) -> tuple[str, str, Any, dict[str, Any]]:
    st.subheader("Model")
    models = list_models()
    c1, c2, c3 = st.columns(3)
    model = c1.selectbox("model", models, index=models.index("baseline") if "baseline" in models else 0,
                         key=K_MODEL)
    c1.caption(model_spec(model).description)
    presets = list_presets(model)
    choice = c2.selectbox("preset", ["auto", *presets], key=f"{K_PRESET}_{model}",
                          help="auto: the CPU preset that fits the inputs this dataset has (frames, flow + apex "
                               "images, or apex images only)")
    preset = _resolve_preset(v, slots, c2, model, choice, presets)
    c2.caption("Preset values: " + " · ".join(provenance_summary(model, preset)))  # paper, chosen here, tuned...
    mcfg = model_config(model, preset)
    defaults = {**ExperimentConfig().to_dict(), **train_defaults(model, preset)}
    fields = {f.name for f in dataclasses.fields(model_spec(model).config_cls)}
    k = lambda name: key(name, model, preset)  # noqa: E731
    options: dict[str, Any] = {}
    size = int(c3.number_input("input size (pixels)", value=int(mcfg.input_size), step=8, key=k("input_size")))
    chans = c3.multiselect("input channels", CHANNELS, default=list(mcfg.channels), key=k("channels"))
    slots["input"] = c3.empty()
    if "dropout" in fields:
        drop = c2.slider("dropout", 0.0, 0.9, float(mcfg.dropout), 0.05, key=k("dropout"))
        if drop != mcfg.dropout:
            options["dropout"] = drop
    if "dropkey" in fields:
        rate = c2.slider("DropKey rate", 0.0, 0.9, float(mcfg.dropkey), 0.05, key=k("dropkey"),
                         help="share of attention keys masked before the softmax in training; 0 = off")
        if rate != mcfg.dropkey:
            options["dropkey"] = rate
    v.update(model=model, preset=preset, model_options=options)
    v["preprocess"] = {"input_size": 0 if size == mcfg.input_size else size,
                       "channels": [] if tuple(chans) == tuple(mcfg.channels) else list(chans)}
    return model, preset, mcfg, defaults


def _section_training(v: dict[str, Any], slots: dict[str, Any], model: str, preset: str,
                      defaults: dict[str, Any]) -> None:
    st.subheader("Training")
    k = lambda name: key(name, model, preset)  # noqa: E731
    c1, c2, c3, c4 = st.columns(4)
    v["epochs"] = int(c1.number_input("epochs", value=int(defaults["epochs"]), step=1, key=k("epochs")))
    slots["epochs"] = c1.empty()
    v["batch_size"] = int(c2.number_input("batch size", value=int(defaults["batch_size"]), step=1,
                                          key=k("batch_size")))
    slots["batch_size"] = c2.empty()
    v["lr"] = float(c3.number_input("learning rate", value=float(defaults["lr"]), step=1e-4, format="%.2e",
                                    key=k("lr")))
    slots["lr"] = c3.empty()
    v["optimizer"] = c4.selectbox("optimiser", OPTIMIZERS, index=OPTIMIZERS.index(defaults["optimizer"]),
                                  key=k("optimizer"))
    c1, c2, c3, c4 = st.columns(4)
    v["scheduler"] = c1.selectbox("lr schedule", SCHEDULERS, index=SCHEDULERS.index(defaults["scheduler"]),
                                  key=k("scheduler"))
    v["loss"] = c2.selectbox("loss", LOSSES, index=LOSSES.index(defaults["loss"]), key=k("loss"))
    if v["loss"] == "focal":
        v["focal_gamma"] = float(c3.number_input("focal gamma", value=float(defaults["focal_gamma"]), step=0.5,
                                                 key=k("focal_gamma")))
        slots["focal_gamma"] = c3.empty()
    elif v["loss"] == "label_smoothing":
        v["label_smoothing"] = c3.slider("label smoothing", 0.0, 0.5, float(defaults["label_smoothing"]),
                                         key=k("label_smoothing"))
    v["class_balance"] = c4.selectbox("class balance", CLASS_BALANCE,
                                      index=CLASS_BALANCE.index(defaults["class_balance"]), key=k("class_balance"))
    _epoch_choice(v, slots, k)
    _averaging(v, slots, k, defaults)


SELECTION_WORDS = {"fixed": "fixed (train every epoch)", "early_stop": "early stop",
                   "nested": "nested (chosen on inner folds)"}
SELECTION_HELP = ("How many epochs each fold's model trains for. **fixed**: all of them. **early stop**: a few of "
                  "the fold's training subjects are held out as a validation set, and training stops once their "
                  "score stops improving. **nested**: the fold's training subjects are split into inner folds; a "
                  "model is trained on each and scored on the inner subjects it did not see after every epoch, and "
                  "the fold's model then trains on all its training subjects for the epoch count that scored best. "
                  "In all three, the fold's test subject is never used to choose.")
AVERAGE_WORDS = {"none": "none", "ema": "EMA (running average)", "swa": "SWA (average of the last epochs)"}
AVERAGE_HELP = ("Predict with an average of the weights the model went through late in training instead of its "
                "last weights: averaged weights usually vary less from run to run. **EMA** keeps a running average, "
                "updated after every training step; **SWA** averages the weights at the end of each of the last "
                "few epochs. Not with early stop, which keeps one epoch's weights.")


def _epoch_choice(v: dict[str, Any], slots: dict[str, Any], k: Any) -> None:
    """Epoch choice (fixed / early stop / nested with its inner folds) and the final-model switch."""
    c1, c2, c3, c4 = st.columns(4)
    v["selection"] = c1.radio("epoch choice", SELECTION, key=k("selection"), format_func=SELECTION_WORDS.get,
                              help=SELECTION_HELP)
    v["final_model"] = c4.checkbox("also train a final model", key=K_FINAL,
                                   help="after the LOSO, one more model is trained on every subject with the same "
                                        "recipe (the folds' epochs; under early stop or nested, the median of the "
                                        "epochs the folds chose) and stored beside the folds for predicting new "
                                        "clips. It is never evaluated: no subject is left to test it on.")
    if v["selection"] == "early_stop":
        v["val_subjects"] = int(c2.number_input("validation subjects", value=1, step=1, key=k("val_subjects")))
        v["patience"] = int(c3.number_input("patience (epochs)", value=5, step=1, key=k("patience")))
        slots["val_subjects"], slots["patience"] = c2.empty(), c3.empty()
    elif v["selection"] == "nested":
        v["nested_folds"] = int(c2.number_input(
            "inner folds", value=4, min_value=0, step=1, key=k("nested_folds"),
            help="into how many groups each fold's training subjects are split to choose the epoch count; "
                 "0 = one group per subject (leave one subject out: the most careful, the slowest). Each inner "
                 "fold trains one more model, so a fold takes about this many times longer."))
        slots["nested_folds"] = c2.empty()


def _averaging(v: dict[str, Any], slots: dict[str, Any], k: Any, defaults: dict[str, Any]) -> None:
    """Weight averaging (none / EMA with its decay / SWA with its epochs) and models per fold."""
    c1, c2, c3, _ = st.columns(4)
    avg_default = defaults.get("average", "none")
    v["average"] = c1.selectbox("weight averaging", AVERAGES, index=AVERAGES.index(avg_default),
                                key=k("average"), format_func=AVERAGE_WORDS.get, help=AVERAGE_HELP)
    slots["average"] = c1.empty()
    if v["average"] == "ema":
        v["ema_decay"] = float(c2.number_input(
            "EMA decay", value=float(defaults.get("ema_decay", 0.99)), step=0.001, format="%.4f",
            key=k("ema_decay"), help="how slowly the average forgets: 0.99 weighs roughly the last 100 training "
                                     "steps, 0.999 the last 1,000. Closer to 1 = a longer memory."))
        slots["ema_decay"] = c2.empty()
    elif v["average"] == "swa":
        swa_default = min(int(defaults.get("swa_epochs", 5)), int(defaults["epochs"]))
        v["swa_epochs"] = int(c2.number_input(
            "SWA epochs", value=swa_default, min_value=1, step=1, key=k("swa_epochs"),
            help="how many of the last epochs are averaged (at most the number of epochs)"))
        slots["swa_epochs"] = c2.empty()
    v["seeds_per_fold"] = int(c3.number_input(
        "models per fold (seeds averaged)", value=int(defaults.get("seeds_per_fold", 1)), min_value=1, step=1,
        key=k("seeds_per_fold"),
        help="train this many models in each fold, each from a different random start, and average their "
             "predicted probabilities: steadier results, at this many times the training time. The fold's "
             "curves and checkpoint are the first model's."))
    slots["seeds_per_fold"] = c3.empty()


def _section_preprocess(v: dict[str, Any], slots: dict[str, Any], mcfg: Any, defaults: dict[str, Any]) -> None:
    st.subheader("Preprocessing")
    c1, c2, c3 = st.columns(3)
    pre = v["preprocess"]
    flow_default = dict(defaults.get("preprocess") or {}).get("flow_method", "dis")  # MFDAN's paper: TV-L1
    pre["flow_method"] = c1.selectbox("optical flow", FLOW_METHODS, index=FLOW_METHODS.index(flow_default),
                                      key=f"ne_flow_{flow_default}", help=glossary.tip("optical flow"))
    alpha_default = float(getattr(mcfg, "evm_alpha", 10.0))
    pre["evm_alpha"] = float(c2.number_input("EVM amplification alpha", value=alpha_default, step=1.0,
                                             key=f"ne_evm_alpha_{alpha_default}"))
    slots["preprocess.evm_alpha"] = c2.empty()
    low, high = c3.slider("EVM band (fraction of the frame rate)", 0.0, 0.5, (0.05, 0.4), 0.01, key="ne_evm_band")
    pre["evm_low"], pre["evm_high"] = float(low), float(high)
    slots["preprocess.evm_low"] = c3.empty()
    # a model with an evm_alpha field gets this amplification (experiment.resolve_model_config)


def _resolve_preset(v: dict[str, Any], slots: dict[str, Any], col: Any, model: str, choice: str,
                    presets: list[str]) -> str:
    """The concrete preset for the choice ('auto' or a name), with why (and any EVM fallback) shown under it."""
    slots["preset"] = col.empty()
    options = v.get("dataset_options") or {}
    try:  # a browser-typed path is read only inside the allowed folders (Submit says so under the data)
        for name in (n for n in writes.BROWSER_PATH_OPTIONS if options.get(n)):
            check_browser_path(options[name], f"dataset option {name}=")
    except MerError as exc:
        v["_path_error"] = str(exc)
        return presets[0] if choice == "auto" else choice
    try:
        preset, reason = choose_preset(v["dataset"], model, choice, options)
    except MerError as exc:
        v["_preset_error"] = str(exc)
        return presets[0] if choice == "auto" else choice
    if reason:
        col.caption(("" if choice == "auto" else "ⓘ ") + reason)
    return preset


def _section_execution(v: dict[str, Any], slots: dict[str, Any], model: str, preset: str,
                       defaults: dict[str, Any]) -> None:
    st.subheader("Execution")
    c1, c2, c3, c4 = st.columns(4)
    v["seed"] = int(c1.number_input("seed", value=0, step=1, key="ne_seed"))
    v["executor"] = c2.selectbox("executor", EXECUTORS, index=EXECUTORS.index(defaults["executor"]), key="ne_executor",
                                 help="where folds run: this worker, a process pool, or Ray")
    v["workers"] = int(c3.number_input("workers", value=int(defaults["workers"]), min_value=0, step=1, key="ne_workers",
                                       help="0 = one per CPU core (one per GPU on CUDA)"))
    slots["workers"] = c3.empty()
    v["device"] = c4.selectbox("device", ("auto", "cpu", "cuda"), key="ne_device")
    if model in PRETRAIN_MODELS:  # defaults: the preset's pre-training settings (train_defaults)
        c1, c2, c3, _ = st.columns(4)
        macro = [""] + macro_datasets()  # only macro sources: never the micro data the run is evaluated on
        default = defaults["pretrain"] if defaults["pretrain"] in macro else ""
        k = lambda name: key(name, model, preset)  # noqa: E731
        v["pretrain"] = c1.selectbox("pre-train on (macro dataset)", macro, index=macro.index(default),
                                     key=k("pretrain"), format_func=lambda d: d or "none",
                                     help="macro-expression datasets with other people than the evaluation set")
        slots["pretrain"] = c1.empty()
        if v["pretrain"] and v["pretrain"] == v.get("dataset"):
            v["_pretrain_error"] = (f"pre-training on {v['pretrain']!r} refused: it is the evaluation dataset itself, "
                                    "so every fold would start from weights that saw its test subject's labels")
        if v["pretrain"]:
            v["pretrain_epochs"] = int(c2.number_input("pre-training epochs", value=int(defaults["pretrain_epochs"]),
                                                       step=1, key=k("pretrain_epochs")))
            v["freeze"] = c3.selectbox("freeze when fine-tuning", FREEZE, index=FREEZE.index(defaults["freeze"]),
                                       key=k("freeze"))
            slots["pretrain_epochs"] = c2.empty()


def _fmt_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s} s" if s < 60 else widgets.duration(s)


def render() -> None:
    st.title("New experiment")
    st.caption("Queue a training or LOSO evaluation as a background job. It keeps running if you reload, close "
               "the tab or restart the dashboard; follow it on the Jobs page.")
    apply_clone()
    values: dict[str, Any] = {}
    slots: dict[str, Any] = {}
    _section_data(values, slots)
    model, preset, mcfg, defaults = _section_model(values, slots)
    _section_training(values, slots, model, preset, defaults)
    _section_preprocess(values, slots, mcfg, defaults)
    _section_execution(values, slots, model, preset, defaults)
    name = st.text_input("name (optional)", key="ne_name")

    options_error = values.pop("_options_error", "")
    preset_error, pretrain_error = values.pop("_preset_error", ""), values.pop("_pretrain_error", "")
    path_error = values.pop("_path_error", "")
    errors = field_errors(values)
    if options_error or path_error:  # nothing outside the allowed folders is read to plan or check the run
        errors["dataset"] = options_error or path_error
    if preset_error and not options_error:
        errors["preset"] = preset_error
    if pretrain_error:
        errors["pretrain"] = pretrain_error
    config = None if errors else ExperimentConfig.from_dict(values)
    summary: dict[str, Any] = {}
    if config is not None:
        try:  # the model must accept the chosen input (size, channels)
            resolve_model_config(config, 3)
            config = resolve_experiment(values["dataset"], model, preset, overrides=values)
        except MerError as exc:
            errors["input"] = f"{model} does not accept this input: {exc}"
            config = None
    if config is not None and "input" not in errors:
        summary = reads.experiment_plan(_plan_key(config))
        if "error" in summary:  # too few training subjects for the inner folds is the inner folds' field's error
            errors["nested_folds" if "selection='nested'" in summary["error"] else "dataset"] = summary["error"]
    for field, message in errors.items():
        slot = slots.get(field) or slots.get(field.split(".")[0]) or slots["dataset" if field == "config" else "input"]
        slot.error(plain(message), icon=":material/error:")

    st.subheader("What will run")
    if errors:
        st.warning(f"Fix {len(errors)} field(s) marked above before submitting.")
    elif summary:
        _what_will_run(config, summary, model, preset)
    clicked = st.button("Submit job", type="primary", disabled=bool(errors) or config is None, key=K_SUBMIT)
    if clicked and config is not None and not errors:
        same = reads.identical_active_jobs(config.to_json())
        if same:
            st.session_state[K_ASK] = (config.stable_hash(), same)
        else:
            _submit(config, name)
    asked = st.session_state.get(K_ASK)
    if asked and config is not None and asked[0] == config.stable_hash():
        st.warning(plain(f"Job {', '.join(asked[1])} with exactly this config is already queued or running: "
                         "submitting again trains the same run twice."), icon=":material/content_copy:")
        for job in asked[1]:
            _job_link(job)
        st.button("Submit anyway", key=K_AGAIN, on_click=_submit, args=(config, name))
    last = st.session_state.get(K_LAST_JOB)
    if last:
        st.success(f"Job {last} queued.")
        _job_link(last)


def _submit(config: ExperimentConfig, name: str) -> None:
    """Queue the job (also the "Submit anyway" button's callback: it runs before the page is drawn again)."""
    st.session_state.pop(K_ASK, None)
    try:
        st.session_state[K_LAST_JOB] = writes.submit(config, name=name)
    except MerError as exc:
        st.session_state[K_LAST_JOB] = None
        st.error(plain(str(exc)))


def _what_will_run(config: ExperimentConfig, summary: dict[str, Any], model: str, preset: str) -> None:
    """The plan's figures and the time estimate: the folds' training, plus the final model when asked for."""
    runs_as = reads.executor_that_runs(config.executor, summary["n_folds"], config.workers)
    passes, passes_words = reads.training_passes(config, summary.get("train_subjects"))
    seconds, source = reads.estimate_seconds(model, preset, n_samples=summary["n_samples"],
                                             n_folds=summary["n_folds"], epochs=config.epochs,
                                             executor=runs_as, workers=config.workers, passes=passes)
    final_s = 0.0
    if config.final_model:
        final_s, _ = reads_models.final_model_seconds(model, preset, n_samples=summary["n_samples"],
                                                     epochs=config.epochs)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("folds", summary["n_folds"])
    c2.metric("clips", summary["n_samples"])
    c3.metric("subjects", summary["n_subjects"])
    c4.metric("estimated training time", _fmt_seconds(seconds + final_s),
              help="preprocessing not counted" + ("; the final model included" if final_s else ""))
    ran = (f"the {runs_as} executor" + (f" (the {config.executor} executor selected runs its folds in this "
                                          "process with one worker)" if runs_as != config.executor else ""))
    st.caption(plain(f"Estimated for {ran}, on an idle machine."))
    load, cores, high = reads.machine_load()
    if high:
        st.warning(plain(f"This machine is busy now: load {load:.1f} on {cores} cores. Jobs share the cores, so "
                         "expect this one to take longer than the estimate (measured on an idle machine)."),
                   icon=":material/speed:")
    if passes_words:
        st.caption(plain(f"ⓘ {passes_words[0].upper()}{passes_words[1:]}: the estimate counts them all"
                         + (" (the models train the nested choice's epochs, at most the epochs set here, so at "
                            "most this)" if config.selection == "nested" else "") + "."))
    with st.expander("how the estimate is made"):
        fits = f" × {passes:g} fits per fold" if passes != 1 else ""
        st.caption(plain(f"From {source}: start-up + folds / folds at a time × (fold set-up + epochs × training "
                         f"clips{fits} × seconds per clip), with the figures measured by mer bench."))
    st.caption(f"{model} ({preset}) · input {summary['input_size']} px · channels "
               f"{', '.join(summary['channels'])} · classes "
               + ", ".join(f"{c} ({n})" for c, n in summary["classes"].items()))
    if config.final_model:
        st.caption(f"ⓘ final model: {_fmt_seconds(final_s)} of the estimate (one more fit of {config.epochs} epochs "
                   f"on all {summary['n_samples']} clips at the same cost per clip; under early stop or nested it "
                   "trains the median of the epochs the folds chose, so at most this)")
    for note in summary.get("notes", []):
        st.caption(plain(f"ⓘ {note}"))
    _batch_note(config.batch_size, int(summary.get("min_train") or 0))
    with st.expander("config JSON"):
        st.code(config.to_json(), language="json")


def _batch_note(batch_size: int, min_train: int) -> None:
    """A batch larger than a fold's training set is one batch of the whole set: say so before it runs."""
    if min_train and batch_size > min_train:
        st.warning(f"Batch size {batch_size} is larger than the smallest training set ({min_train} clips): "
                   f"those folds train on one batch of {min_train} clips per epoch (the batch is clamped, "
                   "and the run's notes say so). A smaller batch gives more optimiser steps per epoch.",
                   icon=":material/warning:")


def _plan_key(config: ExperimentConfig) -> str:
    """The plan depends on data, protocol, epoch choice and model input only: epochs or lr changes reuse the cache."""
    return config.replace(epochs=1, lr=1e-3, batch_size=1, optimizer="adamw", loss="ce", seed=config.seed,
                          average="none", seeds_per_fold=1).to_json()


def _job_link(job_id: str) -> None:
    widgets.page_link("jobs", f"Follow job {plain(job_id)} on the Jobs page", icon=":material/work:",
                      query_params={reads.QP_JOB: job_id})
