"""Helper launched by test_distributed.py: SSD importance under torchrun (gloo), saved by rank 0."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from unlearning.methods.ssd import importance  # noqa: E402
from unlearning.vision import VisionTask, load_digits_splits  # noqa: E402


def compute() -> dict[str, torch.Tensor]:
    task = VisionTask()
    train, _, _ = load_digits_splits(0)
    data = train.take(list(range(300)))
    data.task = task
    return importance(task.new_model(0), data, batch_size=32, shard_batches=True)


if __name__ == "__main__":
    dist.init_process_group("gloo")
    imp = compute()
    if dist.get_rank() == 0:
        torch.save(imp, sys.argv[1])
    dist.barrier()
    dist.destroy_process_group()
    # The work is done and saved.  On this torch (2.13, CPU, gloo) about one 2-process run in three then
    # aborted during interpreter teardown ("terminate called without an active exception", no Python
    # frame; not seen without the process group or without the backward passes), so leave without
    # running C++ static destructors.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
