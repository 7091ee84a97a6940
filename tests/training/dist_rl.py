"""Two-process helper: `torchrun --nproc_per_node 2 dist_rl.py --config FILE` runs training.rl with the test reward."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rl_helpers import register  # noqa: E402

if __name__ == "__main__":
    register()
    from training.rl import cli_main

    raise SystemExit(cli_main(sys.argv[1:]))
