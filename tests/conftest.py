"""Shared fixtures: tiny models built in code, paths to ../shared data.

The tiny model is a 2-layer Llama with the embedded model's tokenizer (and chat
template), so tokenisation matches real runs while a forward pass costs
milliseconds.  Tests never fetch from a model hub.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def shared_file(rel: str) -> Path:
    """Path under ../shared/data, or skip the test with a clear reason when absent."""
    p = SHARED / rel
    if not p.exists():
        pytest.skip(f"{p} not present (shared data exists only in the afcu workplace)")
    return p


@pytest.fixture
def free_port() -> int:
    """A loopback port free right now, for a multi-process test's rendezvous.

    A fixed port (29531, ...) fails when two test runs share the machine: the second run's
    rendezvous meets the first's and a rank aborts.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def embedded_tokenizer_dir() -> Path:
    """Folder of the converted embedded model (converted once per machine)."""
    from afcu.models import EMBEDDED, pull

    return pull(EMBEDDED)


def build_tiny_model(folder: Path, arch: str = "llama", seed: int = 0, tokenizer_dir: Path | None = None) -> Path:
    """Save a 2-layer random model (Llama or Qwen2 shape) plus tokenizer into ``folder``."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    from afcu.models import EMBEDDED, pull

    tok = AutoTokenizer.from_pretrained(tokenizer_dir or pull(EMBEDDED))
    common = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                  pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
                  tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**common)) if arch == "llama" else Qwen2ForCausalLM(Qwen2Config(**common))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama model folder (random weights, the embedded tokenizer)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Qwen2 model folder (random weights, the embedded tokenizer)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen"), arch="qwen2")
