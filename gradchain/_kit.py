"""The kit every transformation is written with (not public API).

A transformation's ``update`` maps a leaf function over the updates and its per-parameter
state trees, and the leaf function reads as the docstring's formula::

    def leaf(g, m, v):
        c = Compute(g, m, v)                 # dtype policy: at least float32, complex-aware
        x = c(g)
        m_new = store(ema_update(c(m), x, b1), m)   # rounded once, to m's storage dtype
        v_new = store(ema_update(c.real(v), abs_sq(x), b2), v)
        u = (c(m_new) / corr.b1(c.dt)) / (jnp.sqrt(c.real(v_new) / corr.b2(c.rdt)) + c.hp(eps, real=True))
        return store(u, g), m_new, v_new

    u, mu, nu = map_leaves(leaf, updates, state.mu, state.nu)

What lives here:

- `map_leaves`: map a leaf function returning a tuple over several trees that mirror the
  updates, and unzip the results into trees (``None`` state entries pass through).
- `zeros_like_params`, `second_moment_dtype`, `second_moment_zeros`: state initialisation.
- `Compute`, `store`: the dtype policy. Arithmetic runs in the promoted dtype of a leaf's
  inputs, at least float32 (bfloat16/float16 are computed in float32); results are rounded
  once, to the storage dtype of what they replace.
- `ema_update`, `BiasCorrections`: moment updates and ``1 - decay**t`` corrections.

Validation lives in `gradchain._validate`; numerics that are not about one leaf (counters,
promotion, ``cond``) in `gradchain._numerics`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._numerics import (
    as_leaf,
    bias_correction_power,
    compute_dtype,
    hp,
    leaf_dtype,
    promote,
    real_dtype,
    safe_increment,
)

__all__ = [
    "BiasCorrections",
    "Compute",
    "ema_update",
    "map_leaves",
    "second_moment_dtype",
    "second_moment_zeros",
    "store",
    "zeros_like_params",
]


def map_leaves(fn: Callable[..., tuple], updates: Any, *trees: Any) -> tuple:
    """Map ``fn(g, *xs) -> tuple`` over the leaves of ``updates`` and of ``trees`` (which
    mirror it, ``None`` allowed for a leaf without state); return one tree per output.

    Python-number leaves of ``updates`` are read as floating scalars (see `as_leaf`).
    """
    leaves, treedef = jax.tree.flatten(updates)
    leaves = [as_leaf(x) for x in leaves]
    rest = [treedef.flatten_up_to(t) for t in trees]
    outs = [fn(*xs) for xs in zip(leaves, *rest)]
    if not outs:
        n = len(trees) + 1
        return tuple(treedef.unflatten([]) for _ in range(n))
    return tuple(treedef.unflatten([o[i] for o in outs]) for i in range(len(outs[0])))


def zeros_like_params(params: Any, dtype: Any = None) -> Any:
    """Zeros shaped like each parameter, in ``dtype`` (``None``: the parameter's dtype).

    Built with ``zeros_like`` so that an eager ``init`` keeps each parameter's sharding.
    """
    return jax.tree.map(
        lambda p: jnp.zeros_like(as_leaf(p), dtype=leaf_dtype(p) if dtype is None else dtype), params
    )


def second_moment_dtype(param_dtype: Any, nu_dtype: Any = None) -> np.dtype:
    """Storage dtype of a second moment (squares): ``nu_dtype``, else the parameter's real
    dtype, except float32 for float16 parameters.

    float16 bottoms out at 6e-8, so the running average of squares of gradients below
    ~2.4e-4 would flush to zero, each step would see only its own ``(1 - b2) * g**2``,
    and the update would overshoot by up to ``1 / sqrt(1 - b2)`` (~30x for Adam).
    bfloat16 has float32's exponent range and only rounds the mantissa (8 bits), which
    is why ``nu_dtype=jnp.bfloat16`` is accepted and ``nu_dtype=jnp.float16`` refused.
    """
    if nu_dtype is not None:
        return jnp.dtype(nu_dtype)
    d = real_dtype(param_dtype)
    return jnp.dtype(jnp.float32) if d == jnp.float16 else d


def second_moment_zeros(params: Any, value: Any = 0.0, nu_dtype: Any = None) -> Any:
    """``value``-filled second moments shaped like each parameter (see `second_moment_dtype`)."""
    return jax.tree.map(
        lambda p: jnp.full_like(as_leaf(p), value, dtype=second_moment_dtype(leaf_dtype(p), nu_dtype)), params
    )


class Compute:
    """The dtype policy for one leaf's arithmetic.

    ``Compute(*xs)`` picks ``dt``, the promoted dtype of the inputs, at least float32, and
    ``rdt``, its real counterpart. ``c(x)`` casts to ``dt``, ``c.real(x)`` to ``rdt``,
    ``c.hp(value)`` makes a hyperparameter ready for arithmetic in ``dt`` (Python numbers
    stay weakly typed, arrays and tracers are cast).
    """

    __slots__ = ("dt", "rdt")

    def __init__(self, *xs: Any):
        self.dt = compute_dtype(promote(*[jnp.result_type(x) for x in xs]))
        self.rdt = real_dtype(self.dt)

    def __call__(self, x: Any) -> jax.Array:
        return jnp.asarray(x).astype(self.dt)

    def real(self, x: Any) -> jax.Array:
        return jnp.asarray(x).astype(self.rdt)

    def hp(self, value: Any, *, real: bool = False) -> Any:
        return hp(value, self.rdt if real else self.dt)


def store(x: jax.Array, like: Any) -> jax.Array:
    """``x`` rounded once to the storage dtype of ``like`` (the value it replaces)."""
    return x.astype(jnp.result_type(like))


def ema_update(average: jax.Array, x: jax.Array, decay: Any) -> jax.Array:
    """``(1 - decay) * x + decay * average``, in the dtype of ``average`` (already computed)."""
    d = hp(decay, average.dtype)
    return (1 - d) * x + d * average


class BiasCorrections:
    """``1 - decay**t`` for each named decay, computed once per dtype and step.

    ``corr = BiasCorrections(count, b1=b1, b2=b2)``; ``corr("b1", dt)`` is ``1 - b1**count``
    in ``dt`` and ``corr("b1", dt, ahead=True)`` uses ``count + 1`` (Nesterov's look-ahead).
    """

    def __init__(self, count: jax.Array, **decays: Any):
        self._count = count
        self._decays = decays
        self._cache = functools.cache(self._compute)

    def _compute(self, name: str, dtype: Any, ahead: bool) -> jax.Array:
        rdt = real_dtype(dtype)
        t = safe_increment(self._count) if ahead else self._count
        return (1 - bias_correction_power(self._decays[name], t, rdt)).astype(dtype)

    def __call__(self, name: str, dtype: Any, ahead: bool = False) -> jax.Array:
        return self._cache(name, jnp.dtype(dtype), ahead)
