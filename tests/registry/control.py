import jax.numpy as jnp

import gradchain as gc
from tests.registry import Case

VALUE = {"value": jnp.asarray(1.0)}

CASES = [
    Case(
        "early_stopping",
        lambda: gc.early_stopping(patience=2),
        extra_args=VALUE,
        traced=lambda d: gc.early_stopping(patience=2, min_delta=d),
        traced_values=(0.01, 0.1),
    ),
    Case(
        "early_stopping", lambda: gc.early_stopping(patience=0, mode="max"), extra_args=VALUE, variant="max"
    ),
    Case(
        "reduce_on_plateau",
        lambda: gc.reduce_on_plateau(factor=0.5, patience=1),
        extra_args=VALUE,
        traced=lambda f: gc.reduce_on_plateau(factor=f, patience=1),
        traced_values=(0.1, 0.5),
    ),
    Case(
        "reduce_on_plateau",
        lambda: gc.reduce_on_plateau(factor=0.5, patience=0, cooldown=1, accumulation_size=2),
        extra_args=VALUE,
        variant="cooldown_accumulate",
    ),
]
