"""The method interface: ``method(model, forget, retain, config) -> model``.

``forget`` is the deletion set S_f and ``retain`` is D \\ S_f, both
:class:`~unlearning.data.Split` objects carrying the same ``task``.  A method
may modify ``model`` in place (the runner hands it a copy).  Forward/backward
passes are counted by the task's counter; :func:`run_method` adds wall time.

Each method registers its own frozen config dataclass beside it, a subclass of
:class:`MethodConfig` (the options every method shares)::

    @METHODS.register("npo", config=NPOConfig)
    def npo(model, forget, retain, config: NPOConfig) -> nn.Module: ...

A method may return ``(model, info)``; ``info`` (e.g. SSD's ``n_dampened``) is
kept in :attr:`Cost.info` and lands in results.csv.  A method whose expensive
part does not depend on its grid (SSD's importances) also registers
``prepare=``: :func:`~unlearning.selection.select_and_run` then calls it once per
cell and hands the result to every candidate as ``state=``.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from afcu.config import config_from_dict
from afcu.registry import Registry
from unlearning.data import Split, Task

Method = Callable[..., Any]
Prepare = Callable[[nn.Module, Split, Split, Any], Any]


@dataclass(frozen=True)
class MethodConfig:
    """Options every method shares (``bench.method``); each method's config adds its own.

    Defaults are the original papers' where one exists; the benchmark never tunes
    them toward a result (see unlearning/README.md for the selection rule).
    """

    seed: int = 0
    lr: float = field(default=1e-3, metadata={"help": "learning rate of gradient-based unlearning"})
    batch_size: int = field(default=64, metadata={"help": "mini-batch size of gradient-based unlearning"})
    epochs: int = field(default=5, metadata={"help": "epochs over the retain set (cf_k, eu_k, scrub)"})
    forget_epochs: int = field(default=5, metadata={"help": "epochs over S_f (gradient_ascent, grad_diff, npo)"})
    max_steps: int = field(default=0, metadata={"help": "if > 0, stop gradient-based methods after this many steps"})


class MethodRegistry(Registry[Method]):
    """Name -> method, plus each method's config class and optional ``prepare`` hook."""

    def __init__(self) -> None:
        super().__init__("unlearning method")
        self._configs: dict[str, type] = {}
        self._prepare: dict[str, Prepare] = {}

    def register(self, name: str, config: type = MethodConfig,  # type: ignore[override]
                 prepare: Prepare | None = None) -> Callable[[Method], Method]:
        if not (dataclasses.is_dataclass(config) and issubclass(config, MethodConfig)):
            raise ValueError(f"method {name!r}: config must be a MethodConfig dataclass subclass")
        base = super().register(name)

        def deco(fn: Method) -> Method:
            base(fn)
            self._configs[name] = config
            if prepare is not None:
                self._prepare[name] = prepare
            return fn

        return deco

    def config_class(self, name: str) -> type:
        self.get(name)  # a clear error for an unknown name
        return self._configs[name]

    def prepare(self, name: str) -> Prepare | None:
        return self._prepare.get(name)


METHODS = MethodRegistry()


def config_fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def make_config(name: str, common: dict[str, Any] | MethodConfig, args: dict[str, Any] | None = None,
                source: str = "config") -> Any:
    """The config of method ``name``: shared options ``common`` under its own ``args`` (unknown keys fail)."""
    cls = METHODS.config_class(name)
    base = dataclasses.asdict(common) if isinstance(common, MethodConfig) else dict(common)
    shared = {k: v for k, v in base.items() if k in config_fields(MethodConfig)}
    return config_from_dict(cls, {**shared, **dict(args or {})}, f"{source}: method_args.{name}")


@dataclass
class Cost:
    """Compute of one method call: sample-level forward and backward passes, wall seconds, method info."""

    forward: int = 0
    backward: int = 0
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def passes(self) -> int:
        return self.forward + self.backward

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.forward + other.forward, self.backward + other.backward,
                    self.seconds + other.seconds, {**self.info, **other.info})


def task_of(forget: Split, retain: Split) -> Task:
    task = forget.task or retain.task
    if task is None:
        raise ValueError("forget/retain splits carry no task; build them with a Task attached")
    return task


def measured(task: Task, fn: Callable[[], Any]) -> tuple[Any, Cost]:
    """Call ``fn()``; returns (its result, the passes it counted and its wall time)."""
    f0, b0 = task.counter.forward, task.counter.backward
    start = time.perf_counter()
    out = fn()
    return out, Cost(task.counter.forward - f0, task.counter.backward - b0, time.perf_counter() - start)


def run_method(name: str, model: nn.Module, forget: Split, retain: Split, config: MethodConfig,
               state: Any = None) -> tuple[nn.Module, Cost]:
    """Run method ``name`` on a deep copy of ``model``; returns (new model, cost).

    ``config`` is the method's own config, or a plain :class:`MethodConfig` whose shared
    fields are used with the method's defaults for the rest.  ``state`` is the output
    of the method's ``prepare`` hook (computed here when not given).
    """
    task = task_of(forget, retain)
    fn = METHODS.get(name)
    if not isinstance(config, METHODS.config_class(name)):
        config = make_config(name, config)
    kwargs = {"state": state} if METHODS.prepare(name) is not None else {}
    out, cost = measured(task, lambda: fn(copy.deepcopy(model), forget, retain, config, **kwargs))
    if isinstance(out, tuple):
        out, cost.info = out
    out.eval()
    return out, cost


def cycle(split: Split, batch_size: int, seed: int):
    """Endless seeded mini-batches of ``split`` (reshuffled each pass)."""
    epoch = 0
    while True:
        yield from split.batches(batch_size, shuffle=True, seed=seed * 7919 + epoch)
        epoch += 1
