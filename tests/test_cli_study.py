"""``mer study``: submit from a TOML file, show, export (csv, md, LaTeX paper table), cancel, resume."""
from __future__ import annotations

import io
import re

import pandas as pd

from mer_core.cli import main
from mer_core.evaluation.study_table import latex_escape, paper_table
from mer_core.jobs.study import study_report
from mer_core.store.db import RunStore
from test_results_pages import store_fixture_run

STUDY = """name = "cli-study"
dataset = "synthetic"
seeds = [0, 1]
[options]
epochs = 1
[[arms]]
name = "base"
model = "baseline"
[[arms]]
name = "base small lr"
model = "baseline"
[arms.options]
lr = 0.0001
"""


def test_submit_show_cancel_resume(tmp_path, capsys) -> None:
    path = tmp_path / "study.toml"
    path.write_text(STUDY)
    assert main(["study", "submit", str(path), "--no-start", "--no-check"]) == 0
    assert "2 arms x 2 seeds = 4 jobs queued" in capsys.readouterr().out
    assert main(["study", "submit", str(path), "--no-start", "--no-check"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["study", "cancel", "cli-study"]) == 0
    assert "4 cancelled" in capsys.readouterr().out
    assert main(["study", "resume", "cli-study", "--no-start"]) == 0
    assert "4 cells resumed, 0 submitted" in capsys.readouterr().out
    assert main(["study", "show", "cli-study"]) == 0
    out = capsys.readouterr().out
    assert "0/4 cells done" in out and "base small lr" in out and out.count("queued") == 4
    assert main(["study", "list"]) == 0 and "cli-study" in capsys.readouterr().out


def test_a_refused_study_exits_2_naming_the_arm(tmp_path, capsys) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(STUDY.replace('lr = 0.0001', 'lr = -1.0'))
    assert main(["study", "submit", str(path), "--no-start", "--no-check"]) == 2
    assert "arm 'base small lr': lr=-1.0" in capsys.readouterr().err
    assert main(["study", "show", "nope"]) == 2
    assert "no study 'nope'" in capsys.readouterr().err


def _fixture_study(store: RunStore) -> None:
    store.create_study("paper", dataset="synthetic", protocol="loso",
                       definition={"arms": [{"name": "good_net"}, {"name": "poor & co"}]})
    for arm, acc, base in (("good_net", 0.95, 1), ("poor & co", 0.35, 50)):
        for seed in (0, 1, 2):
            rid = store_fixture_run(f"r{base + seed}", subjects=10, per_subject=6, accuracy=acc, seed=base + seed,
                                    store=store)
            store.set_study_cell("paper", arm, seed, job_id="", run_id=rid)


def test_the_latex_table_has_mean_sd_best_in_bold_and_marks(tmp_path) -> None:
    with RunStore() as store:
        _fixture_study(store)
        report = study_report(store, "paper", n_boot=100)
    latex = paper_table(report, "latex")
    lines = latex.splitlines()
    assert "\\begin{tabular}{lccc}" in lines and "\\toprule" in lines and lines[-2] == "\\end{tabular}"
    header = next(line for line in lines if line.startswith("Arm &"))
    assert header == "Arm & UF1 & UAR & oracle gap UF1 \\\\"
    good = next(line for line in lines if line.startswith("good\\_net &"))
    poor = next(line for line in lines if line.startswith("poor \\& co &"))
    row = report.table.set_index("arm").loc["good_net"]
    assert f"\\textbf{{{row['uf1_mean']:.3f} $\\pm$ {row['uf1_sd']:.3f}}}" in good
    assert good.count("\\textbf") == 2 and "\\textbf" not in poor  # best UF1 and UAR
    assert report.test["kind"] == "permutation" and report.test["p_value"] < 0.01
    assert poor.split(" & ")[1].endswith("$^{**}$") and "$^{" not in good  # worse than the best, p < 0.01
    assert all(line.endswith("\\\\") for line in (header, good, poor))
    assert len(re.findall(r"(?<!\\)&", good)) == len(re.findall(r"(?<!\\)&", poor)) == 3  # column separators


def test_markdown_and_csv_tables_and_the_export_command(tmp_path, capsys) -> None:
    with RunStore() as store:
        _fixture_study(store)
    assert main(["study", "export", "paper", "--format", "md", "--n-boot", "50"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("| arm | UF1 | UAR | oracle gap UF1 |") and "| poor & co | " in md
    assert md.count("**") == 4 + 2  # two bold cells, plus the "**" significance mark and its footnote
    out = tmp_path / "t.csv"
    assert main(["study", "export", "paper", "--format", "csv", "--out", str(out), "--n-boot", "50"]) == 0
    table = pd.read_csv(io.StringIO(out.read_text()))
    assert list(table["arm"]) == ["good_net", "poor & co"] and list(table["UF1 best"]) == [True, False]
    assert table.loc[1, "significance"] == "**"
    assert main(["study", "export", "paper", "--format", "latex", "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_latex_escape() -> None:
    assert latex_escape("a_b & 50% #1 {x}") == "a\\_b \\& 50\\% \\#1 \\{x\\}"
