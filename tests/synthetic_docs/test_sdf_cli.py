"""`afcu docs generate` through the real CLI with mockllm's default (unusable) output: nothing crashes."""

from __future__ import annotations

import json

from afcu.cli import main as afcu


def test_cli_counts_unusable_output_and_sft_refuses_empty_dataset(tmp_path, embedded_tokenizer_dir, capsys):
    out = tmp_path / "docs"
    rc = afcu(["docs", "generate", "--universe", "baseline", "--generator", "mockllm/model", "--n-docs", "3",
               "--out", str(out), "--tokenizer", str(embedded_tokenizer_dir)])
    assert rc == 0
    stats = json.loads((out / "stats.json").read_text())
    # "Default output from mockllm/model" is not a list: every fact's type call is malformed
    assert stats["stages"]["doc_types"]["malformed"] == {"no_list": 4}
    assert stats["stages"]["documents"]["calls"] == 0 and stats["kept"] == 0 and stats["dropped_total"] == 3
    assert "0/3 documents kept" in capsys.readouterr().out
    assert afcu(["docs", "generate", "--universe", "nowhere", "--out", str(tmp_path / "x")]) == 2
    # SFT on the empty dataset is a one-line user error (exit 2), not a traceback
    assert afcu(["train", "sft", "--data", str(out), "--model", str(embedded_tokenizer_dir),
                 "--out", str(tmp_path / "sft")]) == 2
    assert "no documents" in capsys.readouterr().err
