"""CIFAR-10 track: a clear error without the folder; a fake batch folder loads; ResNet-9 shapes."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from afcu.errors import AfcuError
from unlearning.cifar import FILES, ResNet9, load_cifar10


def test_missing_folder_names_the_flag(tmp_path):
    with pytest.raises(AfcuError, match="--data-dir"):
        load_cifar10(str(tmp_path / "absent"))


def test_fake_batches_load_and_resnet9_runs(tmp_path):
    rng = np.random.default_rng(0)
    for f in FILES:
        d = {b"data": rng.integers(0, 256, size=(20, 3072), dtype=np.uint8), b"labels": list(range(10)) * 2}
        (tmp_path / f).write_bytes(pickle.dumps(d))
    train, val, test = load_cifar10(str(tmp_path), n_val=5)
    assert train.tensors["x"].shape == (100, 3, 32, 32) and len(val) == 2 and len(test) == 18
    assert not set(val.ids) & set(test.ids)
    out = ResNet9()(train.tensors["x"][:2])
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_cli_fails_before_creating_the_run_folder(tmp_path, capsys):
    from afcu.cli import main

    out = tmp_path / "run"
    rc = main(["unlearn", "bench", "--dataset", "cifar10", "--data-dir", str(tmp_path / "none"),
               "--out", str(out), "--train", "{epochs: 1}"])
    assert rc == 2 and not out.exists()
    assert "--data-dir" in capsys.readouterr().err
