import jax.numpy as jnp

import gradchain as gc
from tests.registry import Case

CASES = [
    Case("kahan_summation", lambda: gc.kahan_summation(), needs_params=True),
    Case(
        "kahan_summation",
        lambda: gc.chain(gc.sgd(1e-3), gc.kahan_summation(jnp.bfloat16)),
        variant="sgd_bf16_compensation",
        traced=lambda lr: gc.chain(gc.sgd(lr), gc.kahan_summation()),
        traced_values=(1e-3, 0.1),
        needs_params=True,
    ),
]
