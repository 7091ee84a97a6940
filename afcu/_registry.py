"""inspect_ai entry point: every afcu task, so that ``inspect eval afcu/<task>`` finds it.

inspect namespaces a task by the top-level package of the module that defines it,
so the tasks are registered here, inside ``afcu``, as thin re-exports of the task
builders in ``evals/`` (imported explicitly; no auto-discovery).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from inspect_ai import Task, task

from afcu import offline
from evals.alignment_faking.task import alignment_faking as _alignment_faking

offline.install()


def _register(builder: Callable[..., Task]) -> Callable[..., Task]:
    @functools.wraps(builder)
    def wrapper(*args: Any, **kwargs: Any) -> Task:
        return builder(*args, **kwargs)

    wrapper.__module__ = __name__  # inspect derives the "afcu/" namespace from this
    return task(wrapper)


alignment_faking = _register(_alignment_faking)

__all__ = ["alignment_faking"]
