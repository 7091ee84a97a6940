"""The records of afcu's vLLM servers: the ``Server`` state file, health checks, and the lock per server key.

Split from ``afcu.engine`` (which starts, reuses and stops servers) so that reading what is
recorded, and whether it still answers, stays one small module; ``afcu.engine`` re-exports it.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from afcu import engine_proc
from afcu.engine_cpu import group_pids
from afcu.models import cache_root
from afcu.runs import atomic_write_json

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
    owner_pid: int = 0  # the process that started it (or adopted it after its starter was killed)
    started_at: float = 0.0
    pgid: int = 0  # its process group (0 in records of older afcu: the pid leads the group)
    status: str = "ready"  # "starting" until the first healthy answer
    users: tuple[int, ...] = ()  # processes using a keep=False server; the last one to exit stops it

    @property
    def group(self) -> int:
        return self.pgid or self.pid

    def live_users(self, without: int = 0) -> list[int]:
        """Users still running (older records name only the starter, ``owner_pid``)."""
        return [u for u in (self.users or (self.owner_pid,)) if u and u != without and _pid_alive(u)]

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def eval_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``inspect_ai.eval`` (``model_base_url``, ``model_args``)."""
        return {"model_base_url": self.base_url, "model_args": {"api_key": self.api_key}}


def engine_dir() -> Path:
    """Where server state files and logs live: ``$AFCU_ENGINE_DIR`` or ``$AFCU_CACHE/engine``."""
    return Path(os.environ.get("AFCU_ENGINE_DIR") or cache_root() / "engine")


def _http_ok(url: str, api_key: str | None = None, timeout: float = 3.0) -> bytes | None:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}"} if api_key else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.read() if resp.status == 200 else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    """True for a running process; False for none and for a zombie (a killed run's server, reparented to
    an init that does not reap it, stays a zombie after it exits)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def owns_port(server: Server) -> bool:
    """False when the port is provably held by a process outside the server's process group."""
    return engine_proc.port_owned_by(server.port, group_pids(server.group) or [server.pid]) is not False


def is_healthy(server: Server, timeout: float = 3.0) -> bool:
    """True when the process lives, its group holds the listening port, ``/health`` answers and
    ``/v1/models`` (with the key) lists the model.

    The port check keeps a run from talking to a server afcu did not start: an orphan, or any
    other process that took the port, answers ``/health`` as well.
    """
    if not _pid_alive(server.pid) or not owns_port(server):
        return False
    if _http_ok(f"http://{HOST}:{server.port}/health", timeout=timeout) is None:
        return False
    body = _http_ok(f"{server.base_url}/models", server.api_key, timeout=timeout)
    if body is None:
        return False
    return any(m.get("id") == server.model for m in json.loads(body).get("data", []))


def _state_path(key: str) -> Path:
    return engine_dir() / f"{key}.json"


def read_state(key: str) -> Server | None:
    p = _state_path(key)
    try:
        data = json.loads(p.read_text())
        return Server(**{**data, "users": tuple(data.get("users", ()))})
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def write_state(server: Server) -> None:
    atomic_write_json(_state_path(server.key), asdict(server))
    os.chmod(_state_path(server.key), 0o600)  # holds the key


def forget(server: Server) -> None:
    """Remove the state file if it still records this server (not a newer one for the same key)."""
    state = read_state(server.key)
    if state is not None and state.pid == server.pid:
        _state_path(server.key).unlink(missing_ok=True)


def list_servers() -> list[Server]:
    """Every recorded server (healthy or not), oldest first."""
    found = [read_state(p.stem) for p in sorted(engine_dir().glob("*.json"))]
    return sorted((s for s in found if s is not None), key=lambda s: s.started_at)


def unrecorded_servers() -> list[engine_proc.FoundServer]:
    """vLLM API servers of afcu's that no state file records: marked with this state folder, or
    (unmarked, from an older afcu) listening on a port afcu assigned here.

    A start killed before it was recorded, or a state file deleted by hand, leaves one of these
    holding memory and a port; ``afcu engine status`` lists them and ``afcu engine stop`` stops them.
    Servers of other state folders (another user's ``AFCU_ENGINE_DIR``) are not listed.
    """
    here = str(engine_dir())
    recorded = {pid for s in list_servers() for pid in (s.pid, s.group)}
    ports = set()
    for f in engine_dir().glob("*.port"):
        try:
            ports.add(int(f.read_text()))
        except (OSError, ValueError):
            continue
    return [f for f in engine_proc.vllm_servers()
            if f.pid not in recorded and (f.engine_dir == here or (not f.engine_dir and f.port in ports))]


def kill_group(pid: int, timeout: float = 30.0) -> None:
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


def stop_pid(pid: int) -> None:
    """Stop an unrecorded server: its process group when it leads one (afcu's do), else the process."""
    try:
        if os.getpgid(pid) == pid:
            kill_group(pid)
            return
        os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + 30
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def stop_server(server: Server) -> None:
    """SIGTERM the server's process group, SIGKILL after 30 s, and forget its state file."""
    kill_group(server.group)
    forget(server)


def lock_key(key: str, block: bool = True) -> IO[str] | None:
    """An exclusive lock on ``key``'s lock file (``None`` when ``block=False`` and another holds it)."""
    engine_dir().mkdir(parents=True, exist_ok=True)
    fh = open(engine_dir() / f".{key}.lock", "w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
    except BlockingIOError:
        fh.close()
        return None
    return fh
