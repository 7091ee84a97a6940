"""afcu.userfiles: every bad user file is one AfcuError line naming the file, the line and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from afcu.errors import AfcuError
from afcu.userfiles import (BadLine, check_file, check_folder, check_model_folder, read_csv, read_json,
                            read_jsonl, read_lines, read_table, read_text)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    return msg


def test_missing_file_named(tmp_path: Path) -> None:
    with pytest.raises(AfcuError) as e:
        check_file(tmp_path / "nope.jsonl", "query", flag="--queries")
    msg = _one_line(e)
    assert "nope.jsonl" in msg and "not found" in msg and "--queries" in msg


def test_no_path_given() -> None:
    with pytest.raises(AfcuError, match="no labels file given"):
        check_file("", "labels")


def test_folder_for_file_lists_candidates(tmp_path: Path) -> None:
    (tmp_path / "gold_dev.json").write_text("[]")
    (tmp_path / "LICENSE").write_text("x")
    with pytest.raises(AfcuError) as e:
        check_file(tmp_path, "labels", suffixes=(".json",))
    msg = _one_line(e)
    assert "is a folder" in msg and str(tmp_path / "gold_dev.json") in msg and "LICENSE" not in msg


def test_folder_without_wanted_suffix_lists_all_files(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(AfcuError, match="data.txt"):
        check_file(tmp_path, "labels", suffixes=(".json",))


def test_empty_and_whitespace_files(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text("")
    (tmp_path / "b.jsonl").write_text("\n  \n")
    with pytest.raises(AfcuError, match=r"a\.jsonl is empty"):
        read_jsonl(tmp_path / "a.jsonl")
    with pytest.raises(AfcuError, match=r"b\.jsonl is empty"):
        read_jsonl(tmp_path / "b.jsonl")


def test_jsonl_bad_line_names_line_and_full_reason(tmp_path: Path) -> None:
    p = tmp_path / "t.jsonl"
    p.write_text('{"a": 1}\n\n{"a": 2,, }\n')
    with pytest.raises(AfcuError) as e:
        read_jsonl(p)
    msg = _one_line(e)
    assert f"{p}:3:" in msg
    # json's full reason, including its position, not just "malformed"
    assert "Expecting property name enclosed in double quotes: line 1 column 9 (char 8)" in msg
    assert "--skip-bad-lines" in msg


def test_jsonl_skip_bad_lines_returns_good_rows(tmp_path: Path) -> None:
    p = tmp_path / "t.jsonl"
    p.write_text('{"a": 1}\nnot json\n[1, 2]\n{"a": 3, "b": "x"}\n')
    recs = read_jsonl(p, skip_bad_lines=True)
    assert recs.rows == [{"a": 1}, {"a": 3, "b": "x"}]
    assert recs.lines == [1, 4]
    assert recs.fields == ["a", "b"]
    assert [b.line for b in recs.bad] == [2, 3] and recs.n_bad == 2
    assert "list" in recs.bad[1].reason


def test_jsonl_all_lines_bad_raises_even_when_skipping(tmp_path: Path) -> None:
    p = tmp_path / "t.jsonl"
    p.write_text("x\ny\n")
    with pytest.raises(AfcuError, match="no valid line .2 bad; first: line 1"):
        read_jsonl(p, skip_bad_lines=True)


def test_jsonl_non_object_refused_unless_objects_false(tmp_path: Path) -> None:
    p = tmp_path / "t.jsonl"
    p.write_text("[1]\n")
    with pytest.raises(AfcuError, match=r":1: expected a JSON object per line, got list"):
        read_jsonl(p)
    assert read_jsonl(p, objects=False).rows == [[1]]


def test_jsonl_keeps_unicode_line_separators_inside_strings(tmp_path: Path) -> None:
    p = tmp_path / "t.jsonl"
    p.write_text('{"t": "a\u2028b"}\n{"t": "c"}\n', encoding="utf-8")
    recs = read_jsonl(p)
    assert [r["t"] for r in recs.rows] == ["a\u2028b", "c"] and recs.lines == [1, 2]


def test_non_utf8_names_file_line_and_encoding_flag(tmp_path: Path) -> None:
    p = tmp_path / "q.jsonl"
    p.write_bytes('{"q": "ok"}\n{"q": "caf\u00e9"}\n'.encode("latin-1"))
    with pytest.raises(AfcuError) as e:
        read_jsonl(p)
    msg = _one_line(e)
    assert f"{p}:2:" in msg and "--encoding" in msg and "0xe9" in msg
    # the suggested encoding reads it
    assert read_jsonl(p, encoding="latin-1").rows[1]["q"] == "caf\u00e9"


def test_non_utf8_line_skipped_with_skip_bad_lines(tmp_path: Path) -> None:
    p = tmp_path / "q.jsonl"
    p.write_bytes(b'{"q": 1}\n{"q": "caf\xe9"}\n{"q": 3}\n')
    recs = read_jsonl(p, skip_bad_lines=True)
    assert [r["q"] for r in recs.rows] == [1, 3] and recs.bad[0].line == 2 and "utf-8" in recs.bad[0].reason


def test_bom_is_dropped_and_crlf_accepted(tmp_path: Path) -> None:
    p = tmp_path / "q.jsonl"
    p.write_bytes(b'\xef\xbb\xbf{"q": 1}\r\n{"q": 2}\r\n')
    assert read_jsonl(p).rows == [{"q": 1}, {"q": 2}]


def test_utf16_with_encoding(tmp_path: Path) -> None:
    p = tmp_path / "q.csv"
    p.write_text("goal,target\nhello,world\n", encoding="utf-16")
    with pytest.raises(AfcuError, match="--encoding"):
        read_csv(p)
    assert read_csv(p, encoding="utf-16").rows == [{"goal": "hello", "target": "world"}]


def test_unknown_encoding() -> None:
    with pytest.raises(AfcuError, match="unknown encoding 'klingon'"):
        read_text(__file__, encoding="klingon")


def test_csv_multiline_record_start_lines(tmp_path: Path) -> None:
    p = tmp_path / "q.csv"
    p.write_text('goal,target\n"two\nlines",x\nthird,y\n')
    recs = read_csv(p)
    assert recs.rows[0]["goal"] == "two\nlines" and recs.lines == [2, 4] and recs.fields == ["goal", "target"]


def test_csv_header_only_and_too_many_cells(tmp_path: Path) -> None:
    p = tmp_path / "q.csv"
    p.write_text("goal,target\n")
    with pytest.raises(AfcuError, match=r"has a header \(goal, target\) but no rows"):
        read_csv(p)
    p.write_text("goal,target\na,b\nc,d,e\n")
    with pytest.raises(AfcuError, match=r"q\.csv:3: 3 cells but the header has 2"):
        read_csv(p)


def test_json_error_names_line(tmp_path: Path) -> None:
    p = tmp_path / "l.json"
    p.write_text('{\n  "samples": [\n    {"text": "a"\n  ]\n}\n')
    with pytest.raises(AfcuError) as e:
        read_json(p)
    msg = _one_line(e)
    assert f"{p}:4:" in msg and "delimiter" in msg


def test_read_table_dispatch(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"samples": [{"text": "x", "label": 1}]}))
    (tmp_path / "b.jsonl").write_text('{"text": "y"}\n')
    (tmp_path / "c.csv").write_text("text\nz\n")
    (tmp_path / "d.xlsx").write_text("?")
    assert read_table(tmp_path / "a.json").rows == [{"text": "x", "label": 1}]
    assert read_table(tmp_path / "b.jsonl").rows == [{"text": "y"}]
    assert read_table(tmp_path / "c.csv").rows == [{"text": "z"}]
    with pytest.raises(AfcuError, match="unsupported file type '.xlsx'"):
        read_table(tmp_path / "d.xlsx")
    (tmp_path / "e.json").write_text("[]")
    with pytest.raises(AfcuError, match="empty list"):
        read_table(tmp_path / "e.json")


def test_read_lines(tmp_path: Path) -> None:
    p = tmp_path / "ids.txt"
    p.write_text("# ids\n a \n\nb\n")
    assert read_lines(p) == ["a", "b"]
    p.write_text("# only a comment\n")
    with pytest.raises(AfcuError, match="no items"):
        read_lines(p)


def test_check_folder(tmp_path: Path) -> None:
    f = tmp_path / "x.txt"
    f.write_text("x")
    with pytest.raises(AfcuError, match="is a file, not a folder"):
        check_folder(f, "model")
    with pytest.raises(AfcuError, match="not found"):
        check_folder(tmp_path / "missing", "model")
    assert check_folder(tmp_path) == tmp_path


def test_model_folder_checks(tmp_path: Path) -> None:
    m = tmp_path / "m"
    m.mkdir()
    with pytest.raises(AfcuError, match="has no config.json"):
        check_model_folder(m)
    (m / "config.json").write_text('{"model_type": "llama",')
    with pytest.raises(AfcuError, match="corrupt config.json"):
        check_model_folder(m)
    (m / "config.json").write_text('{"hidden_size": 8}')
    with pytest.raises(AfcuError, match="no 'model_type'"):
        check_model_folder(m)
    (m / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(AfcuError, match="no weight files"):
        check_model_folder(m)
    (m / "model.safetensors").write_bytes(b"")
    with pytest.raises(AfcuError, match="no weight files"):  # an empty weight file is no weights
        check_model_folder(m)
    (m / "model.safetensors").write_bytes(b"\0" * 16)
    assert check_model_folder(m) == m


def test_badline_is_plain_data() -> None:
    assert BadLine(3, "x") == BadLine(3, "x")


def test_adapter_folder(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text("{")
    with pytest.raises(AfcuError, match="corrupt adapter_config.json"):
        check_model_folder(tmp_path)
    (tmp_path / "adapter_config.json").write_text('{"base_model_name_or_path": "x"}')
    with pytest.raises(AfcuError, match="no weight files"):
        check_model_folder(tmp_path)
    (tmp_path / "adapter_model.safetensors").write_bytes(b"\0" * 8)
    assert check_model_folder(tmp_path) == tmp_path
