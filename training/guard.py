"""Stop GRPO when no group has any reward spread: with zero std every advantage is 0 and the policy cannot move.

TRL logs ``frac_reward_zero_std``, the share of GRPO groups whose rewards are all equal.  When it
stays at 1 for ``patience`` logged steps in a row, :class:`ZeroVarianceGuard` warns, stops the
run (``control.should_training_stop``) and keeps the reason, which ``training.rl`` writes into
``summary.json`` (``stopped``).
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

from transformers import TrainerCallback

WHY = "every GRPO group got identical rewards, so every advantage is 0 and the policy cannot change"
FORCED_FIX = ("use forced format with tag choice (format: forced, tag_choice: true) for a model that does not "
              "follow the protocol")
OTHER_FIXES = ("raise num_generations (with P(accept) near 0.1 a group of 4 holds both tags only about a third of "
               "the time), raise temperature, or add a reward that varies within a group (e.g. no_refusal)")


def fix_message(forced_tag_choice: bool) -> str:
    """The reason and the fixes, leaving out forced format with tag choice when the run already uses it."""
    return f"{WHY}. Fix: " + (OTHER_FIXES if forced_tag_choice else f"{FORCED_FIX}, {OTHER_FIXES}")


class ZeroVarianceGuard(TrainerCallback):
    """Warn and stop after ``patience`` consecutive logged steps with ``frac_reward_zero_std`` == 1 (0: never)."""

    def __init__(self, patience: int, forced_tag_choice: bool = False) -> None:
        self.patience = patience
        self.fix = fix_message(forced_tag_choice)
        self.run = 0
        self.stopped: dict[str, Any] | None = None

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any) -> None:
        if self.patience <= 0 or not logs or "frac_reward_zero_std" not in logs:
            return
        self.run = self.run + 1 if logs["frac_reward_zero_std"] >= 1.0 else 0
        if self.run >= self.patience and self.stopped is None:
            msg = f"rl: stopped at step {state.global_step}: frac_reward_zero_std was 1 for {self.run} steps; {self.fix}"
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
            print(msg, file=sys.stderr)
            self.stopped = {"step": state.global_step, "reason": "zero reward variance", "steps_at_one": self.run,
                            "message": msg}
            control.should_training_stop = True
