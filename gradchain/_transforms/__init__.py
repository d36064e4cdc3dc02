"""Transformation families, one module per family (private; ``gradchain`` re-exports)."""
