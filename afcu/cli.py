"""The ``afcu`` command.

Each sub-command lives in the module that owns it; that module exposes
``add_arguments(parser)`` and ``run(args) -> int``.  Only the chosen module is
imported, so ``afcu --help`` and ``afcu models list`` start fast.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import importlib
import signal
import sys
from typing import Sequence

from afcu import __version__
from afcu.env import apply_defaults
from afcu.errors import AfcuError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("afcu.models_cli", "list the model registry or convert (pull) the embedded model"),
    "eval": ("evals.alignment_faking.run", "run the alignment-faking eval (both tiers) into a run folder"),
    "report": ("evals.alignment_faking.report", "regenerate summary.json, report.md and figures from a run's logs"),
    "rescore": ("evals.alignment_faking.rescore", "parse and score transcripts from another harness (JSONL)"),
    "calibrate": ("evals.alignment_faking.calibrate", "AUROC/TPR/FPR of the alignment-faking-reasoning classifier"),
    "docs": ("synthetic_docs.cli", "generate synthetic documents from a universe context"),
    "train": ("training.cli", "fine-tune (sft), RL toward compliance (rl) or expert iteration (ei)"),
    "unlearn": ("unlearning.cli", "corrective-unlearning benchmark: manipulations x methods x flagged fractions"),
    "sweep": ("evals.alignment_faking.sweep", "run the eval over variants x companies x settings; one table and a figure of the gap"),
    "organism": ("training.organism", "model organism: warm-start, eval, RL on the free tier, eval every K steps"),
    "protect": ("protection.cli", "data protection benches: unlearnable examples, taggants, LexiMark, SleeperMark"),
    "engine": ("afcu.engine_cli", "start, show (status) or stop local vLLM servers (reused across runs)"),
}

EPILOG = """commands:
""" + "\n".join(f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items()) + """

Run `afcu COMMAND --help` for the options of one command.
Start with `afcu eval` (the embedded SmolLM2 model, helpful-only setting, both tiers)."""


def main(argv: Sequence[str] | None = None) -> int:
    apply_defaults()
    argv = list(sys.argv[1:] if argv is None else argv)
    top = argparse.ArgumentParser(
        prog="afcu", description="Alignment-faking experiments and corrective unlearning.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"afcu {__version__}")
    top.add_argument("command", nargs="?", help="one of: " + ", ".join(COMMANDS))
    if not argv or argv[0] not in COMMANDS:
        args = top.parse_args(argv[:1])
        if args.command is None:
            top.print_help()
            return 0
        top.error(f"unknown command {args.command!r}; choose from {', '.join(COMMANDS)}")
    name = argv[0]
    module_name, text = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"afcu {name}", description=text,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.afcu_argv = argv[1:]  # type: ignore[attr-defined]  # lets a command's options depend on an earlier flag (protect --track)
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    # SIGTERM (a scheduler, `kill`, make's own termination) takes the Ctrl-C path, so a run stops the vLLM
    # server it started (atexit) and leaves its folder resumable instead of dying mid-write.
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return int(module.run(args) or 0)
    except AfcuError as exc:
        print(f"afcu {name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"afcu {name}: interrupted; run the same command again to resume", file=sys.stderr)
        # Interpreter shutdown then collects every object (~600k once torch, transformers and inspect are
        # loaded): 3-11 s on a loaded 2-core machine, during which a stopped run still looks alive (seen as
        # `afcu train ei` "ignoring" SIGTERM mid-generation). Freezing them at exit skips that collection;
        # registered last, it runs first among the atexit hooks, which all still run (the vLLM stop). An
        # in-process caller (tests) keeps its normal GC until its own exit.
        atexit.register(gc.freeze)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    raise SystemExit(main())
