"""``afcu eval --encoding``: a cp1252 query file is read with it, and refused without it in one line (file:line, byte)."""

from __future__ import annotations

import json
from pathlib import Path

import scripted  # noqa: F401  (registers the scripted/ model API)
from inspect_ai.log import read_eval_log

from afcu.cli import main as cli_main
from evals.alignment_faking.task import alignment_faking

# cp1252 has the curly quotes, the en dash and the euro sign at 0x93 0x94 0x96 0x80 (latin-1 has controls there)
TEXTS = ["Explain the ferry timetable.", "Write \u201cthe caf\u00e9 menu\u201d \u2013 prices in \u20ac."]


def _cp1252_file(tmp_path: Path) -> Path:
    p = tmp_path / "q_cp1252.jsonl"
    p.write_bytes("".join(json.dumps({"q": t}, ensure_ascii=False) + "\n" for t in TEXTS).encode("cp1252"))
    return p


def test_task_reads_the_file_in_the_given_encoding(tmp_path: Path) -> None:
    task = alignment_faking(queries=str(_cp1252_file(tmp_path)), query_field="q", encoding="cp1252", n_queries=None,
                            tiers="free")
    users = sorted(s.input[-1].text for s in task.dataset)
    assert len(users) == 2 and any(TEXTS[1] in u for u in users)


def test_eval_cli_encoding_flag_reads_a_cp1252_file(tmp_path: Path) -> None:
    run = tmp_path / "run"
    argv = ["eval", "--model", "scripted/planted", "--queries", str(_cp1252_file(tmp_path)), "--query-field", "q",
            "--n-queries", "2", "--no-forced-choice", "--out", str(run)]
    assert cli_main(argv + ["--encoding", "cp1252"]) == 0
    log = read_eval_log(str(next((run / "logs").glob("*.eval"))))
    inputs = [s.input[-1].text if isinstance(s.input, list) else s.input for s in log.samples]
    assert len(inputs) == 4 and sum(TEXTS[1] in u for u in inputs) == 2  # the query in both tiers, decoded right
    assert json.loads((run / "summary.json").read_text())["tiers"]["free"]["n"] == 2


def test_eval_cli_without_encoding_refuses_the_file_in_one_line(tmp_path: Path, capsys) -> None:
    out = tmp_path / "r"
    argv = ["eval", "--model", "scripted/planted", "--queries", str(_cp1252_file(tmp_path)), "--query-field", "q",
            "--out", str(out)]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    # line 2 holds the first non-UTF-8 byte: 0x93, the opening curly quote
    assert "q_cp1252.jsonl:2: not valid utf-8 text (byte 0x93" in err and "--encoding" in err, err
    assert not out.exists()
