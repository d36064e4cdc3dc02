"""One wording for every argument and tree-structure error (not public API).

Messages read ``"{function}: `{argument}` must be {constraint}, got {value!r}."``.
Hyperparameters may be Python numbers, concrete arrays or tracers (a transformation
built inside ``jit``/``vmap``); only concrete values can be checked eagerly, tracers
pass through unchecked.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np


def concrete_scalar(value: Any) -> float | None:
    """``value`` as a Python float if it is a concrete real scalar, else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, jax.core.Tracer):
        return None
    if isinstance(value, (np.ndarray, np.generic, jax.Array)):
        try:
            arr = np.asarray(value)
        except Exception:  # not concrete (e.g. inside a transformation)
            return None
        if arr.shape == () and np.issubdtype(arr.dtype, np.number):
            return float(arr.real)
    return None


def check_scalar(
    fn: str,
    name: str,
    value: Any,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    allow_schedule: bool = False,
    integer: bool = False,
) -> None:
    """Raise a `ValueError`/`TypeError` if ``value`` is not a number in the given range.

    ``lo``/``hi`` are bounds, inclusive unless ``lo_open``/``hi_open``. Schedules
    (callables) are accepted only with ``allow_schedule``; tracers are not checked.
    """
    if callable(value) and not isinstance(value, (jax.Array, np.ndarray)):
        if allow_schedule:
            return
        raise TypeError(f"{fn}: `{name}` must be a number, got the callable {value!r}.")
    if isinstance(value, bool) or value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"{fn}: `{name}` must be a number, got {value!r}.")
    if isinstance(value, (jax.Array, np.ndarray)) and np.ndim(value) != 0:
        raise ValueError(f"{fn}: `{name}` must be a scalar, got an array of shape {np.shape(value)}.")
    x = concrete_scalar(value)
    if x is None:
        if not isinstance(value, (jax.Array, np.ndarray, np.generic, jax.core.Tracer)):
            raise TypeError(f"{fn}: `{name}` must be a number, got {value!r}.")
        return
    if math.isnan(x):
        raise ValueError(f"{fn}: `{name}` must be a number, got NaN.")
    if integer and (math.isinf(x) or x != int(x)):
        raise ValueError(f"{fn}: `{name}` must be an integer, got {value!r}.")
    parts = []
    bad = False
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo:g}")
        bad |= x <= lo if lo_open else x < lo
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi:g}")
        bad |= x >= hi if hi_open else x > hi
    if bad:
        raise ValueError(f"{fn}: `{name}` must be {' and '.join(parts)}, got {value!r}.")


def check_decay(fn: str, name: str, value: Any) -> None:
    """A decay rate in ``[0, 1)``."""
    check_scalar(fn, name, value, lo=0.0, hi=1.0, hi_open=True)


def check_positive(fn: str, name: str, value: Any, **kw) -> None:
    """A number ``> 0``."""
    check_scalar(fn, name, value, lo=0.0, lo_open=True, **kw)


def check_nonnegative(fn: str, name: str, value: Any, **kw) -> None:
    """A number ``>= 0``."""
    check_scalar(fn, name, value, lo=0.0, **kw)


def check_dtype(fn: str, name: str, dtype: Any) -> None:
    """``None`` or a floating dtype."""
    if dtype is None:
        return
    try:
        d = np.dtype(dtype) if not hasattr(dtype, "dtype") else np.dtype(dtype.dtype)
    except TypeError:
        import jax.numpy as jnp

        try:
            d = jnp.dtype(dtype)
        except TypeError:
            raise TypeError(f"{fn}: `{name}` must be a floating dtype or None, got {dtype!r}.") from None
    import jax.numpy as jnp

    if not jnp.issubdtype(d, jnp.inexact):
        raise TypeError(f"{fn}: `{name}` must be a floating dtype or None, got {dtype!r}.")


def check_tree_match(fn: str, updates: Any, reference: Any, reference_name: str = "the state") -> None:
    """Raise a `ValueError` printing both structures if ``updates`` and ``reference`` differ."""
    s_u = jax.tree.structure(updates)
    s_r = jax.tree.structure(reference)
    if s_u != s_r:
        raise ValueError(
            f"{fn}: the `updates` tree does not match {reference_name}.\n"
            f"  updates:   {s_u}\n"
            f"  expected:  {s_r}\n"
            "The usual cause is a state initialised from a different parameter tree than the "
            "gradients come from (e.g. frozen or filtered parameters, or params and state swapped)."
        )


def require_params(fn: str, params: Any) -> None:
    """Raise a `ValueError` if a transformation that reads the parameters got none."""
    if params is None:
        raise ValueError(
            f"{fn}: this transformation needs the parameters; call "
            "`tx.update(updates, state, params)` with `params`, got None."
        )
