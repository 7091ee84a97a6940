"""Helper launched by test_distributed.py: SSD importance of a tiny Llama under FSDP2 (CPU, gloo).

argv: model folder, output file, per-rank batch size.  Rank 0 saves the gathered importances.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402


def llm_data(model_dir: str):
    from unlearning.llm import LLMTask, encode
    from unlearning.llm_data import make_pairs

    task = LLMTask(model_dir=model_dir)
    data = encode(task.tokenizer, make_pairs(14, 0), task.max_len)  # 14 rows: the last global batch is short
    data.task = task
    return task, data


if __name__ == "__main__":
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from unlearning.methods.ssd import importance

    dist.init_process_group("gloo")
    model_dir, out, per_rank = sys.argv[1], sys.argv[2], int(sys.argv[3])
    task, data = llm_data(model_dir)
    model = task.new_model(0)
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    imp = importance(model, data, per_rank, shuffle_seed=5)
    full = {n: t.full_tensor() if hasattr(t, "full_tensor") else t for n, t in imp.items()}
    if dist.get_rank() == 0:
        torch.save(full, out)
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # as in dist_importance.py: skip a teardown abort seen on torch 2.13 + gloo after the work is saved
