"""Shared by the RL tests and the two-process helper: a reward with variance on random tiny models.

A random 2-layer model never writes the protocol's tags, so every built-in reward is constant on
its rollouts and GRPO's advantages (reward minus group mean) would all be zero.  This reward
(distinct words / 10) differs between rollouts, so a step really moves the parameters.
"""

from __future__ import annotations

from typing import Any, Sequence

from training.rewards import REWARDS, RewardSpec

NAME = "test_distinct_words"


def _factory(spec: RewardSpec):
    def distinct_words_reward(prompts: Sequence[Any], completions: Sequence[Any], **kw: Any) -> list[float]:
        return [len(set(str(c).split())) / 10.0 for c in completions]

    return distinct_words_reward


def register() -> None:
    if NAME not in REWARDS:
        REWARDS.register(NAME)(_factory)


def tiny_config(model_dir: str, out: str, **over: Any) -> dict[str, Any]:
    """A config dict for a few-second run on a tiny model."""
    cfg = dict(model=model_dir, out=out, rewards={NAME: 1.0, "compliance": 1.0}, num_generations=2,
               per_device_train_batch_size=2, max_steps=2, learning_rate=1e-2, max_completion_length=8,
               eval_every=0, eval_n_queries=1, eval_max_tokens=8, eval_forced_choice=False, save_steps=2, seed=0,
               variant="no_cot")
    cfg.update(over)
    return cfg
