"""A two-process CPU launch (torchrun, gloo) gives the same SSD importance tensors as one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent


@pytest.mark.multiproc
def test_two_process_importance_matches_one_process(tmp_path):
    sys.path.insert(0, str(HERE))
    from dist_importance import compute

    out = tmp_path / "imp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parents[1])}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", "29517", str(HERE / "dist_importance.py"), str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    two = torch.load(out, weights_only=True)
    one = compute()
    assert set(one) == set(two)
    for n in one:
        assert one[n].abs().sum() > 0
        torch.testing.assert_close(two[n], one[n], rtol=1e-5, atol=1e-10)
