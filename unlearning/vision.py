"""Vision track: scikit-learn's bundled digits (8x8, 10 classes) and a small CNN.

The digits track is the CPU track (minutes).  Pixel values are scaled to [0, 1]
(raw values are 0..16), images are (N, 1, 8, 8) float32 and labels (N,) int64.
CIFAR-10 with ResNet-9 (the paper-scale GPU track) lives in ``cifar.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from unlearning.data import Split, Task


def load_digits_splits(seed: int, test_fraction: float = 0.3,
                       val_fraction: float = 0.1) -> tuple[Split, Split, Split]:
    """Stratified train/val/test split of the 1797 digits; ids are the row numbers in ``load_digits``.

    ``val`` is clean held-out data for hyper-parameter selection; ``test`` is only for reporting.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target, dtype=torch.int64)
    ids = np.arange(len(y))
    tr, te = train_test_split(ids, test_size=test_fraction, random_state=seed, stratify=d.target)
    tr, va = train_test_split(tr, test_size=val_fraction / (1 - test_fraction), random_state=seed,
                              stratify=d.target[tr])
    tr, va, te = np.sort(tr), np.sort(va), np.sort(te)
    return tuple(Split({"x": x[i], "y": y[i]}, i) for i in (tr, va, te))  # type: ignore[return-value]


class SmallCNN(nn.Module):
    """Two 3x3 conv layers, max-pool, two linear layers: (B, C, H, W) -> (B, n_classes) logits."""

    def __init__(self, in_channels: int = 1, n_classes: int = 10, side: int = 8, width: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.fc1 = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * (side // 2) ** 2, 64), nn.ReLU())
        self.fc2 = nn.Linear(64, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(self.conv2(self.conv1(x))))

    def blocks(self) -> list[nn.Module]:
        return [self.conv1, self.conv2, self.fc1, self.fc2]


@dataclass
class VisionTask(Task):
    """Image classification: logits (B, C) against labels (B,); ``fit`` is the original recipe.

    Recipe: AdamW(lr, weight_decay), ``epochs`` passes over shuffled data in
    batches of ``batch_size``.  ``arch`` is ``cnn`` (digits) or ``resnet9`` (CIFAR-10).
    """

    arch: str = "cnn"
    n_classes: int = 10
    lr: float = 3e-3
    weight_decay: float = 5e-4
    epochs: int = 20
    batch_size: int = 64

    def forward_logits(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(batch["x"])

    def targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return batch["y"].to(self.device)

    def new_model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        if self.arch == "resnet9":
            from unlearning.cifar import ResNet9

            return ResNet9(self.n_classes).to(self.device)
        return SmallCNN(n_classes=self.n_classes).to(self.device)

    def layers(self, model: nn.Module) -> list[nn.Module]:
        return model.blocks()  # type: ignore[operator]

    def fit(self, model: nn.Module, data: Split, seed: int, params: list[nn.Parameter] | None = None,
            epochs: int | None = None) -> nn.Module:
        """Train ``params`` (default: all) of ``model`` on ``data`` in place; returns the model."""
        model.train()
        opt = torch.optim.AdamW(params if params is not None else model.parameters(), lr=self.lr,
                                weight_decay=self.weight_decay)
        for epoch in range(self.epochs if epochs is None else epochs):
            for batch in data.batches(self.batch_size, shuffle=True, seed=seed * 1000 + epoch):
                opt.zero_grad()
                self.backward(self.loss(model, batch), len(batch["y"]))
                opt.step()
        model.eval()
        return model

    @torch.no_grad()
    def accuracy(self, model: nn.Module, data: Split) -> float:
        """Top-1 accuracy on ``data`` in [0, 1] (nan for an empty split)."""
        if len(data) == 0:
            return float("nan")
        model.eval()
        correct = 0
        for batch in data.batches(512):
            b = self.to_device(batch)
            correct += int((model(b["x"]).argmax(-1) == b["y"]).sum())
        return correct / len(data)
