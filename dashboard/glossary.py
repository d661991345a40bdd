"""The dashboard's words: one plain-language line per term, used by every page's tooltips.

A page that mentions a term passes ``help=glossary.tip("UF1")`` (or several
terms) so a newcomer reads the same definition everywhere; the Lesson page
lists them all. Action units get a FACS name and what it looks like.
"""
from __future__ import annotations

import re

TERMS: dict[str, str] = {
    "micro-expression": "A brief, involuntary facial expression (under half a second) that moves the face by "
                        "only a pixel or two, often while the person tries to hide the feeling.",
    "AU": "Action unit: one facial muscle movement in the Facial Action Coding System (FACS), e.g. AU12, the "
          "lip corner puller of a smile.",
    "onset": "The first frame where the expression starts to move the face.",
    "apex": "The frame where the expression is strongest.",
    "offset": "The frame where the face is back at rest.",
    "optical flow": "For every pixel, how far and in which direction it moved between two frames (here onset "
                    "to apex).",
    "strain": "How much the skin is stretched or squeezed, computed from the optical flow: high where the face "
              "deforms, low where it only slides.",
    "EVM": "Eulerian video magnification: amplifies small changes over time in each pixel so motion too small "
           "to see becomes visible.",
    "LOSO": "Leave-one-subject-out: train on every person but one, test on that person, repeat for each; a "
            "model never sees the face it is tested on.",
    "UF1": "Unweighted F1: the F1 score of each class averaged with equal weight, so a rare class counts as "
           "much as a common one.",
    "UAR": "Unweighted average recall: the share of each class recognised, averaged with equal weight "
           "(balanced accuracy).",
    "blink": "An eye closing: the largest motion in most clips, and not part of the expression.",
    "fold": "One round of LOSO: the model trained without one subject and tested on that subject.",
}

# FACS action units: (name, what it looks like), for the units the datasets and the synthetic set use
ACTION_UNITS: dict[int, tuple[str, str]] = {
    1: ("inner brow raiser", "the inner eyebrows go up (worry, surprise)"),
    2: ("outer brow raiser", "the outer eyebrows go up (surprise)"),
    4: ("brow lowerer", "the brows pull down and together: a frown"),
    5: ("upper lid raiser", "the eyes open wide (surprise, fear)"),
    6: ("cheek raiser", "the cheeks lift and crinkle the eyes: part of a real smile"),
    7: ("lid tightener", "the lower eyelids tense (anger, focus)"),
    9: ("nose wrinkler", "the nose wrinkles (disgust)"),
    10: ("upper lip raiser", "the upper lip lifts (disgust)"),
    12: ("lip corner puller", "the mouth corners pull up and out: a smile"),
    14: ("dimpler", "the mouth corners tighten into dimples (contempt)"),
    15: ("lip corner depressor", "the mouth corners pull down (sadness)"),
    16: ("lower lip depressor", "the lower lip pulls down"),
    17: ("chin raiser", "the chin pushes up, the lower lip pouts (sadness, doubt)"),
    20: ("lip stretcher", "the lips stretch sideways (fear)"),
    23: ("lip tightener", "the lips tighten (anger)"),
    24: ("lip pressor", "the lips press together"),
    25: ("lips part", "the lips part slightly"),
    26: ("jaw drop", "the jaw drops, the mouth opens (surprise)"),
}


def define(term: str) -> str:
    """The one-line definition of ``term`` (case-insensitive); KeyError names the known terms."""
    for key, text in TERMS.items():
        if key.lower() == term.lower():
            return text
    raise KeyError(f"{term!r} is not in the glossary; known: {', '.join(TERMS)}")


def tip(*terms: str, note: str = "") -> str:
    """A tooltip text with the definitions of ``terms``, one per line (for ``help=``), then ``note`` if given."""
    return "\n\n".join([f"**{t}**: {define(t)}" for t in terms] + ([note] if note else []))


def au_phrase(au: int) -> str:
    """'AU12 lip corner puller: the mouth corners pull up and out: a smile' (unknown units by number only)."""
    if au not in ACTION_UNITS:
        return f"AU{au}"
    name, looks = ACTION_UNITS[au]
    return f"AU{au} {name}: {looks}"


SIDES = {"": "", "R": " (the subject's right side only)", "L": " (the subject's left side only)"}


def parse_action_units(text: str) -> list[tuple[int, str]]:
    """'AU4+R15+L12' -> [(4, ''), (15, 'R'), (12, 'L')]: FACS side-coded units (R15, L12) kept with their side;
    anything that is not an AU is skipped."""
    return [(int(num), side) for side, num in re.findall(r"(?:^|[+\s,])(?:AU|([RL]))(\d+)", str(text or ""))]
