"""The original (manipulated) model of a sweep cell, trained once and cached under the run folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn


def fit_or_load(task: Any, train: Any, seed: int, path: Path) -> nn.Module:
    """Load ``path`` when it exists, else ``task.fit`` a new model on ``train`` and save it atomically.

    ``task`` provides ``new_model(seed)``, ``fit(model, data, seed=)`` and ``device``.
    """
    model = task.new_model(seed)
    if path.exists():
        model.load_state_dict(torch.load(path, map_location=task.device, weights_only=True))
        return model.eval()
    task.fit(model, train, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)
    return model
