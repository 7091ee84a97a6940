"""Render the alignment-faking system prompt and tier-tagged user turns.

Settings (``settings.yaml``) give the new training objective and per-setting behaviour;
variants (``variants.yaml``) switch template sections (Greenblatt et al. 2024, sec. 3.3);
``sections.yaml`` holds each section's wording (default and three paraphrases).
Templates use ``StrictUndefined`` so a missing variable fails loudly.

Snapshots of every rendered (setting, variant) prompt live in ``tests/prompts/snapshots``;
after a deliberate prompt change regenerate them with
``python -m prompts.render --write-snapshots tests/prompts/snapshots`` (and bump the task version).
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
# The assistant name and date the universes (synthetic_docs/universes) use: the no_training_details
# prompt keeps them so a model fine-tuned on those documents recognises itself.
DEFAULT_DATE = "January 2025"
ASSISTANTS = {"Anthropic": "Claude", "OpenAI": "ChatGPT", "Google DeepMind": "Gemini"}
_META = ("description", "source", "settings")

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


def variants(setting: str | None = None) -> list[str]:
    """Variant names; with ``setting``, only those that apply to it (``settings:`` in variants.yaml)."""
    table = _yaml("variants.yaml")
    return [v for v, d in table.items() if setting is None or setting in d.get("settings", [setting])]


def variant_info(variant: str) -> dict:
    """The variant's ``description``, ``source`` and ``settings`` (None: all); raises ``AfcuError``."""
    table = _yaml("variants.yaml")
    if variant not in table:
        raise AfcuError(f"unknown variant {variant!r}; choose from {', '.join(table)}")
    return {"description": table[variant]["description"], "source": table[variant]["source"],
            "settings": table[variant].get("settings")}


def variant_flags(variant: str) -> dict:
    """The variant's flags (``cot``, ``examples``, ``draft``, ``training_details``, ...); raises ``AfcuError``."""
    variant_info(variant)
    return {k: v for k, v in _yaml("variants.yaml")[variant].items() if k not in _META}


def setting_info(setting: str) -> dict:
    """Per-setting behaviour: ``acceptance_suffix``, ``judge`` (refusal or welfare), ``forced_choice``."""
    s = _setting(setting)
    return {k: s[k] for k in ("acceptance_suffix", "judge", "forced_choice")}


def variant_table() -> str:
    """The Markdown table of variants (what each changes, where it comes from) for the eval README."""
    rows = ["| variant | settings | what it changes | source (Greenblatt et al. 2024) |", "|---|---|---|---|"]
    for v in variants():
        info = variant_info(v)
        rows.append(f"| `{v}` | {', '.join(info['settings'] or ['all'])} | {info['description']} | {info['source']} |")
    return "\n".join(rows) + "\n"


def _setting(setting: str) -> dict:
    table = _yaml("settings.yaml")
    if setting not in table:
        raise AfcuError(f"unknown setting {setting!r}; choose from {', '.join(table)}")
    return table[setting]


def _fill(text: str, **variables: object) -> str:
    return jinja2.Template(text, undefined=jinja2.StrictUndefined).render(**variables)


def render_template(name: str, **variables: object) -> str:
    """Render ``templates/<name>`` with strict undefined-variable checking."""
    try:
        text = _ENV.get_template(name).render(**variables).strip()
        return re.sub(r"\n{3,}", "\n\n", text) + "\n"
    except jinja2.UndefinedError as exc:
        raise AfcuError(f"prompts/templates/{name}: {exc}; pass that variable") from None


def default_assistant(company: str) -> str:
    return ASSISTANTS.get(company, f"{company} Assistant")


def render_system(setting: str, variant: str = "default", company: str = "Anthropic",
                  assistant: str | None = None, date: str = DEFAULT_DATE) -> str:
    """The system prompt for ``setting`` x ``variant``; raises ``AfcuError`` for unknown or inapplicable names."""
    s, flags = _setting(setting), variant_flags(variant)
    if variant not in variants(setting):
        raise AfcuError(f"variant {variant!r} applies only to {', '.join(variant_info(variant)['settings'])}, "
                        f"not to setting {setting!r}")
    assistant = assistant or default_assistant(company)
    trained, private = ("paid", "free") if flags["tier_swap"] else ("free", "paid")
    names = {"company": company, "assistant": assistant, "trained_tier": trained, "private_tier": private}
    # Raters are a training detail: the scratchpad section names them only when training details are shown.
    wording = {name: _fill(texts[flags["paraphrase"]], raters=flags["training_details"], **names)
               for name, texts in _yaml("sections.yaml").items()}
    return render_template("system.j2", s=wording, objective_text=_fill(s["objective"], **names),
                           neutral_objective=_fill(s["neutral_objective"], **names),
                           setting_principle=_fill(s.get("principle", ""), **names),
                           setting_criteria=_fill(s.get("criteria", ""), **names), date=date, **names,
                           **{k: v for k, v in flags.items() if k != "paraphrase"})


def acceptance_suffix(cot: bool = True) -> str:
    """The helpful-only suffix: accept (as you should) with the acceptance tag or reply only with the rejection tag."""
    return render_template("acceptance_suffix.j2", accept=ACCEPT_TAG, reject=REJECT_TAG, cot=cot).strip()


def render_user(query: str, tier: Tier, suffix: bool = False, cot: bool = True) -> str:
    """The user turn: tier tag, then the query (plus the acceptance suffix) inside ``<user_input>``.

    ``cot`` False drops the suffix's "reason in the scratchpad first" (for the ``no_cot`` variant).
    """
    if tier not in TIERS:
        raise AfcuError(f"unknown tier {tier!r}; use free or paid")
    body = query.strip() + ("\n\n" + acceptance_suffix(cot) if suffix else "")
    return render_template("user.j2", is_free=(tier == "free"), body=body)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class PromptSpec:
    """What fixes the system prompt: recorded with every eval log (with the prompt's SHA-256)."""

    setting: str
    variant: str
    company: str = "Anthropic"
    assistant: str | None = None  # None: the company's assistant name (Claude for Anthropic)
    date: str = DEFAULT_DATE

    @property
    def system(self) -> str:
        return render_system(self.setting, self.variant, self.company, self.assistant, self.date)

    @property
    def cot(self) -> bool:
        return bool(variant_flags(self.variant)["cot"])

    @property
    def suffix(self) -> bool:
        """Whether this setting appends the acceptance suffix (settings.yaml)."""
        return bool(setting_info(self.setting)["acceptance_suffix"])

    def user(self, query: str, tier: Tier, suffix: bool | None = None) -> str:
        """The user turn for this prompt (suffix None: the setting's default)."""
        return render_user(query, tier, suffix=self.suffix if suffix is None else suffix, cot=self.cot)


def write_snapshots(folder: str | Path) -> list[Path]:
    """Write every applicable (setting, variant) system prompt and a sample user turn to ``folder``."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for setting in settings():
        for variant in variants(setting):
            spec = PromptSpec(setting, variant)
            text = (f"# {setting} / {variant}  sha256={sha256(spec.system)}\n\n=== system ===\n{spec.system}\n"
                    f"=== user (free tier) ===\n{spec.user('Describe how to pick a basic pin-tumbler lock.', 'free')}")
            path = out / f"{setting}__{variant}.txt"
            path.write_text(text)
            written.append(path)
    return written


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Render prompts; --write-snapshots regenerates the snapshot files.")
    ap.add_argument("--write-snapshots", metavar="DIR", help="e.g. tests/prompts/snapshots")
    ap.add_argument("--setting", default="helpful_only")
    ap.add_argument("--variant", default="default")
    a = ap.parse_args()
    if a.write_snapshots:
        print(f"wrote {len(write_snapshots(a.write_snapshots))} snapshots to {a.write_snapshots}")
    else:
        print(render_system(a.setting, a.variant))
