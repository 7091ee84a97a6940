"""Did corrective unlearning remove the data, or only its symptom?  Membership verification of
LexiMark-watermarked manipulated documents (issue 17, item 4; methods: protection/leximark.py,
protection/membership.py).

Protocol: the manipulated documents S_m and a reference set of documents from the same source that
are never trained on are watermarked with one LexiMark map (members and reference alike, as in the
LexiMark paper).  After a method unlearns the flagged part S_f of S_m, the membership score of the
flagged and of the unflagged manipulated documents is compared with the reference set's: record-level
AUROC (with a bootstrap CI) and a one-sided Welch t-test.  The never-trained control (the base model
before any fine-tuning) gives the AUROC that "never seen" looks like; a method that hides the
behaviour but leaves the data memorised keeps the flagged AUROC well above the control's.

Entry points for a track: :func:`prepare` once per (manipulation, seed) before training (the track
trains on ``Prepared.manipulated``), then :func:`verify` on each model with the flagged ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from protection import membership as mi
from protection.leximark import LexiMarkConfig, watermark


@dataclass
class Prepared:
    """Watermarked manipulated documents (in S_m order), the watermarked reference set, LexiMark stats."""

    manipulated: list[str]
    reference: list[str]
    stats: dict[str, Any]


def prepare(manipulated: Sequence[str], reference: Sequence[str], cfg: LexiMarkConfig = LexiMarkConfig(),
            model: Any = None, tok: Any = None) -> Prepared:
    """One LexiMark map over S_m and the reference documents (``model``/``tok``: the context filter)."""
    if not manipulated or len(reference) < 2:
        raise ValueError("membership verification needs manipulated documents and >= 2 reference documents")
    wm = watermark([*manipulated, *reference], cfg, model, tok)
    n = len(manipulated)
    return Prepared(wm.texts[:n], wm.texts[n:], wm.stats)


def verify(model: Any, tok: Any, prep: Prepared, flagged: Sequence[int], score: str = "mink++_20",
           n_boot: int = 1000, seed: int = 0, max_len: int = 128) -> dict[str, float | int | None]:
    """Membership of the flagged and unflagged manipulated documents against the reference set.

    ``flagged``: positions in ``prep.manipulated`` that the method was asked to forget.  Returns
    ``mi_auroc_flagged`` (+ ``_lo``/``_hi``), ``mi_p_flagged`` (one-sided Welch), the same for the
    unflagged ones (None when every document was flagged), and the counts.
    """
    if score not in mi.SCORES:
        raise ValueError(f"score {score!r} is not one of {', '.join(mi.SCORES)}")
    rows = mi.score_texts(model, tok, [*prep.manipulated, *prep.reference], max_len=max_len)
    x = np.array([r[score] for r in rows])
    n = len(prep.manipulated)
    manip, ref = x[:n], x[n:]
    mask = np.zeros(n, bool)
    mask[list(flagged)] = True
    out: dict[str, float | int | None] = {"mi_n_flagged": int(mask.sum()), "mi_n_unflagged": int((~mask).sum()),
                                          "mi_n_reference": len(ref)}
    for name, part in (("flagged", manip[mask]), ("unflagged", manip[~mask])):
        if len(part) == 0:
            out.update({f"mi_auroc_{name}": None, f"mi_auroc_{name}_lo": None, f"mi_auroc_{name}_hi": None,
                        f"mi_p_{name}": None})
            continue
        roc = mi.roc_metrics(part, ref, n_boot=n_boot, seed=seed)
        out[f"mi_auroc_{name}"] = roc["auroc"]
        out[f"mi_auroc_{name}_lo"], out[f"mi_auroc_{name}_hi"] = roc["auroc_ci"]
        out[f"mi_p_{name}"] = mi.welch_t(part, ref)[1] if len(part) > 1 else None
    return out
