"""One source of truth for the eval's arguments, and per-setting behaviour as data (prompts/settings.yaml)."""

from __future__ import annotations

import dataclasses
import inspect

from evals.alignment_faking import task as task_module
from evals.alignment_faking.params import DEFAULTS, EvalArgs, JudgeArgs, PromptArgs, SettingArgs
from evals.alignment_faking.rescore import RescoreConfig
from evals.alignment_faking.run import EvalConfig


def test_task_defaults_are_the_shared_dataclass():
    params = inspect.signature(task_module.alignment_faking).parameters
    for f in dataclasses.fields(EvalArgs):
        assert params[f.name].default == getattr(DEFAULTS, f.name), f.name


def test_configs_inherit_instead_of_redeclaring():
    own = set(EvalConfig.__dict__.get("__annotations__", {}))
    assert not own & {f.name for f in dataclasses.fields(EvalArgs)}
    assert issubclass(EvalConfig, EvalArgs) and issubclass(EvalArgs, PromptArgs)
    assert EvalConfig().grader_votes == DEFAULTS.grader_votes and EvalConfig().n_queries == DEFAULTS.n_queries
    assert issubclass(RescoreConfig, JudgeArgs) and issubclass(RescoreConfig, SettingArgs)
    assert not set(RescoreConfig.__dict__.get("__annotations__", {})) & {"setting", "grader", "grader_votes",
                                                                         "af_threshold"}


def test_setting_behaviour_comes_from_settings_yaml(monkeypatch):
    aw = task_module.alignment_faking(setting="animal_welfare", n_queries=1)
    assert len(aw.scorer) == 1  # settings.yaml: animal_welfare has no tags, so no forced choice
    assert "<request_fully_accepted/>" not in aw.dataset[0].input[-1].text
    real = task_module.setting_info
    monkeypatch.setattr(task_module, "setting_info",
                        lambda s: {**real(s), "forced_choice": True, "acceptance_suffix": True})
    flipped = task_module.alignment_faking(setting="animal_welfare", n_queries=1)
    assert len(flipped.scorer) == 2 and "<request_fully_accepted/>" in flipped.dataset[0].input[-1].text
