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
    sub = parser.add_subparsers(dest="action", required=True)
    start = sub.add_parser("start", help="start (or reuse) a server that stays up until `afcu engine stop`",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    start.add_argument("model", nargs="?", default=EMBEDDED, help="registry name or local model folder")
    build_parser(engine.EngineSettings, start)
    sub.add_parser("status", help="list recorded servers with health, port, pid and log")
    stop = sub.add_parser("stop", help="stop the server(s) of one model, or all with --all")
    stop.add_argument("model", nargs="?", default=None, help="registry name or local model folder")
    stop.add_argument("--all", action="store_true", help="stop every recorded server")


def settings_from_args(args: argparse.Namespace) -> engine.EngineSettings:
    """``AFCU_ENGINE_*`` variables (as runs read them), then ``--config`` YAML, then the flags given."""
    return config_from_args(engine.EngineSettings, args, defaults=dataclasses.asdict(engine.EngineSettings.from_env()))


def _folder(name: str):
    local = resolve_local(name)
    if local is None:
        raise AfcuError(f"{name!r} is not a registry name or local model folder; `afcu models list` shows names")
    return local


def run(args: argparse.Namespace) -> int:
    if args.action == "start":
        settings = settings_from_args(args)
        server, started = engine.ensure_server(_folder(args.model), settings, keep=True)
        print(f"{'started' if started else 'already running'}: {server.base_url} pid {server.pid} log {server.log}")
        print(f"use: --model vllm/{server.model} --model-base-url {server.base_url} -M api_key=<the key in the state file under ~/.cache/afcu/engine>")
        return 0
    servers = engine.list_servers()
    if args.action == "status":
        if not servers:
            print("no vLLM server recorded")
        for s in servers:
            health = "healthy" if engine.is_healthy(s) else "not answering"
            age = (time.time() - s.started_at) / 60
            print(f"{s.key}: {health}, {s.base_url}, pid {s.pid}, up {age:.0f} min, keep={s.keep}\n"
                  f"  model {s.model}\n  log {s.log}")
        return 0
    if args.model is None and not args.all:
        raise AfcuError("afcu engine stop: name a model or pass --all")
    target = None if args.all else str(_folder(args.model))
    chosen = [s for s in servers if target is None or s.model == target]
    for s in chosen:
        engine.stop_server(s)
        print(f"stopped {s.key} (pid {s.pid})")
    if not chosen:
        print("no matching server recorded")
    return 0
