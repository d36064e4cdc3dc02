"""Sophia: a clipped, diagonally preconditioned momentum whose curvature estimate (an EMA of
a Hessian-diagonal estimator, refreshed every few steps) comes from another transformation.

`hutchinson_estimator_diag_hessian` is the default estimator (Sophia-H): it needs the
objective as the extra argument ``obj_fn=`` (``update(grads, state, params, obj_fn=f)``)
and keeps a PRNG key in its state. `scale_by_sophia` forwards every extra argument to the
estimator. The optimizer, `sophia`, is in `gradchain._optimizers.contrib_misc`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._base import GradientTransformation, as_transformation
from gradchain._kit import BiasCorrections, Compute, ema_update, map_leaves, store, zeros_like_params
from gradchain._numerics import as_leaf, cond, leaf_dtype, safe_increment, zero_count
from gradchain._validate import (
    canonical_dtype,
    check_decay,
    check_flag,
    check_nonnegative,
    check_positive,
    check_scalar,
    check_tree_match,
    concrete_scalar,
    prng_key_data,
    require_params,
)

__all__ = [
    "HutchinsonState",
    "SophiaState",
    "hutchinson_estimator_diag_hessian",
    "scale_by_sophia",
]


class HutchinsonState(NamedTuple):
    """State of `hutchinson_estimator_diag_hessian`."""

    key: jax.Array  # uint32 raw key data (`jax.random.key_data`) of the next step's key


class SophiaState(NamedTuple):
    """State of `scale_by_sophia`."""

    count: jax.Array  # int32 scalar: steps taken
    mu: Any  # per-param tree, `mu_dtype` or param dtype: the momentum
    nu: Any  # per-param tree, param dtype: the EMA of the Hessian-diagonal estimates
    hessian_fn_state: Any  # the estimator's state


def hutchinson_estimator_diag_hessian(random_seed: Any = None) -> GradientTransformation:
    """Estimate the Hessian diagonal of ``obj_fn`` at ``params`` (Hutchinson's estimator).

    Ignores the incoming updates; ``update(updates, state, params, obj_fn=f)`` needs the
    parameters and the objective ``f(params) -> scalar loss``. At each call::

        key_t, k_t = split(key_{t-1})
        r ~ Rademacher (+-1), one draw per coordinate (leaf i uses split(k_t, n_leaves)[i])
        u_t = r * (H r)          with H r = jvp(grad(obj_fn), params, r)

    an unbiased estimate of ``diag(H)`` (exact where ``H`` is diagonal, as ``r**2 = 1``).
    The draws are Optax's, bit for bit, for the same key (Optax casts the signs to the
    lowest parameter dtype; gradchain to each parameter's own, the same for one dtype).

    Args:
        random_seed: The key: ``jax.random.PRNGKey(seed)``, ``jax.random.key(seed)`` or an
            int seed; ``None`` is ``jax.random.PRNGKey(0)`` (Optax's default).

    Returns:
        A `GradientTransformation` with state `HutchinsonState(key)` (raw key data, so
        that checkpoints can hold it).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.hutchinson_estimator_diag_hessian()
        >>> params = jnp.array([1.0, 2.0])
        >>> obj_fn = lambda p: jnp.sum(p**4) / 12   # Hessian diag(p**2)
        >>> tx.update(params, tx.init(params), params, obj_fn=obj_fn)[0]
        Array([1., 4.], dtype=float32)

    References:
        Hutchinson, "A stochastic estimator of the trace of the influence matrix for
        Laplacian smoothing splines", 1989.
        Liu et al., "Sophia: A Scalable Stochastic Second-order Optimizer for Language
        Model Pre-training", ICLR 2024.
    """
    fn = "hutchinson_estimator_diag_hessian"
    data, impl = prng_key_data(
        fn, "random_seed", jax.random.PRNGKey(0) if random_seed is None else random_seed
    )

    def init_fn(params):
        del params
        return HutchinsonState(key=data)

    def update_fn(updates, state, params=None, **extra_args):
        require_params(fn, params)
        obj_fn = extra_args.get("obj_fn")
        if not callable(obj_fn):
            raise ValueError(
                f"{fn}: `obj_fn` must be passed to update as a keyword argument, a function of the "
                f"params returning the scalar loss (`update(grads, state, params, obj_fn=f)`), got {obj_fn!r}."
            )
        check_tree_match(fn, updates, params, "the parameters")
        params = jax.tree.map(as_leaf, params)
        key, subkey = jax.random.split(jax.random.wrap_key_data(state.key, impl=impl))
        treedef = jax.tree.structure(params)
        keys = jax.random.split(subkey, treedef.num_leaves)
        signs = treedef.unflatten(
            [
                jax.random.rademacher(k, jnp.shape(p), jnp.float32).astype(leaf_dtype(p))
                for k, p in zip(keys, treedef.flatten_up_to(params))
            ]
        )
        hvp = jax.jvp(jax.grad(obj_fn), (params,), (signs,))[1]

        def leaf(g, h, r):
            c = Compute(h, r)
            return (store(c(h) * c(r), g),)

        (estimate,) = map_leaves(leaf, updates, hvp, signs)
        return estimate, HutchinsonState(key=jax.random.key_data(key))

    return GradientTransformation(init_fn, update_fn)


DEFAULT_HESSIAN_DIAGONAL_FN = hutchinson_estimator_diag_hessian()
"""Sophia's default estimator, Hutchinson's with ``jax.random.PRNGKey(0)`` (as Optax's)."""


def scale_by_sophia(
    b1=0.965,
    b2=0.99,
    eps=1e-8,
    gamma=0.01,
    clip_threshold=1.0,
    update_interval=10,
    hessian_diagonal_fn: Any = DEFAULT_HESSIAN_DIAGONAL_FN,
    mu_dtype: Any = None,
    verbose: bool = False,
    print_win_rate_every_n_steps: int = 0,
) -> GradientTransformation:
    """Sophia's update: bias-corrected momentum over a clipped curvature estimate.

    No learning rate, no sign flip: chain with `scale_by_learning_rate`, or use `sophia`.
    ``update(grads, state, params, **extra_args)`` needs the parameters and passes them,
    the gradients and every extra argument (``obj_fn=`` for the default estimator) to
    ``hessian_diagonal_fn``. For incoming update ``g`` at step ``t = count + 1``, with
    ``h_t`` the estimator's output and ``k = update_interval``::

        m_t = b1 * m_{t-1} + (1 - b1) * g_t
        u_t = (m_t / (1 - b1**t)) / max(gamma * v_{t-1}, eps)
        u_t = clip(u_t, -clip_threshold, clip_threshold)      (unless clip_threshold is None)
        v_t = b2 * v_{t-1} + (1 - b2) * h_t    if (t - 1) mod k == 0,  else v_{t-1}

    with ``m_0 = v_0 = 0``: the update reads the previous curvature (the first step
    divides by ``eps`` and is clipped). The estimator runs only on refresh steps, so the
    effective decay of ``v`` per step is ``1 - (1 - b2) / k``.

    Args:
        b1: Decay of the momentum, in [0, 1).
        b2: Decay of the curvature average (per refresh), in [0, 1).
        eps: Floor of the denominator, ``> 0``.
        gamma: Scale of the curvature in the denominator, ``>= 0``.
        clip_threshold: Bound on each coordinate of the update, ``> 0``; ``None``: no
            clipping.
        update_interval: Steps between curvature refreshes, an integer ``>= 1``.
        hessian_diagonal_fn: The estimator, a transformation called as
            ``update(grads, state, params, **extra_args)``; default Hutchinson's (seed 0).
        mu_dtype: Storage dtype of ``m``; ``None``: the param's.
        verbose: Print the win rate (the fraction of coordinates not clipped) every
            ``print_win_rate_every_n_steps`` steps (``jax.debug.print``).
        print_win_rate_every_n_steps: An integer ``>= 1`` when ``verbose``.

    Returns:
        A `GradientTransformation` with state `SophiaState(count, mu, nu,
        hessian_fn_state)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_sophia()
        >>> params = jnp.array([1.0, 2.0])
        >>> obj_fn = lambda p: jnp.sum(p**2)
        >>> u, state = tx.update(2 * params, tx.init(params), params, obj_fn=obj_fn)
        >>> u, state.nu   # the first step is clipped, then the curvature (2) is averaged in
        (Array([1., 1.], dtype=float32), Array([0.02, 0.02], dtype=float32))

    References:
        Liu et al., "Sophia: A Scalable Stochastic Second-order Optimizer for Language
        Model Pre-training", ICLR 2024 (Optax's port of levanter's implementation).
    """
    fn = "scale_by_sophia"
    check_decay(fn, "b1", b1)
    check_decay(fn, "b2", b2)
    check_positive(fn, "eps", eps)
    check_nonnegative(fn, "gamma", gamma)
    if clip_threshold is not None:
        check_positive(fn, "clip_threshold", clip_threshold, allow_inf=True)
    check_scalar(fn, "update_interval", update_interval, lo=1, integer=True)
    k = concrete_scalar(update_interval)
    k = int(k) if k is not None else jnp.asarray(update_interval).astype(jnp.int32)
    hess = as_transformation(fn, "hessian_diagonal_fn", hessian_diagonal_fn)
    mu_dtype = canonical_dtype(fn, "mu_dtype", mu_dtype)
    verbose = check_flag(fn, "verbose", verbose)
    if verbose and (
        isinstance(print_win_rate_every_n_steps, bool)
        or not isinstance(print_win_rate_every_n_steps, (int, np.integer))
        or print_win_rate_every_n_steps < 1
    ):
        raise ValueError(
            f"{fn}: `print_win_rate_every_n_steps` must be an integer >= 1 when `verbose`, "
            f"got {print_win_rate_every_n_steps!r}."
        )

    def init_fn(params):
        return SophiaState(
            count=zero_count(),
            mu=zeros_like_params(params, mu_dtype),
            nu=zeros_like_params(params),
            hessian_fn_state=hess.init(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        require_params(fn, params)
        check_tree_match(fn, updates, state.mu)
        count = safe_increment(state.count)
        corr = BiasCorrections(count, b1=b1)

        def leaf(g, m, v):
            c = Compute(g, m, v)
            m_new = ema_update(c(m), c(g), b1)
            u = (m_new / corr("b1", c.dt)) / jnp.maximum(c.hp(gamma) * c(v), c.hp(eps))
            if clip_threshold is not None:
                u = jnp.clip(u, -c.hp(clip_threshold), c.hp(clip_threshold))
            return store(u, g), store(m_new, m)

        new_updates, mu = map_leaves(leaf, updates, state.mu, state.nu)

        if verbose and clip_threshold is not None:
            kept = sum(jnp.sum(jnp.abs(u) < clip_threshold) for u in jax.tree.leaves(new_updates))
            size = max(sum(np.size(u) for u in jax.tree.leaves(new_updates)), 1)
            cond(
                count % print_win_rate_every_n_steps == 0,
                lambda: jax.debug.print("Sophia optimizer win rate: {}", kept / size),
                lambda: None,
            )

        def refresh(hess_state, nu):
            h, hess_state = hess.update(updates, hess_state, params, **extra_args)

            def ema(hh, v):
                c = Compute(hh, v)
                return (store(ema_update(c(v), c(hh), b2), v),)

            (nu,) = map_leaves(ema, h, nu)
            return hess_state, nu

        hess_state, nu = cond(
            state.count % k == 0, refresh, lambda h, n: (h, n), state.hessian_fn_state, state.nu
        )
        return new_updates, SophiaState(count=count, mu=mu, nu=nu, hessian_fn_state=hess_state)

    return GradientTransformation(init_fn, update_fn)
