"""``afcu train sft|rl|ei [flags]``: one trainer module per sub-command, imported only when chosen.

Each trainer module exposes ``Config`` (frozen dataclass), ``build_parser(parser=None)`` and
``main(config)``; registering a new one is one line in ``TRAINERS``.
"""

from __future__ import annotations

import argparse
import importlib

from afcu.config import config_from_args

# name -> (module, one-line help)
TRAINERS: dict[str, tuple[str, str]] = {
    "sft": ("training.sft", "continued pre-training on synthetic documents (TRL SFT, optional LoRA)"),
    "rl": ("training.rl", "RL toward compliance on free-tier prompts (TRL GRPO), both tiers evaluated during training"),
    "ei": ("training.expert_iteration", "expert iteration: sample, keep the highest-reward completions, SFT, repeat"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "trainers:\n" + "\n".join(f"  {k:<5} {v[1]}" for k, v in TRAINERS.items()) + \
        "\n\nRun `afcu train NAME --help` for a trainer's flags."
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("trainer", choices=sorted(TRAINERS), help="which trainer to run")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="--config FILE and flags of that trainer")


def run(args: argparse.Namespace) -> int:
    module = importlib.import_module(TRAINERS[args.trainer][0])
    parser = module.build_parser(argparse.ArgumentParser(prog=f"afcu train {args.trainer}",
                                                         formatter_class=argparse.ArgumentDefaultsHelpFormatter))
    config = config_from_args(module.Config, parser.parse_args(args.rest))
    summary = module.main(config)
    if isinstance(summary, dict) and summary:  # only the main process returns a summary
        keys = ("steps", "loss_first", "loss_last", "final")
        print(f"afcu train {args.trainer}: " + ", ".join(f"{k}={summary[k]}" for k in keys if k in summary))
    return 0
