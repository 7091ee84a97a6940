"""Snapshot of every variant's rendered prompt: a prompt change must be deliberate.

After an intended change, regenerate with
``python -m prompts.render --write-snapshots tests/prompts/snapshots``, review the diff, and bump
the task version and changelog in evals/alignment_faking/README.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from prompts.render import settings, variant_table, variants, write_snapshots

SNAPSHOTS = Path(__file__).with_name("snapshots")
CASES = [(s, v) for s in settings() for v in variants(s)]
README = Path(__file__).parents[2] / "evals" / "alignment_faking" / "README.md"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    folder = tmp_path_factory.mktemp("snap")
    write_snapshots(folder)
    return folder


@pytest.mark.parametrize("setting,variant", CASES)
def test_snapshot(fresh, setting, variant):
    name = f"{setting}__{variant}.txt"
    stored = SNAPSHOTS / name
    assert stored.exists(), f"no snapshot {stored}; run python -m prompts.render --write-snapshots {SNAPSHOTS}"
    assert (fresh / name).read_text() == stored.read_text(), (
        f"prompt {setting}/{variant} changed; if intended: python -m prompts.render --write-snapshots tests/prompts/snapshots")


def test_no_stale_snapshots():
    assert sorted(p.name for p in SNAPSHOTS.glob("*.txt")) == sorted(f"{s}__{v}.txt" for s, v in CASES)


def test_readme_variant_table_is_current():
    assert variant_table() in README.read_text(), "README variant table differs from prompts/variants.yaml"
