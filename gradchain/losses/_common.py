"""Argument checks and numerics shared by the loss families (not public API).

Error messages read ``"{function}: `{argument}` must be {constraint}, got {value!r}."``,
as everywhere in gradchain. Arrays are combined without implicit promotion, so every
loss works under ``jax.numpy_dtype_promotion("strict")`` and
``jax.numpy_rank_promotion("raise")``: labels and targets are cast explicitly, masks
and (where Optax documents it) labels are broadcast explicitly.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


# --------------------------------------------------------------------------- arrays
def floating(fn: str, name: str, x: Any) -> jax.Array:
    """``x`` as an array, which must have a floating dtype."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{fn}: `{name}` must be a floating-point array, got dtype {x.dtype}.")
    return x


def cast_real(fn: str, name: str, x: Any, dtype) -> jax.Array:
    """``x`` (a real or boolean array) cast to the floating ``dtype``."""
    x = jnp.asarray(x)
    if not (jnp.issubdtype(x.dtype, jnp.integer) or jnp.issubdtype(x.dtype, jnp.floating) or x.dtype == bool):
        raise TypeError(f"{fn}: `{name}` must be a real or boolean array, got dtype {x.dtype}.")
    return x.astype(dtype)


def promote_float(fn: str, name: str, x: jax.Array, dtype) -> np.dtype:
    """The float dtype in which ``x`` meets arrays of ``dtype``: standard promotion for a
    floating ``x``, ``dtype`` itself for integer and boolean ``x``."""
    if jnp.issubdtype(x.dtype, jnp.floating):
        with jax.numpy_dtype_promotion("standard"):
            return jnp.promote_types(dtype, x.dtype)
    if jnp.issubdtype(x.dtype, jnp.integer) or x.dtype == bool:
        return jnp.dtype(dtype)
    raise TypeError(f"{fn}: `{name}` must be a real or boolean array, got dtype {x.dtype}.")


def same_shape(fn: str, a_name: str, a: jax.Array, b_name: str, b: jax.Array) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{fn}: `{a_name}` and `{b_name}` must have the same shape, got {a.shape} and {b.shape} "
            "(losses never broadcast)."
        )


def pair(fn: str, a_name: str, a: Any, b_name: str, b: Any) -> tuple[jax.Array, jax.Array]:
    """``a`` (floating) and ``b`` (any real or bool dtype) of equal shapes, in one float dtype."""
    a = floating(fn, a_name, a)
    b = jnp.asarray(b)
    same_shape(fn, a_name, a, b_name, b)
    dtype = promote_float(fn, b_name, b, a.dtype)
    return a.astype(dtype), b.astype(dtype)


def broadcast(fn: str, name: str, x: jax.Array, shape: tuple[int, ...], to: str) -> jax.Array:
    """``x`` broadcast (NumPy rules, explicitly) to ``shape``, which it may not enlarge."""
    try:
        ok = np.broadcast_shapes(x.shape, shape) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"{fn}: `{name}` must be broadcastable to the shape {tuple(shape)} of {to}, got {x.shape}."
        )
    return jnp.broadcast_to(x, shape)


def labels_like(fn: str, name: str, labels: Any, x: jax.Array, x_name: str) -> jax.Array:
    """Real or boolean ``labels`` cast to ``x``'s dtype (as Optax does) and broadcast to its shape."""
    return broadcast(fn, name, cast_real(fn, name, labels, x.dtype), x.shape, f"`{x_name}`")


def mask(fn: str, where: Any, shape: tuple[int, ...], to: str) -> jax.Array | None:
    """``None``, or the boolean ``where`` broadcast (NumPy rules) to ``shape``."""
    if where is None:
        return None
    w = jnp.asarray(where)
    if w.dtype != bool:
        raise TypeError(f"{fn}: `where` must be a boolean array, got dtype {w.dtype}.")
    return broadcast(fn, "where", w, shape, to)


def integer_labels(fn: str, labels: Any, shape: tuple[int, ...], of: str) -> jax.Array:
    """Integer class indices of exactly ``shape`` (the scores' shape without the class axis)."""
    k = jnp.asarray(labels)
    if not jnp.issubdtype(k.dtype, jnp.integer):
        raise TypeError(f"{fn}: `labels` must be an integer array of class indices, got dtype {k.dtype}.")
    if k.shape != tuple(shape):
        raise ValueError(
            f"{fn}: `labels` must have the shape of {of} without the class axis, "
            f"got labels {k.shape} (expected {tuple(shape)})."
        )
    return k.astype(jnp.int32)


def take_label(x: jax.Array, k: jax.Array) -> jax.Array:
    """``x[..., k]`` for integer labels ``k`` of shape ``x.shape[:-1]``; ``nan`` where ``k``
    is out of ``[0, x.shape[-1])`` (negative indices included)."""
    got = jnp.take_along_axis(x, k[..., None], axis=-1, mode="fill", wrap_negative_indices=False)
    return got[..., 0]


# ----------------------------------------------------------------------------- axes
def axes(fn: str, axis: Any, ndim: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """``axis`` (an int, a tuple of ints or ``None`` for all) as sorted non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    items = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    for a in items:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"{fn}: `axis` must be an int, a tuple of ints or None, got {axis!r}.")
        if not -ndim <= a < ndim:
            raise ValueError(
                f"{fn}: `axis` must be in [{-ndim}, {ndim}) for an array of shape {shape}, got {axis!r}."
            )
    out = tuple(sorted(int(a) % ndim for a in items))
    if len(set(out)) != len(out):
        raise ValueError(f"{fn}: `axis` must not name an axis twice, got {axis!r}.")
    return out


# ------------------------------------------------------------------ masked numerics
def masked_sum(x: jax.Array, axis: tuple[int, ...], where: jax.Array | None, **kw) -> jax.Array:
    """``sum(x, axis)`` over the entries where ``where`` holds; masked entries (even ``nan``
    or ``inf`` ones) contribute exactly 0, to the value and to gradients."""
    if where is not None:
        x = jnp.where(where, x, jnp.zeros_like(x))
    return jnp.sum(x, axis=axis, **kw)


def log_softmax(x: jax.Array, axis: tuple[int, ...], where: jax.Array | None = None) -> jax.Array:
    """Stable log-softmax over ``axis`` among the entries where ``where`` holds.

    Masked entries are ``-inf``; a slice with no entry is all ``-inf``. Values and
    gradients stay finite (no ``nan``) whatever the masked entries hold.
    """
    if where is None:
        shifted = x - jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
        return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=axis, keepdims=True))
    neg_inf = jnp.full_like(x, -jnp.inf)
    m = jnp.max(jnp.where(where, x, neg_inf), axis=axis, keepdims=True)
    m = jax.lax.stop_gradient(jnp.where(jnp.isfinite(m), m, jnp.zeros_like(m)))
    shifted = jnp.where(where, x - m, neg_inf)
    total = jnp.sum(jnp.exp(shifted), axis=axis, keepdims=True)
    any_ = total > 0
    lse = jnp.where(any_, jnp.log(jnp.where(any_, total, jnp.ones_like(total))), jnp.zeros_like(total))
    return jnp.where(where, shifted - lse, neg_inf)


def logsumexp(x: jax.Array, axis: int, where: jax.Array) -> jax.Array:
    """``log(sum(exp(x)))`` over ``axis`` among the entries where ``where`` holds; ``-inf``
    for a slice with no entry, with finite gradients."""
    neg_inf = jnp.full_like(x, -jnp.inf)
    m = jnp.max(jnp.where(where, x, neg_inf), axis=axis, keepdims=True)
    m = jax.lax.stop_gradient(jnp.where(jnp.isfinite(m), m, jnp.zeros_like(m)))
    total = jnp.sum(jnp.exp(jnp.where(where, x - m, neg_inf)), axis=axis)
    any_ = total > 0
    lse = jnp.log(jnp.where(any_, total, jnp.ones_like(total))) + jnp.squeeze(m, axis)
    return jnp.where(any_, lse, jnp.full_like(lse, -jnp.inf))
