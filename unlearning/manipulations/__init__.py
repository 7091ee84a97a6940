"""Manipulations by name: badnets, interclass_confusion, random_label_swap, trigger_backdoor, sdf_implant."""

from unlearning.manipulations.base import ManipulatedData, ManipulationConfig
from unlearning.manipulations.registry import MANIPULATIONS
from unlearning.manipulations import image  # noqa: F401  (registers the image manipulations)
from unlearning.manipulations import text  # noqa: F401  (registers trigger_backdoor, sdf_implant)

__all__ = ["MANIPULATIONS", "ManipulatedData", "ManipulationConfig"]
