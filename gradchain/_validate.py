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

from gradchain._numerics import is_tracer


def concrete_scalar(value: Any) -> float | None:
    """``value`` as a Python float if it is a concrete real scalar, else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if is_tracer(value):
        return None
    if isinstance(value, (np.ndarray, np.generic, jax.Array)):
        try:
            arr = np.asarray(value)
        except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError, TypeError):
            # not concrete (e.g. inside a transformation)
            return None
        if arr.shape == () and np.issubdtype(arr.dtype, np.number):
            return float(np.real(arr))
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
    allow_inf: bool = False,
) -> None:
    """Raise a `ValueError`/`TypeError` if ``value`` is not a number in the given range.

    ``lo``/``hi`` are bounds, inclusive unless ``lo_open``/``hi_open``. Schedules
    (callables) are accepted only with ``allow_schedule``; ``+-inf`` only with
    ``allow_inf``; complex values never; tracers are not checked.
    """
    if callable(value) and not isinstance(value, (jax.Array, np.ndarray)):
        if allow_schedule:
            return
        raise TypeError(f"{fn}: `{name}` must be a number, got the callable {value!r}.")
    if isinstance(value, bool) or value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"{fn}: `{name}` must be a number, got {value!r}.")
    if isinstance(value, complex) or (
        hasattr(value, "dtype") and np.issubdtype(np.dtype(value.dtype), np.complexfloating)
    ):
        raise TypeError(f"{fn}: `{name}` must be a real number, got {value!r}.")
    if isinstance(value, (jax.Array, np.ndarray)) and np.ndim(value) != 0:
        raise ValueError(f"{fn}: `{name}` must be a scalar, got an array of shape {np.shape(value)}.")
    x = concrete_scalar(value)
    if x is None:
        if not (isinstance(value, (jax.Array, np.ndarray, np.generic)) or is_tracer(value)):
            raise TypeError(f"{fn}: `{name}` must be a number, got {value!r}.")
        return
    if math.isnan(x):
        raise ValueError(f"{fn}: `{name}` must be a number, got NaN.")
    if math.isinf(x) and not allow_inf:
        raise ValueError(f"{fn}: `{name}` must be finite, got {value!r}.")
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


def _structure_error(fn: str, updates: Any, reference: Any, reference_name: str) -> ValueError:
    return ValueError(
        f"{fn}: the `updates` tree does not match {reference_name}.\n"
        f"  updates:   {jax.tree.structure(updates)}\n"
        f"  expected:  {jax.tree.structure(reference)}\n"
        "The usual cause is a state initialised from a different parameter tree than the "
        "gradients come from (e.g. frozen or filtered parameters, or params and state swapped)."
    )


def check_floating(fn: str, tree: Any, name: str = "updates") -> None:
    """Raise a `TypeError` naming the leaf if ``tree`` holds an integer or boolean array.

    Python numbers are accepted (they are read as floating scalars). Integer leaves are
    not trainable: gradchain refuses them rather than promote them (Optax promotes the
    state to float32 and then rounds every update away when it applies it).
    """
    for path, x in jax.tree_util.tree_leaves_with_path(tree):
        dtype = getattr(x, "dtype", None)
        if isinstance(x, (bool, np.bool_)) or (dtype is not None and not _inexact(dtype)):
            raise TypeError(
                f"{fn}: `{name}` must hold floating-point arrays, got dtype "
                f"{dtype or type(x).__name__} at leaf {jax.tree_util.keystr(path) or '(root)'}. Integer and "
                "boolean leaves are not trainable: leave them out of the tree you optimize (e.g. "
                "filter them with `nnx.Param`, or split them off with `gradchain.partition`)."
            )


def _inexact(dtype) -> bool:
    import jax.numpy as jnp

    return bool(jnp.issubdtype(dtype, jnp.inexact))


def check_tree_match(
    fn: str, updates: Any, reference: Any, reference_name: str = "the state", *, floating: bool = True
) -> None:
    """Check ``updates`` against a tree that mirrors it: structure, leaf shapes, dtypes.

    ``reference`` must have ``updates``' structure, except that it may hold ``None`` (no
    state) in place of a leaf; every leaf it holds must have its update's shape (a shape
    mismatch would otherwise broadcast silently into the state). With ``floating``, the
    updates must be floating-point (see `check_floating`). Raises a `ValueError` that
    prints both structures, or names the leaf and both shapes.
    """
    s_u = jax.tree.structure(updates)
    try:
        subs = s_u.flatten_up_to(reference)
    except (ValueError, TypeError):
        raise _structure_error(fn, updates, reference, reference_name) from None
    paths = jax.tree_util.tree_leaves_with_path(updates)
    for (path, u), r in zip(paths, subs):
        if r is None:
            continue
        if jax.tree.structure(r).num_leaves != 1 or jax.tree.structure(r).num_nodes != 1:
            if jax.tree.leaves(r):
                raise _structure_error(fn, updates, reference, reference_name)
            continue
        kind = np.dtype(getattr(r, "dtype", np.float32)).kind
        if floating and kind in "ib":  # (unsigned codes, e.g. 8-bit moments, are storage, not parameters)
            raise TypeError(
                f"{fn}: {reference_name} holds a {np.dtype(r.dtype)} array at leaf "
                f"{jax.tree_util.keystr(path) or '(root)'}: it was initialised from integer or boolean "
                "parameters, which are not trainable. Leave them out of the tree you optimize (e.g. "
                "filter them with `nnx.Param`, or split them off with `gradchain.partition`)."
            )
        if np.shape(u) != np.shape(r):
            raise ValueError(
                f"{fn}: the update at leaf {jax.tree_util.keystr(path) or '(root)'} has shape "
                f"{np.shape(u)}, but {reference_name} holds shape {np.shape(r)} there. Updates must "
                "have the shapes of the parameters the state was initialised from (gradchain never "
                "broadcasts an update into the state)."
            )
    if floating:
        check_floating(fn, updates)


def schedule_value(fn: str, name: str, value: Any) -> Any:
    """A schedule's output at one step, checked: a real scalar (else a shape or type error).

    A schedule that returned a ``(2, 3)`` array would otherwise broadcast a ``(3,)``
    update to ``(2, 3)``; a complex one would silently lose its imaginary part.
    """
    import jax.numpy as jnp

    x = jnp.asarray(value)
    if x.ndim != 0:
        raise ValueError(
            f"{fn}: the schedule `{name}` must return a scalar, got an array of shape {x.shape}."
        )
    if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer)):
        raise TypeError(f"{fn}: the schedule `{name}` must return a real number, got dtype {x.dtype}.")
    return x


def require_params(fn: str, params: Any) -> None:
    """Raise a `ValueError` if a transformation that reads the parameters got none."""
    if params is None:
        raise ValueError(
            f"{fn}: this transformation needs the parameters; call "
            "`tx.update(updates, state, params)` with `params`, got None."
        )


def check_flag(fn: str, name: str, value: Any) -> bool:
    """A Python or NumPy bool (flags decide the program, so they must be concrete)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}: `{name}` must be a bool, got {value!r}.")
    return bool(value)


def check_int(fn: str, name: str, value: Any, lo: int) -> int:
    """A concrete Python integer ``>= lo`` (it fixes a shape or a loop length)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{fn}: `{name}` must be a Python int, got {value!r}.")
    if value < lo:
        raise ValueError(f"{fn}: `{name}` must be >= {lo}, got {value!r}.")
    return int(value)


def canonical_dtype(fn: str, name: str, dtype: Any) -> Any:
    """``None``, or a floating dtype canonicalized for the current x64 setting."""
    check_dtype(fn, name, dtype)
    return None if dtype is None else jax.dtypes.canonicalize_dtype(dtype)


def check_nu_dtype(fn: str, nu_dtype: Any) -> Any:
    """A second-moment storage dtype: a real dtype with float32's exponent range, or ``None``."""
    import jax.numpy as jnp

    nu_dtype = canonical_dtype(fn, "nu_dtype", nu_dtype)
    if nu_dtype is not None and (nu_dtype == jnp.float16 or not jnp.issubdtype(nu_dtype, jnp.floating)):
        raise ValueError(
            f"{fn}: `nu_dtype` must be a real dtype with float32's exponent range (bfloat16, float32, "
            f"float64), got {nu_dtype!r}: squares of gradients below ~2.4e-4 underflow in float16."
        )
    return nu_dtype


def check_adam_args(fn: str, b1: Any, b2: Any, eps: Any, eps_root: Any) -> None:
    """Adam's hyperparameters: decays in ``[0, 1)``, ``eps`` and ``eps_root`` ``>= 0``."""
    check_decay(fn, "b1", b1)
    check_decay(fn, "b2", b2)
    check_nonnegative(fn, "eps", eps)
    check_nonnegative(fn, "eps_root", eps_root)


def refuse_flat(fn: str, tree: Any) -> None:
    """Raise if ``tree`` is flat buffers (`gradchain.ravel_by_dtype`) given to a transformation
    that acts on each parameter separately: it would act on each dtype buffer instead."""
    if getattr(tree, "gradchain_flat_buffers", False):
        raise ValueError(
            f"{fn}: acts on each parameter (layer) separately, but got flat buffers from "
            "`gradchain.ravel_by_dtype`, where it would act on each dtype buffer instead. Wrap it "
            f"to run on the tree view: `gradchain.unraveled({fn}(...), layout)`."
        )


def prng_key_data(fn: str, name: str, key: Any) -> tuple[Any, Any]:
    """``(raw uint32 key data, key implementation or None)`` of an int seed (read as
    ``jax.random.key(seed)``, as Optax does), a typed key or raw key data; a `TypeError`
    naming ``name`` otherwise (a `ValueError` for an array of typed keys)."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return jax.random.key_data(jax.random.key(key)), None
    if isinstance(key, jax.Array) and jax.numpy.issubdtype(key.dtype, jax.dtypes.prng_key):
        if np.shape(key) != ():
            raise ValueError(
                f"{fn}: `{name}` must be a single PRNG key, got a key array of shape {np.shape(key)}."
            )
        return jax.random.key_data(key), jax.random.key_impl(key)
    dtype = getattr(key, "dtype", None)
    if dtype is not None and (is_tracer(key) or isinstance(key, (jax.Array, np.ndarray))):
        if jax.numpy.dtype(dtype) == jax.numpy.uint32 and jax.numpy.ndim(key) == 1:
            return jax.numpy.asarray(key), None
    raise TypeError(
        f"{fn}: `{name}` must be a PRNG key (`jax.random.key(seed)` or `jax.random.PRNGKey(seed)`) or an "
        f"int seed, got {key!r}."
    )
