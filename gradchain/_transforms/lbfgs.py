"""L-BFGS: precondition the updates by a limited-memory inverse-Hessian estimate.

`scale_by_lbfgs` outputs the quasi-Newton direction only; `gradchain.lbfgs` chains it with
the sign flip and a line search (`scale_by_zoom_linesearch` by default, see `linesearch`).
`value_and_grad_from_state` closes the usual deterministic L-BFGS loop: it reuses the value
and gradient the line search computed at the point it accepted.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain._base import GradientTransformation
from gradchain._kit import Compute, map_leaves, store, zeros_like_params
from gradchain._numerics import (
    abs_sq,
    as_leaf,
    compute_dtype,
    cond,
    leaf_dtype,
    promote,
    safe_increment,
    zero_count,
)
from gradchain._tree import global_norm, stats_dtype, unwrap_variable
from gradchain._validate import check_flag, check_int, check_tree_match, require_params

__all__ = ["ScaleByLBFGSState", "conj_grads", "real_vdot", "scale_by_lbfgs", "value_and_grad_from_state"]


def real_vdot(x: Any, y: Any) -> jax.Array:
    """``Re <x, y> = Re sum(conj(x) * y)`` over all leaves of two trees that mirror each other.

    Each leaf's product is formed in its compute dtype (at least float32); the per-leaf sums
    are added left to right in `stats_dtype`.
    """
    dt = stats_dtype(x)
    total = jnp.zeros([], dt)
    for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y)):
        a, b = jnp.asarray(a), jnp.asarray(b)
        c = compute_dtype(promote(a.dtype, b.dtype))
        a, b = a.astype(c), b.astype(c)
        if jnp.iscomplexobj(a):
            a = jnp.conj(a)
        total = total + jnp.real(jnp.tensordot(a, b, a.ndim, precision=jax.lax.Precision.HIGHEST)).astype(dt)
    return total


def conj_grads(grads: Any) -> Any:
    """JAX gradients as L-BFGS and the line searches read them: conjugated on complex leaves
    (``conj(jax.grad(f))`` is the update that increases ``f``)."""
    return jax.tree.map(lambda g: jnp.conj(g) if jnp.iscomplexobj(g) else g, grads)


class ScaleByLBFGSState(NamedTuple):
    """State of `scale_by_lbfgs`."""

    count: jax.Array  # int32 scalar: steps taken
    params: Any  # per-param tree, param dtype: the parameters of the last step
    updates: Any  # per-param tree, param dtype: the incoming updates (gradients) of the last step
    diff_params_memory: Any  # per-param tree, (memory_size, *shape), param dtype: s_i = w_{i+1} - w_i
    diff_updates_memory: Any  # per-param tree, (memory_size, *shape), param dtype: y_i = g_{i+1} - g_i
    weights_memory: jax.Array  # (memory_size,) real: rho_i = 1 / Re <y_i, s_i> (0 if that is 0)


def scale_by_lbfgs(memory_size: int = 10, *, scale_init_precond: bool = True) -> GradientTransformation:
    """L-BFGS: multiply the updates by an inverse-Hessian estimate built from the last steps.

    At step ``k = count`` with parameters ``w_k`` and incoming updates (gradients) ``g_k``,
    the memory keeps the last ``m = memory_size`` pairs (entries not yet filled count as
    ``rho_i = 0``, i.e. are skipped), and the two-loop recursion gives ``u_k = P_k g_k``::

        s_{k-1} = w_k - w_{k-1},   y_{k-1} = g_k - g_{k-1},   rho_{k-1} = 1 / Re <y_{k-1}, s_{k-1}>
        q = g_k
        for i = k-1 down to k-m:   a_i = rho_i Re <s_i, q>;   q = q - a_i y_i
        r = gamma_k q
        for i = k-m up to k-1:     b_i = rho_i Re <y_i, r>;   r = r + (a_i - b_i) s_i
        u_k = r

    with ``gamma_k = Re <y_{k-1}, s_{k-1}> / |y_{k-1}|**2`` (1 if ``y = 0``) and
    ``gamma_0 = min(1, 1 / |g_0|)`` when ``scale_init_precond``, else ``gamma_k = 1``; at
    ``k = 0`` no pair is stored. ``<a, b> = sum(conj(a) * b)`` over all leaves. No sign flip
    and no step size: chain with a line search (see `gradchain.lbfgs`).

    Args:
        memory_size: Number of ``(s, y)`` pairs kept, an int ``>= 1``.
        scale_init_precond: Start the recursion from ``gamma_k I`` instead of ``I``.

    Returns:
        A `GradientTransformation` with state `ScaleByLBFGSState`; ``update`` needs ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.scale_by_lbfgs()
        >>> w = jnp.array([1.0, 2.0]); state = tx.init(w)
        >>> u, state = tx.update(2 * w, state, w)   # first step: g / max(1, |g|)
        >>> u.tolist()
        [0.4472, 0.8944]
        >>> w2 = w - 0.5 * u
        >>> tx.update(2 * w2, state, w2)[0].tolist()   # the pair (s, y = 2 s) gives P = I / 2
        [0.7764, 1.5528]

    References:
        Nocedal & Wright, "Numerical Optimization", 2nd ed. 2006, Algorithms 7.4 and 7.5.
        Liu & Nocedal, "On the limited memory BFGS method for large scale optimization",
        Math. Programming 1989.
    """
    fn = "scale_by_lbfgs"
    m = check_int(fn, "memory_size", memory_size, 1)
    scale_init_precond = check_flag(fn, "scale_init_precond", scale_init_precond)

    def init_fn(params):
        memory = jax.tree.map(lambda p: jnp.zeros((m, *jnp.shape(p)), leaf_dtype(p)), params)
        return ScaleByLBFGSState(
            count=zero_count(),
            params=zeros_like_params(params),
            updates=zeros_like_params(params),
            diff_params_memory=memory,
            diff_updates_memory=memory,
            weights_memory=jnp.zeros([m], stats_dtype(jax.tree.map(as_leaf, params))),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        check_tree_match(fn, updates, state.updates)
        require_params(fn, params)
        check_tree_match(fn, updates, params, "`params`")
        as_leaves = lambda t: jax.tree.map(as_leaf, t)
        return _lbfgs_step(as_leaves(updates), state, as_leaves(params), scale_init_precond)

    return GradientTransformation(init_fn, update_fn)


def _is_search_state(x) -> bool:
    fields = getattr(type(x), "_fields", None)
    return isinstance(x, tuple) and fields is not None and "value" in fields and "grad" in fields


def value_and_grad_from_state(value_fn: Callable[..., Any]) -> Callable[..., tuple[jax.Array, Any]]:
    """``jax.value_and_grad(value_fn)`` that reuses what a line search stored in the state.

    The returned ``value_and_grad(params, *args, state, **kwargs)`` finds the one line-search
    state inside ``state`` (any state with ``value`` and ``grad`` fields, e.g. inside a
    `chain` or `lbfgs`) and returns its ``(value, grad)`` if the value is finite, else
    ``jax.value_and_grad(value_fn)(params, *args, **kwargs)`` (gradients conjugated for
    complex parameters, as the line searches read them). Only valid for a deterministic
    objective: the stored pair belongs to the point the last search accepted.

    Args:
        value_fn: The objective, ``value_fn(params, *args, **kwargs) -> real scalar``.

    Returns:
        The function ``value_and_grad(params, *args, state, **kwargs) -> (value, grad)``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> f = lambda w: jnp.sum(w**2)
        >>> tx = gradchain.lbfgs()
        >>> w = jnp.array([1.0, 2.0, 3.0]); state = tx.init(w)
        >>> value_and_grad = gradchain.value_and_grad_from_state(f)
        >>> for _ in range(2):
        ...     v, g = value_and_grad(w, state=state)
        ...     u, state = tx.update(g, state, w, value=v, grad=g, value_fn=f)
        ...     w = gradchain.apply_updates(w, u)
        ...     print(f"{f(w):.2e}")
        7.52e+00
        7.46e-14
    """
    if not callable(value_fn):
        raise TypeError(f"value_and_grad_from_state: `value_fn` must be callable, got {value_fn!r}.")

    def value_and_grad(params, *fn_args, state, **fn_kwargs):
        found = jax.tree_util.tree_flatten(state, is_leaf=_is_search_state)[0]
        found = [s for s in found if _is_search_state(s)]
        if len(found) != 1:
            raise ValueError(
                "value_and_grad_from_state: `state` must hold exactly one line-search state (with "
                f"`value` and `grad` fields), found {len(found)}."
            )
        value = jnp.asarray(unwrap_variable(found[0].value))
        grad = jax.tree.map(unwrap_variable, found[0].grad)
        if jax.tree.structure(grad) != jax.tree.structure(params):
            raise ValueError(
                "value_and_grad_from_state: the line search stores no gradient for these params "
                "(build `scale_by_backtracking_linesearch` with `store_grad=True`)."
            )

        def compute():
            v, g = jax.value_and_grad(value_fn)(params, *fn_args, **fn_kwargs)
            g = jax.tree.map(lambda a, b: a.astype(b.dtype), conj_grads(g), grad)
            return jnp.asarray(v).astype(value.dtype), g

        return cond(jnp.isfinite(value), lambda: (value, grad), compute)

    return value_and_grad


@functools.partial(jax.jit, static_argnums=3)
def _lbfgs_step(updates, state: ScaleByLBFGSState, params, scale_init_precond: bool):
    """One `scale_by_lbfgs` update (jitted: an eager call compiles once per tree signature)."""
    m = state.weights_memory.shape[0]
    first = state.count == 0
    k, prev = state.count % m, (state.count - 1) % m
    sdt = state.weights_memory.dtype

    # 1. the newest pair (s, y), stored at slot k-1 (nothing to store at k = 0)
    def pair(g, w, w_old, g_old, s_mem, y_mem):
        c = Compute(g, w, w_old, g_old)
        s = jnp.where(first, 0.0, c(w) - c(w_old))
        y = jnp.where(first, 0.0, c(g) - c(g_old))
        return s, y, s_mem.at[prev].set(store(s, s_mem)), y_mem.at[prev].set(store(y, y_mem))

    trees = (params, state.params, state.updates, state.diff_params_memory, state.diff_updates_memory)
    s, y, s_mem, y_mem = map_leaves(pair, updates, *trees)
    ys = real_vdot(y, s)
    rho = jnp.where(ys == 0.0, 0.0, 1.0 / ys)
    rho_mem = state.weights_memory.at[prev].set(rho)

    # 2. gamma_k
    if scale_init_precond:
        yy = sum((jnp.sum(abs_sq(x)).astype(sdt) for x in jax.tree.leaves(y)), jnp.zeros([], sdt))
        gamma = jnp.where(yy > 0.0, ys / yy, 1.0)
        gamma0 = jnp.minimum(1.0, 1.0 / global_norm(jax.lax.stop_gradient(updates)).astype(sdt))
        gamma = jnp.where(first, gamma0, gamma)
    else:
        gamma = jnp.ones([], sdt)

    # 3. the two-loop recursion, oldest slot first (slot k holds the oldest pair)
    order = (k + jnp.arange(m, dtype=k.dtype)) % m
    slot = lambda mem, i: jax.tree.map(lambda x: x[i], mem)
    axpy = lambda a, x, v: jax.tree.map(lambda vv, xx: vv + a.astype(vv.dtype) * xx.astype(vv.dtype), v, x)

    def newest_to_oldest(q, i):
        a = rho_mem[i] * real_vdot(slot(s_mem, i), q)
        return axpy(-a, slot(y_mem, i), q), a

    def oldest_to_newest(r, i_a):
        i, a = i_a
        b = rho_mem[i] * real_vdot(slot(y_mem, i), r)
        return axpy(a - b, slot(s_mem, i), r), None

    q = jax.tree.map(lambda g: g.astype(Compute(g).dt), updates)
    q, alphas = jax.lax.scan(newest_to_oldest, q, order, reverse=True)
    r = jax.tree.map(lambda x: x * gamma.astype(x.dtype), q)
    r, _ = jax.lax.scan(oldest_to_newest, r, (order, alphas))

    keep = lambda new, old: jax.tree.map(lambda a, b: store(a, b), new, old)
    return keep(r, updates), ScaleByLBFGSState(
        count=safe_increment(state.count),
        params=keep(params, state.params),
        updates=keep(updates, state.updates),
        diff_params_memory=s_mem,
        diff_updates_memory=y_mem,
        weights_memory=rho_mem,
    )
