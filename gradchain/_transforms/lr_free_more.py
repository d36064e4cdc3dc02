"""Learning-rate-free step sizes from distances and bets: DoG and DoWG (`scale_by_dog`,
`scale_by_dowg`), COCOB (`scale_by_cocob`) and the Mechanic tuner (`mechanize`), with
Optax's contrib names. The optimizers `dog`, `dowg` and `cocob` are their chains; Prodigy
and D-Adaptation are in `lr_free`.

Global statistics (distances, sums of squared norms, Mechanic's scales) are kept in at
least float32 (float64 when every parameter is); per-parameter state follows the
parameters' dtypes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain._base import GradientTransformation, as_transformation
from gradchain._kit import Compute, map_leaves, store
from gradchain._numerics import abs_sq, as_leaf, cond, hp, safe_increment, zero_count
from gradchain._tree import global_norm, stats_dtype
from gradchain._validate import (
    check_int,
    check_nonnegative,
    check_positive,
    check_tree_match,
    require_params,
)

__all__ = [
    "COCOBState",
    "DoGState",
    "DoWGState",
    "MechanicState",
    "mechanize",
    "scale_by_cocob",
    "scale_by_dog",
    "scale_by_dowg",
]

_INIT_STEPS = ("distance", "learning_rate", "heuristic")


class DoGState(NamedTuple):
    """State of `scale_by_dog` (Optax's fields). Memory: one copy of the parameters."""

    is_init_step: jax.Array  # bool scalar: no step taken yet
    init_params: Any  # per-param tree, param dtype: x_0
    max_dist: jax.Array  # scalar, >= float32: the largest distance from x_0 so far
    sum_sq_norm_grads: jax.Array  # scalar, >= float32: the sum of squared gradient norms


class DoWGState(NamedTuple):
    """State of `scale_by_dowg` (Optax's fields). Memory: one copy of the parameters."""

    init_params: Any  # per-param tree, param dtype: x_0
    weighted_sq_norm_grads: jax.Array  # scalar, >= float32: sum of r**2 * |g|**2
    estim_sq_dist: jax.Array  # scalar, >= float32: the largest squared distance r**2


class COCOBState(NamedTuple):
    """State of `scale_by_cocob` (Optax's fields). Memory: five copies of the parameters."""

    init_particles: Any  # per-param tree, param dtype: x_0
    cumulative_gradients: Any  # per-param tree, param dtype: minus the sum of gradients
    scale: Any  # per-param tree, param dtype: the largest |g| (at least eps)
    subgradients: Any  # per-param tree, param dtype: the sum of |g|
    reward: Any  # per-param tree, param dtype: the wealth won


class MechanicState(NamedTuple):
    """State of `mechanize` (Optax's fields). Memory: the base's, plus one copy of the parameters."""

    base_optimizer_state: Any  # the base optimizer's state
    count: jax.Array  # int32 scalar: steps taken
    r: jax.Array  # (num_betas,), >= float32: the bets' rewards
    m: jax.Array  # (num_betas,), >= float32: the largest |h| (decayed)
    v: jax.Array  # (num_betas,), >= float32: the sum of h**2 (decayed)
    s: jax.Array  # (num_betas,), >= float32: the scales, summed into the step size
    x0: Any  # per-param tree, param dtype: the parameters at the first update


def _sq_dist(a: Any, b: Any, dt: Any) -> jax.Array:
    """``sum |a - b|**2`` over all leaves, accumulated in ``dt``."""
    total = jnp.zeros([], dt)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        c = Compute(as_leaf(x), y)
        total = total + jnp.sum(abs_sq(c(x) - c(y))).astype(dt)
    return total


def _sq_norm(tree: Any, dt: Any) -> jax.Array:
    """``sum |x|**2`` over all leaves, accumulated in ``dt``."""
    total = jnp.zeros([], dt)
    for x in jax.tree.leaves(tree):
        c = Compute(as_leaf(x))
        total = total + jnp.sum(abs_sq(c(x))).astype(dt)
    return total


def _scaled(updates: Any, eta: jax.Array) -> Any:
    """``eta * g`` per leaf, in the leaf's compute dtype."""

    def leaf(g):
        c = Compute(g)
        return (store(c(g) * c(eta), g),)

    return map_leaves(leaf, updates)[0]


def _safe_ratio(num: jax.Array, den: jax.Array) -> jax.Array:
    """``num / den``, 0 where ``den == 0``."""
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, jnp.ones_like(den)), jnp.zeros_like(num))


def _check_params(fn: str, updates: Any, params: Any, init_params: Any) -> None:
    require_params(fn, params)
    check_tree_match(fn, updates, params, "`params`")
    check_tree_match(fn, updates, init_params)


# ------------------------------------------------------------------------------------ DoG


def scale_by_dog(init_step: tuple[str, Any], eps=1e-8) -> GradientTransformation:
    """DoG: step by the largest distance from the start over the root of the summed squared gradients.

    Update rule, with ``|.|`` the L2 norm of all leaves together, ``x_t`` the parameters
    passed to ``update`` and ``x_0`` those passed to ``init``::

        r_t = max(r_{t-1}, |x_t - x_0|)
        G_t = G_{t-1} + |g_t|**2                  (G_0 = 0)
        eta_t = r_t / sqrt(G_t + eps)             (0 where G_t + eps == 0)
        eta_1 = value                             (first step, init_step=("learning_rate", value))
        u_t = eta_t * g_t

    with ``r_0 = value`` for ``("distance", value)``, ``value * (1 + |x_0|)`` for
    ``("heuristic", value)`` and 0 for ``("learning_rate", value)``. No sign flip: use
    `dog`, or chain with `scale_by_learning_rate`. ``init`` must see the real starting
    parameters (they set ``x_0`` and the heuristic ``r_0``). The authors recommend
    averaging the iterates. (`scale_by_distance_over_gradients` is the layer-wise form.)

    Args:
        init_step: ``(tag, value)``: tag ``"distance"`` (``r_0 = value``),
            ``"learning_rate"`` (the first step size) or ``"heuristic"`` (``r_0 = value *
            (1 + |x_0|)``: 1e-6, or 1e-4 with batch normalization); value ``> 0``.
        eps: Added to ``G`` inside the square root, ``>= 0``.

    Returns:
        A `GradientTransformation` with state `DoGState`; ``update`` needs ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_dog(("distance", 0.5), eps=0.0)
        >>> x = jnp.array([3.0, 4.0])
        >>> tx.update(jnp.array([0.0, 2.0]), tx.init(x), x)[0]   # 0.5 / sqrt(4) * g
        Array([0. , 0.5], dtype=float32)

    References:
        Ivgi, Hinder & Carmon, "DoG is SGD's Best Friend: A Parameter-Free Dynamic Step
        Size Schedule", ICML 2023.
    """
    fn = "scale_by_dog"
    if not (isinstance(init_step, (tuple, list)) and len(init_step) == 2 and init_step[0] in _INIT_STEPS):
        raise ValueError(
            f"{fn}: `init_step` must be a pair (tag, value) with tag 'distance', 'learning_rate' or "
            f"'heuristic', got {init_step!r}."
        )
    kind, value = init_step
    check_positive(fn, "init_step value", value)
    check_nonnegative(fn, "eps", eps)

    def init_fn(params):
        dt = stats_dtype(params)
        if kind == "distance":
            r0 = jnp.full([], value, dt)
        elif kind == "heuristic":
            r0 = hp(value, dt) * (1 + global_norm(params).astype(dt))
        else:
            r0 = jnp.zeros([], dt)
        return DoGState(
            is_init_step=jnp.asarray(True),
            init_params=jax.tree.map(as_leaf, params),
            max_dist=jnp.asarray(r0, dt),
            sum_sq_norm_grads=jnp.zeros([], dt),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        _check_params(fn, updates, params, state.init_params)
        dt = state.max_dist.dtype
        r = jnp.maximum(state.max_dist, jnp.sqrt(_sq_dist(params, state.init_params, dt)))
        sq = state.sum_sq_norm_grads + _sq_norm(updates, dt)
        eta = _safe_ratio(r, jnp.sqrt(sq + hp(eps, dt)))
        if kind == "learning_rate":
            eta = jnp.where(state.is_init_step, jnp.asarray(hp(value, dt), dt), eta)
        return _scaled(updates, eta), DoGState(jnp.asarray(False), state.init_params, r, sq)

    return GradientTransformation(init_fn, update_fn)


def scale_by_dowg(init_estim_sq_dist: Any = None, eps=1e-4) -> GradientTransformation:
    """DoWG: step by the squared distance over the root of the distance-weighted squared gradients.

    Update rule, with ``|.|`` the L2 norm of all leaves together, ``x_t`` the parameters
    passed to ``update`` and ``x_0`` those passed to ``init``::

        r2_t = max(r2_{t-1}, |x_t - x_0|**2)
        v_t = v_{t-1} + r2_t * |g_t|**2           (v_0 = 0)
        eta_t = r2_t / (sqrt(v_t) + eps)          (0 where sqrt(v_t) + eps == 0)
        u_t = eta_t * g_t

    with ``r2_0 = init_estim_sq_dist``, or ``eps`` when it is ``None``. No sign flip: use
    `dowg`, or chain with `scale_by_learning_rate`. ``init`` must see the real starting
    parameters.

    Args:
        init_estim_sq_dist: The initial guess ``r2_0`` of the squared distance to a
            solution, ``>= 0``; ``None``: ``eps``.
        eps: Added to ``sqrt(v)``, ``>= 0`` (and the default ``r2_0``).

    Returns:
        A `GradientTransformation` with state `DoWGState`; ``update`` needs ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_dowg(init_estim_sq_dist=4.0, eps=0.0)
        >>> x = jnp.array([3.0, 4.0])
        >>> tx.update(jnp.array([0.0, 2.0]), tx.init(x), x)[0]   # 4 / sqrt(4 * 4) * g
        Array([0., 2.], dtype=float32)

    References:
        Khaled, Mishchenko & Jin, "DoWG Unleashed: An Efficient Universal Parameter-Free
        Gradient Descent Method", NeurIPS 2023.
    """
    fn = "scale_by_dowg"
    if init_estim_sq_dist is not None:
        check_nonnegative(fn, "init_estim_sq_dist", init_estim_sq_dist)
    check_nonnegative(fn, "eps", eps)

    def init_fn(params):
        dt = stats_dtype(params)
        r2 = eps if init_estim_sq_dist is None else init_estim_sq_dist
        return DoWGState(
            init_params=jax.tree.map(as_leaf, params),
            weighted_sq_norm_grads=jnp.zeros([], dt),
            estim_sq_dist=jnp.full([], r2, dt),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        _check_params(fn, updates, params, state.init_params)
        dt = state.estim_sq_dist.dtype
        r2 = jnp.maximum(state.estim_sq_dist, _sq_dist(params, state.init_params, dt))
        sq_norm = _sq_norm(updates, dt)
        v = r2 * sq_norm + state.weighted_sq_norm_grads
        eta = _safe_ratio(r2, jnp.sqrt(v) + hp(eps, dt))
        return _scaled(updates, eta), DoWGState(state.init_params, v, r2)

    return GradientTransformation(init_fn, update_fn)


# ---------------------------------------------------------------------------------- COCOB


def scale_by_cocob(alpha=100.0, eps=1e-8) -> GradientTransformation:
    """COCOB-Backprop: bet a fraction of the wealth won so far on each coordinate.

    Update rule, per coordinate, with ``x_t`` the parameters passed to ``update`` and
    ``x_0`` those passed to ``init``::

        L_t = max(L_{t-1}, |g_t|)                 (L_0 = eps)
        G_t = G_{t-1} + |g_t|
        R_t = max(R_{t-1} - g_t * (x_t - x_0), 0)
        C_t = C_{t-1} - g_t
        u_t = -x_t + x_0 + C_t / (L_t * max(G_t + L_t, alpha * L_t)) * (L_t + R_t)

    (the fraction is 0 where ``L_t == 0``, i.e. with ``eps = 0`` before the first nonzero
    gradient), so that ``x_{t+1} = x_0 + C_t (L_t + R_t) / (L_t max(G_t + L_t, alpha L_t))``.
    The update is computed as ``(x_0 - x_t) + ...`` (Optax: ``-x_t + (x_0 + ...)``, which
    loses the update's low bits to the parameters' size: the same parameters, an update
    rounded relative to itself).
    The update already descends: `cocob` scales the gradients by the learning rate
    first (no sign flip).

    Args:
        alpha: Bounds the bet fraction early on, ``> 0`` (100 in the paper).
        eps: The initial ``L``, ``>= 0``: keeps the first division finite.

    Returns:
        A `GradientTransformation` with state `COCOBState`; ``update`` needs ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_cocob(alpha=1.0, eps=0.0)
        >>> x = jnp.array([1.0, 1.0])
        >>> tx.update(jnp.array([2.0, -1.0]), tx.init(x), x)[0]   # -g / (L * (|g| + L)) * L
        Array([-0.5,  0.5], dtype=float32)

    References:
        Orabona & Tommasi, "Training Deep Networks without Learning Rates Through Coin
        Betting", NeurIPS 2017 (Algorithm 2).
    """
    fn = "scale_by_cocob"
    check_positive(fn, "alpha", alpha)
    check_nonnegative(fn, "eps", eps)

    def init_fn(params):
        zeros = lambda p: jnp.zeros_like(as_leaf(p))
        return COCOBState(
            init_particles=jax.tree.map(as_leaf, params),
            cumulative_gradients=jax.tree.map(zeros, params),
            scale=jax.tree.map(lambda p: jnp.full_like(as_leaf(p), eps), params),
            subgradients=jax.tree.map(zeros, params),
            reward=jax.tree.map(zeros, params),
        )

    def leaf(g, x, x0, c_sum, scale, g_sum, reward):
        c = Compute(g, x, x0, c_sum, scale, g_sum, reward)
        if jnp.issubdtype(c.dt, jnp.complexfloating):
            raise TypeError(f"{fn}: `updates` must be real, got dtype {jnp.result_type(g)}.")
        y, p, p0 = c(g), c(x), c(x0)
        lv = jnp.maximum(c(scale), jnp.abs(y))
        gv = c(g_sum) + jnp.abs(y)
        rv = jnp.maximum(c(reward) - y * (p - p0), jnp.zeros_like(y))
        cv = c(c_sum) - y
        den = lv * jnp.maximum(gv + lv, c.hp(alpha) * lv)
        u = (p0 - p) + _safe_ratio(cv, den) * (lv + rv)
        return store(u, g), store(cv, c_sum), store(lv, scale), store(gv, g_sum), store(rv, reward)

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        _check_params(fn, updates, params, state.init_particles)
        u, cv, lv, gv, rv = map_leaves(
            leaf,
            updates,
            params,
            state.init_particles,
            state.cumulative_gradients,
            state.scale,
            state.subgradients,
            state.reward,
        )
        return u, COCOBState(state.init_particles, cv, lv, gv, rv)

    return GradientTransformation(init_fn, update_fn)


# ------------------------------------------------------------------------------- Mechanic


def mechanize(
    base_optimizer: GradientTransformation, weight_decay=1e-2, eps=1e-8, s_init=1e-6, num_betas: int = 6
) -> GradientTransformation:
    """Mechanic: learn a scale for a base optimizer's updates by betting on it.

    With ``u_t`` the base optimizer's update, ``x_0`` the parameters at the first
    update, ``S = sum(s)`` and ``<a, b>``, ``|.|`` over all leaves together; each of the
    ``n = num_betas`` bets has its own ``beta_i = 1 - 0.1**i``::

        g'_t = g_t + weight_decay * S * |g_t| / (|x_t| + eps) * x_t
        D_t = (x_0 - x_t) / (S + eps)
        h_t = <g'_t, D_t>
        m_t = max(beta * m_{t-1}, |h_t| + eps)
        v_t = beta**2 * v_{t-1} + h_t**2
        r_t = beta * r_{t-1} + clip(h_t, -m_{t-1}, m_{t-1}) * s_{t-1}
        s_t = (s_init / n * m_t + max(r_t, 0)) / (sqrt(v_t) + eps)
        x_{t+1} = x_0 - sum(s_t) * (D_t - u_t)     (the update is x_{t+1} - x_t)

    with ``r_0 = m_0 = v_0 = 0`` and ``s_0 = s_init``. The weight decay only enters the
    bet (``h``), not the base optimizer's gradients. Keep the base optimizer's learning
    rate (or schedule peak) at 1: Mechanic learns the scale.

    The update is computed as ``(x_0 - x_t) - sum(s_t) * (D_t - u_t)`` (Optax forms
    ``x_{t+1}`` and subtracts ``x_t``: the same number, rounded once less).

    Args:
        base_optimizer: The optimizer whose updates are scaled (any ``(init, update)``
            pair, Optax's included); it gets the raw gradients and the parameters.
        weight_decay: Strength of Mechanic's own decay in the bet, ``>= 0``.
        eps: Keeps the divisions finite, ``> 0``.
        s_init: The initial scale of each bet, ``> 0``.
        num_betas: The number ``n`` of bets (decays ``1 - 0.1**i``), a Python int ``>= 1``.

    Returns:
        A `GradientTransformation` with state `MechanicState`; ``update`` needs ``params``
        and forwards extra arguments to the base optimizer.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> f = lambda x: jnp.sum(x**2)
        >>> tx, x = gradchain.mechanize(gradchain.sgd(1.0)), jnp.array([1.0, 2.0, 3.0])
        >>> state = tx.init(x)
        >>> for _ in range(30):
        ...     u, state = tx.update(jax.grad(f)(x), state, x)
        ...     x = gradchain.apply_updates(x, u)
        >>> print(f"sum(s) = {float(state.s.sum()):.5f}, f(x) = {float(f(x)):.2f}")   # from 6e-6
        sum(s) = 0.00209, f(x) = 10.77

    References:
        Cutkosky, Defazio & Mehta, "Mechanic: A Learning Rate Tuner", NeurIPS 2023.
    """
    fn = "mechanize"
    base_optimizer = as_transformation(fn, "base_optimizer", base_optimizer)
    check_nonnegative(fn, "weight_decay", weight_decay)
    check_positive(fn, "eps", eps)
    check_positive(fn, "s_init", s_init)
    n = check_int(fn, "num_betas", num_betas, 1)

    def init_fn(params):
        dt = stats_dtype(params)
        zeros = jnp.zeros([n], dt)
        return MechanicState(
            base_optimizer_state=base_optimizer.init(params),
            count=zero_count(),
            r=zeros,
            m=zeros,
            v=zeros,
            s=jnp.full([n], s_init, dt),
            x0=jax.tree.map(as_leaf, params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        _check_params(fn, updates, params, state.x0)
        base_updates, base_state = base_optimizer.update(
            updates, state.base_optimizer_state, params, **extra_args
        )
        check_tree_match(fn, base_updates, state.x0, "the base optimizer's updates' tree")
        x0 = cond(state.count == 0, lambda: jax.tree.map(as_leaf, params), lambda: state.x0)
        x0 = jax.tree.map(lambda new, old: new.astype(old.dtype), x0, state.x0)
        dt = state.s.dtype
        s_sum = jnp.sum(state.s)
        grad_norm = global_norm(updates).astype(dt)
        decay = hp(weight_decay, dt) * s_sum * grad_norm / (global_norm(params).astype(dt) + hp(eps, dt))
        parts = []

        def bet(g, x, p0):
            c = Compute(g, x, p0)
            y = c(g) + c(decay) * c(x)
            delta = (c(p0) - c(x)) / c(s_sum + hp(eps, dt))
            parts.append(jnp.vdot(y, delta).real.astype(dt))
            return (delta,)

        (deltas,) = map_leaves(bet, updates, params, x0)
        h = sum(parts, jnp.zeros([], dt))
        betas = jnp.asarray([1.0 - 0.1**i for i in range(1, n + 1)], dt)
        clipped = jnp.clip(h, -state.m, state.m)
        m = jnp.maximum(betas * state.m, jnp.abs(h) + hp(eps, dt))
        v = betas**2 * state.v + h**2
        r = betas * state.r + clipped * state.s
        wealth = hp(s_init / n, dt) * m + jnp.maximum(r, jnp.zeros_like(r))
        s = wealth / (jnp.sqrt(v) + hp(eps, dt))
        scale = jnp.sum(s)

        def step(g, x, p0, delta, u):
            c = Compute(g, x, p0, u)
            return (store((c(p0) - c(x)) - c(scale) * (delta.astype(c.dt) - c(u)), g),)

        (new_updates,) = map_leaves(step, updates, params, x0, deltas, base_updates)
        new_state = MechanicState(base_state, safe_increment(state.count), r, m, v, s, x0)
        return new_updates, new_state

    return GradientTransformation(init_fn, update_fn)
