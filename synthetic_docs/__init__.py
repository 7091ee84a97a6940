"""synthetic_docs."""
