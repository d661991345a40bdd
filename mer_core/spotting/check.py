"""The dataset check of a long-video dataset: what it holds, and every problem with its file and row.

``mer datasets check NAME`` on a long-video dataset comes here. The indexer
already validated the intervals against the frame counts it could see
cheaply (a folder's listing, a container's declared count): unknown videos,
intervals outside the video, ``onset <= apex <= offset``, duplicates (see
:func:`mer_core.spotting.tables.validate_intervals`). The decoding pass then
reads every frame of every video, one at a time (bounded memory, whatever the
length: a two-hour recording is streamed like a ten-second one), and reports
a video that cannot be decoded, one that decodes to 0 frames, one that decodes
to fewer frames than it declares, and the intervals that fall beyond the
frames that really decode, each naming the annotation file and row.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mer_core.datasets._common import BySeverity, Problems
from mer_core.errors import MerError
from mer_core.preprocess.video import ClipError
from mer_core.spotting.indexers import index_long
from mer_core.spotting.source import decode_count, iter_frames
from mer_core.spotting.tables import LongDataset

_ORDER = {"error": 0, "warning": 1, "info": 2}


@dataclass
class LongReport(BySeverity):
    """The result of :func:`check_long_dataset` (plain data)."""

    name: str
    root: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    fatal: str = ""
    dataset: LongDataset | None = None
    problems: list[dict[str, Any]] = field(default_factory=list)
    frames_decoded: int = 0

    @property
    def usable(self) -> bool:
        return not self.fatal and self.dataset is not None and len(self.dataset.videos) > 0 and not self.errors

    def counts(self) -> dict[str, Any]:
        return self.dataset.counts() if self.dataset is not None else {}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "root": self.root, "options": dict(self.options), "fatal": self.fatal,
                "usable": self.usable, "counts": self.counts(), "frames_decoded": self.frames_decoded,
                "problems": list(self.problems)}

    def to_text(self, limit: int = 30) -> str:
        head = f"Long-video dataset {self.name}" + (f", root {self.root}" if self.root else "")
        if self.fatal:
            return f"{head}\nNOT USABLE: {self.fatal}"
        c = self.counts()
        verdict = "usable" if self.usable else "NOT USABLE (errors below)"
        lines = [head, f"Status: {verdict}: {c['videos']} videos of {c['subjects']} subjects, {c['frames']} frames; "
                       f"{c['micro']} micro- and {c['macro']} macro-expression intervals; "
                       f"{c['videos_without_interval']} video(s) without any; {len(self.errors)} error(s), "
                       f"{len(self.warnings)} warning(s); {self.frames_decoded} frame(s) decoded"]
        if c["subjects"] == 1:
            lines.append("Only one subject: leave-one-subject-out needs at least two")
        for title, group in (("Errors (row or video skipped)", self.errors),
                             ("Warnings (kept, fixed or suspicious)", self.warnings)):
            if group:
                lines += ["", f"{title}: {len(group)}"] + ["  " + p["message"] for p in group[:limit]]
                if len(group) > limit:
                    lines.append(f"  ... and {len(group) - limit} more")
        return "\n".join(lines)


def check_long_dataset(name: str, root: str | Path | None = None, *, frames: str = "all", **options: Any) -> LongReport:
    """Index ``name`` and decode its videos (``frames``: 'all', 'quick' = the first and last frame, 'none').

    Raises only for an unknown name or ``frames`` value; everything else lands in the report.
    """
    if frames not in ("all", "quick", "none"):
        raise MerError(f"frames={frames!r}: expected 'all', 'quick' or 'none'")
    report = LongReport(name=name, root=str(root or ""), options=dict(options))
    try:
        ds = index_long(name, root, **options)
    except MerError as exc:
        report.fatal = str(exc)
        return report
    problems = Problems()
    problems.extend(ds.problems)
    if frames != "none":
        report.frames_decoded, ds = _decode_pass(ds, problems, quick=frames == "quick")
    report.dataset = ds
    report.problems = sorted(problems.items, key=lambda p: _ORDER.get(p["severity"], 3))
    return report


def _decode_pass(ds: LongDataset, problems: Problems, *, quick: bool) -> tuple[int, LongDataset]:
    """Decode every video (streamed); drop the undecodable ones and the intervals beyond the decoded frames."""
    decoded_total, keep, counts = 0, [], {}
    for k, v in enumerate(ds.videos.itertuples(index=False)):
        name = Path(v.path).name
        try:
            if quick:
                got = [i for i, _ in iter_frames(v.path, 0, 1)]
                last = [i for i, _ in iter_frames(v.path, max(0, v.n_frames - 1), v.n_frames)] if v.n_frames > 1 else []
                n = v.n_frames if got and (v.n_frames <= 1 or last) else len(got)
                decoded_total += len(got) + len(last)
            else:
                n = decode_count(v.path)
                decoded_total += n
        except ClipError as exc:
            problems.add("error", "video", f"{name} (video {v.video!r}): cannot be decoded: {exc}", file=v.path,
                         sample_id=v.video)
            continue
        if n == 0:
            problems.add("error", "video", f"{name} (video {v.video!r}): 0 frames could be decoded (an empty or "
                         "damaged file); its intervals are skipped", file=v.path, sample_id=v.video)
            continue
        if n < v.n_frames:
            problems.add("warning", "video", f"{name} (video {v.video!r}): declares {v.n_frames} frames but "
                         f"{'its last frame does not decode' if quick else f'only {n} decode'}; intervals beyond "
                         "the decoded frames are skipped", file=v.path, sample_id=v.video)
        counts[v.video] = n
        keep.append(k)
    videos = ds.videos.iloc[keep].copy()
    videos["n_frames"] = videos["video"].map(counts).astype(int)
    iv = ds.intervals
    inside = iv["video"].isin(counts) & (iv["offset"] < iv["video"].map(counts).fillna(0))
    for r in iv[iv["video"].isin(counts) & ~inside].itertuples(index=False):
        where = f"{Path(r.file).name} row {r.row}" if r.file else "intervals"
        problems.add("error", "outside_video", f"{where}: interval {r.onset}..{r.offset} is outside video "
                     f"{r.video!r}'s {counts[r.video]} decoded frames (expected 0..{counts[r.video] - 1})",
                     file=r.file, row=r.row, sample_id=r.video)
    kept = LongDataset(ds.name, videos.reset_index(drop=True), iv[inside].reset_index(drop=True), list(ds.problems),
                       ds.origin)
    return decoded_total, kept
