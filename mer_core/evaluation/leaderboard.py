"""Published MEGC2019 composite results beside runs measured here.

The published figures (``data/published_results.csv``, copied from the
project's reference notes) are what each paper *reports*. Several were
obtained by keeping, for every LOSO fold, the epoch that scored best on that
fold's own test subject, which inflates UF1 by 0.1-0.2; the ``note`` column
says so where it is known. Runs measured here never select on the test
subject. The two kinds are always labelled, never merged silently.

The paper layout (rows = method; columns = Full / SMIC / CASME II / SAMM, each
with UF1 and UAR) is built by :func:`paper_row` from a run's stored summary,
so the Run page, the Leaderboard and exports show the same table.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from mer_core.errors import MerError

PUBLISHED_CSV = Path(__file__).resolve().parent / "data" / "published_results.csv"

# (column prefix in the CSV, heading in the papers, part name in predictions.part)
PARTS: tuple[tuple[str, str, str], ...] = (
    ("full", "Full", ""),
    ("smic", "SMIC", "smic"),
    ("casme2", "CASME II", "casme2"),
    ("samm", "SAMM", "samm"),
)
PAPER_COLUMNS = [f"{prefix}_{m}" for prefix, _, _ in PARTS for m in ("uf1", "uar")]
REPORTED = "reported in paper"
MEASURED = "measured here, honest protocol"
COMPOSITE_DATASETS = ("megc2019",)


def load_published(path: str | Path | None = None) -> pd.DataFrame:
    """The published composite results: method, year, full/smic/casme2/samm UF1 and UAR, note."""
    path = Path(path) if path is not None else PUBLISHED_CSV
    if not path.is_file():
        raise MerError(f"published results file {path} is missing (it ships with mer_core/evaluation/data/)")
    df = pd.read_csv(path, dtype={"method": str, "note": str})
    expected = ["method", "year", *PAPER_COLUMNS, "note"]
    missing = [c for c in expected if c not in df.columns]
    if missing:
        raise MerError(f"{path}: missing column(s) {missing}; expected {expected}")
    for col in PAPER_COLUMNS:
        bad = df[~df[col].between(0, 1) & df[col].notna()]
        if len(bad):
            r = bad.index[0]
            raise MerError(f"{path} row {r + 2} ({df.loc[r, 'method']}): {col}={df.loc[r, col]} is not in 0..1")
    df["note"] = df["note"].fillna("")
    df["source"] = REPORTED
    return df[["method", "year", *PAPER_COLUMNS, "note", "source"]]


def is_composite(run: Mapping[str, Any]) -> bool:
    """A run on the MEGC2019 composite protocol (protocol 'composite' or dataset 'megc2019')."""
    return str(run.get("protocol", "")) == "composite" or str(run.get("dataset", "")) in COMPOSITE_DATASETS


def part_label(part: str) -> str:
    """Heading of a part as the papers write it ('casme2' -> 'CASME II'); unknown parts unchanged."""
    for _, heading, name in PARTS:
        if name and name == part:
            return heading
    return part


def paper_row(summary: Mapping[str, Any]) -> dict[str, float | None]:
    """UF1/UAR for Full and each composite part, from a run summary (missing parts -> None)."""
    pooled = summary.get("pooled") or {}
    per_part = summary.get("per_part") or {}
    row: dict[str, float | None] = {"full_uf1": pooled.get("uf1"), "full_uar": pooled.get("uar")}
    for prefix, _, name in PARTS[1:]:
        s = per_part.get(name) or {}
        row[f"{prefix}_uf1"] = s.get("uf1")
        row[f"{prefix}_uar"] = s.get("uar")
    return row


def part_table(summary: Mapping[str, Any]) -> pd.DataFrame:
    """Full + every part of one run (any dataset): rows part, n, UF1, UAR; composite parts in paper order."""
    pooled = summary.get("pooled") or {}
    per_part = dict(summary.get("per_part") or {})
    rows = [{"part": "Full", "n": pooled.get("n"), "uf1": pooled.get("uf1"), "uar": pooled.get("uar")}]
    order = [name for _, _, name in PARTS[1:] if name in per_part] + sorted(
        p for p in per_part if p not in {name for _, _, name in PARTS})
    for part in order:
        s = per_part[part]
        rows.append({"part": part_label(part), "n": s.get("n"), "uf1": s.get("uf1"), "uar": s.get("uar")})
    return pd.DataFrame(rows, columns=["part", "n", "uf1", "uar"])


def selection_note(run: Mapping[str, Any]) -> str:
    """How epochs were chosen in a measured run, in words (the leaderboard's notes column).

    Also the weight averaging and the models averaged per fold, when the run used them.
    """
    config = run.get("config") or {}
    if not isinstance(config, Mapping):
        config = {}
    selection = config.get("selection", "fixed")
    if selection == "early_stop":
        text = f"early stopping on {config.get('val_subjects', 1)} training subject(s); test subject never used"
    elif selection == "nested":
        k = config.get("nested_folds", 4)
        inner = "leave-one-subject-out" if k == 0 else f"{k}-fold"
        text = (f"epochs chosen per fold by an inner {inner} split of its training subjects only (at most "
                f"{config.get('epochs', '?')}); test subject never used for selection")
    else:
        text = f"fixed {config.get('epochs', '?')} epochs; test subject never used for selection"
    average = config.get("average", "none")
    if average == "ema":
        text += f"; weights averaged (EMA, decay {config.get('ema_decay', 0.99)})"
    elif average == "swa":
        text += f"; weights averaged (SWA over the last {config.get('swa_epochs', 5)} epochs)"
    seeds = config.get("seeds_per_fold", 1)
    if isinstance(seeds, int) and seeds > 1:
        text += f"; {seeds} models per fold (seeds), probabilities averaged"
    oracle = run.get("oracle_uf1")
    if oracle is not None and not pd.isna(oracle):
        text += f"; test-selected (oracle) UF1 would be {float(oracle):.4f}"
    return text


def measured_rows(runs: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Leaderboard rows for stored runs: ``runs`` are dicts with id, model, summary, config, ..."""
    rows = []
    for run in runs:
        summary = run.get("summary") or {}
        if not summary.get("pooled"):
            continue
        created = run.get("created")
        year = pd.Timestamp(created, unit="s").year if created else None
        rows.append({
            "method": f"{run.get('model', '?')} ({run.get('preset', '')})".replace(" ()", ""),
            "year": year, **paper_row(summary), "note": selection_note(run), "source": MEASURED,
            "run": run.get("id", ""),
        })
    cols = ["method", "year", *PAPER_COLUMNS, "note", "source", "run"]
    return pd.DataFrame(rows, columns=cols)


def leaderboard(published: pd.DataFrame, measured: pd.DataFrame) -> pd.DataFrame:
    """Published and measured rows in one table, best full UF1 first; 'source' tells them apart."""
    both = pd.concat([published.assign(run=""), measured], ignore_index=True)
    return both.sort_values("full_uf1", ascending=False, na_position="last").reset_index(drop=True)
