"""Registry cases of the rest of optax.contrib: Sophia, SAM, MoMo, GaLore, DP-SGD,
normalize, split_real_and_imaginary."""

import jax
import jax.numpy as jnp

import gradchain as gc
from tests.registry import Case


def obj_fn(params):
    """A separable objective for any tree (Hessian ``diag(x**2 + 1)``): Sophia's ``obj_fn``."""
    return sum(jnp.sum(x**4 / 12 + x**2 / 2) for x in jax.tree.leaves(params))


def grad_fn(params, i):
    """SAM's opaque-mode gradient function: the gradient of `obj_fn`."""
    del i
    return jax.grad(obj_fn)(params)


def per_example(tx):
    """``tx`` behind a stateless step that makes per-example gradients (a batch of 3 scaled
    copies, one over the clipping norm) from the ordinary ones the contract tests feed."""
    scales = (1.0, -0.5, 4.0)
    fake = gc.stateless(lambda u, p: jax.tree.map(lambda g: jnp.stack([s * g for s in scales]), u))
    return gc.chain(fake, tx)


SAM_ADV = lambda: gc.chain(gc.normalize(), gc.sgd(0.05))
DIMS = lambda p: jax.tree.map(lambda x: gc.GaLoreDimensionNumbers((0, 1), 2) if jnp.ndim(x) == 3 else None, p)
OBJ = {"obj_fn": obj_fn}
LOSS = {"value": jnp.asarray(2.0)}

CASES = [
    Case(
        "hutchinson_estimator_diag_hessian",
        lambda: gc.hutchinson_estimator_diag_hessian(jax.random.PRNGKey(1)),
        extra_args=OBJ,
        needs_params=True,
    ),
    Case(
        "scale_by_sophia",
        lambda: gc.scale_by_sophia(update_interval=2),
        traced=lambda g: gc.scale_by_sophia(gamma=g, update_interval=2),
        extra_args=OBJ,
        needs_params=True,
    ),
    Case(
        "sophia",
        lambda: gc.sophia(0.1, update_interval=3, mu_dtype=jnp.bfloat16),
        traced=lambda lr: gc.sophia(lr, update_interval=2),
        extra_args=OBJ,
        needs_params=True,
    ),
    Case("normalize", gc.normalize, extra_args={}),
    Case(
        "sam",
        lambda: gc.sam(gc.sgd(0.1), SAM_ADV(), sync_period=3),
        traced=lambda lr: gc.sam(gc.adam(lr), SAM_ADV()),
        extra_args={},
        needs_params=True,
    ),
    Case(
        "sam",
        lambda: gc.sam(gc.adam(0.1), gc.chain(gc.normalize(), gc.adam(0.05)), reset_state=False),
        variant="keep_adv_state",
        extra_args={},
        needs_params=True,
    ),
    Case(
        "sam",
        lambda: gc.sam(gc.sgd(0.1), SAM_ADV(), sync_period=3, opaque_mode=True),
        variant="opaque",
        traced=lambda lr: gc.sam(gc.sgd(lr), SAM_ADV(), opaque_mode=True),
        extra_args={"grad_fn": grad_fn},
        needs_params=True,
    ),
    Case(
        "momo",
        lambda: gc.momo(0.5, weight_decay=0.1),
        traced=gc.momo,
        extra_args=LOSS,
        needs_params=True,
    ),
    Case(
        "momo",
        lambda: gc.momo(0.5, lower_bound=-1.0, adapt_lower_bound=True),
        variant="adapt",
        extra_args=LOSS,
        needs_params=True,
    ),
    Case(
        "momo_adam",
        lambda: gc.momo_adam(0.1, weight_decay=0.1),
        traced=gc.momo_adam,
        extra_args=LOSS,
        needs_params=True,
    ),
    Case(
        "momo_adam",
        lambda: gc.momo_adam(0.1, lower_bound=-1.0, adapt_lower_bound=True),
        variant="adapt",
        extra_args=LOSS,
        needs_params=True,
    ),
    Case(
        "scale_by_galore",
        lambda: gc.scale_by_galore(rank=2, update_proj_gap=2),
        traced=lambda s: gc.scale_by_galore(rank=2, update_proj_gap=2, scale=s),
        extra_args={},
    ),
    Case(
        "galore",
        lambda: gc.galore(0.1, rank=2, update_proj_gap=3, weight_decay=0.1, weight_dimension_numbers=DIMS),
        traced=lambda lr: gc.galore(lr, rank=1, update_proj_gap=2, base_optimizer=gc.scale_by_lion()),
        extra_args={},
        variant="stacked",
    ),
    Case(
        "differentially_private_aggregate",
        lambda: per_example(gc.differentially_private_aggregate(1.0, 0.5, key=0)),
        traced=lambda c: per_example(gc.differentially_private_aggregate(c, 0.5, key=jax.random.key(2))),
        traced_values=(0.5, 2.0),
        extra_args={},
    ),
    Case(
        "dpsgd",
        lambda: per_example(gc.dpsgd(0.1, 1.0, 0.5, seed=1, momentum=0.9)),
        traced=lambda lr: per_example(gc.dpsgd(lr, 1.0, 0.5, seed=1)),
        extra_args={},
    ),
    Case(
        "split_real_and_imaginary",
        lambda: gc.split_real_and_imaginary(gc.adam(0.1)),
        traced=lambda lr: gc.split_real_and_imaginary(gc.sgd(lr, momentum=0.9)),
        extra_args={},
    ),
]
