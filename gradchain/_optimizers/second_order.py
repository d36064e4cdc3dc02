"""Second-order preconditioned optimizers: SOAP and Shampoo, each a short `chain`.

The update rules are in their building blocks, `scale_by_soap` and `scale_by_shampoo`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradchain._base import GradientTransformation, ScalarOrSchedule
from gradchain._chain import chain
from gradchain._masking import masked
from gradchain._numerics import as_leaf, compute_dtype, hp, safe_increment, zero_count
from gradchain._optimizers.common import Mask, as_mask, learning_rate_step, named_errors
from gradchain._transforms.regularization import AddDecayedWeightsState, add_decayed_weights
from gradchain._transforms.shampoo import scale_by_shampoo
from gradchain._transforms.soap import scale_by_soap
from gradchain._validate import (
    check_flag,
    check_nonnegative,
    check_tree_match,
    require_params,
    schedule_value,
)

__all__ = ["shampoo", "soap"]


def _decay_updated_params(fn: str, learning_rate, weight_decay, mask) -> GradientTransformation:
    """The reference's decay order: ``u_t <- u_t - lr_t * wd_t * (p + u_t)``, none on the first step.

    That is ``p_t = (p_{t-1} + u_t) * (1 - lr_t * wd_t)``: the decay shrinks the updated
    parameters (pytorch_optimizer's and the authors' SOAP), and the first step, which SOAP
    spends initialising its bases, leaves the parameters alone.
    """

    def value(name, x, count):
        return schedule_value(fn, name, x(count)) if callable(x) else x

    def init_fn(params):
        del params
        return AddDecayedWeightsState(count=zero_count())

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        new_state = AddDecayedWeightsState(count=safe_increment(state.count))
        if not jax.tree.leaves(updates):
            return updates, new_state
        require_params(fn, params)
        check_tree_match(fn, updates, params, "`params`")
        lr = value("learning_rate", learning_rate, state.count)
        wd = value("weight_decay", weight_decay, state.count)

        def f(u, p):
            u, p = as_leaf(u), as_leaf(p)
            dt = compute_dtype(u.dtype)
            k = jnp.where(state.count == 0, jnp.zeros([], dt), jnp.asarray(hp(lr, dt) * hp(wd, dt), dt))
            x = u.astype(dt)
            return (x - k * (p.astype(dt) + x)).astype(u.dtype)

        return jax.tree.map(f, updates, params), new_state

    tx = GradientTransformation(init_fn, update_fn)
    return tx if mask is None else masked(tx, mask)


def soap(
    learning_rate: ScalarOrSchedule,
    b1=0.95,
    b2=0.95,
    shampoo_beta=None,
    eps=1e-8,
    weight_decay: ScalarOrSchedule = 0.01,
    precondition_frequency: int = 10,
    max_precond_dim: int = 10000,
    mask: Mask = None,
    *,
    precondition_1d: bool = False,
    normalize_grads: bool = False,
    correct_bias: bool = True,
    precondition_all_axes: bool = False,
    decay_updated_params: bool = False,
) -> GradientTransformation:
    """SOAP with decoupled weight decay.

    The chain (see `scale_by_soap` for the update rule)::

        chain(scale_by_soap(b1, b2, shampoo_beta, eps, precondition_frequency, max_precond_dim, ...),
              add_decayed_weights(weight_decay, mask), scale_by_learning_rate(learning_rate))

    so ``u_t = -lr_t * (soap_t + weight_decay * p_t)``, as `adamw` decays. With
    ``decay_updated_params=True`` it is the authors' order instead (their code and
    pytorch_optimizer's ``SOAP``): ``chain(scale_by_soap(...),
    scale_by_learning_rate(learning_rate), decay)`` with ``p_t = (p_{t-1} + u_t) * (1 -
    lr_t * weight_decay)``, no decay on the first step (which only sets up the bases);
    the two differ by ``lr * weight_decay`` relative to the step.

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        b1, b2, shampoo_beta, eps, precondition_frequency, max_precond_dim: As in `scale_by_soap`.
        weight_decay: Decay rate ``>= 0``, or a schedule.
        mask: Where to decay: ``None`` (every leaf), a pytree of bools mirroring the
            params, or a callable returning one.
        precondition_1d, normalize_grads, correct_bias, precondition_all_axes: As in `scale_by_soap`.
        decay_updated_params: The authors' decay order (see above).

    Returns:
        A `GradientTransformation` (a `chain` of three members); ``update`` needs ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.soap(0.1, weight_decay=0.0)
        >>> p = jnp.zeros((2, 2))
        >>> g = jnp.array([[1.0, 0.0], [0.0, -2.0]])
        >>> u, state = tx.update(g, tx.init(p), p)  # the first step only sets up the bases
        >>> (tx.update(g, state, p)[0] + 0.0).round(4)  # -lr * sign(g) on step two
        Array([[-0.1,  0. ],
               [ 0. ,  0.1]], dtype=float32)

    References:
        Vyas et al., "SOAP: Improving and Stabilizing Shampoo using Adam", ICLR 2025
        (arXiv:2409.11321).
    """
    fn = "soap"
    with named_errors(fn):
        lr = learning_rate_step(fn, learning_rate)
        check_nonnegative(fn, "weight_decay", weight_decay, allow_schedule=True)
        after = check_flag(fn, "decay_updated_params", decay_updated_params)
        tx = scale_by_soap(
            b1,
            b2,
            shampoo_beta,
            eps,
            precondition_frequency,
            max_precond_dim,
            precondition_1d=precondition_1d,
            normalize_grads=normalize_grads,
            correct_bias=correct_bias,
            precondition_all_axes=precondition_all_axes,
        )
        if after:
            return chain(tx, lr, _decay_updated_params(fn, learning_rate, weight_decay, as_mask(mask)))
        return chain(tx, add_decayed_weights(weight_decay, as_mask(mask)), lr)


def shampoo(
    learning_rate: ScalarOrSchedule,
    block_size: int = 1024,
    beta1=0.9,
    beta2=0.999,
    diagonal_epsilon=1e-10,
    matrix_epsilon=1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
    start_preconditioning_step: int = 5,
    preconditioning_compute_steps: int = 1,
    mask: Mask = None,
    *,
    graft_type: str = "sgd",
    nesterov: bool = True,
    moving_average_for_momentum: bool = False,
    exponent_override: int = 0,
    graft_per_block: bool = True,
    precondition_all_axes: bool = False,
    error_tolerance=1e-6,
) -> GradientTransformation:
    """Shampoo (Distributed Shampoo's design) with decoupled weight decay.

    The chain (see `scale_by_shampoo` for the update rule)::

        chain(scale_by_shampoo(block_size, beta1, beta2, diagonal_epsilon, matrix_epsilon,
                               start_preconditioning_step, preconditioning_compute_steps, ...),
              add_decayed_weights(weight_decay, mask), scale_by_learning_rate(learning_rate))

    so ``p_t = p_{t-1} - lr_t * (u_t + weight_decay * p_{t-1})``: pytorch_optimizer's
    ``ScalableShampoo(decoupled_weight_decay=True)`` (and its default
    ``decoupled_learning_rate=True``).

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        block_size, beta1, beta2, diagonal_epsilon, matrix_epsilon: As in `scale_by_shampoo`.
        weight_decay: Decay rate ``>= 0``, or a schedule.
        start_preconditioning_step, preconditioning_compute_steps: As in `scale_by_shampoo`.
        mask: Where to decay: ``None`` (every leaf), a pytree of bools mirroring the
            params, or a callable returning one.
        graft_type, nesterov, moving_average_for_momentum, exponent_override,
            graft_per_block, precondition_all_axes, error_tolerance: As in `scale_by_shampoo`.

    Returns:
        A `GradientTransformation` (a `chain` of three members); ``update`` needs ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.shampoo(0.1, beta1=0.0, matrix_epsilon=0.0, start_preconditioning_step=1)
        >>> p = jnp.zeros((2, 2))
        >>> g = jnp.array([[3.0, 0.0], [0.0, 4.0]])
        >>> (tx.update(g, tx.init(p), p)[0] + 0.0).round(4)  # -0.1 * |g| * I / |I|: SGD's step length
        Array([[-0.3536,  0.    ],
               [ 0.    , -0.3536]], dtype=float32)

    References:
        Gupta, Koren & Singer, "Shampoo: Preconditioned Stochastic Tensor Optimization", ICML 2018.
        Anil et al., "Scalable Second Order Optimization for Deep Learning", arXiv:2002.09018.
    """
    fn = "shampoo"
    with named_errors(fn):
        lr = learning_rate_step(fn, learning_rate)
        tx = scale_by_shampoo(
            block_size,
            beta1,
            beta2,
            diagonal_epsilon,
            matrix_epsilon,
            start_preconditioning_step,
            preconditioning_compute_steps,
            graft_type=graft_type,
            nesterov=nesterov,
            moving_average_for_momentum=moving_average_for_momentum,
            exponent_override=exponent_override,
            graft_per_block=graft_per_block,
            precondition_all_axes=precondition_all_axes,
            error_tolerance=error_tolerance,
        )
        return chain(tx, add_decayed_weights(weight_decay, as_mask(mask)), lr)
