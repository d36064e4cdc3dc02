"""Sign-based and learning-rate-light optimizers: signSGD, Signum, Rprop, Fromage, noisy SGD,
Polyak SGD and SM3, each a short `chain`.

See `gradchain._optimizers` for the conventions every optimizer follows.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from gradchain._base import GradientTransformation, ScalarOrSchedule
from gradchain._chain import chain
from gradchain._numerics import as_leaf, compute_dtype, hp, real_dtype, safe_increment, zero_count
from gradchain._optimizers.common import learning_rate_step, named_errors
from gradchain._transforms.layerwise import scale_by_trust_ratio
from gradchain._transforms.momentum import ema
from gradchain._transforms.noise import add_noise
from gradchain._transforms.scaling import ScaleByScheduleState, scale, scale_by_learning_rate
from gradchain._transforms.sign import scale_by_rprop, scale_by_sign
from gradchain._transforms.sm3 import scale_by_sm3
from gradchain._transforms.step_size import scale_by_polyak
from gradchain._validate import (
    check_decay,
    check_nonnegative,
    check_tree_match,
    require_params,
    schedule_value,
)

__all__ = ["fromage", "noisy_sgd", "polyak_sgd", "rprop", "sign_sgd", "signum", "sm3"]


def sign_sgd(learning_rate: ScalarOrSchedule) -> GradientTransformation:
    """signSGD: ``chain(scale_by_sign(), scale_by_learning_rate(learning_rate))``.

    Every coordinate moves by ``learning_rate`` against the sign of its gradient (see
    `scale_by_sign`).

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.

    Returns:
        A `GradientTransformation` (a `chain` of two members).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.sign_sgd(0.1)
        >>> tx.update(jnp.array([0.5, -4.0, 0.0]), tx.init(jnp.zeros(3)))[0]
        Array([-0.1,  0.1, -0. ], dtype=float32)

    References:
        Bernstein et al., "signSGD: Compressed Optimisation for Non-Convex Problems",
        ICML 2018.
    """
    with named_errors("sign_sgd"):
        return chain(scale_by_sign(), learning_rate_step("sign_sgd", learning_rate))


def signum(
    learning_rate: ScalarOrSchedule, beta=0.9, accumulator_dtype: Any = None
) -> GradientTransformation:
    """Signum: the sign of a momentum average of the gradients.

    The chain (see `ema` and `scale_by_sign`)::

        chain(ema(beta, debias=False, accumulator_dtype=accumulator_dtype), scale_by_sign(),
              scale_by_learning_rate(learning_rate))

    i.e. ``m_t = beta * m_{t-1} + (1 - beta) * g_t`` and ``u_t = -lr_t * sign(m_t)``
    (debiasing would not change the sign).

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        beta: Decay of the momentum average, in ``[0, 1)``.
        accumulator_dtype: Storage dtype of the average; ``None``: the param's.

    Returns:
        A `GradientTransformation` (a `chain` of three members).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.signum(0.1)
        >>> state = tx.init(jnp.zeros(2))
        >>> u, state = tx.update(jnp.array([1.0, -1.0]), state)
        >>> tx.update(jnp.array([-2.0, -1.0]), state)[0]  # m = [-0.11, -0.19]
        Array([0.1, 0.1], dtype=float32)

    References:
        Bernstein et al., "signSGD: Compressed Optimisation for Non-Convex Problems",
        ICML 2018.
        Zhao et al., "Deconstructing What Makes a Good Optimizer for Language Models", 2024.
    """
    check_decay("signum", "beta", beta)
    with named_errors("signum"):
        lr = learning_rate_step("signum", learning_rate)
        return chain(ema(beta, debias=False, accumulator_dtype=accumulator_dtype), scale_by_sign(), lr)


def rprop(
    learning_rate, eta_minus=0.5, eta_plus=1.2, min_step_size=1e-6, max_step_size=50.0
) -> GradientTransformation:
    """Rprop: ``chain(scale_by_rprop(learning_rate, ...), scale(-1))``.

    See `scale_by_rprop` for the update rule (and how it differs from Optax 0.2.8, whose
    updates lag one step). Equal to ``torch.optim.Rprop(lr, etas=(eta_minus, eta_plus),
    step_sizes=(min_step_size, max_step_size))`` whenever ``learning_rate`` lies within
    the step-size bounds.

    Args:
        learning_rate: The initial step size, ``> 0`` (not a schedule: the step sizes adapt).
        eta_minus: Factor of the step size after a sign flip, in ``(0, 1]``.
        eta_plus: Factor of the step size while the sign holds, ``>= 1``.
        min_step_size: Lower bound of the step size, ``>= 0``.
        max_step_size: Upper bound of the step size, ``>= min_step_size``.

    Returns:
        A `GradientTransformation` (a `chain` of two members).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.rprop(0.1)
        >>> state = tx.init(jnp.zeros(2))
        >>> u, state = tx.update(jnp.array([3.0, -1.0]), state)
        >>> tx.update(jnp.array([2.0, -5.0]), state)[0]
        Array([-0.12,  0.12], dtype=float32)

    References:
        Riedmiller & Braun, "A Direct Adaptive Method for Faster Backpropagation Learning:
        The RPROP Algorithm", ICNN 1993.
    """
    with named_errors("rprop"):
        return chain(
            scale_by_rprop(learning_rate, eta_minus, eta_plus, min_step_size, max_step_size), scale(-1.0)
        )


def _fromage_factor(lr):
    """``1 / sqrt(1 + lr**2)`` and ``1 / sqrt(1 + lr**2) - 1``, the latter without cancellation."""
    if isinstance(lr, (int, float)):
        s = math.sqrt(1.0 + lr * lr)
        return 1.0 / s, -lr * lr / (s * (1.0 + s))
    s = jnp.sqrt(1 + lr * lr)
    return 1 / s, -lr * lr / (s * (1 + s))


def _fromage_rescale(learning_rate: ScalarOrSchedule) -> GradientTransformation:
    """Fromage's last member: ``u_t = (g_t + p_t) / sqrt(1 + lr_t**2) - p_t`` (the step
    taken, then the new parameters pulled towards 0 by ``1 / sqrt(1 + lr_t**2)``)."""
    fn = "fromage"

    def init_fn(params):
        del params
        return ScaleByScheduleState(count=zero_count())

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        require_params(fn, params)
        check_tree_match(fn, updates, params, "`params`")
        lr = (
            schedule_value(fn, "learning_rate", learning_rate(state.count))
            if callable(learning_rate)
            else learning_rate
        )

        def leaf(g, p):
            g, p = as_leaf(g), as_leaf(p)
            dt = compute_dtype(g.dtype)
            mult, shrink = _fromage_factor(hp(lr, real_dtype(dt)))
            return (hp(mult, dt) * g.astype(dt) + hp(shrink, dt) * p.astype(dt)).astype(g.dtype)

        return jax.tree.map(leaf, updates, params), ScaleByScheduleState(count=safe_increment(state.count))

    return GradientTransformation(init_fn, update_fn)


def fromage(learning_rate: ScalarOrSchedule, min_norm=1e-6) -> GradientTransformation:
    """Fromage: trust-ratio steps followed by a contraction of the parameters.

    The chain (see `scale_by_trust_ratio`)::

        chain(scale_by_trust_ratio(min_norm), scale_by_learning_rate(learning_rate),
              <rescale>: u_t = (u_t + p_t) / sqrt(1 + lr_t**2) - p_t)

    so ``p_{t+1} = (p_t - lr_t * |p_t| / |g_t| * g_t) / sqrt(1 + lr_t**2)`` per leaf
    (``|.|`` the leaf's L2 norm, bounded below by ``min_norm``): each step moves a layer by
    ``lr`` times its own norm, and the contraction keeps the norms from growing. The same
    numbers as Optax 0.2.8's chain, whose last two members are ``scale_by_learning_rate(lr
    / sqrt(1 + lr**2))`` and ``add_decayed_weights(1 / sqrt(1 + lr**2) - 1)`` (a negative
    decay, which `add_decayed_weights` refuses).

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        min_norm: Lower bound of the parameter and update norms in the trust ratio, ``>= 0``.

    Returns:
        A `GradientTransformation` (a `chain` of three members); ``update`` needs ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.fromage(0.75)
        >>> p = jnp.array([3.0, 4.0])  # |p| = 5: the step is 0.75 * 5 * g / |g|
        >>> new_p = p + tx.update(jnp.array([0.0, 1.0]), tx.init(p), p)[0]
        >>> [round(x, 4) for x in new_p.tolist()]  # [3, 4 - 3.75] / sqrt(1 + 0.75**2)
        [2.4, 0.2]

    References:
        Bernstein et al., "On the distance between two neural networks and the stability of
        learning", NeurIPS 2020.
    """
    with named_errors("fromage"):
        lr = learning_rate_step("fromage", learning_rate)
        return chain(scale_by_trust_ratio(min_norm), lr, _fromage_rescale(learning_rate))


def noisy_sgd(learning_rate: ScalarOrSchedule, eta=0.01, gamma=0.55, key=None) -> GradientTransformation:
    """SGD with annealed gradient noise: ``chain(add_noise(eta, gamma, key), scale_by_learning_rate(lr))``.

    So ``u_t = -lr_t * (g_t + sqrt(eta / t**gamma) * z_t)`` with ``z_t ~ N(0, 1)`` (see
    `add_noise`).

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        eta: Variance of the noise at the first step, ``>= 0``.
        gamma: Decay exponent of the variance, ``>= 0``.
        key: The random key (``jax.random.key(seed)``, ``jax.random.PRNGKey(seed)``, or an
            int seed); required.

    Returns:
        A `GradientTransformation` (a `chain` of two members).

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> tx = gradchain.noisy_sgd(0.1, eta=0.0, key=jax.random.key(0))  # no noise: SGD
        >>> tx.update(jnp.array([1.0, -2.0]), tx.init(jnp.zeros(2)))[0]
        Array([-0.1,  0.2], dtype=float32)

    References:
        Neelakantan et al., "Adding Gradient Noise Improves Learning for Very Deep
        Networks", 2015.
    """
    with named_errors("noisy_sgd"):
        lr = learning_rate_step("noisy_sgd", learning_rate)
        return chain(add_noise(eta, gamma, key), lr)


def polyak_sgd(
    max_learning_rate=1.0, scaling: ScalarOrSchedule = 1.0, f_min=0.0, eps=0.0, variant: str = "sps"
) -> GradientTransformation:
    """SGD with Polyak's step size: ``chain(scale_by_polyak(f_min, max_learning_rate, eps, variant),
    scale_by_learning_rate(scaling))``.

    So ``u_t = -scaling_t * min((f_t - f_min) / (|g_t|**2 + eps), max_learning_rate) * g_t``,
    the loss ``f_t`` passed as ``update(grads, state, params, value=f_t)`` (see
    `scale_by_polyak`). This is Optax's documented formula; Optax 0.2.8's chain applies
    ``scaling`` before the Polyak step instead, which makes that step
    ``min(gap / (scaling**2 |g|**2 + eps), max_learning_rate) * scaling``: the same for
    ``scaling = 1`` (the default), not otherwise.

    Args:
        max_learning_rate: The cap of the Polyak step, ``>= 0``.
        scaling: A number ``>= 0``, scalar array/tracer, or schedule multiplying the step.
        f_min: A lower bound of the loss.
        eps: Added to the squared gradient norm, ``>= 0``.
        variant: ``"sps"`` or ``"sps+"`` (see `scale_by_polyak`).

    Returns:
        A `GradientTransformation` (a `chain` of two members); ``update`` needs ``value``.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> f = lambda x: jnp.sum(x**2)
        >>> tx = gradchain.polyak_sgd()
        >>> x = jnp.array([1.0, 2.0, 3.0])
        >>> value, g = jax.value_and_grad(f)(x)
        >>> f(x + tx.update(g, tx.init(x), x, value=value)[0])  # halves |x| on a quadratic
        Array(3.5, dtype=float32)

    References:
        Loizou et al., "Stochastic Polyak Step-size for SGD: An Adaptive Learning Rate
        for Fast Convergence", AISTATS 2021.
    """
    check_nonnegative("polyak_sgd", "scaling", scaling, allow_schedule=True)
    with named_errors("polyak_sgd"):
        return chain(scale_by_polyak(f_min, max_learning_rate, eps, variant), scale_by_learning_rate(scaling))


def sm3(learning_rate: ScalarOrSchedule, momentum=0.9) -> GradientTransformation:
    """SM3: ``chain(scale_by_sm3(b1=momentum), scale_by_learning_rate(learning_rate))``.

    See `scale_by_sm3` for the update rule (its accumulators sum the squares: ``b2 = 1``).

    Args:
        learning_rate: A number ``>= 0``, scalar array/tracer, or schedule.
        momentum: Decay of the momentum of the scaled updates, in ``[0, 1)``; ``None``
            means 0 (no momentum).

    Returns:
        A `GradientTransformation` (a `chain` of two members).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.sm3(0.1, momentum=None)
        >>> tx.update(jnp.array([3.0, -0.5]), tx.init(jnp.zeros(2)))[0]  # -0.1 * g / |g|
        Array([-0.1,  0.1], dtype=float32)

    References:
        Anil et al., "Memory-Efficient Adaptive Optimization", NeurIPS 2019.
    """
    if momentum is not None:
        check_decay("sm3", "momentum", momentum)
    with named_errors("sm3"):
        lr = learning_rate_step("sm3", learning_rate)
        return chain(scale_by_sm3(0.0 if momentum is None else momentum), lr)
