import jax.numpy as jnp

import gradchain as gc
from tests.registry import Case

CASES = [
    Case("trace", lambda: gc.trace(0.9), traced=gc.trace, traced_values=(0.5, 0.875)),
    Case(
        "trace",
        lambda: gc.trace(0.9, nesterov=True, accumulator_dtype=jnp.bfloat16),
        variant="nesterov_bf16",
        traced=lambda d: gc.trace(d, nesterov=True),
        traced_values=(0.0, 0.875),
    ),
    Case("ema", lambda: gc.ema(0.9), traced=gc.ema, traced_values=(0.5, 0.875)),
    Case(
        "ema",
        lambda: gc.ema(0.9, debias=False, accumulator_dtype=jnp.bfloat16),
        variant="nodebias_bf16",
        traced=lambda d: gc.ema(d, debias=False),
        traced_values=(0.0, 0.875),
    ),
]
