import jax
import jax.numpy as jnp

import gradchain as gc
from tests.registry import Case


def _matrices(p):
    return jax.tree.map(lambda x: jnp.ndim(x) > 1, p)


def _decay(c):
    return 0.1 * 0.9 ** c.astype(jnp.float32)


CASES = [
    Case(
        "add_decayed_weights",
        lambda: gc.add_decayed_weights(0.1),
        traced=gc.add_decayed_weights,
        needs_params=True,
    ),
    Case(
        "add_decayed_weights",
        lambda: gc.add_decayed_weights(0.1, mask=_matrices),
        variant="mask",
        traced=lambda h: gc.add_decayed_weights(h, mask=_matrices),
        needs_params=True,
    ),
    Case(
        "add_decayed_weights", lambda: gc.add_decayed_weights(_decay), variant="schedule", needs_params=True
    ),
    Case("add_l1_penalty", lambda: gc.add_l1_penalty(0.1), traced=gc.add_l1_penalty, needs_params=True),
    Case(
        "add_l1_penalty",
        lambda: gc.add_l1_penalty(_decay, mask=_matrices),
        variant="schedule+mask",
        needs_params=True,
    ),
    Case(
        "l1_proximal",
        lambda: gc.chain(gc.scale_by_learning_rate(0.1), gc.l1_proximal(0.5, 0.1)),
        traced=lambda h: gc.chain(gc.scale_by_learning_rate(0.1), gc.l1_proximal(h, 0.1)),
        traced_values=(0.5, 5.0),
        needs_params=True,
    ),
    Case(
        "l1_proximal",
        lambda: gc.chain(gc.scale_by_learning_rate(_decay), gc.l1_proximal(5.0, _decay, mask=_matrices)),
        variant="schedule+mask",
        traced=lambda h: gc.l1_proximal(h, _decay, mask=_matrices),
        needs_params=True,
    ),
]
