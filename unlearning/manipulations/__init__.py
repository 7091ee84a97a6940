"""Manipulations by name: badnets, interclass_confusion, random_label_swap, trigger_backdoor, sdf_implant."""

from unlearning.manipulations.base import ManipulatedData, ManipulationConfig
from unlearning.manipulations.registry import MANIPULATIONS
from unlearning.manipulations import image  # noqa: F401  (registers the image manipulations)
from unlearning.manipulations import text  # noqa: F401  (registers trigger_backdoor, sdf_implant)
from protection import manipulations as _protection  # noqa: E402  (unlearnable examples, Data Taggants)

MANIPULATIONS.register("em_class")(_protection.em_class)
MANIPULATIONS.register("em_sample")(_protection.em_sample)
MANIPULATIONS.register("salm")(_protection.salm)
MANIPULATIONS.register("uc")(_protection.uc)
MANIPULATIONS.register("t2ue")(_protection.t2ue)
MANIPULATIONS.register("taggants")(_protection.taggants)

__all__ = ["MANIPULATIONS", "ManipulatedData", "ManipulationConfig"]
