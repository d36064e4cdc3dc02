"""Optax's ``optax.experimental`` namespace: the `aggregating` submodule (transformations of
per-example gradients), importable as ``gradchain.experimental.aggregating``."""

from gradchain.experimental import aggregating as aggregating

__all__ = sorted(n for n in dir() if not n.startswith("_"))
