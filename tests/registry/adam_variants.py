import jax
import jax.numpy as jnp

import gradchain as gc
from tests.registry import Case

_sched = lambda c: 0.05 * 0.9 ** c.astype(jnp.float32)
_not_bias = lambda p: jax.tree.map(lambda x: jnp.ndim(x) > 1, p)

CASES = [
    # transformations
    Case(
        "scale_by_yogi", gc.scale_by_yogi, traced=lambda b1: gc.scale_by_yogi(b1=b1), traced_values=(0.5, 0.9)
    ),
    Case(
        "scale_by_yogi",
        lambda: gc.scale_by_yogi(b1=0.8, b2=0.99, eps=1e-6, eps_root=1e-8, initial_accumulator_value=0.0),
        variant="zero_init",
        traced=lambda v: gc.scale_by_yogi(initial_accumulator_value=v),
        traced_values=(0.0, 0.1),
    ),
    Case(
        "scale_by_adan",
        gc.scale_by_adan,
        traced=lambda b2: gc.scale_by_adan(b2=b2),
        traced_values=(0.5, 0.92),
    ),
    Case(
        "scale_by_novograd",
        gc.scale_by_novograd,
        traced=lambda b1: gc.scale_by_novograd(b1=b1),
        traced_values=(0.5, 0.9),
    ),
    Case(
        "scale_by_novograd",
        lambda: gc.scale_by_novograd(weight_decay=0.1, mu_dtype=jnp.bfloat16),
        variant="weight_decay_bf16",
        traced=lambda wd: gc.scale_by_novograd(weight_decay=wd),
        traced_values=(0.0, 0.1),
        needs_params=True,
    ),
    Case("scale_by_adadelta", gc.scale_by_adadelta, traced=gc.scale_by_adadelta, traced_values=(0.5, 0.9)),
    Case(
        "scale_by_optimistic_gradient",
        gc.scale_by_optimistic_gradient,
        traced=lambda beta: gc.scale_by_optimistic_gradient(beta=beta),
        traced_values=(0.5, 1.0),
    ),
    # optimizers
    Case("yogi", lambda: gc.yogi(0.01), traced=gc.yogi),
    Case("adan", lambda: gc.adan(0.01, weight_decay=0.1), traced=gc.adan, needs_params=True),
    Case(
        "adan",
        lambda: gc.adan(_sched, weight_decay=_sched, mask=_not_bias),
        variant="schedules_mask",
        traced=lambda wd: gc.adan(0.01, weight_decay=wd),
        needs_params=True,
    ),
    Case("novograd", lambda: gc.novograd(0.01), traced=gc.novograd),
    Case("adadelta", gc.adadelta, traced=gc.adadelta, needs_params=True),
    Case(
        "adadelta",
        lambda: gc.adadelta(_sched, rho=0.95, weight_decay=0.1, weight_decay_mask=_not_bias),
        variant="schedule_mask",
        traced=lambda rho: gc.adadelta(rho=rho),
        traced_values=(0.5, 0.9),
        needs_params=True,
    ),
    Case("adamaxw", lambda: gc.adamaxw(0.01), traced=gc.adamaxw, needs_params=True),
    Case(
        "optimistic_gradient_descent",
        lambda: gc.optimistic_gradient_descent(0.01),
        traced=gc.optimistic_gradient_descent,
    ),
    Case("optimistic_adam", lambda: gc.optimistic_adam(0.01, 0.1), traced=gc.optimistic_adam),
    Case("optimistic_adam_v2", lambda: gc.optimistic_adam_v2(0.01), traced=gc.optimistic_adam_v2),
    Case(
        "optimistic_adam_v2",
        lambda: gc.optimistic_adam_v2(_sched, alpha=0.5, beta=2.0, nesterov=False, mu_dtype=jnp.bfloat16),
        variant="schedule_bf16",
        traced=lambda a: gc.optimistic_adam_v2(0.01, alpha=a),
        traced_values=(0.5, 1.0),
    ),
]
