"""Data protection: unlearnable examples, dataset ownership/membership and model watermarks.

Each method is one module; ``unlearning`` reaches them only through its manipulation registry.
``afcu protect bench --track images|text|diffusion`` measures them (protection/README.md).
"""
