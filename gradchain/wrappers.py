"""Wrappers: transformations that change where, whether or with what another one applies.

- where: `masked`, `partition`, `freeze`, `selective_transform` (with `set_to_zero`);
- whether: `apply_if_finite`;
- with what: `inject_hyperparams` (hyperparameters as state, settable between steps).

Gradient accumulation (`accumulate_gradients`) lives in ``transforms/accumulation.py``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._base import EmptyState, GradientTransformation
from gradchain._masking import (
    MaskedNode,
    MaskedState,
    _broadcast_prefix,
    _check_transformation,
    _is_bool,
    _resolve_mask,
    masked,
)
from gradchain._numerics import cond as _cond
from gradchain._numerics import safe_increment, zero_count
from gradchain._tree import all_finite
from gradchain._validate import check_dtype, check_floating, check_scalar, schedule_value

__all__ = [
    "ApplyIfFiniteState",
    "InjectHyperparamsState",
    "MaskedNode",
    "MaskedState",
    "PartitionState",
    "apply_if_finite",
    "freeze",
    "inject_hyperparams",
    "masked",
    "partition",
    "selective_transform",
    "set_to_zero",
]


def set_to_zero() -> GradientTransformation:
    """Replace every update by zeros: ``u_t = 0``.

    With `masked` or `partition` this freezes parameters; under ``jit`` the work that
    produced the zeroed gradients is usually dropped by the compiler.

    Returns:
        A stateless `GradientTransformation`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.set_to_zero()
        >>> tx.update(jnp.array([1.0, -2.0]), tx.init(None))[0]
        Array([0., 0.], dtype=float32)
    """

    def init_fn(params):
        del params
        return EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        return jax.tree.map(jnp.zeros_like, updates), state

    return GradientTransformation(init_fn, update_fn)


def freeze(mask: Any | Callable[[Any], Any]) -> GradientTransformation:
    """Zero the updates of the parameters where ``mask`` is True (frozen); pass the rest.

    ``freeze(mask) = masked(set_to_zero(), mask)``::

        u_i = 0  if mask_i  else  g_i

    Chained *before* a stateful optimizer, the optimizer still keeps state for the
    frozen leaves (and e.g. weight decay still moves them if it comes after); use
    `selective_transform` to keep no optimizer state for them at all.

    Args:
        mask: Like `masked`'s: a pytree of Python bools (or a prefix of the parameter
            tree, or a single bool), or a callable returning one; True = frozen.

    Returns:
        A `GradientTransformation` with state `MaskedState(EmptyState())`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.freeze({"w": True, "b": False})
        >>> g = {"w": jnp.ones(2), "b": jnp.ones(1)}
        >>> tx.update(g, tx.init(g))[0]
        {'b': Array([1.], dtype=float32), 'w': Array([0., 0.], dtype=float32)}
    """
    return masked(set_to_zero(), mask)


def selective_transform(optimizer: GradientTransformation, *, freeze_mask: Any) -> GradientTransformation:
    """Run ``optimizer`` on the trainable leaves only; frozen leaves get zero updates and no state.

    ``partition({"train": optimizer, "freeze": set_to_zero()}, labels)`` with the labels
    read from ``freeze_mask`` (True = frozen)::

        u_i = 0  if freeze_mask_i  else  optimizer(g restricted to trainable leaves)_i

    Args:
        optimizer: The transformation for the trainable leaves.
        freeze_mask: A pytree of Python bools (or a prefix of the parameter tree, or one
            bool), or a callable returning one from the parameters; True = frozen.

    Returns:
        A `GradientTransformation` with state `PartitionState(inner_states)`, keys
        ``"freeze"`` and ``"train"``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.selective_transform(gradchain.scale(-0.1), freeze_mask={"w": True, "b": False})
        >>> g = {"w": jnp.ones(2), "b": jnp.ones(1)}
        >>> tx.update(g, tx.init(g))[0]
        {'b': Array([-0.1], dtype=float32), 'w': Array([0., 0.], dtype=float32)}
    """
    optimizer = _check_transformation("selective_transform", "optimizer", optimizer)

    def labels(params):
        m = _resolve_mask("selective_transform", freeze_mask, params, "freeze_mask")
        return jax.tree.map(lambda frozen: "freeze" if frozen else "train", m)

    return partition({"train": optimizer, "freeze": set_to_zero()}, labels)


class PartitionState(NamedTuple):
    """State of `partition`: one `MaskedState` per label."""

    inner_states: Any  # dict: label -> MaskedState of that label's transformation


def partition(
    transforms: Mapping[Hashable, GradientTransformation], param_labels: Any
) -> GradientTransformation:
    """Apply a different transformation to each labelled group of parameters.

    Each transformation sees only the leaves carrying its label (the others are
    `MaskedNode`, holding no state); Optax calls this ``multi_transform``::

        u_i = transforms[label_i](g restricted to the leaves labelled label_i)_i

    A label that has no transformation is an error; a transformation whose label no
    leaf carries is allowed (it keeps an empty state), so one ``transforms`` dict can
    serve models with or without some group.

    Args:
        transforms: A mapping from label (e.g. a string) to `GradientTransformation`.
        param_labels: A pytree of labels with the structure of the parameters (or a
            prefix of it: one label for a whole subtree), or a callable that returns
            one from the parameters (in ``update``: from the updates if no params).

    Returns:
        A `GradientTransformation` with state `PartitionState(inner_states)`, a dict
        from label to the `MaskedState` of that label's transformation.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.partition({"fast": gradchain.scale(-1.0), "slow": gradchain.scale(-0.1)},
        ...                          {"w": "fast", "b": "slow"})
        >>> g = {"w": jnp.ones(2), "b": jnp.ones(1)}
        >>> tx.update(g, tx.init(g))[0]
        {'b': Array([-0.1], dtype=float32), 'w': Array([-1., -1.], dtype=float32)}
    """
    if not isinstance(transforms, Mapping) or not transforms:
        raise TypeError(
            f"partition: `transforms` must be a non-empty mapping from label to "
            f"GradientTransformation, got {transforms!r}."
        )
    transforms = {
        label: _check_transformation("partition", f"transforms[{label!r}]", tx)
        for label, tx in transforms.items()
    }
    if not callable(param_labels):
        _check_labels(param_labels, transforms)

    def resolve(tree):
        labels = param_labels(tree) if callable(param_labels) else param_labels
        _check_labels(labels, transforms)
        labels = _broadcast_prefix("partition", "param_labels", labels, tree, "label")
        return {group: jax.tree.map(lambda lab, g=group: lab == g, labels) for group in transforms}

    def init_fn(params):
        masks = resolve(params)
        return PartitionState({g: masked(tx, masks[g]).init(params) for g, tx in transforms.items()})

    def update_fn(updates, state, params=None, **extra_args):
        masks = resolve(updates if params is None else params)
        new_states = {}
        for g, tx in transforms.items():
            updates, new_states[g] = masked(tx, masks[g]).update(
                updates, state.inner_states[g], params, **extra_args
            )
        return updates, PartitionState(new_states)

    return GradientTransformation(init_fn, update_fn)


def _check_labels(labels, transforms) -> None:
    used = jax.tree.leaves(labels)
    unknown = sorted({repr(x) for x in used if x not in transforms})
    if unknown:
        raise ValueError(
            f"partition: `param_labels` uses label(s) {', '.join(unknown)} that have no transformation; "
            f"`transforms` has keys [{', '.join(sorted(repr(k) for k in transforms))}]."
        )


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
                or _is_bool(value)
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
        _check_transformation(fn, "inner_factory(...)", tx0)

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


class ApplyIfFiniteState(NamedTuple):
    """State of `apply_if_finite`."""

    notfinite_count: jax.Array  # int32 scalar: consecutive non-finite steps (0 after a finite one)
    last_finite: jax.Array  # bool scalar: whether the latest updates were all finite
    total_notfinite: jax.Array  # int32 scalar: non-finite steps since init (never reset)
    inner_state: Any


def apply_if_finite(inner: GradientTransformation, max_consecutive_errors) -> GradientTransformation:
    """Skip steps whose incoming updates hold a NaN or Inf, up to a limit.

    A step with non-finite updates returns zeros and leaves ``inner``'s state as it
    was; after more than ``max_consecutive_errors`` such steps in a row the wrapper
    gives up and applies ``inner`` anyway (as Optax does)::

        finite_t = all(isfinite(g_t))
        n_t = 0  if finite_t  else  n_{t-1} + 1
        u_t, s_t = inner(g_t, s_{t-1})  if finite_t or n_t > max_consecutive_errors
                   else  (0, s_{t-1})

    Args:
        inner: The transformation to guard.
        max_consecutive_errors: An integer ``>= 0``: how many non-finite steps in a row
            are skipped.

    Returns:
        A `GradientTransformation` with state `ApplyIfFiniteState(notfinite_count,
        last_finite, total_notfinite, inner_state)`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.apply_if_finite(gradchain.scale(-0.1), 2)
        >>> u, state = tx.update(jnp.array([1.0, jnp.nan]), tx.init(jnp.zeros(2)))
        >>> u, int(state.notfinite_count), bool(state.last_finite)
        (Array([0., 0.], dtype=float32), 1, False)
    """
    inner = _check_transformation("apply_if_finite", "inner", inner)
    check_scalar("apply_if_finite", "max_consecutive_errors", max_consecutive_errors, lo=0, integer=True)

    def init_fn(params):
        return ApplyIfFiniteState(
            notfinite_count=zero_count(),
            last_finite=jnp.ones([], jnp.bool_),
            total_notfinite=zero_count(),
            inner_state=inner.init(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        check_floating("apply_if_finite", updates)
        finite = all_finite(updates)
        notfinite_count = jnp.where(finite, zero_count(), safe_increment(state.notfinite_count))
        limit = max_consecutive_errors
        if not isinstance(limit, int):
            limit = jnp.asarray(limit).astype(jnp.int32)
        apply = finite | (notfinite_count > limit)

        def do_update(inner_state):
            return inner.update(updates, inner_state, params, **extra_args)

        def skip(inner_state):
            return jax.tree.map(jnp.zeros_like, updates), inner_state

        updates, inner_state = _cond(apply, do_update, skip, state.inner_state)
        total = jnp.where(finite, state.total_notfinite, safe_increment(state.total_notfinite))
        return updates, ApplyIfFiniteState(notfinite_count, finite, total, inner_state)

    return GradientTransformation(init_fn, update_fn)
