"""Compare says what its p-value leaves out (seed noise), offers a study, and shows the seed and preset changes."""
from __future__ import annotations

from apptest_helpers import page_app, unescape
from test_results_pages import _texts, store_fixture_run


def _page_links(at) -> list:
    return [e.proto for e in at.get("page_link")]


def test_single_seed_runs_get_the_seed_caveat_and_a_study_link():
    store_fixture_run("cav-a", subjects=8, per_subject=8, accuracy=0.9, seed=1)
    store_fixture_run("cav-b", subjects=8, per_subject=8, accuracy=0.4, seed=2, model="ststnet")
    at = page_app("compare", runs="cav-a,cav-b")
    assert not at.exception, at.exception
    text = unescape(_texts(at))
    assert "unlikely to be luck" in text
    assert "one training run each (seed 1 and seed 2)" in text and "another seed" in text
    assert not at.success  # no green box for a single-seed difference
    links = _page_links(at)
    study = [p for p in links if "new-study" in p.page]
    assert study and "three seeds" in study[0].label
    assert study[0].query_string == "arms=baseline%2Fcpu%2Cststnet%2Fcpu&dataset=synthetic&protocol=loso"


def test_settings_that_differ_show_the_seed_and_each_preset_change():
    store_fixture_run("set-a", seed=5, epochs=4)
    store_fixture_run("set-b", seed=5, epochs=4, config={"lr": 3e-4})
    at = page_app("compare", runs="set-a,set-b")
    assert not at.exception, at.exception
    (table,) = [d.value for d in at.dataframe if "setting" in d.value.columns]
    rows = {r["setting"]: r for r in table.to_dict("records")}
    assert table["setting"].iloc[0] == "seed" and set(rows["seed"].values()) == {"seed", "5"}
    assert set(list(rows["epochs"].values())[1:]) == {"4 (preset 40)"}  # changed alike: still shown
    assert "0.0003 (preset 0.003)" in rows["lr"].values()
    assert "cpu preset, modified: epochs 4 (preset 40)" in unescape(_texts(at))


def test_new_study_is_prefilled_from_a_link():
    at = page_app("new_study", arms="baseline/cpu,ststnet/cpu,nosuch/cpu", dataset="synthetic", protocol="loso")
    assert not at.exception, at.exception
    assert at.multiselect[0].value == ["baseline / cpu", "ststnet / cpu"]


MODIFIED = "cpu preset, modified: epochs 4 (preset 40)"


def test_a_modified_preset_is_named_on_runs_run_and_the_leaderboard():
    store_fixture_run("mod-run", accuracy=0.8, epochs=4, config={"lr": 0.003})
    store_fixture_run("plain-run", accuracy=0.7, epochs=40, config={"lr": 0.003})
    at = page_app("runs")
    assert not at.exception, at.exception
    table = at.dataframe[0].value.set_index("run")
    assert table.loc["mod-run", "preset"] == MODIFIED and table.loc["plain-run", "preset"] == "cpu preset"
    assert not table[["name", "note"]].isna().any().any()  # no "None" cells
    at = page_app("run", run="mod-run")
    assert not at.exception, at.exception
    assert f"baseline ({MODIFIED}) on synthetic" in unescape(_texts(at))
    at = page_app("leaderboard")
    assert not at.exception, at.exception
    (synthetic,) = [d.value for d in at.dataframe if "oracle UF1 (diagnostic)" in d.value.columns]
    row = synthetic.set_index("run").loc["mod-run"]
    assert row["method"] == f"baseline ({MODIFIED})" and row["epochs"] == 4
    low, high = (float(v) for v in row["UF1 95% CI"].split(" – "))
    assert low <= row["UF1"] <= high


def test_run_page_explains_a_negative_oracle_gap_and_shows_chance():
    from mer_core.store.db import RunStore

    rid = store_fixture_run("neg-oracle", accuracy=0.8, config={"lr": 0.003})
    with RunStore() as store:  # an oracle below the honest figure, as a DenseAttention run had
        run = store.get_run(rid)
        summary = run["summary"]
        summary["oracle"] = {**summary["oracle"], "uf1": summary["pooled"]["uf1"] - 0.03}
        store.finish_run(rid, status="done", summary=summary)
    at = page_app("run", run=rid)
    assert not at.exception, at.exception
    text = unescape(_texts(at))
    assert "0.030 UF1 below the honest figure" in text and "would inflate" not in text
    assert "Chance: UF1" in text and "guessing uniformly" in text and "UAR 0.333 for any guess" in text


def test_curves_are_named_with_whole_epochs_and_heat_maps_have_a_scale():
    import pandas as pd

    from dashboard import plots, study_plots

    ep = pd.DataFrame({"fold_index": [0, 0, 0, 1, 1, 1], "epoch": [1, 2, 3, 1, 2, 3],
                       "train_loss": [1.0, 0.8, 0.6, 1.1, 0.9, 0.7], "train_acc": [0.3, 0.5, 0.6, 0.3, 0.4, 0.5],
                       "val_loss": [1.0, 0.9, 0.9, 1.0, 1.0, 0.95], "val_acc": [0.3, 0.4, 0.4, 0.3, 0.3, 0.35]})
    fig = plots.training_curves(ep)
    names = {t.name for t in fig.data if t.showlegend is not False}
    assert names == {"training, fold 2", "validation, fold 2", "training, other folds", "validation, other folds"}
    assert fig.layout.xaxis.dtick == 1 and fig.layout.xaxis.tickmode == "linear"
    assert fig.layout.legend.y > 1  # above the plot: never over an axis title
    lit = [t for t in fig.data if "fold 2" in t.name]
    assert all(t.line.color == "#2f6fdf" for t in lit) and all(t.line.color != "#2f6fdf" for t in fig.data if t not in lit)
    curve = plots.curves_figure(ep, "val_loss")
    assert curve.layout.yaxis.title.text == "validation loss" and curve.layout.xaxis.dtick == 1
    assert study_plots.overlay_curves({"A": ep}, "train_loss").layout.yaxis.title.text.startswith("training loss")
    assert plots.confusion_figure([[3, 1], [0, 4]], ["a", "b"]).data[0].showscale is True
    assert plots.colour_bar_rgb().shape == (10, 256, 3)
    long = pd.DataFrame({"fold_index": [0] * 40, "epoch": range(1, 41), "train_loss": [1.0] * 40})
    assert plots.curves_figure(long, "train_loss").layout.xaxis.dtick == 4


def test_compare_headline_says_the_chance_level():
    store_fixture_run("ch-a", accuracy=0.9, seed=1)
    store_fixture_run("ch-b", accuracy=0.4, seed=2)
    at = page_app("compare", runs="ch-a,ch-b")
    assert not at.exception, at.exception
    assert "Chance: UF1" in unescape(_texts(at))
