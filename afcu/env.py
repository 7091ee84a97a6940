"""Process environment defaults for CPU runs (set before torch is imported)."""

from __future__ import annotations

import os

DEFAULTS = {
    # One torch thread was 3-20x faster than two on a shared 2-core machine.
    "OMP_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # Nothing is ever fetched from a model hub at run time.
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}


def apply_defaults() -> None:
    """Set each default unless the user already set that variable."""
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
