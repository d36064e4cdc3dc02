"""Registry cases for gradchain/transforms/accumulation.py."""

import jax.numpy as jnp

import gradchain as gc
from tests.registry import Case


def _inner(lr=0.1):
    return gc.chain(
        gc.scale_by_schedule(lambda c: 1.0 / (1.0 + c.astype(jnp.float32))), gc.scale_by_learning_rate(lr)
    )


CASES = [
    Case(
        "accumulate_gradients",
        lambda: gc.accumulate_gradients(_inner(), 2),
        traced=lambda h: gc.accumulate_gradients(_inner(h), 2),
    ),
    Case(
        "accumulate_gradients",
        lambda: gc.accumulate_gradients(_inner(), lambda step: 1 + step % 2),
        variant="schedule",
    ),
    Case(
        "accumulate_gradients",
        lambda: gc.accumulate_gradients(_inner(), 3, use_grad_mean=False, accumulator_dtype=jnp.float32),
        variant="sum-float32",
    ),
]
