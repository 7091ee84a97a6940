"""Keep inspect usable on machines without network access.

inspect estimates token counts with tiktoken's ``o200k_base`` file, which tiktoken
downloads on first use; offline (as on air-gapped clusters and this project's CI)
that raises and aborts the eval, e.g. for ``mockllm/model``.  We wrap the estimate:
the real one is used whenever it works, and after its first failure a
characters/4 estimate (plus inspect's own 10% buffer) is used instead.
"""

from __future__ import annotations

import logging
from typing import Callable

log = logging.getLogger(__name__)
_installed = False


def offline_safe(count: Callable[[str], int]) -> Callable[[str], int]:
    """Wrap a text token counter so that a failed encoding download falls back to an estimate."""
    failed = False

    def wrapped(text: str) -> int:
        nonlocal failed
        if not failed:
            try:
                return count(text)
            except (OSError, ValueError) as exc:  # requests' ConnectionError is an OSError
                failed = True
                log.info("tiktoken encoding unavailable offline (%s); estimating tokens as characters/4", type(exc).__name__)
        return max(1, int(len(text) / 4 * 1.1))

    return wrapped


def install() -> None:
    """Patch inspect's token estimate once per process (idempotent)."""
    global _installed
    if _installed:
        return
    from inspect_ai.model import _model

    _model.count_text_tokens = offline_safe(_model.count_text_tokens)
    _installed = True
