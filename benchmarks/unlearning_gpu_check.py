"""GPU smoke + timing for the CIFAR-10/ResNet-9 track without the real data set.

Writes a synthetic CIFAR-10 folder (python-batch format; each class a colour
offset plus noise, so it is learnable) and runs the vision bench on it with
``--dataset cifar10``.  The accuracies mean nothing about CIFAR-10; the run shows
that every method runs on CUDA and what a cell costs at 32x32x3 / ResNet-9 scale.

    python benchmarks/unlearning_gpu_check.py OUT_DIR [N_PER_BATCH]
"""

from __future__ import annotations

import pickle
import sys
import time
from pathlib import Path

import numpy as np


def write_fake_cifar(folder: Path, n_per_batch: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    colours = rng.integers(40, 216, size=(10, 3))
    folder.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        y = rng.integers(0, 10, size=n_per_batch)
        img = colours[y][:, :, None, None] + rng.normal(0, 60, size=(n_per_batch, 3, 32, 32))
        data = np.clip(img, 0, 255).astype(np.uint8).reshape(n_per_batch, 3072)
        (folder / name).write_bytes(pickle.dumps({b"data": data, b"labels": y.tolist()}))


if __name__ == "__main__":
    out = Path(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    write_fake_cifar(out / "fake-cifar", n)
    from afcu.cli import main

    start = time.perf_counter()
    rc = main(["unlearn", "bench", "--track", "vision", "--quick", "--dataset", "cifar10",
               "--data-dir", str(out / "fake-cifar"), "--out", str(out / "run"), "--manipulations", "badnets",
               "--fractions", "0.1", "1.0", "--config", "benchmarks/unlearning_gpu_check.yaml"])
    print(f"rc={rc} wall_s={time.perf_counter() - start:.1f}")
