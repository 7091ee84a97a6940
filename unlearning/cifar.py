"""CIFAR-10 from a local folder and ResNet-9: the paper-scale GPU track (Goel et al. 2024 use ResNet-9).

The folder must hold the "python version" batches (``data_batch_1`` .. ``data_batch_5``,
``test_batch``, as unpacked from cifar-10-python.tar.gz), directly or in
``cifar-10-batches-py/``.  Nothing is downloaded.  Images become (N, 3, 32, 32)
float32 normalised per channel; 1000 test images (seeded) form the clean
validation split used by hyper-parameter selection, the other 9000 the test set.
No augmentation is applied (a documented simplification).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn

from afcu.errors import AfcuError
from unlearning.data import Split

FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def find_folder(data_dir: str) -> Path:
    """The folder holding the batches; raises AfcuError naming the flag and the fix."""
    for cand in (Path(data_dir), Path(data_dir) / "cifar-10-batches-py"):
        if data_dir and all((cand / f).exists() for f in FILES):
            return cand
    raise AfcuError(f"--data-dir {data_dir!r}: no CIFAR-10 python batches ({', '.join(FILES)}) there; "
                    "unpack cifar-10-python.tar.gz into a folder and pass it with --data-dir")


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open("rb") as fh:
        d = pickle.load(fh, encoding="bytes")
    return np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32), np.asarray(d[b"labels"], dtype=np.int64)


def load_cifar10(data_dir: str, seed: int = 0, n_val: int = 1000) -> tuple[Split, Split, Split]:
    """(train 50000, clean val ``n_val``, test 10000 - ``n_val``); ids: 0..49999 train, 50000+ test."""
    folder = find_folder(data_dir)
    parts = [_read(folder / f) for f in FILES[:5]]
    xtr, ytr = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    xte, yte = _read(folder / "test_batch")
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)

    def norm(x: np.ndarray) -> torch.Tensor:
        return (torch.from_numpy(x).float() / 255.0 - mean) / std

    train = Split({"x": norm(xtr), "y": torch.from_numpy(ytr)}, np.arange(len(ytr)))
    test = Split({"x": norm(xte), "y": torch.from_numpy(yte)}, np.arange(len(yte)) + len(ytr))
    order = np.random.default_rng(seed).permutation(len(test))
    n_val = min(n_val, len(test) // 10)  # small folders (tests, smoke runs) keep most images for testing
    return train, test.take(np.sort(order[:n_val])), test.take(np.sort(order[n_val:]))


def _conv(cin: int, cout: int, pool: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class _Residual(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(ch, ch), _conv(ch, ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet9(nn.Module):
    """ResNet-9 (Page 2018 "How to train your ResNet"): (B, 3, 32, 32) -> (B, n_classes) logits."""

    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.prep = _conv(3, 64)
        self.layer1 = nn.Sequential(_conv(64, 128, pool=True), _Residual(128))
        self.layer2 = _conv(128, 256, pool=True)
        self.layer3 = nn.Sequential(_conv(256, 512, pool=True), _Residual(512))
        self.head = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(512, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layer3(self.layer2(self.layer1(self.prep(x)))))

    def blocks(self) -> list[nn.Module]:
        return [self.prep, self.layer1, self.layer2, self.layer3, self.head]
