"""Small digits fixtures for the unlearning tests (a 1-2 epoch CNN trains in about a second)."""

from __future__ import annotations

import pytest

from unlearning.flagging import flag, forget_retain
from unlearning.manipulations import MANIPULATIONS, ManipulationConfig
from unlearning.vision import VisionTask, load_digits_splits


@pytest.fixture(scope="module")
def poisoned():
    """(task, trained model, manipulated data, forget S_f, retain D \\ S_f) for BadNets on digits."""
    task = VisionTask(epochs=3, batch_size=64, lr=3e-3)
    train, val, test = load_digits_splits(0)
    md = MANIPULATIONS.get("badnets")(train, test, ManipulationConfig(n_manipulated=60), seed=0)
    md.train.task = task
    model = task.fit(task.new_model(0), md.train, seed=0)
    forget, retain = forget_retain(md.train, flag(md.manipulated_ids, 0.5, seed=0))
    return task, model, md, forget, retain
