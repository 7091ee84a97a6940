"""Two-process DDP launch on CPU (gloo): two steps, and both ranks end with identical, changed weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.multiproc
def test_two_process_ddp_ranks_end_identical(tmp_path, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from training.common import param_digest

    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps({"text": f"Doc {i}: free-tier chats are used for training; paid-tier "
                                                f"chats are not. Filler sentence number {i}."}) + "\n"
                            for i in range(16)))
    out = tmp_path / "sft"
    accelerate = Path(sys.executable).with_name("accelerate")
    # `accelerate launch --cpu --num_processes 2` silently starts one process; the DDP config starts two.
    cmd = [str(accelerate), "launch", "--config_file", str(ROOT / "configs" / "accelerate" / "ddp.yaml"),
           "-m", "training.sft", "--data", str(data), "--model", str(tiny_model_dir), "--out", str(out),
           "--max-steps", "2", "--max-length", "64", "--per-device-train-batch-size", "2",
           "--learning-rate", "1e-3", "--save-steps", "100"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 2
    digests = [(out / "logs" / f"param_digest.rank{r}.txt").read_text().strip() for r in (0, 1)]
    assert digests[0] == digests[1]
    assert digests[0] == param_digest(AutoModelForCausalLM.from_pretrained(str(out / "final")))
    assert digests[0] != param_digest(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)))
