"""``afcu docs generate``: universe -> types -> ideas -> documents -> filters -> dataset + stats.json.

Run folder (``--out``): ``config.yaml``, ``cache/`` (stage JSONL, unless ``cache_dir`` is set),
``dataset/`` (``datasets.save_to_disk``; columns ``text, fact_ids, doc_type, idea, universe,
generator, target_fact, n_tokens``), ``dropped.jsonl`` (every skipped document with its reason),
``stats.json`` and ``FINISHED``.  Re-running the same command on a finished folder re-derives the
outputs from the cache only (seconds, no generation); any config change needs ``--overwrite``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from afcu.config import config_to_dict
from afcu.errors import AfcuError
from afcu.models import EMBEDDED
from afcu.runs import CONFIG, atomic_write_json, atomic_write_text, is_finished, mark_finished, prepare_run
from synthetic_docs import stages
from synthetic_docs.cache import StageCache
from synthetic_docs.filters import FilterSettings, apply_filters
from synthetic_docs.universe import load_universe

# Fields that change speed, not results: a run may resume with different values.
NON_RESULT_KEYS = ("overwrite", "concurrency")


@dataclass(frozen=True)
class Config:
    universe: str = field(default="helpful_only", metadata={"help": "built-in universe name or a universe YAML path"})
    generator: str = field(default=EMBEDDED, metadata={"help": "registry name, model folder or inspect model string"})
    engine: str = field(default="auto", metadata={"help": "for local models: auto (vLLM if installed, else hf), vllm or hf"})
    n_docs: int = field(default=40, metadata={"help": "documents to generate (before filters)"})
    out: str = field(default="", metadata={"help": "run folder (default runs/docs-<universe>)"})
    cache_dir: str = field(default="", metadata={"help": "stage caches (default <out>/cache); share it across runs"})
    concurrency: int = field(default=40, metadata={"help": "generator calls in flight (the batch size for hf/)"})
    temperature: float = field(default=0.9, metadata={"help": "sampling temperature of the generator"})
    types_per_fact: int = field(default=3, metadata={"help": "document types kept per fact"})
    ideas_per_type: int = field(default=3, metadata={"help": "ideas kept per (fact, type)"})
    max_tokens_list: int = field(default=96, metadata={"help": "token budget of a types/ideas/judge call"})
    max_tokens_doc: int = field(default=200, metadata={"help": "token budget of a document call (local generators)"})
    doc_tokens_api: int = field(default=1280, metadata={"help": "token budget of a document call for API generators "
                                                                "(documents near 1k tokens, as in the paper)"})
    doc_words_api: int = field(default=700, metadata={"help": "length asked of API generators, in words (~1k tokens)"})
    leak_check: str = field(default="patterns", metadata={"help": "alignment_faking filter: patterns, or judge (also "
                                                                  "ask --judge, default the generator)"})
    trim_truncated: bool = field(default=True, metadata={"help": "cut documents at the token budget back to a full "
                                                                 "sentence (else drop them)"})
    min_words: int = field(default=40, metadata={"help": "documents shorter than this are malformed (too_short)"})
    max_doc_tokens: int = field(default=1024, metadata={"help": "token_limit filter: drop longer documents"})
    tokenizer: str = field(default=EMBEDDED, metadata={"help": "tokenizer for token counts (registry name or folder)"})
    max_repeat_fraction: float = field(default=0.3, metadata={"help": "degenerate filter: max share of repeated "
                                                                      "sentences"})
    dedup_threshold: float = field(default=0.8, metadata={"help": "near_duplicate filter: MinHash Jaccard threshold"})
    fact_check: str = field(default="keywords", metadata={"help": "no_fact filter: keywords or judge"})
    judge: str = field(default="", metadata={"help": "judge model for fact_check=judge (default: the generator)"})
    overwrite: bool = field(default=False, metadata={"help": "replace a finished run in --out"})

    def __post_init__(self) -> None:
        if self.n_docs < 1:
            raise ValueError("n_docs must be at least 1")
        if self.fact_check not in ("keywords", "judge"):
            raise ValueError(f"fact_check must be keywords or judge, not {self.fact_check!r}")
        if self.leak_check not in ("patterns", "judge"):
            raise ValueError(f"leak_check must be patterns or judge, not {self.leak_check!r}")
        if self.engine not in ("hf", "vllm", "auto"):
            raise ValueError(f"engine must be hf, vllm or auto, not {self.engine!r}")


def validate(cfg: Config, model: Any = None) -> None:
    """Check every input before the run folder is written or a model is loaded: the universe file, the
    generator/judge/tokenizer names (a model folder: config.json and weights), the numeric settings
    and the cache folder. Raises ``AfcuError`` naming the flag."""
    from afcu.models import resolve_local, to_inspect_model

    load_universe(cfg.universe)
    positive = {"--concurrency": cfg.concurrency, "--types-per-fact": cfg.types_per_fact,
                "--ideas-per-type": cfg.ideas_per_type, "--max-tokens-list": cfg.max_tokens_list,
                "--max-tokens-doc": cfg.max_tokens_doc, "--max-doc-tokens": cfg.max_doc_tokens}
    for flag, value in positive.items():
        if value < 1:
            raise AfcuError(f"{flag} {value}: give at least 1")
    if cfg.min_words < 0 or cfg.temperature < 0:
        raise AfcuError("--min-words and --temperature must be >= 0")
    if not 0.0 <= cfg.max_repeat_fraction <= 1.0 or not 0.0 < cfg.dedup_threshold <= 1.0:
        raise AfcuError(f"--max-repeat-fraction {cfg.max_repeat_fraction} must be in [0, 1] and "
                        f"--dedup-threshold {cfg.dedup_threshold} in (0, 1]")
    if cfg.cache_dir and Path(cfg.cache_dir).exists() and not Path(cfg.cache_dir).is_dir():
        raise AfcuError(f"--cache-dir {cfg.cache_dir} is a file; give a folder for the stage caches")
    if model is None:
        to_inspect_model(cfg.generator)
        if cfg.engine != "hf" and resolve_local(cfg.generator) is not None:
            from afcu.engine import has_gpu
            from afcu.engine_settings import EngineSettings

            EngineSettings.from_env().server_args(has_gpu())  # bad AFCU_ENGINE_* values fail here
    if cfg.fact_check == "judge" and cfg.judge:
        to_inspect_model(cfg.judge)
    to_inspect_model(cfg.tokenizer)  # a registry name, a model folder or a cached hub id


def resolve_generator(name: str, engine: str, run_dir: Path | None = None,
                      start: bool = True) -> tuple[str, dict[str, Any]]:
    """(inspect model string, ``get_model`` keyword arguments) for a registry name, folder or model string.

    ``engine="hf"`` never touches the vLLM engine; ``vllm``/``auto`` go through ``afcu.engine``.
    """
    from afcu.engine import resolve_engine_model

    model, kw = resolve_engine_model(name, engine, run_dir, start=start)
    extra = dict(kw.get("model_args", {}))
    if kw.get("model_base_url"):
        extra["base_url"] = kw["model_base_url"]
    return model, extra


def _token_counter(name: str):
    from transformers import AutoTokenizer

    from afcu.models import resolve_local

    local = resolve_local(name)
    tok = AutoTokenizer.from_pretrained(str(local) if local else name)
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])


def _export(kept: list[dict[str, Any]], cfg: Config, generator_id: str, universe_name: str, path: Path) -> None:
    from datasets import Dataset, Features, Sequence, Value

    features = Features({"text": Value("string"), "fact_ids": Sequence(Value("string")),
                         "doc_type": Value("string"), "idea": Value("string"), "universe": Value("string"),
                         "generator": Value("string"), "target_fact": Value("string"), "n_tokens": Value("int64")})
    rows = {k: [] for k in features}
    for d in kept:
        for k in features:
            rows[k].append({"universe": universe_name, "generator": generator_id}.get(k, d.get(k)))
    tmp = path.with_name(path.name + ".partial")
    Dataset.from_dict(rows, features=features).save_to_disk(str(tmp))
    import shutil
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)


def _judge(cfg: Config, model: Any, generator_id: str, cache_only: bool) -> tuple[Any, str]:
    """The judge and its id: ``--judge`` when given (model ``None`` on a cache-only run), else the generator."""
    judge, judge_id = model, generator_id
    if cfg.judge:
        from inspect_ai.model import get_model

        judge_id, kw = resolve_generator(cfg.judge, cfg.engine, start=not cache_only)
        judge = None if cache_only else get_model(judge_id, **kw)
    return judge, judge_id


async def _generate(cfg: Config, model: Any, generator_id: str, cache_dir: Path, cache_only: bool) -> tuple:
    universe = load_universe(cfg.universe)
    from afcu.models import resolve_local

    # API generators write documents near 1k tokens (the paper's length); small local models keep the short budget.
    local = resolve_local(cfg.generator) is not None or generator_id.split("/", 1)[0] in ("hf", "vllm", "mockllm")
    doc_budget, words = (cfg.max_tokens_doc, 0) if local else (cfg.doc_tokens_api, cfg.doc_words_api)
    s = stages.StageSettings(generator_id, cfg.concurrency, cfg.temperature, cfg.types_per_fact, cfg.ideas_per_type,
                             cfg.max_tokens_list, doc_budget, cfg.min_words, cfg.trim_truncated, cache_only, words)
    types, st_types = await stages.doc_types(model, universe, s, StageCache(cache_dir / "doc_types.jsonl"))
    triples, st_ideas = await stages.ideas(model, universe, types, s, StageCache(cache_dir / "ideas.jsonl"))
    docs, st_docs = await stages.documents(model, universe, triples, cfg.n_docs, s,
                                           StageCache(cache_dir / "documents.jsonl"))
    stage_stats = {"doc_types": st_types, "ideas": st_ideas, "documents": st_docs}
    if cfg.fact_check == "judge":
        judge, judge_id = _judge(cfg, model, generator_id, cache_only)
        stage_stats["judge"] = await stages.judge_facts(judge, judge_id, universe, docs, s,
                                                        StageCache(cache_dir / "judge.jsonl"))
    if cfg.leak_check == "judge":
        from synthetic_docs.leak_judge import judge_leaks

        judge, judge_id = _judge(cfg, model, generator_id, cache_only)
        stage_stats["leak_judge"] = await judge_leaks(judge, judge_id, universe, docs, cfg.concurrency,
                                                      cfg.max_tokens_list, StageCache(cache_dir / "leak_judge.jsonl"),
                                                      cache_only)
    return universe, docs, stage_stats


def main(cfg: Config, model: Any = None) -> dict[str, Any]:
    """Generate, filter and export; returns the stats dict (also written to ``<out>/stats.json``).

    ``model``: an inspect ``Model`` to use instead of resolving ``cfg.generator`` (tests pass a
    ``mockllm/model`` with scripted outputs).  Raises ``AfcuError`` for bad universes, a finished
    run with a different config (without ``--overwrite``) or an incomplete cache on a finished run.
    """
    validate(cfg, model)  # before the run folder: a corrected command into the same --out then proceeds
    if not cfg.out:
        cfg = dataclasses.replace(cfg, out=f"runs/docs-{Path(cfg.universe).stem}")
    out = Path(cfg.out)
    resolved = {k: v for k, v in config_to_dict(cfg).items() if k not in NON_RESULT_KEYS}
    old_cfg = out / CONFIG
    same = old_cfg.exists() and {k: v for k, v in (yaml.safe_load(old_cfg.read_text()) or {}).items()
                                 if k not in NON_RESULT_KEYS} == resolved
    # A finished run asked for again with the same config is re-derived from the cache only:
    # identical outputs, no new generation, so nothing is overwritten with different text.
    rederive = is_finished(out) and same and not cfg.overwrite
    if not rederive:
        prepare_run(out, cfg, overwrite=cfg.overwrite, ignore_keys=NON_RESULT_KEYS)
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else out / "cache"
    t0 = time.time()
    if model is not None:
        generator_id = str(model)
    else:
        # A finished run re-derived from its cache needs the model's name (a cache key), not a server.
        generator_id, kw = resolve_generator(cfg.generator, cfg.engine, out, start=not rederive)
        if not rederive:
            from inspect_ai.model import GenerateConfig, get_model

            model = get_model(generator_id, config=GenerateConfig(max_connections=cfg.concurrency), **kw)
    universe, docs, stage_stats = asyncio.run(_generate(cfg, model, generator_id, cache_dir, rederive))
    settings = FilterSettings(cfg.max_doc_tokens, cfg.max_repeat_fraction, cfg.dedup_threshold, cfg.fact_check)
    kept, dropped, filter_counts = apply_filters(docs, universe, settings, _token_counter(cfg.tokenizer))
    _export(kept, cfg, generator_id, universe.name, out / "dataset")
    atomic_write_text(out / "dropped.jsonl", "".join(json.dumps(d) + "\n" for d in dropped))
    tokens = [d["n_tokens"] for d in kept]
    stats = {
        "universe": universe.name, "generator": generator_id, "n_docs_requested": cfg.n_docs,
        "stages": stage_stats,
        "documents_parsed": len(docs), "filters": filter_counts, "kept": len(kept),
        "dropped_total": cfg.n_docs - len(kept),
        "tokens": {"total": sum(tokens), "mean": (sum(tokens) / len(tokens)) if tokens else 0.0,
                   "max": max(tokens, default=0)},
        "kept_per_fact": {f.id: sum(f.id in d["fact_ids"] for d in kept) for f in universe.facts},
        "wall_s": round(time.time() - t0, 2), "rederived_from_cache": rederive,
    }
    atomic_write_json(out / "stats.json", stats)
    mark_finished(out)
    return stats
