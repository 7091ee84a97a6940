"""``afcu docs generate ...`` (and ``afcu docs universes``)."""

from __future__ import annotations

import argparse

from afcu.config import build_parser, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from synthetic_docs.pipeline import Config

    sub = parser.add_subparsers(dest="action", required=True)
    gen = sub.add_parser("generate", help="universe -> types -> ideas -> documents -> filters -> dataset",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    build_parser(Config, gen)
    sub.add_parser("universes", help="list the built-in universe contexts")


def run(args: argparse.Namespace) -> int:
    if args.action == "universes":
        from synthetic_docs.universe import builtin_names, load_universe

        for name in builtin_names():
            u = load_universe(name)
            print(f"{name:<16} {len(u.facts)} facts  {u.description}")
        return 0
    from synthetic_docs.pipeline import Config, main

    cfg = config_from_args(Config, args)
    stats = main(cfg)
    out = cfg.out or f"runs/docs-{cfg.universe}"
    drops = ", ".join(f"{c['filter']} {c['dropped']}" for c in stats["filters"] if c["dropped"])
    malformed = sum(sum(s["malformed"].values()) for s in stats["stages"].values())
    print(f"{stats['kept']}/{stats['n_docs_requested']} documents kept ({stats['tokens']['total']} tokens) in "
          f"{out}/dataset; malformed outputs skipped: {malformed}; filtered: {drops or 'none'}; "
          f"{stats['wall_s']} s")
    return 0
