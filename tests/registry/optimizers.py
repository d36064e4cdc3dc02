import jax
import jax.numpy as jnp

import gradchain as gc
from tests.registry import Case

_sched = lambda c: 0.05 * 0.9 ** c.astype(jnp.float32)
_not_bias = lambda p: jax.tree.map(lambda x: jnp.ndim(x) > 1, p)

CASES = [
    Case("sgd", lambda: gc.sgd(0.1), traced=gc.sgd),
    Case(
        "sgd",
        lambda: gc.sgd(_sched, momentum=0.9),
        variant="momentum_schedule",
        traced=lambda lr: gc.sgd(lr, momentum=0.9),
    ),
    Case(
        "sgd",
        lambda: gc.sgd(0.1, momentum=0.9, nesterov=True, accumulator_dtype=jnp.float32),
        variant="nesterov",
        traced=lambda m: gc.sgd(0.1, momentum=m, nesterov=True),
        traced_values=(0.5, 0.9),
    ),
    Case("adagrad", lambda: gc.adagrad(0.1), traced=gc.adagrad),
    Case("rmsprop", lambda: gc.rmsprop(0.01), traced=gc.rmsprop),
    Case(
        "rmsprop",
        lambda: gc.rmsprop(_sched, centered=True, momentum=0.9, eps_in_sqrt=False),
        variant="centered_momentum",
        traced=lambda lr: gc.rmsprop(lr, centered=True, momentum=0.9),
    ),
    Case("adam", lambda: gc.adam(0.01), traced=gc.adam),
    Case(
        "adam",
        lambda: gc.adam(_sched, nesterov=True, mu_dtype=jnp.float32),
        variant="nesterov_schedule",
        traced=lambda b1: gc.adam(0.01, b1=b1),
        traced_values=(0.5, 0.9),
    ),
    Case("nadam", lambda: gc.nadam(0.01), traced=gc.nadam),
    Case("adamw", lambda: gc.adamw(0.01, weight_decay=0.1), traced=gc.adamw, needs_params=True),
    Case(
        "adamw",
        lambda: gc.adamw(0.01, weight_decay=_sched, mask=_not_bias),
        variant="mask_schedule",
        traced=lambda wd: gc.adamw(0.01, weight_decay=wd, mask=_not_bias),
        needs_params=True,
    ),
    Case("nadamw", lambda: gc.nadamw(0.01, weight_decay=0.1), traced=gc.nadamw, needs_params=True),
    Case("amsgrad", lambda: gc.amsgrad(0.01), traced=gc.amsgrad),
    Case("adamax", lambda: gc.adamax(0.01), traced=gc.adamax),
    Case("adabelief", lambda: gc.adabelief(0.01), traced=gc.adabelief),
    Case("radam", lambda: gc.radam(0.01, b2=0.9), traced=gc.radam),
    Case("lion", lambda: gc.lion(0.001), traced=gc.lion, needs_params=True),
    Case("lamb", lambda: gc.lamb(0.01, weight_decay=0.1), traced=gc.lamb, needs_params=True),
    Case("lars", lambda: gc.lars(0.1, weight_decay=0.1), traced=gc.lars, needs_params=True),
    Case(
        "lars",
        lambda: gc.lars(0.1, weight_decay_mask=_not_bias, trust_ratio_mask=_not_bias, nesterov=True),
        variant="masks",
        traced=lambda lr: gc.lars(lr, trust_ratio_mask=_not_bias),
        needs_params=True,
    ),
    Case("adafactor", gc.adafactor, traced=gc.adafactor, needs_params=True),
    Case(
        "adafactor",
        lambda: gc.adafactor(
            0.01, min_dim_size_to_factor=2, momentum=0.9, weight_decay_rate=0.1, weight_decay_mask=_not_bias
        ),
        variant="factored_momentum",
        traced=lambda lr: gc.adafactor(lr, min_dim_size_to_factor=2),
        needs_params=True,
    ),
]
