"""``afcu models list`` and ``afcu models pull NAME``."""

from __future__ import annotations

import argparse

from afcu import models


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="show registry names, cache status and folders")
    pull = sub.add_parser("pull", help="convert a registry model into the local cache (once)")
    pull.add_argument("name", nargs="?", default=models.EMBEDDED)


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        for row in models.list_models():
            print(f"{row['name']:<24} {row['status']:<11} {row['path']}\n{'':<24} {row['description']}")
        return 0
    path = models.pull(args.name)
    print(f"{args.name}: {path}")
    return 0
