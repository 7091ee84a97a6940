"""Datasets as tensors with stable sample ids, and the task adapter every method talks to.

A :class:`Split` holds equal-length tensors (images and labels, or padded token
ids, attention masks and labels) plus one integer id per sample, so the
deletion set S_f, the manipulated set S_m and the retain set can be compared
by id.  A :class:`Task` turns a model and a batch into logits and targets and
knows the original training recipe; methods never look at the data format.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
from torch import nn


@dataclass
class Split:
    """Samples as tensors sharing their first dimension N, with ids of shape (N,)."""

    tensors: dict[str, torch.Tensor]
    ids: np.ndarray
    task: "Task | None" = None  # how a model consumes these samples (methods read it)

    def __post_init__(self) -> None:
        n = len(self.ids)
        for k, v in self.tensors.items():
            if v.shape[0] != n:
                raise ValueError(f"Split tensor {k!r} has {v.shape[0]} rows, ids has {n}")

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, idx: np.ndarray | list[int]) -> "Split":
        """Rows at positions ``idx`` (not ids)."""
        pos = torch.as_tensor(np.asarray(idx, dtype=np.int64))
        return Split({k: v[pos] for k, v in self.tensors.items()}, self.ids[np.asarray(idx, dtype=np.int64)],
                     self.task)

    def select_ids(self, ids: np.ndarray, keep: bool = True) -> "Split":
        """Rows whose id is in ``ids`` (``keep=True``) or not in it (``keep=False``)."""
        mask = np.isin(self.ids, ids)
        return self.take(np.flatnonzero(mask if keep else ~mask))

    def batches(self, batch_size: int, shuffle: bool = False, seed: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        """Mini-batches as dicts of tensors; shuffling is seeded so a run is reproducible."""
        order = np.random.default_rng(seed).permutation(len(self)) if shuffle else np.arange(len(self))
        for start in range(0, len(self), batch_size):
            pos = torch.as_tensor(order[start:start + batch_size])
            yield {k: v[pos] for k, v in self.tensors.items()}


def concat(a: Split, b: Split) -> Split:
    """Rows of ``a`` then rows of ``b`` (same tensor keys and trailing shapes)."""
    return Split({k: torch.cat([a.tensors[k], b.tensors[k]]) for k in a.tensors}, np.concatenate([a.ids, b.ids]),
                 a.task or b.task)


@dataclass
class Counter:
    """Sample-level forward and backward passes (one sample through the model = one pass)."""

    forward: int = 0
    backward: int = 0

    @property
    def total(self) -> int:
        return self.forward + self.backward


@dataclass
class Task(ABC):
    """What a method needs to know about a model family; subclasses fill in the hooks.

    ``logits(model, batch)`` returns (N, C) rows that carry a label and ``targets``
    the (N,) labels, where N is the batch size for classifiers and the number of
    supervised tokens for language models.
    """

    device: str = "cpu"
    counter: Counter = field(default_factory=Counter)

    # --- hooks -----------------------------------------------------------
    @abstractmethod
    def forward_logits(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Uncounted forward pass: (N, C) logits of the supervised rows of a device batch."""

    @abstractmethod
    def targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(N,) int64 labels matching ``forward_logits`` rows."""

    def example_index(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(N,) position of each logit row's example in the batch (identity for classifiers)."""
        return torch.arange(batch_size(batch), device=self.device)

    @abstractmethod
    def new_model(self, seed: int) -> nn.Module:
        """The model the original recipe starts from (random init, or the pretrained base)."""

    def random_model(self, seed: int) -> nn.Module:
        """A randomly initialised model of the same shape (bad teacher's incompetent teacher)."""
        return self.new_model(seed)

    @abstractmethod
    def fit(self, model: nn.Module, data: Split, seed: int, params: list[nn.Parameter] | None = None,
            epochs: int | None = None) -> nn.Module:
        """Train ``params`` (default all) of ``model`` on ``data`` with the original recipe; returns it."""

    @abstractmethod
    def layers(self, model: nn.Module) -> list[nn.Module]:
        """Trainable blocks in forward order (cf_k / eu_k use the last k)."""

    # --- shared helpers --------------------------------------------------
    def to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device) for k, v in batch.items()}

    def logits(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Counted forward pass: (N, C) logits of the supervised rows."""
        self.counter.forward += batch_size(batch)
        return self.forward_logits(model, self.to_device(batch))

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean cross-entropy over supervised rows (a scalar)."""
        return nn.functional.cross_entropy(self.logits(model, batch), self.targets(self.to_device(batch)))

    def logprob(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B,) summed log-likelihood of each example's labels (NPO's log pi)."""
        b = self.to_device(batch)
        logits = self.logits(model, b)
        tok = -nn.functional.cross_entropy(logits, self.targets(b), reduction="none")
        out = torch.zeros(batch_size(b), device=self.device, dtype=tok.dtype)
        return out.index_add(0, self.example_index(b), tok)

    def backward(self, loss: torch.Tensor, n: int) -> None:
        """Counted backward pass over ``n`` samples."""
        self.counter.backward += n
        loss.backward()


def batch_size(batch: dict[str, torch.Tensor]) -> int:
    return int(next(iter(batch.values())).shape[0])
