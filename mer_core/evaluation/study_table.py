"""The paper table of a study: mean +- sd over seeds per arm, best in bold, significance marks.

Formats: ``csv`` (plain numbers in separate columns plus the formatted
cells), ``md`` (GitHub Markdown) and ``latex`` (a ``tabular`` with booktabs
rules). Columns: pooled UF1 and UAR, per-part UF1 for composite studies, and
the oracle gap (a diagnostic). A mark after an arm's UF1 says the paired test
over subjects finds it worse than the best arm: ``*`` p < alpha, ``**`` p < 0.01.
Arms with failed cells are flagged with a dagger.

A spotting study's table (``report.kind == "spotting"``) has F1 (all types),
micro F1 and macro F1, pooled over videos, then the chance F1 of each (a
diagnostic, never bold); the mark goes after F1. An arm whose spotter uses no
seed and whose seeds repeat one figure reads "(deterministic)" instead of
"± 0.000"; one complete seed reads "(1 seed)" as in a recognition table.
"""
from __future__ import annotations

import io
import math
from typing import Any

import pandas as pd

from mer_core.errors import MerError
from mer_core.evaluation.export import csv_safe
from mer_core.evaluation.study_stats import StudyReport

FORMATS = ("csv", "md", "latex")
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


SPOT_COLUMNS = {"F1": "f1", "micro F1": "micro_f1", "macro F1": "macro_f1"}  # column -> report.table prefix


def _pm(mean: float, sd: float, digits: int, spread: str = "1 seed") -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    if isinstance(sd, float) and math.isnan(sd):  # one complete seed, or a deterministic arm: never "± 0.000"
        return f"{mean:.{digits}f} ({spread})"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def _diagnostic(col: str) -> bool:
    """Columns shown beside the scores but never bold, without an sd: the oracle gap, the chance F1s."""
    return col.startswith(("oracle", "chance"))


def _headline(report: StudyReport) -> str:
    return "F1" if report.kind == "spotting" else "UF1"


def _spot_rows(report: StudyReport) -> tuple[list[str], list[dict[str, Any]]]:
    columns = [*SPOT_COLUMNS, *(f"chance {c}" for c in SPOT_COLUMNS)]
    rows = []
    for r in report.table.to_dict("records"):
        values = {}
        for col, key in SPOT_COLUMNS.items():
            values[col] = (r[f"{key}_mean"], r[f"{key}_sd"])
            values[f"chance {col}"] = (r[f"chance_{key}_mean"], float("nan"))
        spread = "1 seed"
        if int(r["complete"]) > 1 and r["deterministic"] and r["same_every_seed"]:
            spread = "deterministic"
        if spread == "deterministic" or int(r["complete"]) < 2:
            values = {k: (mean, float("nan")) for k, (mean, _sd) in values.items()}
        rows.append({"arm": r["arm"], "flagged": bool(r["flagged"]), "mark": report.marks.get(r["arm"], ""),
                     "values": values, "spread": spread})
    return columns, rows


def table_rows(report: StudyReport) -> tuple[list[str], list[dict[str, Any]]]:
    """(value columns, one dict per arm: arm, flagged, mark, spread ('1 seed' | 'deterministic': what an sd of
    NaN means), and per column mean, sd, best)."""
    if report.kind == "spotting":
        columns, rows = _spot_rows(report)
        _mark_best(columns, rows)
        return columns, rows
    parts = list(dict.fromkeys(report.parts["part"])) if not report.parts.empty else []
    columns = ["UF1", "UAR"] + [f"{p} UF1" for p in parts] + ["oracle gap UF1"]
    per_part: dict[tuple[str, str], tuple[float, float]] = {}  # first row of each (arm, part), one pass
    for arm, part, mean, sd in (zip(report.parts["arm"], report.parts["part"], report.parts["uf1_mean"],
                                    report.parts["uf1_sd"]) if parts else ()):
        per_part.setdefault((str(arm), str(part)), (float(mean), float(sd)))
    rows = []
    for r in report.table.itertuples():
        values = {"UF1": (r.uf1_mean, r.uf1_sd), "UAR": (r.uar_mean, r.uar_sd),
                  "oracle gap UF1": (r.oracle_gap_uf1, float("nan"))}
        for p in parts:
            values[f"{p} UF1"] = per_part.get((str(r.arm), str(p)), (float("nan"), float("nan")))
        if int(r.complete) < 2:  # a spread over one finished seed is not zero, it is unknown
            values = {k: (mean, float("nan")) for k, (mean, _sd) in values.items()}
        rows.append({"arm": r.arm, "flagged": bool(r.flagged), "mark": report.marks.get(r.arm, ""), "values": values,
                     "spread": "1 seed"})
    _mark_best(columns, rows)
    return columns, rows


def _mark_best(columns: list[str], rows: list[dict[str, Any]]) -> None:
    for col in [c for c in columns if not _diagnostic(c)]:  # a diagnostic has no "best"
        means = [row["values"][col][0] for row in rows if not math.isnan(row["values"][col][0])]
        top = max(means) if means else None
        for row in rows:
            row.setdefault("best", set())
            if top is not None and abs(row["values"][col][0] - top) < 1e-12:
                row["best"].add(col)


def paper_table(report: StudyReport, fmt: str = "md", *, digits: int = 3) -> str:
    """The study's table as text in ``fmt`` (csv, md or latex)."""
    if fmt not in FORMATS:
        raise MerError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if report.table.empty:
        raise MerError(f"study {report.name!r} has no cells to tabulate")
    columns, rows = table_rows(report)
    if fmt == "csv":
        return _csv(columns, rows, digits)
    return _latex(report, columns, rows, digits) if fmt == "latex" else _markdown(report, columns, rows, digits)


def _cell(row: dict[str, Any], col: str, digits: int) -> str:
    mean, sd = row["values"][col]
    if col.startswith("oracle"):
        return "-" if math.isnan(mean) else f"{mean:+.{digits}f}"
    if col.startswith("chance"):
        return "-" if math.isnan(mean) else f"{mean:.{digits}f}"
    return _pm(mean, sd, digits, row.get("spread", "1 seed"))


def _spot_footer(report: StudyReport, test: str, seeds: int, short: list[str]) -> str:
    a = report.alpha
    det = [str(r.arm) for r in report.table.itertuples() if r.deterministic]
    ious = {str(r.arm): float(r.iou) for r in report.table.itertuples() if r.iou == r.iou}
    iou = (f"{next(iter(ious.values())):g}" if len(set(ious.values())) == 1 else
           "the arm's (" + ", ".join(f"{a} {v:g}" for a, v in ious.items()) + ")")
    return (f"Mean ± sd over {seeds} seeds of spotting F1 pooled over all videos (one-to-one matching at IoU ≥ "
            f"{iou}), all types, micro and macro; best in bold. * worse than the best arm at p < {a:g}, ** "
            f"at p < 0.01 ({test} over {report.test.get('n_subjects', 0)} subjects, seed-averaged per-subject F1 of "
            "all types). Chance F1: each run's spotted intervals placed at random in their videos, scored alike, "
            "mean over seeds."
            + (f" {', '.join(det)}: the spotter uses no seed; 'deterministic' marks seeds that repeat one figure."
               if det else "")
            + " † arm with cells that did not finish, failed or cancelled (complete cells only"
            + (f": {', '.join(short)} seeds" if short else "") + ").")


def _footer(report: StudyReport) -> str:
    a = report.alpha
    test = {"permutation": "paired permutation test", "friedman": "Nemenyi post-hoc test after Friedman"}.get(
        report.test["kind"], "no test (fewer than two complete arms)")
    seeds = int(report.table["seeds"].max()) if len(report.table) else 0
    short = [f"{r.arm} {int(r.complete)} of {int(r.seeds)}" for r in report.table.itertuples()
             if int(r.complete) < int(r.seeds)]  # an arm's mean over fewer seeds than the others': said by name
    if report.kind == "spotting":
        return _spot_footer(report, test, seeds, short)
    return (f"Mean ± sd over {seeds} seeds of pooled UF1/UAR; best in bold. * worse than the best arm at p < {a:g}, "
            f"** at p < 0.01 ({test} over {report.test.get('n_subjects', 0)} subjects, seed-averaged "
            "per-subject UF1). † arm with cells that did not finish, failed or cancelled (complete cells only"
            + (f": {', '.join(short)} seeds" if short else "") + "). Oracle gap: test-selected minus "
            "honest UF1 (diagnostic).")


def _markdown(report: StudyReport, columns: list[str], rows: list[dict[str, Any]], digits: int) -> str:
    out = ["| arm | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for row in rows:
        name = row["arm"].replace("|", "\\|") + (" †" if row["flagged"] else "")
        cells = []
        for col in columns:
            text = _cell(row, col, digits) + (row["mark"] if col == _headline(report) else "")
            cells.append(f"**{text}**" if col in row["best"] else text)
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out) + f"\n\n{_footer(report)}\n"


def _latex(report: StudyReport, columns: list[str], rows: list[dict[str, Any]], digits: int) -> str:
    lines = ["% needs \\usepackage{booktabs}", "\\begin{tabular}{l" + "c" * len(columns) + "}", "\\toprule",
             "Arm & " + " & ".join(latex_escape(c) for c in columns) + " \\\\", "\\midrule"]
    for row in rows:
        cells = []
        for col in columns:
            text = _cell(row, col, digits)
            text = "--" if text == "-" else text.replace("±", "$\\pm$")
            if col in row["best"]:
                text = f"\\textbf{{{text}}}"
            if col == _headline(report) and row["mark"]:
                text += f"$^{{{row['mark']}}}$"
            cells.append(text)
        name = latex_escape(row["arm"]) + ("$^\\dagger$" if row["flagged"] else "")
        lines.append(f"{name} & " + " & ".join(cells) + " \\\\")
    caption = latex_escape(_footer(report))
    for text, tex in (("±", "$\\pm$"), ("†", "$\\dagger$"), ("≥", "$\\geq$")):
        caption = caption.replace(text, tex)
    lines += ["\\bottomrule", "\\end{tabular}", f"% {caption}"]
    return "\n".join(lines) + "\n"


def _csv(columns: list[str], rows: list[dict[str, Any]], digits: int) -> str:
    records = []
    for row in rows:
        rec: dict[str, Any] = {"arm": row["arm"], "flagged": row["flagged"], "significance": row["mark"]}
        for col in columns:
            mean, sd = row["values"][col]
            rec[f"{col} mean"] = round(mean, 6) if not math.isnan(mean) else None
            if not _diagnostic(col):
                rec[f"{col} sd"] = round(sd, 6) if not math.isnan(sd) else None
            rec[col] = _cell(row, col, digits)
            rec[f"{col} best"] = col in row["best"]
        records.append(rec)
    buf = io.StringIO()
    csv_safe(pd.DataFrame(records)).to_csv(buf, index=False)
    return buf.getvalue()
