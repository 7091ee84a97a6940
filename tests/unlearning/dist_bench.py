"""Helper launched by test_distributed.py: ``python -m unlearning.bench ARGS`` with every file write logged.

Each rank appends the paths it writes (text files, torch checkpoints, figures) to
``$AFCU_WRITE_LOG/rank<R>.txt``, so the test can check that no two ranks write the same file.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import matplotlib.figure  # noqa: E402
import torch  # noqa: E402

import afcu.runs  # noqa: E402

LOG = Path(os.environ["AFCU_WRITE_LOG"]) / f"rank{os.environ.get('RANK', '0')}.txt"


def _log(path) -> None:
    with LOG.open("a") as fh:
        fh.write(f"{Path(path).resolve()}\n")


def _wrap(fn):
    def inner(path, *a, **kw):
        _log(path)
        return fn(path, *a, **kw)
    return inner


_text, _save, _fig = afcu.runs.atomic_write_text, torch.save, matplotlib.figure.Figure.savefig
afcu.runs.atomic_write_text = _wrap(_text)
torch.save = lambda obj, f, *a, **kw: (_log(f), _save(obj, f, *a, **kw))[1]
matplotlib.figure.Figure.savefig = lambda self, fname, *a, **kw: (_log(fname), _fig(self, fname, *a, **kw))[1]

if __name__ == "__main__":
    sys.argv = ["unlearning.bench", *sys.argv[1:]]
    runpy.run_module("unlearning.bench", run_name="__main__", alter_sys=True)
