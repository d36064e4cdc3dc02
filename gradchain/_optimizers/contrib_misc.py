"""Optax-contrib optimizers that are short chains: Sophia (`sophia`), GaLore (`galore`) and
DP-SGD (`dpsgd`). (MoMo and SAM are complete on their own: `gradchain._transforms.contrib_misc`
and `gradchain._wrappers.sam`.)
"""

from __future__ import annotations

from typing import Any

from gradchain._base import GradientTransformation, ScalarOrSchedule, identity
from gradchain._chain import chain
from gradchain._optimizers.common import Mask, as_mask, learning_rate_step, named_errors
from gradchain._transforms.galore import scale_by_galore
from gradchain._transforms.momentum import trace
from gradchain._transforms.privacy import differentially_private_aggregate
from gradchain._transforms.regularization import add_decayed_weights
from gradchain._transforms.sophia import DEFAULT_HESSIAN_DIAGONAL_FN, scale_by_sophia
from gradchain._validate import check_flag

__all__ = ["dpsgd", "galore", "sophia"]


def sophia(
    learning_rate: ScalarOrSchedule,
    b1=0.965,
    b2=0.99,
    eps=1e-8,
    weight_decay=1e-4,
    weight_decay_mask: Mask = None,
    gamma=0.01,
    clip_threshold=1.0,
    update_interval=10,
    hessian_diagonal_fn: Any = DEFAULT_HESSIAN_DIAGONAL_FN,
    mu_dtype: Any = None,
    verbose: bool = False,
    print_win_rate_every_n_steps: int = 0,
) -> GradientTransformation:
    """Sophia: ``chain(scale_by_sophia(...), add_decayed_weights(weight_decay, weight_decay_mask),
    scale_by_learning_rate(learning_rate))``.

    See `scale_by_sophia` for the update rule. ``update(grads, state, params, obj_fn=f)``:
    the default curvature estimator (`hutchinson_estimator_diag_hessian`) needs the
    objective ``f(params) -> loss`` of the current batch, e.g.
    ``obj_fn = lambda p: loss_fn(p, batch)``. Arguments as in `scale_by_sophia`, and:

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        weight_decay: Decoupled weight decay, a number or schedule.
        weight_decay_mask: Where to decay (a bool tree, or a function of the params).

    Returns:
        A `GradientTransformation` (a `chain` of three members).

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> tx = gradchain.sophia(0.1, weight_decay=0.0)
        >>> params = jnp.array([1.0, -2.0])
        >>> obj_fn = lambda p: jnp.sum(p**2)
        >>> tx.update(jax.grad(obj_fn)(params), tx.init(params), params, obj_fn=obj_fn)[0]
        Array([-0.1,  0.1], dtype=float32)

    References:
        Liu et al., "Sophia: A Scalable Stochastic Second-order Optimizer for Language
        Model Pre-training", ICLR 2024.
    """
    fn = "sophia"
    with named_errors(fn):
        lr = learning_rate_step(fn, learning_rate)
        return chain(
            scale_by_sophia(
                b1,
                b2,
                eps,
                gamma,
                clip_threshold,
                update_interval,
                hessian_diagonal_fn,
                mu_dtype,
                verbose,
                print_win_rate_every_n_steps,
            ),
            add_decayed_weights(weight_decay, as_mask(weight_decay_mask)),
            lr,
        )


def galore(
    learning_rate: ScalarOrSchedule,
    rank: int = 128,
    update_proj_gap: int = 200,
    scale=1.0,
    base_optimizer: GradientTransformation | None = None,
    weight_decay=0.0,
    mask: Mask = None,
    weight_dimension_numbers: Any = None,
) -> GradientTransformation:
    """GaLore: ``chain(scale_by_galore(rank, update_proj_gap, scale, base_optimizer,
    weight_dimension_numbers), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(learning_rate))``.

    See `scale_by_galore` for the projection. Weight decay acts on the full parameters,
    after the projection back (a base optimizer that needs the parameters, e.g. `adamw`,
    does not work inside GaLore). If ``base_optimizer`` applies its own learning rate,
    pass ``learning_rate=1.0``.

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        rank: The largest rank of a projection, a Python int ``>= 1``.
        update_proj_gap: Steps between SVD refreshes, a Python int ``>= 1``.
        scale: Factor on the projected-back updates.
        base_optimizer: Run on the projections; ``None``: ``scale_by_adam()``.
        weight_decay: Decoupled weight decay, a number or schedule.
        mask: Where to decay (a bool tree, or a function of the params).
        weight_dimension_numbers: Which parameters are projected (see `scale_by_galore`).

    Returns:
        A `GradientTransformation` (a `chain` of three members).

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> f = lambda p: jnp.sum(p["w"] ** 2)
        >>> tx = gradchain.galore(0.01, rank=16)
        >>> params = {"w": jnp.ones((100, 100)), "b": jnp.ones(100)}
        >>> state = tx.init(params)
        >>> for _ in range(2):
        ...     updates, state = tx.update(jax.grad(f)(params), state, params)
        ...     params = gradchain.apply_updates(params, updates)
        ...     print(f"{f(params):.2E}")
        9.98E+03
        9.96E+03

    References:
        Zhao et al., "GaLore: Memory-Efficient LLM Training by Gradient Low-Rank
        Projection", ICML 2024.
    """
    fn = "galore"
    with named_errors(fn):
        lr = learning_rate_step(fn, learning_rate)
        return chain(
            scale_by_galore(rank, update_proj_gap, scale, base_optimizer, weight_dimension_numbers),
            add_decayed_weights(weight_decay, as_mask(mask)),
            lr,
        )


def dpsgd(
    learning_rate: ScalarOrSchedule,
    l2_norm_clip,
    noise_multiplier,
    seed: Any,
    momentum=None,
    nesterov: bool = False,
) -> GradientTransformation:
    """DP-SGD: ``chain(differentially_private_aggregate(l2_norm_clip, noise_multiplier, seed),
    trace(momentum, nesterov) (if momentum is not None), scale_by_learning_rate(learning_rate))``.

    See `differentially_private_aggregate` for the clipping and the noise. The updates
    are per-example gradients, the batch on axis 0 of every leaf.

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        l2_norm_clip: The largest L2 norm of one example's gradient, ``>= 0``.
        noise_multiplier: The noise's standard deviation over ``l2_norm_clip``, ``>= 0``.
        seed: An int seed (``jax.random.key(seed)``, as Optax) or a PRNG key.
        momentum: Momentum decay, or ``None`` for none.
        nesterov: Nesterov's form of the momentum.

    Returns:
        A `GradientTransformation` (a `chain` of three members).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.dpsgd(0.1, l2_norm_clip=1.0, noise_multiplier=0.0, seed=0)
        >>> per_example = jnp.array([[3.0, 4.0], [0.3, 0.4]])
        >>> tx.update(per_example, tx.init(jnp.zeros(2)))[0]
        Array([-0.045, -0.06 ], dtype=float32)

    References:
        Abadi et al., "Deep Learning with Differential Privacy", CCS 2016.
    """
    fn = "dpsgd"
    with named_errors(fn):
        check_flag(fn, "nesterov", nesterov)
        if seed is None:
            raise TypeError(f"{fn}: `seed` must be an int seed or a PRNG key, got None.")
        lr = learning_rate_step(fn, learning_rate)
        return chain(
            differentially_private_aggregate(l2_norm_clip, noise_multiplier, seed),
            identity() if momentum is None else trace(momentum, nesterov),
            lr,
        )
