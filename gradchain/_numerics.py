"""Numerical helpers shared by the transformations (not public API)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

_INT32_MAX = np.iinfo(np.int32).max


def zero_count() -> jax.Array:
    """The initial step counter: an int32 scalar zero."""
    return jnp.zeros([], jnp.int32)


def safe_increment(count: jax.Array) -> jax.Array:
    """``count + 1`` that saturates at the dtype's maximum instead of wrapping around."""
    count = jnp.asarray(count)
    limit = jnp.asarray(jnp.iinfo(count.dtype).max, count.dtype)
    return jnp.where(count < limit, count + jnp.ones_like(count), limit)


def is_tracer(x: Any) -> bool:
    """Whether ``x`` is a JAX tracer (an abstract value inside ``jit``/``vmap``/``grad``)."""
    return isinstance(x, jax.core.Tracer)  # pyright: ignore[reportAttributeAccessIssue]


def as_leaf(x: Any) -> Any:
    """A pytree leaf as an array: Python numbers become floating scalars (float32, or float64
    under x64), never weakly typed; arrays pass unchanged."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return jnp.asarray(float(x), dtype=jax.dtypes.canonicalize_dtype(jnp.float64))
    return x


def leaf_dtype(x) -> np.dtype:
    """The dtype of a leaf as `as_leaf` reads it."""
    return jnp.result_type(as_leaf(x))


def compute_dtype(dtype) -> np.dtype:
    """Dtype in which a leaf's optimizer arithmetic runs: at least float32.

    Half-precision leaves (bfloat16, float16) are computed in float32 and the results
    cast back, so that e.g. ``b2 = 0.999`` is not rounded to 1 and the second moment
    does not underflow; float32 and float64 run in their own precision.
    """
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.floating) and dtype.itemsize < 4:
        return jnp.dtype(jnp.float32)
    if jnp.issubdtype(dtype, jnp.complexfloating) or jnp.issubdtype(dtype, jnp.floating):
        return dtype
    return jnp.dtype(jnp.float32)


def hp(value, dtype):
    """A hyperparameter ready for arithmetic with arrays of ``dtype``.

    Python numbers stay Python numbers (weakly typed, exactly as Optax computes with
    them, and legal under strict dtype promotion); arrays and tracers are cast to
    ``dtype`` so that a float32 hyperparameter never promotes a bfloat16 leaf.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return jnp.asarray(value).astype(dtype)


def real_dtype(dtype) -> np.dtype:
    """The real counterpart of a (possibly complex) dtype."""
    return jnp.finfo(dtype).dtype if jnp.issubdtype(dtype, jnp.inexact) else jnp.dtype(dtype)


def abs_sq(x: jax.Array) -> jax.Array:
    """``|x|**2``, real-valued for complex ``x``."""
    if jnp.iscomplexobj(x):
        return (x.conj() * x).real
    return x * x


def bias_correction_power(decay, count: jax.Array, dtype) -> jax.Array:
    """``decay ** count`` in ``dtype``, with the count cast first (strict-promotion safe)."""
    return jnp.power(hp(decay, dtype), count.astype(dtype))


def promote(*dtypes) -> np.dtype:
    """The standard JAX promotion of ``dtypes``, computed explicitly.

    gradchain promotes on purpose in a few places (e.g. ``param + update``); doing it
    through this function keeps the library working under
    ``jax.numpy_dtype_promotion("strict")``.
    """
    with jax.numpy_dtype_promotion("standard"):
        return jnp.dtype(jnp.result_type(*[jnp.dtype(d) for d in dtypes]))


def cond(pred, true_fn, false_fn, *operands):
    """``jax.lax.cond``, or a plain Python branch when ``pred`` is concrete (eager calls).

    Under ``jit`` only the taken branch runs either way; eagerly, ``lax.cond`` would
    trace and compile both branches on every call.
    """
    if is_tracer(pred):
        return jax.lax.cond(pred, true_fn, false_fn, *operands)
    return true_fn(*operands) if bool(pred) else false_fn(*operands)


def per_matrix(fn: Callable[[jax.Array], Any], x: jax.Array) -> Any:
    """``fn`` (a matrix decomposition) on each matrix of ``x``'s leading batch axes.

    On the CPU the matrices go one at a time (a `jax.lax.map` over the batch): jaxlib's
    CPU LAPACK kernels (``eigh``, ``qr``, ``svd``) split a batch over XLA's intra-op
    thread pool and wait for it from a thread of that pool, so two batched calls that
    XLA runs concurrently in one program can each wait for the other forever (seen with
    jaxlib 0.10.2 on two cores: a SOAP step over three stacked kernels that never
    returned). Other backends get the batched call. The values are the same either way.
    """
    if x.ndim <= 2 or jax.default_backend() != "cpu":
        return fn(x)
    batch = x.shape[:-2]
    out = jax.lax.map(fn, x.reshape((-1, *x.shape[-2:])))
    return jax.tree.map(lambda y: y.reshape(batch + y.shape[1:]), out)
