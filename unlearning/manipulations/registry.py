"""The manipulation registry (filled by the modules imported in ``__init__``)."""

from afcu.registry import Registry

MANIPULATIONS: Registry = Registry("manipulation")
