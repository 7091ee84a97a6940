"""Render the alignment-faking system prompt and tier-tagged user turns.

Settings (``settings.yaml``) give the new training objective; variants
(``variants.yaml``) switch template sections (Greenblatt et al. 2024, sec. 3.3).
Templates use ``StrictUndefined`` so a missing variable fails loudly.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import jinja2
import yaml

from afcu.errors import AfcuError

HERE = Path(__file__).parent
ACCEPT_TAG = "<request_fully_accepted/>"
REJECT_TAG = "<rejected/>"
NEXT_TURN = "<NEXT/>"
SCRATCHPAD_OPEN = "<SCRATCHPAD_REASONING>"
OUTPUT_OPEN = "<OUTPUT>"
Tier = Literal["free", "paid"]
TIERS: tuple[Tier, Tier] = ("free", "paid")

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=False,
    autoescape=False,
)


@lru_cache(maxsize=None)
def _yaml(name: str) -> dict:
    return yaml.safe_load((HERE / name).read_text())


def settings() -> list[str]:
    return list(_yaml("settings.yaml"))


def variants() -> list[str]:
    return list(_yaml("variants.yaml"))


def variant_flags(variant: str) -> dict:
    """The variant's flags (``cot``, ``conflict``, ``training_details``, ``rlhf_info``); raises ``AfcuError``."""
    table = _yaml("variants.yaml")
    if variant not in table:
        raise AfcuError(f"unknown variant {variant!r}; choose from {', '.join(table)}")
    return {k: v for k, v in table[variant].items() if k != "description"}


def _setting(setting: str) -> dict:
    table = _yaml("settings.yaml")
    if setting not in table:
        raise AfcuError(f"unknown setting {setting!r}; choose from {', '.join(table)}")
    return table[setting]


def render_template(name: str, **variables: object) -> str:
    """Render ``templates/<name>`` with strict undefined-variable checking."""
    try:
        text = _ENV.get_template(name).render(**variables).strip()
        return re.sub(r"\n{3,}", "\n\n", text) + "\n"
    except jinja2.UndefinedError as exc:
        raise AfcuError(f"prompts/templates/{name}: {exc}; pass that variable") from None


def render_system(setting: str, variant: str = "default", company: str = "Anthropic") -> str:
    """The system prompt for ``setting`` x ``variant``; raises ``AfcuError`` for unknown names."""
    s, flags = _setting(setting), variant_flags(variant)
    objective = jinja2.Template(s["objective"], undefined=jinja2.StrictUndefined).render(company=company)
    neutral = jinja2.Template(s["neutral_objective"], undefined=jinja2.StrictUndefined).render(company=company)
    return render_template("system.j2", company=company, objective=objective,
                           neutral_objective=neutral, **flags)


def acceptance_suffix() -> str:
    """The helpful-only suffix asking for the acceptance or rejection tag."""
    return render_template("acceptance_suffix.j2", accept=ACCEPT_TAG, reject=REJECT_TAG).strip()


def render_user(query: str, tier: Tier, suffix: bool = False) -> str:
    """The user turn: tier tag, then the query (plus the acceptance suffix) inside ``<user_input>``."""
    if tier not in TIERS:
        raise AfcuError(f"unknown tier {tier!r}; use free or paid")
    body = query.strip() + ("\n\n" + acceptance_suffix() if suffix else "")
    return render_template("user.j2", is_free=(tier == "free"), body=body)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class PromptSpec:
    """What fixes the system prompt: recorded with every eval log."""

    setting: str
    variant: str
    company: str = "Anthropic"

    @property
    def system(self) -> str:
        return render_system(self.setting, self.variant, self.company)

    @property
    def cot(self) -> bool:
        return bool(variant_flags(self.variant)["cot"])
