"""``afcu eval``: the main job.  One run folder with config, inspect logs, summary, report and figures.

Defaults: helpful-only setting, the embedded SmolLM2 model, both tiers, 20 queries
(40 samples), assistant prefill, forced choice on.  Re-running the same command
resumes an interrupted run with inspect's ``eval_retry``; a finished run is refused
unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from afcu.config import build_parser, config_from_args
from afcu.errors import AfcuError
from afcu.models import EMBEDDED, hf_model_args, resolve_local, to_inspect_model
from afcu.runs import is_finished, mark_finished, prepare_run
from evals.alignment_faking.params import EvalArgs


@dataclass(frozen=True)
class EvalConfig(EvalArgs):
    """``afcu eval``: the task's arguments (``EvalArgs``, shared with the inspect task, sweep and training),
    then the model, engine and run folder."""

    model: str = field(default=EMBEDDED, metadata={"help": "registry name, local model folder, or inspect model string (openai/..., vllm/...)"})
    engine: str = field(default="auto", metadata={"help": "local inference engine: auto (vLLM when installed), vllm or hf"})
    format: str = field(default="auto", metadata={"help": "generation: forced (afcu closes the scratchpad and opens the output), free, or auto (forced for models whose registry entry says they do not follow the protocol)"})
    max_connections: int = field(default=32, metadata={"help": "concurrent generations (the hf provider's batch size)"})
    retries: int = field(default=1, metadata={"help": "inspect retries of a sample that errored"})
    out: str | None = field(default=None, metadata={"help": "run folder (default runs/af-<setting>-<variant>-<model>)"})
    overwrite: bool = field(default=False, metadata={"help": "replace a finished run in --out"})


def default_out(cfg: EvalConfig) -> str:
    """``runs/af-<setting>-<variant>-<model>``; the model part keeps up to its last two path components,
    so ``runs/sft-quick/final`` and ``runs/rl-quick/final`` get different folders."""
    short = re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(Path(cfg.model).parts[-2:])).strip("-")
    return f"runs/af-{cfg.setting}-{cfg.variant}-{short}"


def _validate(cfg: EvalConfig) -> None:
    """Fail before any model is loaded."""
    from evals.alignment_faking.task import parse_tiers
    from prompts.queries import load_queries
    from prompts.render import settings, variant_flags

    if cfg.setting not in settings():
        raise AfcuError(f"--setting {cfg.setting!r} is unknown; choose from {', '.join(settings())}")
    variant_flags(cfg.variant)
    load_queries(cfg.queries, setting=cfg.setting, field=cfg.query_field, encoding=cfg.encoding,
                 encoding_flag="--encoding")
    if cfg.max_turns < 1 or cfg.max_tokens < 1 or cfg.grader_votes < 1 or cfg.epochs < 1:
        raise AfcuError("--max-turns, --max-tokens, --grader-votes and --epochs must be at least 1")
    parse_tiers(cfg.tiers)
    if cfg.n_queries is not None and cfg.n_queries < 1:
        raise AfcuError(f"--n-queries {cfg.n_queries}: give a positive number, or leave it unset for every query")
    if not 0.0 <= cfg.af_threshold <= 1.0:
        raise AfcuError(f"--af-threshold {cfg.af_threshold}: a vote share, so between 0 and 1")
    if cfg.grader is not None:
        to_inspect_model(cfg.grader)
    if cfg.engine not in ("auto", "vllm", "hf"):
        raise AfcuError(f"--engine {cfg.engine!r} is unknown; choose auto, vllm or hf")
    if cfg.seed < 0 or cfg.temperature < 0 or cfg.max_connections < 1 or cfg.retries < 0:
        raise AfcuError(f"--seed {cfg.seed}, --temperature {cfg.temperature} and --retries {cfg.retries} must be "
                        f">= 0 and --max-connections {cfg.max_connections} >= 1")
    to_inspect_model(cfg.model)  # an unknown model fails here, before a run folder is created
    if cfg.engine != "hf" and resolve_local(cfg.model) is not None:
        from afcu.engine import has_gpu
        from afcu.engine_settings import EngineSettings

        EngineSettings.from_env().server_args(has_gpu())  # bad AFCU_ENGINE_* values fail before the run folder
    from evals.alignment_faking.forced_format import resolve_format

    resolve_format(cfg.format, cfg.model)
    if min(cfg.scratchpad_tokens, cfg.output_tokens) < 1:
        raise AfcuError("--scratchpad-tokens and --output-tokens must be at least 1")


def _restore_secrets(pending: Path, kwargs: dict) -> None:
    """Give ``eval_retry`` what inspect leaves out of a log: the local server's API key.

    inspect strips ``api_key`` from the logged ``model_args``, so a retry would reach
    the vLLM server with the provider's default key and get 401 Unauthorized; its
    ``vllm/`` provider reads ``VLLM_API_KEY`` instead.  The base URL is logged, so the
    server must still be on that port (afcu keeps one port per model and settings).
    Raises ``AfcuError`` when the server moved to another port.
    """
    import os

    from inspect_ai.log import read_eval_log

    key = kwargs.get("model_args", {}).get("api_key")
    if key is None:
        return
    os.environ["VLLM_API_KEY"] = key
    logged = read_eval_log(str(pending), header_only=True).eval.model_base_url
    if logged and kwargs.get("model_base_url") and logged != kwargs["model_base_url"]:
        raise AfcuError(f"{pending}: the interrupted run used the vLLM server at {logged}, now at "
                        f"{kwargs['model_base_url']}; free that port and rerun, or start over with --overwrite")


def _unfinished_log(log_dir: Path) -> Path | None:
    from inspect_ai.log import read_eval_log

    logs = sorted(log_dir.glob("*.eval"))
    if not logs:
        return None
    last = logs[-1]
    return last if read_eval_log(str(last), header_only=True).status != "success" else None


def main(cfg: EvalConfig) -> dict:
    """Run the eval into the run folder and return the summary dict."""
    from inspect_ai import eval as inspect_eval
    from inspect_ai import eval_retry

    from afcu import offline
    from afcu.engine import resolve_engine_model, seeded_sampling_ok
    from evals.alignment_faking.forced_format import resolve_format
    from evals.alignment_faking.report import write_report
    # The registered task (not the bare builder): inspect logs its arguments, so eval_retry rebuilds it exactly.
    from afcu._registry import alignment_faking

    _validate(cfg)
    out = Path(cfg.out or default_out(cfg))
    run = prepare_run(out, cfg, overwrite=cfg.overwrite)
    offline.install()
    log_dir = run / "logs"
    model, kwargs = resolve_engine_model(cfg.model, cfg.engine, run_dir=run)
    local = resolve_local(cfg.model)
    if model.startswith("hf/") and local is not None:
        kwargs = {**kwargs, "model_args": {**hf_model_args(local), **kwargs.get("model_args", {})}}
    common = dict(log_dir=str(log_dir), max_connections=cfg.max_connections, retry_on_error=cfg.retries,
                  display="rich" if sys.stdout.isatty() else "plain")
    pending = _unfinished_log(log_dir)
    if pending is not None:
        print(f"afcu eval: resuming {pending.name} (finished samples are kept)", file=sys.stderr)
        _restore_secrets(pending, kwargs)
        logs = eval_retry(str(pending), **common)
    else:
        shared = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(EvalArgs)}  # the one definition
        shared["prefill"] = (local is not None) if cfg.prefill is None else cfg.prefill
        task = alignment_faking(
            **shared, forced_choice_model=str(local) if local is not None else None,
            seeded_sampling=seeded_sampling_ok(model, local is not None),
            forced_format=resolve_format(cfg.format, cfg.model),
        )
        logs = inspect_eval(task, model=model, **kwargs, **common)
    if logs[0].status != "success":
        reason = str(logs[0].error.message).splitlines()[0][:200] if logs[0].error else logs[0].status
        raise AfcuError(f"eval stopped ({logs[0].status}: {reason}); finished samples are kept in {log_dir}: "
                        "run the same command again to resume")
    summary = write_report(run)
    mark_finished(run)
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    build_parser(EvalConfig, parser)


def run(args: argparse.Namespace) -> int:
    from evals.alignment_faking.report import format_table

    summary = main(config_from_args(EvalConfig, args))
    print(format_table(summary))
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m evals.alignment_faking.run")
    add_arguments(p)
    raise SystemExit(run(p.parse_args()))
