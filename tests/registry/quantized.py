import jax.numpy as jnp

from gradchain import adam_8bit, scale_by_adam_8bit
from tests.registry import Case

# Traced values are dyadic (exact in float32, and so is 1 - value): a float32 tracer then
# computes exactly what the weakly typed Python float does, and so rounds to the same codes.
B1 = (0.75, 0.875)
_sched = lambda c: 0.05 * 0.9 ** c.astype(jnp.float32)

# The contract tree is small (at most 12 values a leaf): the default `min_8bit_size=4096`
# keeps every moment in float32 there, so the `8bit` variants quantize every leaf
# (`min_8bit_size=0`) in blocks that split leaves unevenly (padding) and that cover a
# leaf whole (block_size >= size), scalars and size-0 leaves included.
CASES = [
    Case(
        "scale_by_adam_8bit",
        scale_by_adam_8bit,
        traced=lambda b1: scale_by_adam_8bit(b1=b1),
        traced_values=B1,
    ),
    Case(
        "scale_by_adam_8bit",
        lambda: scale_by_adam_8bit(block_size=5, min_8bit_size=0),
        variant="8bit",
        traced=lambda b1: scale_by_adam_8bit(b1=b1, block_size=5, min_8bit_size=0),
        traced_values=B1,
    ),
    Case(
        "scale_by_adam_8bit",
        lambda: scale_by_adam_8bit(0.875, 0.9921875, 1e-6, 1e-12, block_size=64, min_8bit_size=4),
        variant="8bit_mixed",
    ),
    Case("adam_8bit", lambda: adam_8bit(0.01), traced=adam_8bit),
    Case(
        "adam_8bit",
        lambda: adam_8bit(_sched, block_size=4, min_8bit_size=0),
        variant="8bit_schedule",
        traced=lambda lr: adam_8bit(lr, block_size=4, min_8bit_size=0),
    ),
]
