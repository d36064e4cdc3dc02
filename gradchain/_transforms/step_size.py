"""Step sizes read off the problem: the loss value (Polyak), the distance travelled over the
gradients seen (DoG), or the update's own norm (`normalize_by_update_norm`).

`scale_by_polyak` and `normalize_by_update_norm` scale every leaf by one global factor;
`scale_by_distance_over_gradients` keeps one step size per leaf (layer-wise DoG).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._base import EmptyState, GradientTransformation
from gradchain._kit import Compute, map_leaves, store
from gradchain._numerics import abs_sq, as_leaf, compute_dtype, hp, leaf_dtype, real_dtype
from gradchain._tree import global_norm, scale_tree, stats_dtype
from gradchain._validate import (
    canonical_dtype,
    check_floating,
    check_nonnegative,
    check_positive,
    check_scalar,
    check_tree_match,
    refuse_flat,
    require_params,
)

__all__ = [
    "ScaleByDistanceOverGradientsState",
    "normalize_by_update_norm",
    "scale_by_distance_over_gradients",
    "scale_by_polyak",
]

_FLOAT64_EPS = float(np.finfo(np.float64).eps)  # Optax's zero-gradient threshold


def _sum_sq(x: jax.Array) -> jax.Array:
    """``sum(|x|**2)`` of one leaf, in its real compute dtype."""
    x = as_leaf(x)
    return jnp.sum(abs_sq(x.astype(compute_dtype(x.dtype))))


def _sq_norm(tree: Any) -> jax.Array:
    """The squared global L2 norm, in `stats_dtype` (at least float32)."""
    dt = stats_dtype(tree)
    return sum((_sum_sq(x).astype(dt) for x in jax.tree.leaves(tree)), jnp.zeros([], dt))


def _loss_value(fn: str, extra_args: dict) -> jax.Array:
    value = extra_args.get("value")
    if value is None:
        raise TypeError(
            f"{fn}: `value` must be the loss at the current parameters, passed as "
            "`tx.update(grads, state, params, value=loss)`, got None."
        )
    if not hasattr(value, "dtype"):
        value = jnp.asarray(value)
    if jnp.ndim(value) != 0:
        raise ValueError(f"{fn}: `value` must be a scalar, got an array of shape {jnp.shape(value)}.")
    if not jnp.issubdtype(value.dtype, jnp.floating) and not jnp.issubdtype(value.dtype, jnp.integer):
        raise TypeError(f"{fn}: `value` must be a real number, got dtype {value.dtype}.")
    return value


def scale_by_polyak(
    f_min=0.0, max_learning_rate=1.0, eps=0.0, variant: str = "sps"
) -> GradientTransformation:
    """Polyak's step size: the loss gap over the squared gradient norm, capped.

    Update rule, with ``f_t`` the loss passed as ``update(..., value=f_t)`` and
    ``|g|`` the L2 norm of all leaves together::

        gap_t = f_t - f_min                       (variant="sps")
        gap_t = max(f_t - f_min, 0)               (variant="sps+")
        step_t = 0                                       if |g_t|**2 + eps <= 2.2e-16
        step_t = min(gap_t / (|g_t|**2 + eps), max_learning_rate)   otherwise
        u_t = step_t * g_t

    The step is positive (no sign flip): chain with ``scale(-1)`` or
    `scale_by_learning_rate`, or use `polyak_sgd`. With ``"sps"`` a loss below
    ``f_min`` gives a negative step (ascent); ``"sps+"`` stops there instead.

    Args:
        f_min: A lower bound of the loss (0 for models that interpolate the data).
        max_learning_rate: The cap of the step, ``>= 0`` (may be ``inf``).
        eps: Added to the squared norm, ``>= 0``.
        variant: ``"sps"`` or ``"sps+"`` (positional, as in Optax).

    Returns:
        A stateless `GradientTransformation` (state `EmptyState()`) whose ``update``
        needs the keyword argument ``value``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_polyak()
        >>> g = jnp.array([1.0, 1.0])  # |g|**2 = 2
        >>> tx.update(g, tx.init(g), value=jnp.array(0.5))[0]  # step 0.5 / 2
        Array([0.25, 0.25], dtype=float32)

    References:
        Loizou et al., "Stochastic Polyak Step-size for SGD: An Adaptive Learning Rate
        for Fast Convergence", AISTATS 2021.
        Garrigos et al., "Function Value Learning: Adaptive Learning Rates Based on the
        Polyak Stepsize and Function Splitting in ERM", 2023 (SPS+).
    """
    fn = "scale_by_polyak"
    check_scalar(fn, "f_min", f_min)
    check_nonnegative(fn, "max_learning_rate", max_learning_rate, allow_inf=True)
    check_nonnegative(fn, "eps", eps)
    if not isinstance(variant, str) or variant not in ("sps", "sps+"):
        raise ValueError(f"{fn}: `variant` must be 'sps' or 'sps+', got {variant!r}.")

    def init_fn(params):
        del params
        return EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del params
        check_floating(fn, updates)
        value = _loss_value(fn, extra_args)
        sq = _sq_norm(updates)
        dt = sq.dtype
        gap = value.astype(dt) - hp(f_min, dt)
        if variant == "sps+":
            gap = jnp.maximum(gap, jnp.zeros_like(gap))
        den = sq + hp(eps, dt)
        tiny = den <= _FLOAT64_EPS
        ratio = gap / jnp.where(tiny, jnp.ones_like(den), den)
        step = jnp.where(tiny, jnp.zeros_like(den), jnp.minimum(ratio, hp(max_learning_rate, dt)))
        return scale_tree(updates, step), state

    return GradientTransformation(init_fn, update_fn)


def normalize_by_update_norm(scale_factor=1.0, eps=1e-6) -> GradientTransformation:
    """Divide the updates by their global L2 norm (plus ``eps``).

    Update rule, with ``|g|`` the L2 norm of all leaves together::

        u_t = scale_factor * g_t / (|g_t| + eps)     (0 where |g_t| + eps == 0)

    Args:
        scale_factor: Multiplier of the normalized update (e.g. ``-lr`` to descend).
        eps: Added to the norm, ``>= 0``.

    Returns:
        A stateless `GradientTransformation` (state `EmptyState()`).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.normalize_by_update_norm(scale_factor=-1.0, eps=0.0)
        >>> tx.update(jnp.array([3.0, 4.0]), tx.init(None))[0]
        Array([-0.6, -0.8], dtype=float32)
    """
    fn = "normalize_by_update_norm"
    check_scalar(fn, "scale_factor", scale_factor)
    check_nonnegative(fn, "eps", eps)

    def init_fn(params):
        del params
        return EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_floating(fn, updates)
        norm = global_norm(updates)
        dt = norm.dtype
        den = norm + hp(eps, dt)
        ok = den > 0
        factor = jnp.where(
            ok, hp(scale_factor, dt) / jnp.where(ok, den, jnp.ones_like(den)), jnp.zeros_like(den)
        )
        return scale_tree(updates, factor), state

    return GradientTransformation(init_fn, update_fn)


class ScaleByDistanceOverGradientsState(NamedTuple):
    """State of `scale_by_distance_over_gradients`."""

    max_dist: Any  # per-param tree of scalars, at least float32: the largest distance from the start
    grad_sum_of_squares: Any  # per-param tree of shape (1,), at least float32 (Optax's shape)
    init_params: Any  # per-param tree, `param_dtype` or param dtype: the starting point


def scale_by_distance_over_gradients(
    reps_rel=1e-6, eps=1e-8, param_dtype: Any = jnp.float32, global_scale=1.0
) -> GradientTransformation:
    """DoG, layer-wise: step by the distance travelled over the root of the summed squared gradients.

    Update rule, per leaf (``|.|`` the L2 norm of the whole leaf, ``x`` the parameters
    passed to ``update``, ``x_0`` those passed to ``init``)::

        r_0 = reps_rel * (1 + |x_0|)
        r_t = max(r_{t-1}, |x_t - x_0|)
        G_t = G_{t-1} + |g_t|**2                  (G_0 = 0)
        eta_t = global_scale * r_t / sqrt(G_t + eps)   (0 where G_t + eps == 0)
        u_t = eta_t * g_t

    No learning rate and no sign flip: chain with ``scale(-1)`` (or use
    ``global_scale=-1``). ``init`` must see the real starting parameters, not
    placeholders: they set ``r_0`` and the distances. The authors recommend averaging
    the iterates.

    ``r`` and ``G`` are kept in at least float32 whatever the parameters' dtype (Optax
    keeps ``r`` in the parameters' dtype), and a scalar parameter's update keeps its
    shape (Optax 0.2.8 returns shape ``(1,)`` there).

    Args:
        reps_rel: The initial distance relative to ``1 + |x_0|``, ``> 0`` (1e-6; 1e-4
            for models with batch normalization).
        eps: Added to ``G`` inside the square root, ``>= 0``.
        param_dtype: Storage dtype of ``x_0`` (float32, as Optax); ``None``: the param's.
        global_scale: Multiplier of every step (typically 1 or -1).

    Returns:
        A `GradientTransformation` with state
        `ScaleByDistanceOverGradientsState(max_dist, grad_sum_of_squares, init_params)`;
        ``update`` needs ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_distance_over_gradients(reps_rel=0.5, eps=0.0)
        >>> x = jnp.array([3.0, 4.0])  # r_0 = 0.5 * (1 + 5)
        >>> tx.update(jnp.array([0.0, 2.0]), tx.init(x), x)[0]  # 3 / sqrt(4) * g
        Array([0., 3.], dtype=float32)

    References:
        Ivgi et al., "DoG is SGD's Best Friend: A Parameter-Free Dynamic Step Size
        Schedule", ICML 2023.
    """
    fn = "scale_by_distance_over_gradients"
    check_positive(fn, "reps_rel", reps_rel)
    check_nonnegative(fn, "eps", eps)
    param_dtype = canonical_dtype(fn, "param_dtype", param_dtype)
    check_scalar(fn, "global_scale", global_scale)

    def stat_dtype(p):
        return real_dtype(compute_dtype(leaf_dtype(p)))

    def init_fn(params):
        def r0(p):
            dt = stat_dtype(p)
            return hp(reps_rel, dt) * (1 + jnp.sqrt(_sum_sq(p).astype(dt)))

        return ScaleByDistanceOverGradientsState(
            max_dist=jax.tree.map(r0, params),
            grad_sum_of_squares=jax.tree.map(lambda p: jnp.zeros((1,), stat_dtype(p)), params),
            init_params=jax.tree.map(lambda p: as_leaf(p).astype(param_dtype or leaf_dtype(p)), params),
        )

    def leaf(g, x, r, gsq, x0):
        c = Compute(g, x, x0)
        dt = r.dtype
        r = jnp.maximum(r, jnp.sqrt(_sum_sq(c(x) - c(x0)).astype(dt)))
        gsq = gsq + _sum_sq(g).astype(dt)
        den = jnp.sqrt(gsq[0] + hp(eps, dt))
        ok = den > 0
        eta = jnp.where(
            ok, hp(global_scale, dt) * r / jnp.where(ok, den, jnp.ones_like(den)), jnp.zeros_like(den)
        )
        return store(c(g) * c(eta), g), r, gsq

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        refuse_flat(fn, updates)
        require_params(fn, params)
        check_tree_match(fn, updates, params, "`params`")
        check_tree_match(fn, updates, state.init_params)
        new_updates, max_dist, gsq = map_leaves(
            leaf, updates, params, state.max_dist, state.grad_sum_of_squares, state.init_params
        )
        return new_updates, ScaleByDistanceOverGradientsState(max_dist, gsq, state.init_params)

    return GradientTransformation(init_fn, update_fn)
