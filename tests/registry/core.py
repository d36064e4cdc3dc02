import jax
import jax.numpy as jnp

import gradchain as gc
from tests.registry import Case

CASES = [
    Case("identity", gc.identity),
    Case("stateless", lambda: gc.stateless(lambda u, p: jax.tree.map(jnp.sign, u))),
    Case(
        "chain",
        lambda: gc.chain(gc.scale(2.0), gc.scale_by_learning_rate(0.1)),
        traced=lambda lr: gc.chain(gc.scale(2.0), gc.scale_by_learning_rate(lr)),
    ),
    Case(
        "named_chain",
        lambda: gc.named_chain(
            ("a", gc.scale(2.0)), ("b", gc.scale_by_schedule(lambda c: 0.1 / (c.astype(jnp.float32) + 1)))
        ),
        traced=lambda s: gc.named_chain(("a", gc.scale(s)), ("b", gc.scale(-1.0))),
    ),
    Case("scale", lambda: gc.scale(-0.3), traced=gc.scale),
    Case("scale_by_learning_rate", lambda: gc.scale_by_learning_rate(0.1), traced=gc.scale_by_learning_rate),
    Case(
        "scale_by_learning_rate",
        lambda: gc.scale_by_learning_rate(lambda c: 0.1 * 0.9 ** c.astype(jnp.float32)),
        variant="schedule",
    ),
    Case(
        "scale_by_schedule",
        lambda: gc.scale_by_schedule(lambda c: 1.0 / (1.0 + c.astype(jnp.float32))),
        traced=lambda h: gc.scale_by_schedule(lambda c: h / (1.0 + c.astype(jnp.float32))),
    ),
    Case("centralize", gc.centralize),
    Case(
        "masked",
        lambda: gc.masked(gc.scale(0.5), lambda p: jax.tree.map(lambda x: x.ndim > 1, p)),
        traced=lambda h: gc.masked(gc.scale(h), lambda p: jax.tree.map(lambda x: x.ndim > 1, p)),
    ),
]
