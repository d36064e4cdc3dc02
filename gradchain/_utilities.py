"""Optax's general utilities, under Optax's names: state helpers, counters, norms and the
aliases a port from Optax expects (`init_empty_state`, `with_extra_args_support`,
`safe_increment`, `safe_int32_increment`, `safe_norm`, `tree_map_params`, the
``*State`` names of stateless transformations, `MaskOrFn`, `TransformUpdateExtraArgsFn`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.stats

from gradchain._base import EmptyState, GradientTransformation, TransformUpdateFn, as_transformation
from gradchain._numerics import safe_increment as _safe_increment_impl
from gradchain._transforms.clipping import clip_by_value
from gradchain._wrappers.accumulation import (
    AccumulateGradientsState,
    ShouldSkipUpdateFunction,
    accumulate_gradients,
    has_updated,
)
from gradchain._wrappers.masking import PartitionState, partition

__all__ = [
    "AdaptiveGradClipState",
    "ClipState",
    "GradientTransformationExtraArgs",
    "MaskOrFn",
    "MultiNormalDiagFromLogScale",
    "MultiSteps",
    "MultiStepsState",
    "MultiTransformState",
    "ScaleByTrustRatioState",
    "ScaleState",
    "TransformUpdateExtraArgsFn",
    "clip",
    "init_empty_state",
    "multi_normal",
    "multi_transform",
    "safe_increment",
    "safe_int32_increment",
    "safe_norm",
    "tree_map_params",
    "with_extra_args_support",
]

# Optax's names for gradchain's (porting is an import change; the README's porting table
# lists each): one transformation type, `partition`, `clip_by_value`, `accumulate_gradients`.
GradientTransformationExtraArgs = GradientTransformation
MultiTransformState = PartitionState
MultiStepsState = AccumulateGradientsState
multi_transform = partition
clip = clip_by_value

# The states of stateless transformations are all `EmptyState` (as in Optax).
ScaleState = EmptyState
ClipState = EmptyState
AdaptiveGradClipState = EmptyState
ScaleByTrustRatioState = EmptyState

MaskOrFn = Any
"""A pytree of bools mirroring the parameters (or a prefix of it), or a callable returning one."""

TransformUpdateExtraArgsFn = TransformUpdateFn
"""gradchain has one update signature, ``update(updates, state, params=None, **extra_args)``."""


def init_empty_state(params: Any) -> EmptyState:
    """The ``init`` of a stateless transformation: ``EmptyState()`` whatever the params.

    Args:
        params: Ignored.

    Returns:
        ``EmptyState()``.

    Examples:
        >>> import gradchain
        >>> gradchain.init_empty_state({"w": 1.0})
        EmptyState()
    """
    del params
    return EmptyState()


def with_extra_args_support(tx: Any) -> GradientTransformation:
    """A transformation whose ``update`` accepts (and, if it did not, ignores) ``**extra_args``.

    Every gradchain transformation already does; this wraps foreign ``(init, update)``
    pairs such as Optax's plain ``GradientTransformation``.

    Args:
        tx: Any object with callable ``init`` and ``update``.

    Returns:
        A `GradientTransformation`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.with_extra_args_support(gradchain.scale(2.0))
        >>> tx.update(jnp.ones(1), tx.init(jnp.ones(1)), None, value=3.0)[0]
        Array([2.], dtype=float32)
    """
    return as_transformation("with_extra_args_support", "tx", tx)


def safe_increment(count: Any) -> jax.Array:
    """``count + 1`` that saturates at the largest value of its dtype instead of wrapping.

    Args:
        count: An integer array (e.g. a state's int32 step counter).

    Returns:
        ``count + 1``, or ``count`` if it is already the dtype's maximum.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.safe_increment(jnp.asarray(2**31 - 1, jnp.int32))
        Array(2147483647, dtype=int32)
    """
    return _safe_increment_impl(jnp.asarray(count))


def safe_int32_increment(count: Any) -> jax.Array:
    """`safe_increment` for an int32 counter (Optax's older name).

    Args:
        count: An int32 array.

    Returns:
        ``count + 1``, saturating at ``2**31 - 1``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> gradchain.safe_int32_increment(jnp.asarray(1, jnp.int32))
        Array(2, dtype=int32)
    """
    count = jnp.asarray(count)
    if count.dtype != jnp.int32:
        raise TypeError(f"safe_int32_increment: `count` must be an int32 array, got dtype {count.dtype}.")
    return _safe_increment_impl(count)


def safe_norm(x: Any, min_norm: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> jax.Array:
    """``max(||x||, min_norm)`` with a gradient that is finite (zero) where ``||x|| <= min_norm``.

    ``jnp.linalg.norm`` has a NaN gradient at 0; here the norm is computed from ``x``
    replaced by ones where the clamp is active, so the gradient there is exactly 0::

        n = ||x||_ord
        safe_norm(x) = n        where n > min_norm
                       min_norm otherwise

    Args:
        x: An array.
        min_norm: The lower bound, a number ``>= 0``.
        ord: The norm's order, as in ``jnp.linalg.norm``.
        axis: The axes to reduce, as in ``jnp.linalg.norm``.
        keepdims: Keep the reduced axes.

    Returns:
        The clamped norm.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> gradchain.safe_norm(jnp.array([3.0, 4.0]), 1.0)
        Array(5., dtype=float32)
        >>> jax.grad(lambda x: gradchain.safe_norm(x, 1e-6))(jnp.zeros(2))
        Array([0., 0.], dtype=float32)
    """
    x = jnp.asarray(x)
    norm = jnp.linalg.norm(x, ord=ord, axis=axis, keepdims=True)
    floor = jnp.asarray(min_norm, norm.dtype)
    x_safe = jnp.where(norm <= floor, jnp.ones_like(x), x)
    safe = jnp.linalg.norm(x_safe, ord=ord, axis=axis, keepdims=True)
    out = jnp.where(norm <= floor, floor, safe)
    if not keepdims:
        out = jnp.squeeze(out, axis=axis) if axis is not None else jnp.reshape(out, ())
    return out


class _ParamsPlaceholder(dict):
    """Stands for the parameters in `tree_map_params`: a pytree node with no leaves, so an
    ``init`` that maps over the parameters puts one wherever its state mirrors them."""


jax.tree_util.register_pytree_node(
    _ParamsPlaceholder, lambda p: ((), None), lambda aux, children: _ParamsPlaceholder()
)


def tree_map_params(
    initable: Any,
    f: Callable[..., Any],
    state: Any,
    /,
    *rest: Any,
    transform_non_params: Callable[..., Any] | None = None,
    is_leaf: Callable[[Any], bool] | None = None,
) -> Any:
    """Apply ``f`` to every part of an optimizer state that mirrors the parameters.

    ``initable`` (a transformation or its ``init``) is called on a placeholder to find
    which subtrees of ``state`` are per-parameter (moments, accumulators); ``f`` is mapped
    over their leaves (with the matching leaves of ``rest``); every other leaf (counters,
    scalars) goes through ``transform_non_params`` if given, else unchanged. Typical use:
    give the per-parameter state the parameters' shardings, or cast it.

    Args:
        initable: A `GradientTransformation` (or anything with ``init``) or an init function.
        f: The function applied to each per-parameter leaf.
        state: A state built by ``initable``.
        *rest: Trees with the structure of the per-parameter parts, passed to ``f``.
        transform_non_params: Optional function applied to every other leaf.
        is_leaf: Passed to the tree map over the per-parameter parts.

    Returns:
        The state with ``f`` applied.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.adam(1e-3)
        >>> state = tx.init({"w": jnp.ones(2)})
        >>> s = gradchain.tree_map_params(tx, lambda x: x.astype(jnp.bfloat16), state)
        >>> s[0].mu["w"].dtype, s[0].count.dtype
        (dtype(bfloat16), dtype('int32'))
    """
    init = initable.init if hasattr(initable, "init") else initable
    if not callable(init):
        raise TypeError(
            f"tree_map_params: `initable` must be a transformation or an init function, got {initable!r}."
        )
    with_placeholders = init(_ParamsPlaceholder())
    is_placeholder = lambda v: isinstance(v, _ParamsPlaceholder)

    def map_part(marker, value):
        if is_placeholder(marker):
            return jax.tree.map(f, value, *rest, is_leaf=is_leaf)
        return transform_non_params(value) if transform_non_params is not None else value

    return jax.tree.map(map_part, with_placeholders, state, is_leaf=is_placeholder)


class MultiSteps:
    """Optax's ``MultiSteps`` class, over `accumulate_gradients` (what gradchain calls it).

    ``MultiSteps(opt, k).gradient_transformation()`` is ``accumulate_gradients(opt, k)``;
    ``init``/``update`` are its functions and ``has_updated(state)`` says whether the last
    ``update`` stepped ``opt``.

    Args:
        opt: The transformation to step on the accumulated gradients.
        every_k_schedule: ``k``, an int ``>= 1`` or a schedule ``gradient_step -> k``.
        use_grad_mean: Step on the mean (else the sum) of the ``k`` gradients.
        should_skip_update_fn: Optional ``fn(updates, gradient_step, params) ->
            (should_skip, skip_state)`` (e.g. `gradchain.skip_not_finite`).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> ms = gradchain.MultiSteps(gradchain.sgd(1.0), every_k_schedule=2)
        >>> state = ms.init(jnp.zeros(1))
        >>> u, state = ms.update(jnp.array([1.0]), state)
        >>> bool(ms.has_updated(state)), u
        (False, Array([0.], dtype=float32))
        >>> u, state = ms.update(jnp.array([3.0]), state)
        >>> bool(ms.has_updated(state)), u
        (True, Array([-2.], dtype=float32))
    """

    def __init__(
        self,
        opt: Any,
        every_k_schedule: Any,
        use_grad_mean: bool = True,
        should_skip_update_fn: ShouldSkipUpdateFunction | None = None,
    ):
        self._tx = accumulate_gradients(
            as_transformation("MultiSteps", "opt", opt),
            every_k_schedule,
            use_grad_mean=use_grad_mean,
            should_skip_update_fn=should_skip_update_fn,
        )
        self.init = self._tx.init
        self.update = self._tx.update

    def gradient_transformation(self) -> GradientTransformation:
        """The `GradientTransformation` (``accumulate_gradients(opt, k, ...)``)."""
        return self._tx

    @staticmethod
    def has_updated(state: Any) -> jax.Array:
        """Whether the latest ``update`` stepped the inner transformation (see `has_updated`)."""
        return has_updated(state)


class MultiNormalDiagFromLogScale:
    """A normal distribution with diagonal covariance, parameterized by its mean and the
    log of its standard deviation (Optax's class of the same name).

    Args:
        loc: The mean.
        log_scale: ``log`` of the standard deviation; broadcast against ``loc``.
    """

    def __init__(self, loc, log_scale):
        self._mean = jnp.asarray(loc)
        self._log_scale = jnp.asarray(log_scale)
        for arg, x in (("loc", self._mean), ("log_scale", self._log_scale)):
            if not jnp.issubdtype(x.dtype, jnp.floating):
                raise TypeError(f"multi_normal: `{arg}` must be a floating array, got dtype {x.dtype}.")
        self._scale = jnp.exp(self._log_scale)
        try:
            self._param_shape = jnp.broadcast_shapes(self._mean.shape, self._scale.shape)
        except ValueError:
            raise ValueError(
                f"multi_normal: `loc` and `log_scale` must broadcast together, got shapes "
                f"{self._mean.shape} and {self._scale.shape}."
            ) from None

    def sample(self, shape, key) -> jax.Array:
        """``shape + param_shape`` draws: ``loc + exp(log_scale) * N(0, 1)``."""
        dt = jnp.result_type(self._mean.dtype, self._scale.dtype)
        z = jax.random.normal(key, shape=(*tuple(shape), *self._param_shape), dtype=dt)
        scale = jnp.broadcast_to(self._scale.astype(dt), z.shape)
        return z * scale + jnp.broadcast_to(self._mean.astype(dt), z.shape)

    def log_prob(self, x) -> jax.Array:
        """The log density of ``x``, summed over the parameter axes."""
        x = jnp.asarray(x)
        dt = jnp.result_type(x.dtype, self._mean.dtype, self._scale.dtype)
        shape = jnp.broadcast_shapes(x.shape, self._param_shape)
        lp = jax.scipy.stats.norm.logpdf(
            jnp.broadcast_to(x.astype(dt), shape),
            loc=jnp.broadcast_to(self._mean.astype(dt), shape),
            scale=jnp.broadcast_to(self._scale.astype(dt), shape),
        )
        return jnp.sum(lp, axis=tuple(range(-len(self._param_shape), 0)))

    @property
    def log_scale(self) -> jax.Array:
        return self._log_scale

    @property
    def params(self) -> list:
        return [self._mean, self._log_scale]


def multi_normal(loc, log_scale) -> MultiNormalDiagFromLogScale:
    """A diagonal normal distribution from its mean and log standard deviation.

    ``sample(shape, key) = loc + exp(log_scale) * N(0, I)``; ``log_prob(x) = sum_i
    log N(x_i; loc_i, exp(log_scale_i)^2)`` over the parameter axes.

    Args:
        loc: The mean.
        log_scale: ``log`` of the standard deviation.

    Returns:
        A `MultiNormalDiagFromLogScale` (Optax's ``multi_normal``).

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> d = gradchain.multi_normal(jnp.zeros(2), jnp.zeros(2))
        >>> d.sample((3,), jax.random.key(0)).shape
        (3, 2)
        >>> d.log_prob(jnp.zeros(2))
        Array(-1.837877, dtype=float32)
    """
    return MultiNormalDiagFromLogScale(loc, log_scale)
