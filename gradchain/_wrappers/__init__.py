"""Wrappers: transformations that take an inner transformation (private; ``gradchain`` re-exports)."""
