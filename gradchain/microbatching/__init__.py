"""Optax's ``optax.microbatching`` namespace: `microbatch` (the top-level `gradchain.microbatch`),
`micro_vmap`, `micro_grad`, `reshape_batch_axis`, `AccumulationType` and `Accumulator`.
"""

from gradchain._microbatching import AccumulationType as AccumulationType
from gradchain._microbatching import Accumulator as Accumulator
from gradchain._microbatching import micro_grad as micro_grad
from gradchain._microbatching import micro_vmap as micro_vmap
from gradchain._microbatching import reshape_batch_axis as reshape_batch_axis
from gradchain._wrappers.microbatch import microbatch as microbatch

__all__ = sorted(n for n in dir() if not n.startswith("_"))
