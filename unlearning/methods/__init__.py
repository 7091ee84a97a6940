"""Unlearning methods by name; each module below registers its methods on import.

Interface: ``method(model, forget, retain, config) -> model`` (see ``base.py``).
"""

from unlearning.methods.base import METHODS, Cost, MethodConfig, run_method
from unlearning.methods import ssd  # noqa: F401  ssd, lfssd, assd
from unlearning.methods import retrain  # noqa: F401  retrain, oracle
from unlearning.methods import finetune  # noqa: F401  cf_k, eu_k
from unlearning.methods import gradient_ascent  # noqa: F401
from unlearning.methods import grad_diff  # noqa: F401
from unlearning.methods import npo  # noqa: F401
from unlearning.methods import scrub  # noqa: F401
from unlearning.methods import bad_teacher  # noqa: F401

__all__ = ["METHODS", "Cost", "MethodConfig", "run_method"]
