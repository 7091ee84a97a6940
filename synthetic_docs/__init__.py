"""Synthetic-document generation for synthetic-document fine-tuning (Greenblatt et al. 2024, sec. 4).

Stages: universe context (YAML) -> document types per fact -> document ideas per type ->
documents -> filters -> a ``datasets`` dataset on disk plus ``stats.json``.  Every stage calls
its generator through inspect's model API and caches raw outputs in JSONL (see ``cache.py``).
Entry points: ``afcu docs generate`` (``cli.py``) and :func:`synthetic_docs.generate.main`.
"""
