"""``afcu engine start|status|stop``: a vLLM server kept running across runs.

``start`` launches (or finds) a server that outlives the command, so later ``afcu eval``
runs on the same model reuse it instead of paying the ~90 s start-up; ``stop`` ends it.
Settings flags (``--max-num-seqs`` ...) come from :class:`afcu.engine_settings.EngineSettings`;
a run reuses a server only when its settings are the same.  Runs read ``AFCU_ENGINE_*``
variables, so ``start`` does too (flags and ``--config`` override them): the same shell
starts the server its runs will reuse.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from afcu import engine
from afcu.config import build_parser, config_from_args
from afcu.errors import AfcuError
from afcu.models import EMBEDDED, resolve_local


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "start, show (status) or stop local vLLM servers (reused across runs)"
    sub = parser.add_subparsers(dest="action", required=True, metavar="{start,status,stop}")
    start = sub.add_parser("start", help="start (or reuse) a server that stays up until `afcu engine stop`",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    start.add_argument("model", nargs="?", default=EMBEDDED, help="registry name or local model folder")
    build_parser(engine.EngineSettings, start)
    sub.add_parser("status", help="list recorded servers (health, port, pid, users, log) and unrecorded vLLM "
                                  "servers of afcu's still running")
    stop = sub.add_parser("stop", help="stop the server(s) of one model, or all (recorded and unrecorded) with --all")
    stop.add_argument("model", nargs="?", default=None, help="registry name or local model folder")
    stop.add_argument("--all", action="store_true", help="stop every recorded server and every unrecorded one of afcu's")


def settings_from_args(args: argparse.Namespace) -> engine.EngineSettings:
    """``AFCU_ENGINE_*`` variables (as runs read them), then ``--config`` YAML, then the flags given."""
    return config_from_args(engine.EngineSettings, args, defaults=dataclasses.asdict(engine.EngineSettings.from_env()))


def _folder(name: str):
    local = resolve_local(name)
    if local is None:
        raise AfcuError(f"{name!r} is not a registry name or local model folder; `afcu models list` shows names")
    return local


def _health(s: engine.Server) -> str:
    if s.status == "starting":
        alive = engine._pid_alive(s.pid)
        if s.live_users() and alive:
            return f"starting ({time.time() - s.started_at:.0f} s)"
        return "start interrupted (its run was killed), still running" if alive else "start interrupted, gone"
    if not engine.owns_port(s):
        return f"port {s.port} held by another process"
    return "healthy" if engine.is_healthy(s) else "not answering"


def _status(servers: list[engine.Server], found: list) -> None:
    if not servers and not found:
        print("no vLLM server recorded or running")
    for s in servers:
        age = (time.time() - s.started_at) / 60
        users = "kept until `afcu engine stop`" if s.keep else (
            f"used by pid {', '.join(map(str, s.live_users()))}" if s.live_users()
            else "orphaned: its runs are gone (the next run or `afcu engine stop` stops it)")
        print(f"{s.key}: {_health(s)}, {s.base_url}, pid {s.pid}, up {age:.0f} min, {users}\n"
              f"  model {s.model}\n  log {s.log}")
    for f in found:
        print(f"unrecorded vLLM server: pid {f.pid}, port {f.port}, model {f.model or '?'} "
              f"({'marked by afcu' if f.key else 'on a port afcu assigned'}; no state file records it: "
              f"`afcu engine stop --all` stops it)")


def run(args: argparse.Namespace) -> int:
    if args.action == "start":
        settings = settings_from_args(args)
        server, started = engine.ensure_server(_folder(args.model), settings, keep=True)
        print(f"{'started' if started else 'already running'}: {server.base_url} pid {server.pid} log {server.log}")
        print(f"use: --model vllm/{server.model} --model-base-url {server.base_url} -M api_key=<the key in "
              f"{engine.engine_dir() / 'api_key'}>")
        return 0
    servers, found = engine.list_servers(), engine.unrecorded_servers()
    if args.action == "status":
        _status(servers, found)
        return 0
    if args.model is None and not args.all:
        raise AfcuError("afcu engine stop: name a model or pass --all")
    target = None if args.all else str(_folder(args.model))
    chosen = [s for s in servers if target is None or s.model == target]
    for s in chosen:
        engine.stop_server(s)
        print(f"stopped {s.key} (pid {s.pid})")
    loose = [f for f in found if target is None or f.model == target]
    for f in loose:
        engine.stop_pid(f.pid)
        print(f"stopped unrecorded vLLM server pid {f.pid} (port {f.port})")
    if not chosen and not loose:
        print("no matching server recorded or running")
    return 0
