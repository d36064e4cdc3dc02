"""Registry cases for gradchain/wrappers.py (``masked`` itself is in core.py).

``inject_hyperparams`` returns a factory, not a transformation, so its cases are
registered under the name of the factory it wraps, with variant "inject_hyperparams".
"""

import jax
import jax.numpy as jnp

import gradchain as gc
from tests.registry import Case


def _is_matrix(p):
    return jax.tree.map(lambda x: jnp.ndim(x) > 1, p)


def _labels(p):
    return jax.tree.map(lambda x: "mat" if x.ndim > 1 else "vec", p)


def _sched_lr(c):
    return 0.1 / (1.0 + c.astype(jnp.float32))


def _stateful(lr=0.1):
    """A small stateful inner transformation (per-parameter state and a count)."""
    return gc.chain(gc.accumulate_gradients(gc.scale(2.0), 2), gc.scale_by_learning_rate(lr))


CASES = [
    Case("set_to_zero", gc.set_to_zero),
    Case("freeze", lambda: gc.freeze(_is_matrix)),
    Case("freeze", lambda: gc.freeze(False), variant="single-bool"),
    Case(
        "selective_transform",
        lambda: gc.selective_transform(_stateful(), freeze_mask=_is_matrix),
        traced=lambda h: gc.selective_transform(gc.scale(h), freeze_mask=_is_matrix),
    ),
    Case(
        "partition",
        lambda: gc.partition({"mat": _stateful(), "vec": gc.scale(-0.3), "unused": gc.scale(9.0)}, _labels),
        traced=lambda h: gc.partition({"mat": gc.scale(h), "vec": gc.scale(-0.3)}, _labels),
    ),
    Case(
        "apply_if_finite",
        lambda: gc.apply_if_finite(_stateful(), 2),
        traced=lambda h: gc.apply_if_finite(gc.scale(h), 2),
    ),
    Case(
        "scale_by_learning_rate",
        lambda: gc.inject_hyperparams(gc.scale_by_learning_rate)(0.1),
        traced=lambda h: gc.inject_hyperparams(gc.scale_by_learning_rate)(h),
        variant="inject_hyperparams",
    ),
    Case(
        "scale_by_learning_rate",
        lambda: gc.inject_hyperparams(gc.scale_by_learning_rate)(_sched_lr),
        traced=lambda h: gc.inject_hyperparams(gc.scale_by_learning_rate)(
            lambda c: h / (1.0 + c.astype(jnp.float32))
        ),
        variant="inject_hyperparams-schedule",
    ),
    Case(
        "accumulate_gradients",
        lambda: gc.inject_hyperparams(gc.accumulate_gradients)(gc.scale(-0.1), 2),
        traced=lambda h: gc.inject_hyperparams(gc.accumulate_gradients)(gc.scale(h), 2),
        variant="inject_hyperparams",
    ),
]
