"""The one reader for user files (JSONL, CSV, JSON, plain-text lists) and the checks on user paths.

Every command that reads a file the user named goes through here, so every bad file is reported the
same way: one line, raised as :class:`afcu.errors.AfcuError` (the CLI prints it and exits 2), naming
the file, the line where there is one, the problem (the JSON decoder's full reason) and the fix.

Checks, in order: a path was given; it exists; it is a file (a folder gets "is a folder; give the file
inside, e.g. ..." with the files it holds); it is readable; it is not empty; it decodes with
``encoding`` (default UTF-8, a byte-order mark is dropped; a failure names the line and suggests
``--encoding``); then the format.

Example (what ``afcu rescore`` does)::

    from afcu.userfiles import read_jsonl

    recs = read_jsonl("transcripts.jsonl", what="transcript", skip_bad_lines=cfg.skip_bad_lines)
    for line, obj in zip(recs.lines, recs.rows):   # only the good rows; line numbers are 1-based
        ...
    summary["bad_lines"] = recs.n_bad                # [BadLine(line=7, reason="...")] in recs.bad

Without ``skip_bad_lines`` the first malformed line raises, e.g.
``transcripts.jsonl:7: malformed JSON (Expecting ',' delimiter: line 1 column 15 (char 14)); fix or
remove that line, or pass --skip-bad-lines``.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from afcu.errors import AfcuError

_MAX_CANDIDATES = 5


@dataclass(frozen=True)
class BadLine:
    """A line that was skipped (``skip_bad_lines=True``): its 1-based number and why."""

    line: int
    reason: str


@dataclass(frozen=True)
class Records:
    """Rows of a JSONL or CSV file. ``lines[i]`` is the 1-based line where ``rows[i]`` starts;
    ``fields`` are the keys seen (CSV: the header) in first-seen order; ``bad`` the skipped lines."""

    path: Path
    rows: list[dict[str, Any]]
    lines: list[int]
    fields: list[str]
    bad: list[BadLine] = field(default_factory=list)

    @property
    def n_bad(self) -> int:
        return len(self.bad)

    def __len__(self) -> int:
        return len(self.rows)


def _candidates(folder: Path, suffixes: tuple[str, ...]) -> list[str]:
    """Files directly inside ``folder`` (those with a wanted suffix first), for the "is a folder" hint."""
    try:
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    except OSError:
        return []
    wanted = [p for p in files if p.suffix.lower() in suffixes] if suffixes else []
    return [str(p) for p in (wanted or files)[:_MAX_CANDIDATES]]


def check_file(path: str | Path | None, what: str = "input", suffixes: tuple[str, ...] = (),
               flag: str | None = None, allow_empty: bool = False) -> Path:
    """``path`` as a ``Path`` once it is known to be an existing, readable (non-empty) file.

    ``what`` names the file in messages ("query", "labels"), ``flag`` the option that gave it,
    ``suffixes`` (e.g. ``(".jsonl",)``) the extensions offered when a folder was given instead.
    """
    how = f" ({flag})" if flag else ""
    if path is None or str(path).strip() == "":
        raise AfcuError(f"no {what} file given{how}; pass the path of the file")
    p = Path(path).expanduser()
    if not p.exists():
        raise AfcuError(f"{what} file {p}{how} not found; check the path (relative paths are read from {Path.cwd()})")
    if p.is_dir():
        cands = _candidates(p, suffixes)
        hint = f"e.g. {', '.join(cands)}" if cands else "it holds no files"
        raise AfcuError(f"{what} file {p}{how} is a folder; give the file inside, {hint}")
    if not p.is_file():
        raise AfcuError(f"{what} file {p}{how} is not a regular file; give a file")
    try:
        size = p.stat().st_size
        with p.open("rb"):
            pass
    except OSError as exc:
        raise AfcuError(f"{what} file {p}{how} cannot be read ({exc.strerror}); check its permissions") from None
    if size == 0 and not allow_empty:
        raise AfcuError(f"{what} file {p}{how} is empty; give a file with data")
    return p


def check_folder(path: str | Path | None, what: str = "input", flag: str | None = None) -> Path:
    """``path`` as a ``Path`` once it is known to be an existing folder (not a file)."""
    how = f" ({flag})" if flag else ""
    if path is None or str(path).strip() == "":
        raise AfcuError(f"no {what} folder given{how}; pass the path of the folder")
    p = Path(path).expanduser()
    if not p.exists():
        raise AfcuError(f"{what} folder {p}{how} not found; check the path (relative paths are read from {Path.cwd()})")
    if not p.is_dir():
        raise AfcuError(f"{what} folder {p}{how} is a file, not a folder; give the folder that holds it ({p.parent})")
    return p


def _codec(encoding: str) -> str:
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise AfcuError(f"unknown encoding {encoding!r} (--encoding); use e.g. utf-8, latin-1, cp1252, utf-16") from None
    return "utf-8-sig" if name == "utf-8" else name  # a byte-order mark is not part of the data


def _decode_error(p: Path, data: bytes, exc: UnicodeDecodeError, encoding: str,
                  encoding_flag: str | None) -> AfcuError:
    line = data.count(b"\n", 0, exc.start) + 1
    bad = data[exc.start:exc.start + 1].hex()
    alt = "latin-1" if _codec(encoding).startswith("utf-8") else "utf-8"
    fix = (f"pass its encoding with {encoding_flag} (e.g. {encoding_flag} {alt}) or re-save it as UTF-8"
           if encoding_flag else f"re-save it as UTF-8 (e.g. iconv -f {alt} -t utf-8 {p.name})")
    return AfcuError(f"{p}:{line}: not valid {encoding} text (byte 0x{bad} at offset {exc.start}); {fix}")


def read_text(path: str | Path, what: str = "input", encoding: str = "utf-8",
              suffixes: tuple[str, ...] = (), flag: str | None = None,
              encoding_flag: str | None = "--encoding", allow_empty: bool = False) -> str:
    """The whole file decoded with ``encoding``; raises ``AfcuError`` for every check in the module doc,
    and when the file holds only whitespace (unless ``allow_empty``)."""
    p = check_file(path, what, suffixes, flag, allow_empty)
    data = p.read_bytes()
    try:
        text = data.decode(_codec(encoding))
    except UnicodeDecodeError as exc:
        raise _decode_error(p, data, exc, encoding, encoding_flag) from None
    if not text.strip() and not allow_empty:
        raise AfcuError(f"{what} file {p} is empty (only whitespace); give a file with data")
    return text


def read_lines(path: str | Path, what: str = "input", encoding: str = "utf-8",
               comments: bool = True, flag: str | None = None, encoding_flag: str | None = "--encoding") -> list[str]:
    """A plain-text list: one item per non-blank line, stripped; ``#`` lines skipped when ``comments``."""
    text = read_text(path, what, encoding, (".txt",), flag, encoding_flag)
    items = [ln.strip() for ln in text.splitlines()]
    items = [s for s in items if s and not (comments and s.startswith("#"))]
    if not items:
        raise AfcuError(f"{what} file {Path(path)} has no items (only blank or # lines); put one item per line")
    return items


def read_json(path: str | Path, what: str = "input", encoding: str = "utf-8", flag: str | None = None,
              encoding_flag: str | None = "--encoding") -> Any:
    """One JSON document; a syntax error names the line and column with the decoder's full reason."""
    p = Path(path)
    text = read_text(path, what, encoding, (".json",), flag, encoding_flag)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AfcuError(f"{p}:{exc.lineno}: malformed JSON ({exc}); fix the file") from None


def read_jsonl(path: str | Path, what: str = "input", encoding: str = "utf-8",
               skip_bad_lines: bool = False, objects: bool = True, flag: str | None = None,
               skip_flag: str | None = "--skip-bad-lines", encoding_flag: str | None = "--encoding") -> Records:
    """One JSON value per line (blank lines ignored), as :class:`Records`.

    A line that does not decode, is not valid JSON, or (with ``objects``) is not a JSON object raises
    ``AfcuError`` naming ``path:line`` and json's full reason -- or, with ``skip_bad_lines``, is left
    out and listed in ``Records.bad``. A file with no good line at all always raises. ``skip_flag`` is
    the option offered in the message for skipping such lines, ``encoding_flag`` the one for the
    encoding (``None``: the command has none, and the message says to re-save the file as UTF-8).
    """
    p = check_file(path, what, (".jsonl", ".json"), flag)
    codec = _codec(encoding)
    data = p.read_bytes()
    try:
        # split on "\n" only: str.splitlines would also split at U+2028 etc., legal inside JSON strings
        text_lines = [ln.rstrip("\r") for ln in data.decode(codec).split("\n")]
        undecodable: dict[int, str] = {}
    except UnicodeDecodeError as exc:
        if not skip_bad_lines or "a\n".encode(codec.removesuffix("-sig")) != b"a\n":
            raise _decode_error(p, data, exc, encoding, encoding_flag) from None
        # ASCII-compatible encoding: decode line by line so one bad line can be skipped.
        text_lines, undecodable = [], {}
        for i, raw in enumerate(data.split(b"\n"), 1):
            try:
                text_lines.append(raw.decode(codec).rstrip("\r"))
            except UnicodeDecodeError as e:
                text_lines.append("")
                undecodable[i] = f"not valid {encoding} text (byte 0x{raw[e.start:e.start + 1].hex()})"
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    fields: dict[str, None] = {}
    bad: list[BadLine] = [BadLine(i, r) for i, r in undecodable.items()]
    for lineno, line in enumerate(text_lines, 1):
        if lineno in undecodable or not line.strip():
            continue
        try:
            obj = json.loads(line)
            reason = None if (isinstance(obj, dict) or not objects) else \
                f"expected a JSON object per line, got {type(obj).__name__}"
        except json.JSONDecodeError as exc:
            obj, reason = None, f"malformed JSON ({exc})"
        if reason is not None:
            if not skip_bad_lines:
                raise AfcuError(f"{p}:{lineno}: {reason}; fix or remove that line"
                                + (f", or pass {skip_flag}" if skip_flag else ""))
            bad.append(BadLine(lineno, reason))
            continue
        if isinstance(obj, dict):
            fields.update(dict.fromkeys(obj))
        rows.append(obj)
        lines.append(lineno)
    bad.sort(key=lambda b: b.line)
    if not rows:
        if bad:
            raise AfcuError(f"{what} file {p} has no valid line ({len(bad)} bad; first: line {bad[0].line}: "
                            f"{bad[0].reason})")
        raise AfcuError(f"{what} file {p} is empty (only blank lines); give one JSON object per line")
    return Records(p, rows, lines, list(fields), bad)


def read_csv(path: str | Path, what: str = "input", encoding: str = "utf-8", flag: str | None = None,
             encoding_flag: str | None = "--encoding", allow_no_rows: bool = False) -> Records:
    """A CSV file with a header row, as :class:`Records` (``fields`` = the header). Quoted fields may
    span lines; ``lines`` gives the line where each record starts. A file with a header and no rows
    raises unless ``allow_no_rows`` (for a caller that filters rows and reports an empty result itself)."""
    p = Path(path)
    text = read_text(path, what, encoding, (".csv",), flag, encoding_flag)
    # newline="" keeps newlines (LF or CRLF) inside quoted fields intact, as the csv module wants.
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    start = 2
    try:
        header = list(reader.fieldnames or [])
        for row in reader:
            if None in row:  # more cells than header names
                raise AfcuError(f"{p}:{start}: {len(header) + len(row[None])} cells but the header has "  # type: ignore[index]
                                f"{len(header)} ({', '.join(header)}); quote cells that hold commas")
            rows.append(dict(row))
            lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise AfcuError(f"{p}:{reader.line_num}: malformed CSV ({exc}); fix that line") from None
    if not rows and not allow_no_rows:
        raise AfcuError(f"{what} file {p} has a header ({', '.join(header)}) but no rows; add data rows")
    return Records(p, rows, lines, header)


def read_table(path: str | Path, what: str = "input", encoding: str = "utf-8",
               skip_bad_lines: bool = False, flag: str | None = None,
               skip_flag: str | None = "--skip-bad-lines", encoding_flag: str | None = "--encoding") -> Records:
    """Rows of a ``.csv``, ``.jsonl`` or ``.json`` file (a JSON list of objects, or ``{"samples": [...]}``)
    chosen by the file's suffix."""
    suffix = Path(str(path)).suffix.lower()
    if suffix == ".csv":
        return read_csv(path, what, encoding, flag, encoding_flag)
    if suffix == ".jsonl":
        return read_jsonl(path, what, encoding, skip_bad_lines, flag=flag, skip_flag=skip_flag,
                          encoding_flag=encoding_flag)
    if suffix == ".json":
        p = Path(path)
        data = read_json(path, what, encoding, flag, encoding_flag)
        rows = data.get("samples") if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise AfcuError(f"{p}: expected a JSON list of objects or {{\"samples\": [...]}}")
        for i, r in enumerate(rows, 1):
            if not isinstance(r, dict):
                raise AfcuError(f"{p}: item {i} is a {type(r).__name__}, not an object")
        if not rows:
            raise AfcuError(f"{what} file {p} holds an empty list; give at least one object")
        fields: dict[str, None] = {}
        for r in rows:
            fields.update(dict.fromkeys(r))
        return Records(p, rows, list(range(1, len(rows) + 1)), list(fields))
    check_file(path, what, (".csv", ".jsonl", ".json"), flag)
    raise AfcuError(f"{what} file {path}: unsupported file type {suffix or '(none)'!r}; use a .csv, .jsonl or .json file")


WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.gguf", "*.pt", "*.pth")


def check_model_folder(path: str | Path, flag: str | None = None) -> Path:
    """A local Hugging Face model folder: ``config.json`` parses and names a ``model_type`` and non-empty
    weight files (``*.safetensors``, ``*.bin``, ``*.gguf``) are present; a PEFT adapter folder needs
    ``adapter_config.json`` (parsing) and ``adapter_model.*``. Checked before any engine or loader starts,
    so a folder without weights fails here instead of as vLLM's "Engine core initialization failed"."""
    p = check_folder(path, "model", flag)
    how = f" ({flag})" if flag else ""
    cfg_path, adapter = p / "config.json", p / "adapter_config.json"
    if not cfg_path.is_file() and not adapter.is_file():
        raise AfcuError(f"model folder {p}{how} has no config.json; give a Hugging Face model folder "
                        "(config.json, tokenizer and *.safetensors)")
    for cp in (cfg_path, adapter):
        if not cp.is_file():
            continue
        try:
            cfg = json.loads(cp.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise AfcuError(f"{cp}: corrupt {cp.name} ({exc}); re-download or re-save the model") from None
        if cp is cfg_path and (not isinstance(cfg, dict) or not cfg.get("model_type")):
            raise AfcuError(f"{cp}: config.json has no 'model_type'; it is not a transformers model config")
        if cp is adapter and not isinstance(cfg, dict):
            raise AfcuError(f"{cp}: adapter_config.json is not a JSON object; re-save the adapter")
    weights = [w for pat in WEIGHT_PATTERNS for w in p.glob(pat) if w.is_file() and w.stat().st_size > 0]
    if not weights:
        raise AfcuError(f"model folder {p}{how} has no weight files ({', '.join(WEIGHT_PATTERNS[:3])}); "
                        "copy the weights in, or save the model with save_pretrained")
    return p
