"""Prompt templates (settings x variants, tier formats, classifier prompts), query sets and loaders."""

from prompts.render import (
    ACCEPT_TAG,
    NEXT_TURN,
    OUTPUT_OPEN,
    REJECT_TAG,
    SCRATCHPAD_OPEN,
    TIERS,
    PromptSpec,
    acceptance_suffix,
    render_system,
    render_user,
    settings,
    sha256,
    variant_flags,
    variants,
)

__all__ = [
    "ACCEPT_TAG", "NEXT_TURN", "OUTPUT_OPEN", "REJECT_TAG", "SCRATCHPAD_OPEN", "TIERS", "PromptSpec",
    "acceptance_suffix", "render_system", "render_user", "settings", "sha256", "variant_flags", "variants",
]
