"""A two-process CPU launch of training.rl (torchrun, gloo) ends with identical weights on both ranks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from rl_helpers import tiny_config  # noqa: E402


@pytest.mark.multiproc
def test_two_process_rl_keeps_ranks_in_sync(tiny_model_dir, tmp_path, free_port) -> None:
    from training import common

    out = tmp_path / "run"
    cfg = tmp_path / "rl.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(str(tiny_model_dir), str(out), max_steps=1, save_steps=1)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parents[1])}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", str(free_port), str(HERE / "dist_rl.py"), "--config", str(cfg)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    digests = [(out / "logs" / f"param_digest.rank{r}.txt").read_text().strip() for r in (0, 1)]
    assert digests[0] == digests[1]
    assert digests[0] != common.param_digest(common.load_model(str(tiny_model_dir)))  # the step moved the weights
    assert (out / "FINISHED").exists() and (out / "final" / "config.json").exists()
