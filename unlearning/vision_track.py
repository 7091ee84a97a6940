"""The vision track: data, the original (manipulated) model, and evaluation for one seed.

Datasets: ``digits`` (scikit-learn's bundled 8x8 digits; CPU, minutes) and
``cifar10`` (a local folder, ResNet-9; the paper-scale GPU track, see cifar.py).
"""

from __future__ import annotations

import dataclasses

from pathlib import Path
from typing import Any

import torch
from torch import nn

from afcu.config import config_from_dict
from afcu.errors import AfcuError
from unlearning.checkpoints import fit_or_load
from unlearning.data import Split
from unlearning.manipulations import MANIPULATIONS, ManipulatedData, ManipulationConfig
from unlearning.vision import VisionTask, load_digits_splits

IMAGE_MANIPULATIONS = ("badnets", "interclass_confusion", "random_label_swap",
                       "em_class", "em_sample", "salm", "uc", "t2ue", "taggants")  # the last six: protection/


class VisionTrack:
    """Builds the manipulated training set, trains the original model once per (manipulation, seed)."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        arch = "resnet9" if cfg.dataset == "cifar10" else "cnn"
        self.task = config_from_dict(VisionTask, {"device": device, "arch": arch, **cfg.train}, "bench field 'train'")
        self.manip_cfg = config_from_dict(ManipulationConfig, dict(cfg.manipulation), "bench field 'manipulation'")
        self._splits: dict[int, tuple[Split, Split, Split]] = {}

    def splits(self, seed: int) -> tuple[Split, Split, Split]:
        """(train, clean validation, test) for ``seed``."""
        if seed not in self._splits:
            if self.cfg.dataset == "digits":
                self._splits[seed] = load_digits_splits(seed)
            elif self.cfg.dataset == "cifar10":
                from unlearning.cifar import load_cifar10

                self._splits[seed] = load_cifar10(self.cfg.data_dir, seed)
            else:
                raise AfcuError(f"bench field 'dataset': {self.cfg.dataset!r} is not digits or cifar10")
        return self._splits[seed]

    def manipulate(self, name: str, seed: int, size: int | None = None) -> ManipulatedData:
        """The manipulated data of one group; ``size`` overrides ``manipulation.n_manipulated`` (|S_m|)."""
        if name not in IMAGE_MANIPULATIONS:
            raise AfcuError(f"bench field 'manipulations': {name!r} is not an image manipulation "
                            f"({', '.join(IMAGE_MANIPULATIONS)}); use --track llm for text ones")
        train, val, test = self.splits(seed)
        mcfg = self.manip_cfg if size is None else dataclasses.replace(self.manip_cfg, n_manipulated=size)
        md = MANIPULATIONS.get(name)(train, test, mcfg, seed)
        md.train.task = self.task
        md.tests["val"] = val  # clean held-out data: the only data besides S_f that selection may use
        return md

    def accuracy(self, model: nn.Module, data: Split) -> float:
        """Accuracy against the split's own labels (selection scores S_f and the clean val split)."""
        return self.task.accuracy(model, data)

    def original(self, md: ManipulatedData, name: str, seed: int, run_dir: Path) -> nn.Module:
        """The model trained on the manipulated D with the recipe; cached under checkpoints/."""
        path = run_dir / "checkpoints" / f"original_{name}_n{len(md.manipulated_ids)}_seed{seed}.pt"
        return fit_or_load(self.task, md.train, seed, path)

    def evaluate(self, model: nn.Module, md: ManipulatedData, name: str) -> dict[str, float | None]:
        """acc_corr, acc_retain (utility = acc_retain); asr for badnets (patched images -> target class)."""
        acc_corr = self.task.accuracy(model, md.tests["corr"])
        acc_retain = self.task.accuracy(model, md.tests["retain"])
        asr = None
        if name == "badnets":
            asr = self.attack_success(model, md.tests["corr"])
        out = {"acc_corr": acc_corr, "acc_retain": acc_retain, "asr": asr, "utility": acc_retain}
        if "verifier" in md.tests:  # Data Taggants hook (protection/manipulations.py): ownership p-value
            out["ownership_p"] = md.tests["verifier"](model)
        return out

    @torch.no_grad()
    def attack_success(self, model: nn.Module, corr: Split) -> float:
        """Fraction of patched non-target test images classified as the BadNets target class."""
        hits = 0
        for batch in corr.batches(512):
            hits += int((model(batch["x"].to(self.task.device)).argmax(-1) == self.manip_cfg.target_class).sum())
        return hits / max(len(corr), 1)
