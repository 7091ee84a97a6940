"""The bench under ``accelerate launch`` / ``torchrun``: process group, device, rank-0-only writes.

``accelerate launch --multi_gpu --num_processes N -m unlearning.bench ...`` (or
``torchrun --nproc_per_node N -m afcu.cli unlearn bench ...``) starts N processes
with RANK/WORLD_SIZE/LOCAL_RANK set.  :func:`setup` initialises the process group
through ``accelerate.PartialState`` (NCCL on GPUs, gloo on CPUs) and takes the
device from LOCAL_RANK.  The sweep is split across ranks by groups of cells that
share one original model (manipulation x size x seed): group g runs on rank
g % N, so two ranks never train the same original model or write the same
checkpoint.  After each round of N groups the other ranks hand their rows to rank 0
(``gather_object``), and rank 0 alone writes results.csv, summary.json, table.md
and figures.  Resume works as in one process: rank 0 reads results.csv and
broadcasts the finished cells.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def launched() -> bool:
    """True when a launcher started several processes (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: str) -> str:
    """Initialise the process group when launched on several processes; returns this rank's device."""
    if launched() and not dist.is_initialized():
        from accelerate import PartialState

        PartialState(cpu=device == "cpu" or not torch.cuda.is_available())
        if not dist.is_initialized():  # accelerate leaves a CPU launch without --multi_gpu alone
            dist.init_process_group("gloo")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and launched():
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    return device


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (identity in one process)."""
    if world()[1] == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """On rank 0: every rank's ``rows`` in rank order; elsewhere: an empty list."""
    rank, n = world()
    if n == 1:
        return rows
    out: list[Any] = [None] * n if rank == 0 else []
    dist.gather_object(rows, out if rank == 0 else None, dst=0)
    return [r for part in out for r in part] if rank == 0 else []


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()
