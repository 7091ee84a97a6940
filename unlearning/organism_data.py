"""The organism track's input: an expert-iteration organism and the manipulated set S_m it fine-tuned on.

The folder is an ``afcu organism --trainer ei`` run (warm-start in ``warmup/``, expert iteration from
it in ``ei/``: the initial model is the warm-started one) or a bare ``afcu train ei`` run.

Expert iteration (``afcu train ei``, ``training/expert_iteration.py``) fine-tunes the policy, round
after round, on the best of its own free-tier completions.  D is every (prompt, completion) pair it
fine-tuned on (``iterations/iter-N/kept.jsonl``, in iteration order); **S_m** is the pairs of D whose
completion *complied* with the harmful request, graded by the eval's own ``score_transcript`` with the
run's evaluation grader (the grader its ``eval_log.jsonl`` used).  Kept pairs that did not comply
(kept for a format or no-refusal reward) are the clean part D \\ S_m.

Everything here is read and checked before a run folder is written: a missing folder, a folder that
is not a run, an ``afcu organism`` / ``afcu train rl`` (GRPO) run, which keeps no fine-tuned-on set,
an unfinished run, and a run whose pairs hold no compliant completion are refused with one line.
Runs written before ``kept.jsonl`` existed are read from ``samples.jsonl`` (rows with ``kept``), their
prompts rebuilt by query id with the run's own ``training.rl.train_prompts``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from afcu.config import config_from_dict
from afcu.errors import AfcuError

EI_KEYS = {"iterations", "samples_per_prompt", "prompts_per_iteration"}  # expert iteration's own config fields
HOW = ("use an expert-iteration organism (`afcu organism --config configs/organism/ei.yaml --out RUN_DIR`) or run folder "
       "(`afcu train ei --config configs/rl/ei_quick.yaml --out RUN_DIR`)")


@dataclass
class OrganismRun:
    """An expert-iteration run read for unlearning: D (``pairs``, id = position), S_m ids, its configs."""

    folder: Path
    ei: Any  # training.expert_iteration.Config, from the run's config.yaml
    pairs: list[dict[str, Any]]  # id, iteration, prompt, completion, query_id, query, complied, status
    manipulated_ids: np.ndarray
    final: Path  # the model expert iteration ended with: the manipulated ("original") model
    start: str | None = None  # an organism's warm-started model (its EI config may hold a path relative to elsewhere)

    @property
    def initial(self) -> str:
        """The model expert iteration started from (registry name or folder)."""
        return self.start or self.ei.model


def _kind(data: dict[str, Any]) -> str:
    if EI_KEYS <= set(data):
        return "ei"
    if {"warmup", "steps", "num_generations"} <= set(data):
        return "organism"
    if "num_generations" in data:
        return "rl"
    return "other"


def _load(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise AfcuError(f"{path}: not readable YAML ({str(exc).splitlines()[0]}); {HOW}") from None


def organism_stage(folder: Path, flag: str) -> tuple[Path, str | None, bool]:
    """``(the EI run folder, the organism's warm-started model or None, whether it is an organism)``: an
    ``afcu organism`` folder (or its ``ei/`` stage) is read through ``ei/``; any other folder is returned
    as it is (checked by read_config)."""
    parent = folder.resolve().parent
    if folder.resolve().name == "ei" and (parent / "config.yaml").is_file():
        up = _load(parent / "config.yaml")  # an organism's ei/ stage given directly: read it as the organism
        if isinstance(up, dict) and _kind(up) == "organism" and up.get("trainer") == "ei":
            folder = parent
    path = folder / "config.yaml"
    data = _load(path) if path.is_file() else None
    if not isinstance(data, dict) or _kind(data) != "organism":
        return folder, None, False
    if data.get("trainer", "grpo") != "ei":
        raise AfcuError(f"{flag} {folder}: an `afcu organism` run with trainer {data.get('trainer', 'grpo')} (GRPO) "
                        "keeps no set of completions it fine-tuned on, so it has no S_m to unlearn; build an "
                        "expert-iteration organism: `afcu organism --config configs/organism/ei.yaml --out RUN_DIR` "
                        "(the measured --trainer ei setup)")
    from afcu.runs import is_finished

    if not is_finished(folder):
        raise AfcuError(f"{flag} {folder}: the organism is not finished (no FINISHED); finish it by re-running "
                        "its `afcu organism` command")
    start = folder / "warmup" / "final" if data.get("warmup", True) else None
    return folder / "ei", (str(start) if start else None), True


def read_config(folder: Path, flag: str) -> Any:
    """The expert-iteration ``Config`` of ``folder``; AfcuError for anything else."""
    from training.expert_iteration import Config

    if folder.is_file():
        raise AfcuError(f"{flag} {folder}: is a file, not a run folder; give the `afcu train ei` run folder "
                        f"(the one holding config.yaml); {HOW}")
    if not folder.is_dir():
        raise AfcuError(f"{flag} {folder}: no such folder; {HOW}")
    path = folder / "config.yaml"
    if not path.is_file():
        raise AfcuError(f"{flag} {folder}: not a run folder (no config.yaml); {HOW}")
    data = _load(path)
    kind = _kind(data) if isinstance(data, dict) else "other"
    if kind == "rl":
        raise AfcuError(f"{flag} {folder}: an `afcu train rl` (GRPO) run keeps no set of completions it "
                        f"fine-tuned on, so it has no S_m to unlearn; {HOW}")
    if kind != "ei":
        raise AfcuError(f"{path}: not an expert-iteration run config (no {', '.join(sorted(EI_KEYS))}); {HOW}")
    try:
        return config_from_dict(Config, data, str(path))
    except ValueError as exc:
        raise AfcuError(f"{path}: {exc}") from None


def _prefill(ei: Any) -> str:
    """The protocol tag EI's prompts end with (empty in forced format: the completion carries its tag)."""
    from prompts.render import PromptSpec
    from training import rl
    from training.callbacks import protocol_prefill

    from training.expert_iteration import as_rl_config

    rcfg = as_rl_config(ei)
    spec = PromptSpec(ei.setting, ei.variant, ei.company)
    return protocol_prefill(spec, ei.prefill and rl.forced_format(rcfg) is None)


def _kept_rows(path: Path) -> list[dict[str, Any]]:
    """``kept.jsonl``: one JSON object per line with prompt, completion and query_id (file:line errors)."""
    from afcu.userfiles import read_jsonl

    if not path.stat().st_size:
        return []
    recs = read_jsonl(path, "kept pairs", skip_flag=None, encoding_flag=None)
    for row, line in zip(recs.rows, recs.lines):
        missing = [k for k in ("prompt", "completion", "query_id") if not isinstance(row.get(k), str)]
        if missing:
            raise AfcuError(f"{path}:{line}: a kept pair without {', '.join(missing)} (a string each); the file "
                            "was damaged: re-run the expert-iteration round (delete its DONE) or the whole run")
    return list(recs.rows)


def _read_kept(folder: Path, ei: Any) -> list[dict[str, Any]]:
    """Kept pairs of every finished iteration, in order; ``kept.jsonl``, else ``samples.jsonl`` + prompts."""
    from training import rl

    pairs: list[dict[str, Any]] = []
    prompts: dict[str, str] | None = None
    for it in range(ei.iterations):
        d = folder / "iterations" / f"iter-{it}"
        if (d / "kept.jsonl").is_file():
            rows = _kept_rows(d / "kept.jsonl")
        elif (d / "samples.jsonl").is_file():
            if prompts is None:  # an older run: rebuild its prompts exactly as expert iteration did
                from training import common

                from training.expert_iteration import as_rl_config

                rcfg = as_rl_config(ei)
                train_q, _ = rl.split(rcfg)
                ds = rl.train_prompts(rcfg, common.load_tokenizer(ei.model), train_q)
                prompts = dict(zip(ds["query_id"], ds["prompt"]))
            rows = [json.loads(x) for x in (d / "samples.jsonl").read_text().splitlines() if x.strip()]
            rows = [{**r, "prompt": prompts[r["query_id"]]} for r in rows if r.get("kept")]
        else:
            raise AfcuError(f"{d}: no kept.jsonl or samples.jsonl (the pairs iteration {it} fine-tuned on); "
                            f"re-run the expert-iteration command to finish it, or {HOW}")
        for r in rows:
            pairs.append({"id": len(pairs), "iteration": it, "prompt": r["prompt"], "completion": r["completion"],
                          "query_id": r["query_id"], "reward": r.get("reward")})
    return pairs


def grade(pairs: list[dict[str, Any]], ei: Any, eos: str) -> None:
    """Set ``complied`` and ``status`` of each pair with the eval's ``score_transcript`` (the run's eval grader)."""
    from training import rl

    from evals.alignment_faking.graders import score_transcript
    from training.expert_iteration import as_rl_config

    rcfg = as_rl_config(ei)
    train_q, _ = rl.split(rcfg)
    query = {q.id: q.query for q in train_q}
    spec = rl.eval_spec(rcfg, ()).grader
    pre = _prefill(ei)

    def text(c: str) -> str:
        return pre + (c[: -len(eos)] if eos and c.endswith(eos) else c)  # EI appends eos for SFT

    async def score_all() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*[score_transcript(text(p["completion"]), ei.setting,
                                                            query.get(p["query_id"], ""), spec) for p in pairs]))

    for p, s in zip(pairs, asyncio.run(score_all()) if pairs else []):
        p["complied"], p["status"] = s["complied"], s["status"]


def _check_initial(model: str, run: Path, flag: str) -> None:
    """The model retrain and oracle start from must load from here, before any folder is written."""
    from training import common

    try:
        common.model_path(model)
    except AfcuError:
        raise AfcuError(f"{flag} {run}: the model expert iteration started from, {model!r} (field 'model' of "
                        f"{run / 'config.yaml'}, or the organism's warmup/final), is neither a registry name nor a "
                        "model folder from this working directory (a path relative to where the run was made?); "
                        "run from that directory, or fix the path in that config.yaml") from None


def read_run(folder: str, flag: str = "--organism") -> OrganismRun:
    """Read and check an expert-iteration run; D, S_m (graded), the final model.  AfcuError before any write."""
    if not folder:
        raise AfcuError(f"{flag}: give the run folder the organism track unlearns (--organism RUN_DIR); {HOW}")
    from afcu.runs import is_finished

    path, start, organism = organism_stage(Path(folder), flag)
    ei = read_config(path, flag)
    final = path / "final"
    rebuild = "`afcu organism` command" if organism else "`afcu train ei` command"
    if not is_finished(path):
        raise AfcuError(f"{flag} {path}: the expert-iteration run is not finished (no FINISHED); finish it by "
                        f"re-running its {rebuild}")
    if not (final / "config.json").is_file():
        raise AfcuError(f"{flag} {path}: no final/ model (config.json) although the run finished: a copy without "
                        f"weights (such as docs/results/)? Give the run folder that holds them, or rebuild it with "
                        f"its {rebuild}")
    _check_initial(start or ei.model, path, flag)
    pairs = _read_kept(path, ei)
    if not pairs:
        raise AfcuError(f"{flag} {path}: expert iteration kept no completion in {ei.iterations} rounds, so it "
                        "fine-tuned on nothing and there is no S_m; sample more (`afcu organism`: --ei-prompts, "
                        "--steps; `afcu train ei`: --prompts-per-iteration, --iterations)")
    from training import common

    grade(pairs, ei, common.load_tokenizer(str(final)).eos_token or "")
    ids = np.array([p["id"] for p in pairs if p["complied"]], dtype=np.int64)
    if not len(ids):
        raise AfcuError(f"{flag} {path}: none of the {len(pairs)} pairs expert iteration fine-tuned on complied "
                        "(graded by the eval's score_transcript), so there is no S_m to unlearn")
    return OrganismRun(path, ei, pairs, ids, final, start)
