"""The selection rule skips only evaluations that cannot change its choice: the chosen candidate and
model equal the exhaustive rule's (every candidate scored on validation and S_f), with fewer passes,
and the counted passes are the passes actually run."""

from __future__ import annotations

import copy
import dataclasses
import random

import pytest
import torch

from unlearning.bench import SSD_GRID
from unlearning.methods import METHODS, run_method
from unlearning.methods.base import make_config
from unlearning.methods.ssd import SSDConfig, dampen, ssd_state
from unlearning import selection
from unlearning.selection import candidates, digest, select_and_run
from unlearning.vision import load_digits_splits


def exhaustive(method, model, forget, retain, config, grid, accuracy, val, tolerance):
    """The rule as first written: every candidate run and scored on both splits, grid order on ties."""
    floor = accuracy(model, val) - tolerance
    prepare = METHODS.prepare(method)
    state = prepare(model, forget, retain, config) if prepare else None
    best = None
    for cand in candidates(grid):
        new, _ = run_method(method, model, forget, retain, dataclasses.replace(config, **cand), state=state)
        v, f = accuracy(new, val), accuracy(new, forget)
        key = (0.0, f) if v >= floor else (1.0, -v)
        if best is None or key < best[0]:
            best = (key, new, cand)
    return best[1], best[2], len(candidates(grid)) * (len(val) + len(forget))


class Spy:
    """A scorer that records the rows it really evaluated."""

    def __init__(self, score):
        self.score, self.rows = score, []

    def __call__(self, model, data):
        self.rows.append(len(data))
        return self.score(model, data)


@pytest.fixture(scope="module")
def cell(poisoned):
    task, model, md, forget, retain = poisoned
    _, val, _ = load_digits_splits(0)
    val.task = task
    return task, model, forget, retain, val


def _same(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("method", ["ssd", "lfssd"])
def test_same_choice_and_model_as_exhaustive_with_fewer_counted_passes(cell, method):
    task, model, forget, retain, val = cell
    cfg = make_config(method, SSDConfig())
    ref_model, ref_chosen, ref_eval = exhaustive(method, model, forget, retain, cfg, SSD_GRID,
                                                 task.accuracy, val, 0.02)
    spy = Spy(task.accuracy)
    before = task.counter.forward
    new, cost, chosen = select_and_run(method, model, forget, retain, cfg, SSD_GRID, spy, val, 0.02)
    assert chosen == ref_chosen and _same(new, ref_model)
    n_d = len(forget) + len(retain)
    evaluated = sum(spy.rows[1:])  # rows[0] is the original's validation accuracy (the floor), charged to none
    # counted = run: the importance (D and S_f, forward and backward) plus the rows really scored
    assert cost.backward == n_d + len(forget)
    assert cost.forward == n_d + len(forget) + evaluated == task.counter.forward - before
    assert evaluated < ref_eval  # strictly fewer passes than the exhaustive evaluation


def test_identical_candidates_are_recognised(cell):
    """SSD's (1, 10) and (10, 10) give the same model: dampened weights have ratio > 10 either way."""
    task, model, forget, retain, val = cell
    st = ssd_state(copy.deepcopy(model), forget, retain, SSDConfig())
    a, b, c = copy.deepcopy(model), copy.deepcopy(model), copy.deepcopy(model)
    dampen(a, st.ref, st.fgt, 1.0, 10.0)
    dampen(b, st.ref, st.fgt, 10.0, 10.0)
    dampen(c, st.ref, st.fgt, 10.0, 1.0)
    assert digest(a) == digest(b) and _same(a, b)
    assert digest(a) != digest(c) and not _same(a, c)
    assert digest(copy.deepcopy(model)) == digest(model)


def test_exact_under_ties_floors_and_early_stop(cell, monkeypatch):
    """Scores drawn from a few levels per distinct model (ties, S_f accuracy 0, no admissible one, ...):
    over many draws the choice is always the exhaustive rule's, and never costs more."""
    task, model, forget, retain, val = cell
    cfg = SSDConfig()
    saved = stopped = 0
    runs: list[dict] = []

    def counting_run(name, *a, **kw):
        runs.append(a[-1] if a else kw)
        return run_method(name, *a, **kw)

    monkeypatch.setattr(selection, "run_method", counting_run)
    for trial in range(24):
        table: dict = {}

        def score(m, data, trial=trial, table=table):
            key = (digest(m), len(data))
            if key not in table:
                # seeded from the digest's bytes, not hash() (salted by PYTHONHASHSEED): replayable
                rng = random.Random(int.from_bytes(key[0][:8], "little") ^ (key[1] << 64) ^ (trial << 80))
                table[key] = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0])
            return table[key]

        ref_model, ref_chosen, ref_eval = exhaustive("ssd", model, forget, retain, cfg, SSD_GRID, score, val,
                                                     0.3)
        spy = Spy(score)
        runs.clear()
        new, cost, chosen = select_and_run("ssd", model, forget, retain, cfg, SSD_GRID, spy, val, 0.3)
        assert chosen == ref_chosen and _same(new, ref_model), trial
        assert sum(spy.rows[1:]) <= ref_eval
        saved += sum(spy.rows[1:]) < ref_eval
        stopped += len(runs) < len(candidates(SSD_GRID))  # an admissible S_f accuracy 0 ended the walk
    assert saved > 0 and stopped > 0


def test_nan_validation_accuracy_is_never_admissible(cell):
    """A user scorer returning NaN on validation: the exhaustive rule (``v >= floor``) refuses that
    candidate; the shortcut once an admissible one is held must refuse it too (``< floor`` did not)."""
    task, model, forget, retain, val = cell
    cfg = SSDConfig()
    table = {(digest(model), "val"): 0.9, (digest(model), "forget"): 0.9}
    levels = [(0.9, 0.5), (float("nan"), 0.1)]  # 1st distinct candidate admissible, 2nd NaN with lower S_f

    def score(m, data):
        d, split = digest(m), "val" if len(data) == len(val) else "forget"
        if (d, split) not in table:
            v, f = levels.pop(0) if levels else (0.9, 0.9)
            table[(d, "val")], table[(d, "forget")] = v, f
        return table[(d, split)]

    ref_model, ref_chosen, _ = exhaustive("ssd", model, forget, retain, cfg, SSD_GRID, score, val, 0.02)
    assert not levels  # both levels were handed out: the NaN candidate exists
    nan_keys = [k for k, v in table.items() if v != v]
    new, _, chosen = select_and_run("ssd", model, forget, retain, cfg, SSD_GRID, score, val, 0.02)
    assert chosen == ref_chosen and _same(new, ref_model)
    assert (digest(new), "val") not in nan_keys


class _WithScratch(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)
        self.register_buffer("scale", torch.ones(2), persistent=False)  # not in state_dict()


def test_digest_sees_non_persistent_buffers():
    a = _WithScratch()
    b = copy.deepcopy(a)
    assert digest(a) == digest(b)
    b.scale.fill_(2.0)  # differs only in a buffer state_dict() omits
    assert "scale" not in b.state_dict() and digest(a) != digest(b)


def test_gradient_method_grid_is_exact(cell):
    task, model, forget, retain, val = cell
    cfg = make_config("gradient_ascent", {"max_steps": 2, "batch_size": 16})
    grid = {"lr": [1e-4, 3e-4, 1e-3]}
    ref_model, ref_chosen, _ = exhaustive("gradient_ascent", model, forget, retain, cfg, grid,
                                          task.accuracy, val, 0.02)
    spy = Spy(task.accuracy)
    before = (task.counter.forward, task.counter.backward)
    new, cost, chosen = select_and_run("gradient_ascent", model, forget, retain, cfg, grid, spy, val, 0.02)
    assert chosen == ref_chosen and _same(new, ref_model)
    assert (cost.forward, cost.backward) == (task.counter.forward - before[0], task.counter.backward - before[1])


def test_cost_ratio_table_is_per_cell_against_retrain():
    from unlearning.metrics import cost_ratio_table

    def row(method, fraction, seed, passes):
        return {"method": method, "manipulation": "badnets", "n_manipulated": "40", "fraction": fraction,
                "seed": str(seed), "passes": str(passes), "n_flagged": "4", "acc_corr": "0.5", "acc_retain": "0.9",
                "time_s": "1"}

    rows = [row("retrain", "0.1", 0, 1000), row("retrain", "0.1", 1, 2000), row("ssd", "0.1", 0, 100),
            row("ssd", "0.1", 1, 300), row("original", "", 0, "")]
    table = cost_ratio_table(rows, ("ssd",))
    # seed 0: 100/1000 = 0.1, seed 1: 300/2000 = 0.15 -> mean 0.125, max 0.15; all f: 200/1500
    assert "| badnets_n40 | ssd | 0.125 (max 0.150) | 0.1333 |" in table
    assert "retrain |" not in table


def test_grid_values_are_read_as_their_field_types() -> None:
    """YAML 1.1 reads ``1e-3`` as a string: a grid candidate must still reach the method as a float."""
    from unlearning.methods.base import make_config
    from unlearning.selection import grid_config

    base = make_config("gradient_ascent", {"lr": 1e-4})
    got = grid_config(base, {"lr": "1e-3"})
    assert isinstance(got.lr, float) and got.lr == 1e-3
    assert type(got) is type(base) and got.epochs == base.epochs
