"""Run folders: one run = one folder with config.yaml, logs, summary.json, figures.

A finished run (marker file ``FINISHED``) is never overwritten silently; an
unfinished one resumes, but only with the same resolved config.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from afcu.config import config_to_dict
from afcu.errors import AfcuError

FINISHED = "FINISHED"
_UMASK = os.umask(0)
os.umask(_UMASK)
CONFIG = "config.yaml"


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename, so readers never see half a file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; run files are meant to be shared
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _finite(obj: Any) -> Any:
    """Replace NaN/inf floats by None so the file is strict JSON (readable by jq, JavaScript, pandas)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as strict JSON (non-finite floats become null), atomically."""
    atomic_write_text(path, json.dumps(_finite(obj), indent=2, sort_keys=False, default=str, allow_nan=False) + "\n")


def is_finished(run_dir: str | Path) -> bool:
    return (Path(run_dir) / FINISHED).exists()


def mark_finished(run_dir: str | Path) -> None:
    atomic_write_text(Path(run_dir) / FINISHED, "")


def nothing_ran(run_dir: str | Path) -> bool:
    """True when ``run_dir`` holds no file but ``config.yaml`` (empty sub-folders aside): a start that was
    refused or stopped before step 0, so a corrected command may replace that config."""
    p = Path(run_dir)
    return all(f.is_dir() or f == p / CONFIG for f in p.rglob("*"))


def prepare_run(run_dir: str | Path, config: Any, overwrite: bool = False,
                ignore_keys: tuple[str, ...] = ("overwrite",)) -> Path:
    """Create or resume ``run_dir`` and write the resolved ``config.yaml`` before any work.

    Raises ``AfcuError`` when ``run_dir`` is a file, when the folder holds a finished run (unless
    ``overwrite``) or an unfinished run started with a different config (resuming it would mix
    results). A folder holding only the ``config.yaml`` of a start that never ran is taken over.
    """
    p = Path(run_dir)
    if p.exists() and not p.is_dir():
        raise AfcuError(f"--out {p} is a file, not a run folder; choose another --out")
    resolved = {k: v for k, v in config_to_dict(config).items() if k not in ignore_keys}
    if p.exists() and is_finished(p):
        if not overwrite:
            raise AfcuError(f"{p} holds a finished run; pass --overwrite to replace it or choose another --out")
        shutil.rmtree(p)
    cfg_path = p / CONFIG
    if cfg_path.exists():
        try:
            old = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError):
            old = {}  # a damaged config.yaml counts as a different config
        old = {k: v for k, v in old.items() if k not in ignore_keys} if isinstance(old, dict) else {}

        def same(a: dict[str, Any], b: dict[str, Any]) -> bool:  # `out` is this folder however it is spelled
            return {k: v for k, v in a.items() if k != "out"} == {k: v for k, v in b.items() if k != "out"}

        # A folder where nothing ran under the old config (a refused start) is simply taken over.
        if not same(old, resolved) and not nothing_ran(p):
            if not overwrite:
                diff = sorted(k for k in set(old) | set(resolved) if old.get(k) != resolved.get(k) and k != "out")
                raise AfcuError(
                    f"{cfg_path}: an unfinished run with a different config is here (fields: {', '.join(diff)}); "
                    "resume with the same settings, pass --overwrite, or choose another --out"
                )
            shutil.rmtree(p)
    p.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cfg_path, yaml.safe_dump(resolved, sort_keys=False))
    return p
