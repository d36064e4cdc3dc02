"""Measurements of the updates kept in the state, for logging: `snapshot` (one stateless
measurement), `monitor` (several, stateful ones included) and `measure_with_ema` (a
measurement's moving average). None of them changes the updates.

Read a measurement back from a chain's state with ``state[i].measurement[name]`` (or
``.measurements[name]``), or with a `named_chain` by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain._base import GradientTransformation, as_transformation, stateless
from gradchain._chain import chain
from gradchain._transforms.momentum import ema
from gradchain._validate import canonical_dtype, check_decay, check_flag

__all__ = ["MonitorState", "SnapshotState", "measure_with_ema", "monitor", "snapshot"]


class SnapshotState(NamedTuple):
    """State of `snapshot`."""

    measurement: dict[str, Any]  # {measure_name: measure(latest updates)}


class MonitorState(NamedTuple):
    """State of `monitor`."""

    measurements: dict[str, Any]  # {name: the latest measurement}
    measure_states: tuple[Any, ...]  # one state per measure, in the order of `measures`


def snapshot(measure_name: str, measure: Callable[[Any], Any]) -> GradientTransformation:
    """Store a measurement of the updates in the state, and pass the updates on unchanged.

    At each call::

        state.measurement[measure_name] = measure(g_t)
        u_t = g_t

    In a chain it sees the updates as transformed by the members before it, e.g. the
    norm before clipping. Before the first update the state holds ``measure(params)``
    (as in Optax), so ``measure`` must give the same shapes and dtypes on the
    parameters as on the updates.

    Args:
        measure_name: The key of the measurement in ``state.measurement``.
        measure: A function of the updates tree returning a pytree of arrays.

    Returns:
        A `GradientTransformation` with state `SnapshotState(measurement)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.chain(gradchain.snapshot("norm", gradchain.global_norm),
        ...                      gradchain.clip_by_global_norm(1.0))
        >>> u, state = tx.update(jnp.array([3.0, 4.0]), tx.init(jnp.zeros(2)))
        >>> u, state[0].measurement["norm"]
        (Array([0.6, 0.8], dtype=float32), Array(5., dtype=float32))
    """
    fn = "snapshot"
    if not isinstance(measure_name, str):
        raise TypeError(f"{fn}: `measure_name` must be a str, got {measure_name!r}.")
    if not callable(measure):
        raise TypeError(f"{fn}: `measure` must be callable, got {measure!r}.")

    def init_fn(params):
        return SnapshotState({measure_name: measure(params)})

    def update_fn(updates, state, params=None, **extra_args):
        del state, params, extra_args
        return updates, SnapshotState({measure_name: measure(updates)})

    return GradientTransformation(init_fn, update_fn)


def _is_transformation(x: Any) -> bool:
    return (
        callable(getattr(x, "init", None))
        and callable(getattr(x, "update", None))
        and not isinstance(x, type)
    )


def monitor(measures: Mapping[str, Any]) -> GradientTransformation:
    """Store several measurements of the updates, stateful ones included, and pass the updates on.

    Each measure is a function of the updates (as in `snapshot`) or a transformation
    whose *output* is the measurement (e.g. `measure_with_ema`); at each call::

        state.measurements[name] = measure(g_t)                 (a function)
        state.measurements[name], s_t = measure(g_t, s_{t-1})   (a transformation)
        u_t = g_t

    Before the first update the measurements are zeros shaped like what the measures
    return on the parameters (evaluated abstractly, without extra arguments), so the
    state has the same structure before and after a step. (Optax starts from an empty
    dict, which changes the state's structure at the first step: no ``lax.scan``, no
    ``nnx.Optimizer``, no checkpoint restored into the initial state.)

    Args:
        measures: A mapping from a name (str) to a function of the updates or a
            `GradientTransformation`; the ``update`` call's ``params`` and extra
            arguments are passed to the transformations.

    Returns:
        A `GradientTransformation` with state `MonitorState(measurements, measure_states)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.monitor({
        ...     "norm": gradchain.global_norm,
        ...     "norm_ema": gradchain.measure_with_ema(gradchain.global_norm, 0.5, False),
        ... })
        >>> state = tx.init(jnp.zeros(2))
        >>> for g in ([3.0, 4.0], [0.0, 1.0]):
        ...     _, state = tx.update(jnp.array(g), state)
        >>> state.measurements
        {'norm': Array(1., dtype=float32), 'norm_ema': Array(1.75, dtype=float32)}
    """
    fn = "monitor"
    if not isinstance(measures, Mapping):
        raise TypeError(f"{fn}: `measures` must be a dict from names to measures, got {measures!r}.")
    members = {}
    for name, measure in measures.items():
        if not isinstance(name, str):
            raise TypeError(f"{fn}: `measures` must have str keys, got {name!r}.")
        if _is_transformation(measure):
            members[name] = as_transformation(fn, f"measures[{name!r}]", measure)
        elif callable(measure):
            members[name] = stateless(lambda u, _, m=measure: m(u))
        else:
            raise TypeError(
                f"{fn}: `measures[{name!r}]` must be a function of the updates or a "
                f"GradientTransformation, got {measure!r}."
            )
    names = tuple(members)

    def init_fn(params):
        states = tuple(members[n].init(params) for n in names)
        shapes = {
            n: jax.eval_shape(lambda p, s, m=members[n]: m.update(p, s, p)[0], params, s)
            for n, s in zip(names, states)
        }
        zeros = {n: jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes[n]) for n in names}
        return MonitorState(zeros, states)

    def update_fn(updates, state, params=None, **extra_args):
        measurements, states = {}, []
        for n, s in zip(names, state.measure_states):
            measurements[n], s = members[n].update(updates, s, params, **extra_args)
            states.append(s)
        return updates, MonitorState(measurements, tuple(states))

    return GradientTransformation(init_fn, update_fn)


def _as_floating(tree: Any) -> Any:
    """Boolean and integer measurements as float32 (an average of booleans is a fraction)."""

    def leaf(x):
        x = jnp.asarray(x)
        return x if jnp.issubdtype(x.dtype, jnp.inexact) else x.astype(jnp.float32)

    return jax.tree.map(leaf, tree)


def measure_with_ema(
    measure: Callable[[Any], Any], decay, debias: bool = True, accumulator_dtype: Any = None
) -> GradientTransformation:
    """The moving average of a measurement of the updates; its output is the average.

    A chain of a stateless measurement and `ema`; with ``x_t = measure(g_t)`` at step
    ``t = count + 1``::

        e_t = decay * e_{t-1} + (1 - decay) * x_t
        u_t = e_t / (1 - decay**t)     if debias
        u_t = e_t                      otherwise

    Use it as a measure of `monitor`. Boolean and integer measurements are averaged as
    float32 (``norm > threshold`` gives the recent fraction of steps above it; Optax
    turns the boolean state into a float one at the first step, changing its dtype).

    Args:
        measure: A function of the updates tree returning a pytree of arrays.
        decay: Decay of the moving average, in [0, 1).
        debias: Divide by ``1 - decay**t``.
        accumulator_dtype: Dtype of the stored average; ``None``: the measurement's.

    Returns:
        A `GradientTransformation` with state ``(EmptyState(), EmaState(count, ema))``
        whose updates are the averaged measurement (not the updates).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.measure_with_ema(lambda u: gradchain.global_norm(u) > 1.0, 0.5)
        >>> state = tx.init(jnp.zeros(2))
        >>> for g in ([3.0, 4.0], [0.0, 0.5]):
        ...     avg, state = tx.update(jnp.array(g), state)
        >>> avg.round(4)   # debiased: 0.25 / (1 - 0.5**2)
        Array(0.3333, dtype=float32)
    """
    fn = "measure_with_ema"
    if not callable(measure):
        raise TypeError(f"{fn}: `measure` must be callable, got {measure!r}.")
    check_decay(fn, "decay", decay)
    check_flag(fn, "debias", debias)
    canonical_dtype(fn, "accumulator_dtype", accumulator_dtype)
    average = ema(decay, debias, accumulator_dtype)
    measured = GradientTransformation(
        lambda params: average.init(_as_floating(measure(params))), average.update
    )
    return chain(stateless(lambda updates, _: _as_floating(measure(updates))), measured)
