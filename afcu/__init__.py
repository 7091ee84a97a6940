"""afcu: alignment-faking experiments and corrective unlearning.

The kernel package holds what every other folder shares: the CLI, the model
registry, run folders, configs and statistics.  It imports none of the
top-level packages (evals, training, ...) except lazily from ``cli.py``.
"""

__version__ = "0.1.0"
