"""Multi-process paths (CPU, gloo): the sweep under accelerate launch, SSD importance across ranks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from unlearning.metrics import read_rows

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TIMING = {"time_s", "passes", "forward", "backward"}
# --quick (seed 0), cut to two (manipulation, size) groups so that each rank gets one
BENCH_ARGS = ["--track", "vision", "--quick", "--methods", "ssd", "assd", "gradient_ascent", "oracle",
              "--manipulations", "badnets", "--sizes", "{badnets: [20, 40]}", "--fractions", "0.5",
              "--train", "{epochs: 2}", "--method", "{forget_epochs: 1}"]


def _env(**kw):
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **kw}


def _accelerate(port: int) -> list[str]:
    exe = Path(sys.executable).with_name("accelerate")
    if not exe.exists():
        pytest.skip("accelerate launcher not installed")
    return [str(exe), "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", str(port)]


def _cells(run_dir: Path) -> list[tuple]:
    rows = read_rows(run_dir / "results.csv")
    return sorted(tuple(sorted((k, v) for k, v in r.items() if k not in TIMING)) for r in rows)


@pytest.mark.multiproc
def test_accelerate_launch_bench_matches_one_process_and_ranks_write_apart(tmp_path, free_port):
    two, one, logs = tmp_path / "two", tmp_path / "one", tmp_path / "logs"
    logs.mkdir()
    proc = subprocess.run([*_accelerate(free_port), str(HERE / "dist_bench.py"), *BENCH_ARGS, "--out", str(two)],
                          env=_env(AFCU_WRITE_LOG=str(logs)), capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from unlearning.cli import bench_main

    assert bench_main([*BENCH_ARGS, "--out", str(one)]) == 0  # one process: the same entry, in-process
    assert _cells(two) == _cells(one) and len(_cells(one)) == 2 * 5
    writes = {r: set((logs / f"rank{r}.txt").read_text().split()) for r in (0, 1)}
    assert not writes[0] & writes[1], "two ranks wrote the same file"
    rank1 = {Path(p).name for p in writes[1]}
    assert rank1 and all(n.startswith("original_badnets_n") for n in rank1), rank1  # only its own checkpoint
    assert {"results.csv", "summary.json", "table.md", "FINISHED"} <= {Path(p).name for p in writes[0]}


@pytest.mark.multiproc
def test_two_process_importance_matches_one_process(tmp_path, free_port):
    sys.path.insert(0, str(HERE))
    from dist_importance import compute

    out = tmp_path / "imp.pt"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", str(free_port), str(HERE / "dist_importance.py"), str(out)],
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    two = torch.load(out, weights_only=True)
    one = compute()
    assert set(one) == set(two)
    for n in one:
        assert one[n].abs().sum() > 0
        torch.testing.assert_close(two[n], one[n], rtol=1e-5, atol=1e-10)


@pytest.mark.multiproc
def test_fsdp_importance_equals_one_process_with_the_doubled_batch(tmp_path, tiny_model_dir, free_port):
    sys.path.insert(0, str(HERE))
    from dist_fsdp import llm_data

    from unlearning.methods.ssd import importance

    out = tmp_path / "fsdp.pt"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", str(free_port), str(HERE / "dist_fsdp.py"), str(tiny_model_dir), str(out), "3"],
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = torch.load(out, weights_only=True)
    task, data = llm_data(str(tiny_model_dir))
    one = importance(task.new_model(0), data, 6, shuffle_seed=5)  # one process, batch 2 x 3
    half = importance(task.new_model(0), data, 3, shuffle_seed=5)  # the per-rank batch: a different estimate
    assert set(one) == set(two)
    for n in one:
        torch.testing.assert_close(two[n], one[n], rtol=1e-4, atol=1e-10)
    assert any(not torch.allclose(half[n], one[n], rtol=1e-3) for n in one)
