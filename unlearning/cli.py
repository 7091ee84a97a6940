"""``afcu unlearn bench --track vision|llm [--quick] ...`` and ``afcu unlearn plot RUN``."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import yaml

from afcu.config import build_parser, load_yaml


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    from unlearning.bench import BenchConfig

    bench = sub.add_parser("bench", help="run or resume the benchmark sweep into a run folder",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    build_parser(BenchConfig, bench)
    plot = sub.add_parser("plot", help="regenerate summary.json, table.md and figures from results.csv")
    plot.add_argument("run_dir")


def bench_main(argv: list[str]) -> int:
    """``python -m unlearning.bench FLAGS`` (the entry for ``accelerate launch -m``); exit code 2 on bad input."""
    import sys

    from afcu.errors import AfcuError
    from unlearning.bench import BenchConfig

    parser = build_parser(BenchConfig, prog="python -m unlearning.bench")
    args = parser.parse_args(argv)
    args.action = "bench"
    try:
        return run(args)
    except AfcuError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


# a well-formed value per mapping flag, for the error below (the example names the flag actually given)
YAML_EXAMPLES = {"train": "{epochs: 5, lr: 0.001}", "method": "{lr: 0.001, epochs: 2}",
                 "method_args": "{npo: {beta: 0.2}}", "grids": "{ssd: {alpha: [1, 10]}}",
                 "manipulation": "{n_manipulated: 20}", "sizes": "{badnets: [22, 38]}", "llm": "{n_test: 64}",
                 "membership": "{score: loss, n_reference: 20}"}


def _inline_yaml(key: str, value: str) -> object:
    """``--train "{epochs: 5}"``: a malformed mapping is a one-line error naming the flag."""
    from afcu.errors import AfcuError

    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as exc:
        flag = f"--{key.replace('_', '-')}"
        raise AfcuError(f"{flag} {value!r}: not a valid YAML mapping ({str(exc).splitlines()[0]}); "
                        f"e.g. {flag} \"{YAML_EXAMPLES.get(key, '{key: value}')}\"") from None


def run(args: argparse.Namespace) -> int:
    from unlearning import bench
    from unlearning.distributed import world

    if args.action == "plot":
        from afcu.userfiles import check_file

        # a missing folder must not become an empty "finished" run
        check_file(Path(args.run_dir) / "results.csv", "results", flag="afcu unlearn plot RUN")
        summary = bench.finish(Path(args.run_dir))
        print("\n".join(summary["figures"]))
        return 0
    data = load_yaml(args.config) if getattr(args, "config", None) else {}
    names = {f.name for f in dataclasses.fields(bench.BenchConfig)}
    for key, value in vars(args).items():
        if key in names:
            # mapping fields (--train, --method, --grids, ...) accept inline YAML: --train "{epochs: 5}"
            data[key] = _inline_yaml(key, value) if isinstance(value, str) and value.lstrip().startswith("{") else value
    cfg = bench.resolve(data, str(args.config) if getattr(args, "config", None) else "command line")
    run_dir = bench.main(cfg)
    if world()[0] == 0:  # rank 0 alone reports (and alone wrote the files)
        print((run_dir / "table.md").read_text())
        print(f"run folder: {run_dir}")
    return 0
