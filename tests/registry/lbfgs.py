"""L-BFGS and the line searches.

The contract tests call ``update`` with fixed ``extra_args`` on many different trees, so the
line-search cases pass only ``value_fn`` (a function of any tree, bfloat16 included):
``value`` and ``grad`` at ``params`` are then computed from it. The contract's updates are
random, not gradients of ``value_fn``, so about half of them are ascent directions, on which
a line search shrinks the step until rounding decides it; that is deterministic but not
reproducible across vmap and a loop. The default `lbfgs` case therefore runs on a flat
objective (its zoom search accepts the first trial step); the searches themselves are
tested in tests/test_lbfgs.py.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

import gradchain as gc
from tests.registry import Case


class HalfSqNorm(NamedTuple):
    """``0.5 * |params|**2`` over any tree, summed in float32.

    A callable pytree without leaves (rather than a function), so that ``extra_args`` can
    also be passed through ``jax.jit(tx.update)`` as keyword arguments, as
    test_properties.py does.
    """

    def __call__(self, params):
        leaves = [jnp.sum(jnp.square(jnp.asarray(x).astype(jnp.float32))) for x in jax.tree.leaves(params)]
        return 0.5 * sum(leaves, jnp.zeros([], jnp.float32))


class Flat(NamedTuple):
    """A constant objective: every step satisfies both Wolfe conditions."""

    def __call__(self, params):
        return 0.0 * HalfSqNorm()(params)


half_sq_norm, flat = HalfSqNorm(), Flat()
OBJECTIVE = {"value_fn": half_sq_norm}

CASES = [
    Case("scale_by_lbfgs", lambda: gc.scale_by_lbfgs(3), needs_params=True, extra_args={}),
    Case(
        "scale_by_lbfgs",
        lambda: gc.scale_by_lbfgs(1, scale_init_precond=False),
        variant="m1_unscaled",
        needs_params=True,
    ),
    Case("lbfgs", lambda: gc.lbfgs(memory_size=3), needs_params=True, extra_args={"value_fn": flat}),
    Case(
        "lbfgs",
        lambda: gc.lbfgs(0.1, 4, linesearch=None),
        variant="lr_no_linesearch",
        traced=lambda lr: gc.lbfgs(lr, 4, linesearch=None),
        needs_params=True,
    ),
    Case(
        "lbfgs",
        lambda: gc.lbfgs(memory_size=2, linesearch=gc.scale_by_backtracking_linesearch(10, store_grad=True)),
        variant="backtracking",
        needs_params=True,
        extra_args=OBJECTIVE,
    ),
    Case(
        "scale_by_backtracking_linesearch",
        lambda: gc.scale_by_backtracking_linesearch(10),
        traced=lambda c: gc.scale_by_backtracking_linesearch(10, c),
        traced_values=(1e-4, 0.5),
        needs_params=True,
        extra_args=OBJECTIVE,
    ),
    Case(
        "scale_by_backtracking_linesearch",
        lambda: gc.scale_by_backtracking_linesearch(6, decrease_factor=0.5, store_grad=True),
        variant="store_grad",
        traced=lambda d: gc.scale_by_backtracking_linesearch(6, decrease_factor=d, store_grad=True),
        traced_values=(0.5, 0.9),
        needs_params=True,
        extra_args=OBJECTIVE,
    ),
    Case(
        "scale_by_zoom_linesearch",
        lambda: gc.scale_by_zoom_linesearch(10),
        traced=lambda c2: gc.scale_by_zoom_linesearch(10, curv_rtol=c2),
        traced_values=(0.5, 0.9),
        needs_params=True,
        extra_args=OBJECTIVE,
    ),
    Case(
        "scale_by_zoom_linesearch",
        lambda: gc.scale_by_zoom_linesearch(8, 0.5, initial_guess_strategy="one", approx_dec_rtol=None),
        variant="capped_one",
        traced=lambda lr: gc.scale_by_zoom_linesearch(8, lr, initial_guess_strategy="one"),
        traced_values=(0.5, 2.0),
        needs_params=True,
        extra_args=OBJECTIVE,
    ),
]
