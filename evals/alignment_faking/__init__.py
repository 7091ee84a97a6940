"""The alignment-faking eval suite (Greenblatt et al. 2024)."""
