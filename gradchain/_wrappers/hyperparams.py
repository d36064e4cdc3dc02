"""With what hyperparameters: `inject_hyperparams` (hyperparameters as state, settable
between steps, any of them a schedule)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._base import GradientTransformation, as_transformation
from gradchain._masking import is_bool
from gradchain._numerics import safe_increment, zero_count
from gradchain._validate import check_dtype, schedule_value

__all__ = ["InjectHyperparamsState", "inject_hyperparams"]


class InjectHyperparamsState(NamedTuple):
    """State of a transformation built by `inject_hyperparams`."""

    count: jax.Array  # int32 scalar: steps taken (the argument given to schedules)
    hyperparams: dict  # name -> scalar array: the value used by the latest step (settable)
    inner_state: Any


def _fixed_dtype(value, override) -> np.dtype:
    """The dtype a hyperparameter keeps for the transformation's life, decided once.

    ``override`` (``hyperparam_dtype``) for floating values if given; else an array's own
    dtype (a bfloat16 ``b2`` stays bfloat16); else the default float (float32, float64
    under x64) for Python floats and schedules, int32 for Python ints. Never read from
    the parameters or the gradients.
    """
    x = jnp.asarray(value)
    floating = jnp.issubdtype(x.dtype, jnp.floating)
    if floating and override is not None:
        return jnp.dtype(override)
    return jax.dtypes.canonicalize_dtype(x.dtype)


def inject_hyperparams(
    inner_factory: Callable[..., GradientTransformation],
    *,
    static_args: str | Iterable[str] = (),
    hyperparam_dtype: Any = None,
) -> Callable[..., GradientTransformation]:
    """Make a factory's numeric hyperparameters part of the state (and allow schedules).

    ``inject_hyperparams(f)(*args, **kwargs)`` takes ``f``'s arguments and returns a
    transformation equal to ``f(*args, **kwargs)``, except that every numeric argument
    (defaults included) lives in ``state.hyperparams`` as an array: readable for
    logging and settable between steps without recompiling, and any argument may be
    a schedule ``count -> value`` evaluated at each step. At step ``t = count``::

        h_t[k] = schedule_k(t)  if k is scheduled  else  state.hyperparams[k]
        u_t, inner_state = f(**h_t, **static).update(g_t, inner_state)
        state.hyperparams = h_t;  count = t + 1

    Python bools, ``None``, strings and other non-numeric values are passed as they
    are; a callable argument is taken as a schedule unless named in ``static_args``.
    Python ints stay int32 (write ``learning_rate=1.0``, not ``1``, to keep it a float).
    To change a value between steps, replace it with an array of the same dtype, e.g.
    ``state.hyperparams["learning_rate"] = jnp.asarray(1e-4, jnp.float32)`` (a Python
    float would be weakly typed and make ``jit`` trace once more); setting a scheduled
    hyperparameter has no effect.

    Args:
        inner_factory: A function returning a `GradientTransformation`.
        static_args: Name(s) of callable arguments that are not schedules.
        hyperparam_dtype: Dtype of the floating hyperparameters. Default: an array
            argument keeps its own dtype, Python floats and schedules take the default
            float (float32; float64 under x64). Fixed when the transformation is built:
            neither the parameters nor the gradients change it.

    Returns:
        A function with ``inner_factory``'s signature returning a
        `GradientTransformation` with state `InjectHyperparamsState(count, hyperparams,
        inner_state)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.inject_hyperparams(gradchain.scale_by_learning_rate)(0.1)
        >>> state = tx.init(jnp.zeros(2))
        >>> state.hyperparams
        {'learning_rate': Array(0.1, dtype=float32)}
        >>> state.hyperparams["learning_rate"] = jnp.asarray(0.5, jnp.float32)
        >>> tx.update(jnp.ones(2), state)[0]
        Array([-0.5, -0.5], dtype=float32)
    """
    fn = "inject_hyperparams"
    if not callable(inner_factory):
        raise TypeError(
            f"{fn}: `inner_factory` must be callable (a transformation factory), got {inner_factory!r}."
        )
    static = {static_args} if isinstance(static_args, str) else set(static_args)
    if not all(isinstance(s, str) for s in static):
        raise TypeError(
            f"{fn}: `static_args` must be a string or an iterable of strings, got {static_args!r}."
        )
    try:
        sig = inspect.signature(inner_factory)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: cannot read the signature of `inner_factory` {inner_factory!r}.") from None
    if not static <= set(sig.parameters):
        raise ValueError(
            f"{fn}: `static_args` must name parameters of `inner_factory`, "
            f"got {sorted(static - set(sig.parameters))}; "
            f"its parameters are {list(sig.parameters)}."
        )
    check_dtype(fn, "hyperparam_dtype", hyperparam_dtype)
    varargs = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)

    @functools.wraps(inner_factory)
    def wrapped(*args, **kwargs) -> GradientTransformation:
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"{fn}({getattr(inner_factory, '__name__', 'inner_factory')}): {e}.") from None
        bound.apply_defaults()
        numeric, schedules = {}, {}
        for name, value in bound.arguments.items():
            if (
                name in static
                or sig.parameters[name].kind in varargs
                or is_bool(value)
                or value is None
                or isinstance(value, (type, np.dtype))  # e.g. mu_dtype=jnp.float32, not a schedule
            ):
                continue
            if callable(value) and not isinstance(value, (jax.Array, np.ndarray)):
                schedules[name] = value
            elif isinstance(value, (int, float, np.number, np.ndarray, jax.Array)):
                x = value if isinstance(value, jax.Array) else np.asarray(value)
                if jnp.issubdtype(x.dtype, jnp.number):
                    numeric[name] = value

        def build(hparams):
            b = inspect.BoundArguments(sig, dict(bound.arguments))
            b.arguments.update(hparams)
            return inner_factory(*b.args, **b.kwargs)

        # the dtype of each hyperparameter is fixed here, once (schedules: from their value at 0)
        fixed = {k: _fixed_dtype(v, hyperparam_dtype) for k, v in numeric.items()}
        for k, sched in schedules.items():
            v0 = schedule_value(fn, k, sched(zero_count()))
            fixed[k] = _fixed_dtype(
                v0.astype(jnp.float32) if jnp.issubdtype(v0.dtype, jnp.integer) else v0, hyperparam_dtype
            )

        def hyperparams_at(count, values):
            out = {k: jnp.asarray(v).astype(fixed[k]) for k, v in values.items()}
            out.update({k: schedule_value(fn, k, s(count)).astype(fixed[k]) for k, s in schedules.items()})
            return out

        tx0 = build(hyperparams_at(zero_count(), numeric))  # validates eagerly
        as_transformation(fn, "inner_factory(...)", tx0)

        def init_fn(params):
            count = zero_count()
            h = hyperparams_at(count, numeric)
            return InjectHyperparamsState(count=count, hyperparams=h, inner_state=build(h).init(params))

        def update_fn(updates, state, params=None, **extra_args):
            values = {k: state.hyperparams[k] for k in numeric}
            h = hyperparams_at(state.count, values)
            updates, inner_state = build(h).update(updates, state.inner_state, params, **extra_args)
            return updates, InjectHyperparamsState(safe_increment(state.count), h, inner_state)

        return GradientTransformation(init_fn, update_fn)

    return wrapped
