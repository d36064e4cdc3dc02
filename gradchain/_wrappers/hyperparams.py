"""With what hyperparameters: `inject_hyperparams` (hyperparameters as state, settable
between steps, any of them a schedule, stateless or stateful)."""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._base import GradientTransformation, as_transformation
from gradchain._masking import is_bool
from gradchain._numerics import safe_increment, zero_count
from gradchain._validate import check_dtype, schedule_value

__all__ = [
    "InjectHyperparamsState",
    "InjectStatefulHyperparamsState",
    "StatefulSchedule",
    "WrappedSchedule",
    "WrappedScheduleState",
    "inject_hyperparams",
    "inject_stateful_hyperparams",
]


@runtime_checkable
class StatefulSchedule(Protocol):
    """A schedule with a state of its own, updated each step from the step's extra args.

    ``init() -> state``; ``update(state, **extra_args) -> state``; ``__call__(state,
    **extra_args) -> value``. `inject_hyperparams` reads the value from the state before
    the step, then updates the state (Optax's protocol of the same name).
    """

    def init(self) -> Any: ...

    def update(self, state: Any, **extra_args) -> Any: ...

    def __call__(self, state: Any, **extra_args) -> Any: ...


class WrappedScheduleState(NamedTuple):
    """State of a `WrappedSchedule`: the steps taken."""

    count: jax.Array  # int32 scalar


class WrappedSchedule:
    """A plain schedule ``count -> value`` as a `StatefulSchedule` counting its own steps.

    Args:
        schedule_fn: The schedule.

    Examples:
        >>> import gradchain
        >>> sched = gradchain.WrappedSchedule(gradchain.linear_schedule(1.0, 0.0, 4))
        >>> state = sched.update(sched.init())
        >>> sched(state)
        Array(0.75, dtype=float32)
    """

    def __init__(self, schedule_fn: Callable):
        if not callable(schedule_fn):
            raise TypeError(f"WrappedSchedule: `schedule_fn` must be callable, got {schedule_fn!r}.")
        self.schedule_fn = schedule_fn

    def init(self) -> WrappedScheduleState:
        return WrappedScheduleState(count=zero_count())

    def update(self, state: WrappedScheduleState, **extra_args) -> WrappedScheduleState:
        del extra_args
        return WrappedScheduleState(count=safe_increment(state.count))

    def __call__(self, state: WrappedScheduleState, **extra_args):
        del extra_args
        return self.schedule_fn(state.count)


class InjectStatefulHyperparamsState(NamedTuple):
    """State of a transformation built by `inject_hyperparams` (Optax's layout)."""

    count: jax.Array  # int32 scalar: steps taken
    hyperparams: dict  # name -> scalar array: the value used by the latest step (settable)
    hyperparams_states: (
        dict  # scheduled name -> the schedule's state (WrappedScheduleState for plain schedules)
    )
    inner_state: Any


class InjectHyperparamsState(NamedTuple):
    """Optax's earlier three-field state of `inject_hyperparams`, kept for code that names
    it; `inject_hyperparams` returns `InjectStatefulHyperparamsState`."""

    count: jax.Array
    hyperparams: dict
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
    static_args: str | Iterable[str] = (),
    hyperparam_dtype: Any = None,
) -> Callable[..., GradientTransformation]:
    """Make a factory's numeric hyperparameters part of the state (and allow schedules).

    ``inject_hyperparams(f)(*args, **kwargs)`` takes ``f``'s arguments and returns a
    transformation equal to ``f(*args, **kwargs)``, except that every numeric argument
    (defaults included) lives in ``state.hyperparams`` as an array: readable for
    logging and settable between steps without recompiling, and any argument may be
    a schedule: a plain one ``count -> value`` (wrapped in a `WrappedSchedule`) or a
    `StatefulSchedule` whose state lives in ``state.hyperparams_states`` and is updated
    from the step's extra args. At step ``t = count``::

        h_t[k] = sched_k(s_k, **extra_args)  if k is scheduled  else  state.hyperparams[k]
        s_k = sched_k.update(s_k, **extra_args)           (a plain schedule: s_k = t + 1)
        u_t, inner_state = f(**h_t, **static).update(g_t, inner_state, **extra_args)
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
        `GradientTransformation` with state `InjectStatefulHyperparamsState(count,
        hyperparams, hyperparams_states, inner_state)`, Optax's layout.

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
            if isinstance(value, StatefulSchedule):
                schedules[name] = value
            elif callable(value) and not isinstance(value, (jax.Array, np.ndarray)):
                schedules[name] = WrappedSchedule(value)
            elif isinstance(value, (int, float, np.number, np.ndarray, jax.Array)):
                x = value if isinstance(value, jax.Array) else np.asarray(value)
                if jnp.issubdtype(x.dtype, jnp.number):
                    numeric[name] = value

        def build(hparams):
            b = inspect.BoundArguments(sig, dict(bound.arguments))
            b.arguments.update(hparams)
            return inner_factory(*b.args, **b.kwargs)

        # the dtype of each hyperparameter is fixed here, once (schedules: from their first value)
        fixed = {k: _fixed_dtype(v, hyperparam_dtype) for k, v in numeric.items()}
        for k, sched in schedules.items():
            v0 = schedule_value(fn, k, sched(sched.init()))
            fixed[k] = _fixed_dtype(
                v0.astype(jnp.float32) if jnp.issubdtype(v0.dtype, jnp.integer) else v0, hyperparam_dtype
            )

        def hyperparams_at(values, sched_states, extra_args):
            out = {k: jnp.asarray(v).astype(fixed[k]) for k, v in values.items()}
            for k, sched in schedules.items():
                out[k] = schedule_value(fn, k, sched(sched_states[k], **extra_args)).astype(fixed[k])
            return out

        def schedule_states():
            return {k: sched.init() for k, sched in schedules.items()}

        tx0 = build(hyperparams_at(numeric, schedule_states(), {}))  # validates eagerly
        as_transformation(fn, "inner_factory(...)", tx0)

        def init_fn(params):
            states = schedule_states()
            h = hyperparams_at(numeric, states, {})
            return InjectStatefulHyperparamsState(zero_count(), h, states, build(h).init(params))

        def update_fn(updates, state, params=None, **extra_args):
            values = {k: state.hyperparams[k] for k in numeric}
            h = hyperparams_at(values, state.hyperparams_states, extra_args)
            states = {
                k: sched.update(state.hyperparams_states[k], **extra_args) for k, sched in schedules.items()
            }
            updates, inner_state = build(h).update(updates, state.inner_state, params, **extra_args)
            return updates, InjectStatefulHyperparamsState(
                safe_increment(state.count), h, states, inner_state
            )

        return GradientTransformation(init_fn, update_fn)

    return wrapped


def inject_stateful_hyperparams(
    inner_factory: Callable[..., GradientTransformation],
    static_args: str | Iterable[str] = (),
    hyperparam_dtype: Any = None,
) -> Callable[..., GradientTransformation]:
    """`inject_hyperparams` under its earlier Optax name (deprecated there and here).

    Emits a ``DeprecationWarning`` and returns ``inject_hyperparams(inner_factory,
    static_args, hyperparam_dtype)``, which takes stateful schedules as well.

    Args:
        inner_factory: A function returning a `GradientTransformation`.
        static_args: Name(s) of callable arguments that are not schedules.
        hyperparam_dtype: Dtype of the floating hyperparameters.

    Returns:
        What `inject_hyperparams` returns.
    """
    warnings.warn(
        "inject_stateful_hyperparams is deprecated, use inject_hyperparams instead",
        DeprecationWarning,
        stacklevel=2,
    )
    return inject_hyperparams(inner_factory, static_args, hyperparam_dtype)
