"""Who a vLLM server process is: the owner of a listening port, afcu's marks, the phase of its start-up.

Kept apart from ``afcu.engine`` (state files and life cycle) because these are reads of the
operating system (``/proc``) and of vLLM's log, not of afcu's records.  On a system without
``/proc`` (macOS) the ownership checks return ``None`` (unknown) and callers fall back to the
API-key check alone.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

API_SERVER_MODULE = "vllm.entrypoints.openai.api_server"
# Set in every server's environment by afcu.engine.start_server; read back from /proc/PID/environ.
MARK_KEY, MARK_DIR = "AFCU_ENGINE_SERVER_KEY", "AFCU_ENGINE_SERVER_DIR"
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's st column


def listen_inodes(port: int) -> set[str] | None:
    """Socket inodes listening on TCP ``port`` (IPv4 and IPv6); ``None`` where /proc/net/tcp is missing."""
    found: set[str] = set()
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not any(t.exists() for t in tables):
        return None
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            # cols: sl, local_address (hex ip:hex port), rem_address, st, ..., inode (index 9)
            if len(cols) > 9 and cols[3] == _LISTEN and int(cols[1].rsplit(":", 1)[1], 16) == port:
                found.add(cols[9])
    return found


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    try:
        for fd in os.scandir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(fd.path)
            except OSError:
                continue
            if link.startswith("socket:["):
                out.add(link[8:-1])
    except OSError:
        pass
    return out


def port_owned_by(port: int, pids: list[int]) -> bool | None:
    """True when one of ``pids`` holds the socket listening on ``port``; ``None`` where that cannot be read.

    Why: a health answer on the recorded port is trusted only from the process afcu started. An
    orphan of a killed run (or anything else) may hold the port, and it would answer ``/health``.
    """
    inodes = listen_inodes(port)
    if inodes is None:
        return None
    return any(_socket_inodes(pid) & inodes for pid in pids) if inodes else False


def port_owners(port: int) -> list[int]:
    """Pids (readable by this user) whose sockets listen on ``port``."""
    inodes = listen_inodes(port) or set()
    if not inodes:
        return []
    return sorted(int(p.name) for p in Path("/proc").glob("[0-9]*") if _socket_inodes(int(p.name)) & inodes)


@dataclass(frozen=True)
class FoundServer:
    """A vLLM OpenAI server process found in /proc (not from a state file)."""

    pid: int
    port: int
    model: str
    key: str  # afcu's mark (server key) or "" for an unmarked server
    engine_dir: str  # afcu's mark (state folder) or ""


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _environ(pid: int) -> dict[str, str]:
    try:
        items = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return {}
    return dict(i.split("=", 1) for i in items if "=" in i)


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1] if name in argv and argv.index(name) + 1 < len(argv) else ""


def vllm_servers() -> list[FoundServer]:
    """Every vLLM OpenAI API server process of this user (``-m vllm.entrypoints.openai.api_server``).

    Only the top process of each server is listed (its engine core and workers inherit the
    command line or the marks but are stopped with its process group).
    """
    procs = {}
    for p in Path("/proc").glob("[0-9]*"):
        argv = _cmdline(int(p.name))
        if API_SERVER_MODULE in argv and "-m" in argv:
            procs[int(p.name)] = argv
    found = []
    for pid, argv in sorted(procs.items()):
        if _ppid(pid) in procs:
            continue
        env = _environ(pid)
        port = _flag(argv, "--port")
        found.append(FoundServer(pid=pid, port=int(port) if port.isdigit() else 0, model=_flag(argv, "--model"),
                                 key=env.get(MARK_KEY, ""), engine_dir=env.get(MARK_DIR, "")))
    return found


# Markers in vLLM 0.32's server log (vllm/compilation/monitor.py, vllm/v1/worker/cpu_model_runner.py, ...), in
# start-up order: the last one seen names the phase. Exact phrases: warnings such as "disabling torch.compile ...
# JIT kernel warmup" (eager mode) must not read as a phase.
PHASES = [
    (re.compile(r"Initializing a V1 LLM engine"), "initialising the engine"),
    (re.compile(r"Starting to load model|Loading safetensors checkpoint"), "loading weights"),
    (re.compile(r"Loading weights took"), "weights loaded, preparing the model"),
    (re.compile(r"Starting torch\.compile"), "compiling the model (torch.compile)"),
    (re.compile(r"KV cache size"), "allocating the KV cache"),
    (re.compile(r"Warming up model for the compilation"), "warming up"),
    (re.compile(r"Starting vLLM API server|Uvicorn running|Application startup complete"), "opening the HTTP port"),
]


def startup_phase(log_text: str) -> str:
    """The start-up phase the server log has reached (``importing vLLM`` before any marker)."""
    best, where = "importing vLLM", -1
    for pattern, phase in PHASES:
        for m in pattern.finditer(log_text):
            if m.start() > where:
                best, where = phase, m.start()
    return best
