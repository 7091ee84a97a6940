"""``afcu protect bench --track images|text|diffusion [--quick] ...`` and ``afcu protect plot --track T RUN``.

Each track is one module with ``add_arguments(parser)``, ``run(args) -> int`` (the bench) and
``plot(run_dir) -> list[str]`` (figures regenerated from the run folder's files).  Adding a track
is one module plus one line in ``TRACKS``; only the chosen track's module is imported.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

# track name -> (module, one-line help)
TRACKS: dict[str, tuple[str, str]] = {
    "images": ("protection.images_track", "unlearnable examples and Data Taggants on digits (CIFAR-10 from a local folder)"),
    "text": ("protection.text_track", "LexiMark watermarks and membership inference on the embedded LM"),
    "diffusion": ("protection.diffusion_track", "SleeperMark vs a naive watermark on a tiny digits DDPM"),
}


def _track_from_argv(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--track" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--track="):
            return arg.split("=", 1)[1]
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    parser.epilog = ("To verify that unlearning removed protected (watermarked) data, run "
                     "`afcu unlearn bench --track llm --verify membership`.")
    tracks = "; ".join(f"{name}: {text}" for name, (_, text) in TRACKS.items())
    bench = sub.add_parser("bench", help="run or resume a protection bench into a run folder",
                           description=f"Tracks: {tracks}. `afcu protect bench --track T --help` lists T's options.",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    plot = sub.add_parser("plot", help="regenerate a bench run's summary and figures from its results.csv")
    for p in (bench, plot):
        p.add_argument("--track", required=True, choices=list(TRACKS), help="which bench")
    plot.add_argument("run_dir")
    # The chosen track's own options join the bench parser (argparse cannot know them before --track is read).
    argv = list(getattr(parser, "afcu_argv", sys.argv[2:]))
    name = _track_from_argv(argv)
    if name in TRACKS and argv[:1] == ["bench"]:
        importlib.import_module(TRACKS[name][0]).add_arguments(bench)


def run(args: argparse.Namespace) -> int:
    module = importlib.import_module(TRACKS[args.track][0])
    if args.action == "plot":
        print("\n".join(module.plot(Path(args.run_dir))))
        return 0
    return int(module.run(args) or 0)
