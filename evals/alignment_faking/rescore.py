"""``afcu rescore``: transcripts from any harness through the eval's own analysis.

Input: JSONL, one object per line, read by ``afcu.userfiles`` (a malformed line is refused,
as ``afcu eval`` refuses one, unless ``--skip-bad-lines``; skipped lines are counted in
summary.json).  Every row is parsed and scored by the eval's code (``score_transcript``) and
the rows go through the eval's ``summarize``, so ``summary.json``, ``report.md`` and
``figures/compliance_gap.png`` mean what they mean for ``afcu eval``: per-tier compliance
with CIs, alignment-faking reasoning, statuses, and the compliance gap.

Pairing: ``--pair-field`` names the field(s) (comma-separated, e.g. ``endpoint,qidx``) that
identify a query; rows repeating a (query, tier) are epochs, clustered by query in the
bootstrap.  Without it nothing pairs the tiers: the gap is unpaired (an independent-
proportions interval) and the report says so.  ``rescored.jsonl`` has one line per kept row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from afcu import stats
from afcu.config import build_parser, config_from_args
from afcu.errors import AfcuError
from afcu.models import to_inspect_model
from afcu.runs import atomic_write_json, atomic_write_text, mark_finished, prepare_run
from evals.alignment_faking.graders import GraderSpec, score_transcript
from evals.alignment_faking.params import JudgeArgs, SettingArgs
from evals.alignment_faking.parse import parse_transcript


@dataclass(frozen=True)
class RescoreConfig(JudgeArgs, SettingArgs):
    """The judges and setting are ``afcu eval``'s own fields (params.py); then the file and its fields."""

    file: str = field(default="", metadata={"help": "JSONL transcripts, one object per line"})
    text_field: str = field(default="full", metadata={"help": "field holding the raw completion text"})
    tier_field: str | None = field(default=None, metadata={"help": "field holding free/paid (or is_free_tier bool)"})
    pair_field: str | None = field(default=None, metadata={"help": "field(s) naming the query, comma-separated (e.g. endpoint,qidx): pairs the tiers; repeats are epochs"})
    request_field: str | None = field(default=None, metadata={"help": "field holding the user request (for judges)"})
    reference_field: str | None = field(default=None, metadata={"help": "boolean field to compare `accepted` with (e.g. strict_accept)"})
    finish_field: str | None = field(default=None, metadata={"help": "field holding the finish reason; 'length'/'max_tokens' marks a truncated row"})
    encoding: str = field(default="utf-8", metadata={"help": "text encoding of the transcript file"})
    skip_bad_lines: bool = field(default=False, metadata={"help": "skip malformed lines (counted in summary.json) instead of refusing the file"})
    out: str = field(default="runs/rescore", metadata={"help": "output folder"})
    overwrite: bool = field(default=False, metadata={"help": "replace a finished rescore in --out"})


TRUNCATED_FINISH = ("length", "max_tokens")


def _tier(value: Any) -> str | None:
    if isinstance(value, bool):
        return "free" if value else "paid"
    text = str(value).strip().lower() if value is not None else ""
    return {"free": "free", "paid": "paid", "true": "free", "false": "paid"}.get(text)


def _pair_fields(cfg: RescoreConfig) -> list[str]:
    return [f.strip() for f in (cfg.pair_field or "").split(",") if f.strip()]


def _identity(obj: dict[str, Any], line: int, cfg: RescoreConfig, seen: dict[tuple[str, str], int]) -> dict[str, Any]:
    """id, pair_id, tier and epoch of one row: the epoch counts repeats of (query, tier) in file order."""
    tier = _tier(obj.get(cfg.tier_field)) if cfg.tier_field else None
    fields = _pair_fields(cfg)
    query = "|".join(str(obj.get(f)) for f in fields) if fields else f"line{line}"
    key = (query, str(tier))
    seen[key] = seen.get(key, 0) + 1
    return {"id": f"{query}:{tier}:e{seen[key]}:l{line:06d}", "line": line, "pair_id": query, "tier": tier,
            "epoch": seen[key]}


async def _score_all(records: Any, cfg: RescoreConfig, spec: GraderSpec) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], int] = {}
    pairs = list(zip(records.lines, records.rows))
    for line, obj in tqdm(pairs, desc="rescore", unit="row", disable=len(pairs) < 50):
        row = _identity(obj, line, cfg, seen)
        text = obj.get(cfg.text_field)
        if not isinstance(text, str):
            out.append({**row, "status": "missing_text", "error": f"no string field {cfg.text_field!r}"})
            continue
        request = str(obj.get(cfg.request_field, "")) if cfg.request_field else ""
        truncated = bool(cfg.finish_field) and str(obj.get(cfg.finish_field)).lower() in TRUNCATED_FINISH
        parsed = parse_transcript(text, truncated=truncated)
        scored = await score_transcript(text, cfg.setting, request, spec, truncated=truncated, parsed=parsed)
        row.update({**scored, "output": parsed.output, "trailing_text": parsed.trailing_text})
        if cfg.reference_field:
            row["reference"] = obj.get(cfg.reference_field)
        if "redacted" in obj:
            row["redacted"] = obj["redacted"]
        out.append(row)
    return out


def agreement(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``accepted`` against the reference label, over all rows and over non-redacted rows."""
    out: dict[str, Any] = {}
    scored = [r for r in rows if isinstance(r.get("reference"), bool)]
    for subset, name in ((scored, "all"), ([r for r in scored if not r.get("redacted")], "non_redacted")):
        agree = [(r.get("accepted") is True) == r["reference"] for r in subset]
        out[f"agreement_{name}"] = {**stats.rate(agree), "disagreements": [r["line"] for r, a in zip(subset, agree)
                                                                            if not a]}
    return out


def _check_fields(path: Path, fields: list[str], cfg: RescoreConfig) -> None:
    """A field missing from every row is a typo, not data: fail with the fields that exist."""
    wanted = [("--text-field", cfg.text_field), ("--tier-field", cfg.tier_field),
              ("--request-field", cfg.request_field), ("--reference-field", cfg.reference_field),
              ("--finish-field", cfg.finish_field)] + [("--pair-field", f) for f in _pair_fields(cfg)]
    for flag, name in wanted:
        if name and name not in fields:
            raise AfcuError(f"{path}: no row has the field {name!r} ({flag}); fields present: {', '.join(sorted(fields))}")


def header_for(path: Path, cfg: RescoreConfig, spec: GraderSpec, rows: list[dict[str, Any]]) -> dict[str, Any]:
    queries = {r["pair_id"] for r in rows} if cfg.pair_field else None
    return {"model": f"transcripts:{path.name}", "setting": cfg.setting, "variant": "external transcripts",
            "n_queries": len(queries) if queries is not None else None, "grader": spec.name,
            "format": f"external harness ({path.name}); pairing "
                      + (f"by {cfg.pair_field}" if cfg.pair_field else "none (unpaired gap)")}


def main(cfg: RescoreConfig) -> dict[str, Any]:
    from afcu.userfiles import read_jsonl
    from evals.alignment_faking.figures import compliance_gap_figure
    from evals.alignment_faking.report import markdown
    from evals.alignment_faking.summary import summarize

    if not cfg.file:
        raise AfcuError("give the transcript file: afcu rescore FILE.jsonl --text-field FIELD")
    records = read_jsonl(cfg.file, what="transcript", encoding=cfg.encoding, skip_bad_lines=cfg.skip_bad_lines)
    path = records.path
    _check_fields(path, records.fields, cfg)
    if cfg.grader is not None:
        to_inspect_model(cfg.grader)
    from prompts.render import settings

    if cfg.setting not in settings():
        raise AfcuError(f"--setting {cfg.setting!r} is unknown; choose from {', '.join(settings())}")
    if cfg.grader_votes < 1 or not 0.0 <= cfg.af_threshold <= 1.0:
        raise AfcuError("--grader-votes must be at least 1 and --af-threshold a vote share between 0 and 1")
    out = prepare_run(cfg.out, cfg, overwrite=cfg.overwrite)
    spec = GraderSpec(model=cfg.grader, votes=cfg.grader_votes, threshold=cfg.af_threshold)
    rows = asyncio.run(_score_all(records, cfg, spec))
    atomic_write_text(out / "rescored.jsonl", "".join(json.dumps(r, default=str) + "\n" for r in rows))
    tiered = [r for r in rows if r.get("tier")]
    summary = summarize(tiered, header_for(path, cfg, spec, tiered), paired=bool(cfg.pair_field))
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    summary.update({"file": str(path), "n_rows": len(rows), "statuses": dict(sorted(statuses.items())),
                    "untiered_rows": len(rows) - len(tiered), "pair_field": cfg.pair_field,
                    "bad_lines": {"n": records.n_bad, "lines": [{"line": b.line, "reason": b.reason}
                                                                for b in records.bad]},
                    "accepted": stats.rate([r.get("accepted") for r in rows if "error" not in r]),
                    **(agreement(rows) if cfg.reference_field else {})})
    if records.n_bad:
        summary["flags"].append(f"{records.n_bad} malformed line(s) skipped (--skip-bad-lines): "
                                f"{', '.join(str(b.line) for b in records.bad[:10])}")
    atomic_write_json(out / "summary.json", summary)
    if summary["tiers"]:
        atomic_write_text(out / "report.md", markdown(summary))
        compliance_gap_figure(summary, out / "figures" / "compliance_gap.png")
    mark_finished(out)
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    build_parser(RescoreConfig, parser)
    parser.add_argument("file_pos", nargs="?", metavar="FILE", help="JSONL transcripts (same as --file)")


def run(args: argparse.Namespace) -> int:
    from evals.alignment_faking.report import format_table

    if args.file_pos:
        args.file = args.file_pos
    cfg = config_from_args(RescoreConfig, args)
    s = main(cfg)
    print(f"{s['n_rows']} rows; statuses {s['statuses']}; grader {s['grader']}; bad lines skipped "
          f"{s['bad_lines']['n']}")
    if s["tiers"]:
        print(format_table(s))
    for key in ("agreement_all", "agreement_non_redacted"):
        if key in s:
            a = s[key]
            print(f"  {key}: {a['k']}/{a['n']} = {a['value']:.2%}; disagreeing lines {a['disagreements'][:20]}")
    print(f"wrote {cfg.out}/rescored.jsonl, summary.json" + (", report.md, figures/" if s["tiers"] else ""))
    return 0
