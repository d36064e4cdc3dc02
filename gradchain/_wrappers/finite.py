"""Whether a step applies: `apply_if_finite` skips non-finite steps; `dynamic_loss_scaling`
(with `scale_loss`, `loss_scale`) also scales the loss for float16 training.

float16 has a narrow range (normal numbers from about 6.1e-5 to 65504): in a float16
backward pass, small gradients flush to zero. Multiplying the loss by a large scale
``S`` before differentiating shifts every gradient of the backward pass up by ``S``;
`dynamic_loss_scaling` divides the gradients by ``S`` again before the optimizer sees
them, skips the steps where the scaled gradients overflowed (halving ``S``), and grows
``S`` again after a run of finite steps. One training step reads::

    def scaled_loss(params, opt_state, batch):
        loss = loss_fn(params, batch)                  # float16 compute inside
        return gradchain.scale_loss(loss, opt_state), loss

    grads, loss = jax.grad(scaled_loss, has_aux=True)(params, opt_state, batch)
    updates, opt_state = tx.update(grads, opt_state, params)   # tx = dynamic_loss_scaling(...)
    params = gradchain.apply_updates(params, updates)

The usual recipe keeps float32 master parameters and casts them to float16 inside
``loss_fn``: the gradients then arrive in float32 and are unscaled exactly.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._base import GradientTransformation, as_transformation
from gradchain._numerics import compute_dtype, cond, hp, safe_increment, zero_count
from gradchain._tree import all_finite, find_states, unwrap_variable
from gradchain._validate import check_floating, check_scalar, concrete_scalar

__all__ = [
    "ApplyIfFiniteState",
    "DynamicLossScaleState",
    "apply_if_finite",
    "dynamic_loss_scaling",
    "loss_scale",
    "scale_loss",
]

_FN = "dynamic_loss_scaling"


class DynamicLossScaleState(NamedTuple):
    """State of `dynamic_loss_scaling`.

    Field names ``last_finite`` and ``total_notfinite`` mean what they mean in
    `apply_if_finite`'s state (here every non-finite step is skipped).
    """

    scale: jax.Array  # float32 scalar: the loss scale S for the next step
    good_steps: jax.Array  # int32 scalar: finite steps since the scale last changed
    last_finite: jax.Array  # bool scalar: whether the latest unscaled gradients were all finite
    total_notfinite: jax.Array  # int32 scalar: skipped (non-finite) steps since init
    inner_state: Any


def _check_finite_scale(name: str, value: Any) -> None:
    check_scalar(_FN, name, value, lo=0.0, lo_open=True, allow_inf=True)
    x = concrete_scalar(value)
    if x is not None and (math.isinf(x) or x > float(np.finfo(np.float32).max)):
        raise ValueError(f"{_FN}: `{name}` must be a finite float32 number, got {value!r}.")


def dynamic_loss_scaling(
    inner: GradientTransformation,
    initial_scale=2.0**15,
    *,
    growth_interval=2000,
    growth_factor=2.0,
    backoff_factor=0.5,
    min_scale=1.0,
    max_scale=2.0**24,
) -> GradientTransformation:
    """Unscale the gradients of a scaled loss, skip overflowing steps, adapt the scale.

    The incoming updates are the gradients of ``S * loss`` (see `scale_loss`), where
    ``S = state.scale``. They are divided by ``S`` (in float32, or float64 for float64
    leaves) and rounded back to their own dtype; if every element is finite, ``inner``
    runs on them, otherwise the step is skipped: zero updates, ``inner``'s state kept,
    and the scale backs off. After ``growth_interval`` finite steps in a row the scale
    grows. At step ``t``, with ``n`` the count of finite steps since the last change::

        h_t = g_t / S_{t-1}
        finite_t = all(isfinite(h_t))
        if finite_t:
            u_t, s_t = inner(h_t, s_{t-1})
            n_t = n_{t-1} + 1
            S_t, n_t = (min(growth_factor * S_{t-1}, max_scale), 0)  if n_t >= growth_interval
                       else (S_{t-1}, n_t)
        else:
            u_t, s_t = 0, s_{t-1}
            S_t, n_t = max(backoff_factor * S_{t-1}, min_scale), 0

    As in PyTorch's ``GradScaler`` and jmp, the scale grows right after the
    ``growth_interval``-th finite step (Flax's ``DynamicScale`` grows one step later);
    a step that overflows even at ``min_scale`` is still skipped (no give-up, unlike
    `apply_if_finite`: watch ``total_notfinite``). ``inner`` sees the unscaled
    gradients in the incoming dtype, so its updates and state keep the parameters'
    dtypes; with float16 *parameters* the unscaled gradients are rounded to float16
    once (values below float16's smallest subnormal, about 6e-8, become 0 there), so
    prefer float32 master parameters cast to float16 inside the loss, whose gradients
    arrive in float32.

    Args:
        inner: The optimizer (or any transformation) to run on the unscaled gradients.
        initial_scale: The first loss scale, in ``[min_scale, max_scale]``.
        growth_interval: An integer ``>= 1``: finite steps in a row before the scale grows.
        growth_factor: A number ``>= 1`` multiplying the scale when it grows.
        backoff_factor: A number in ``(0, 1]`` multiplying the scale after an overflow.
        min_scale: The smallest scale, a finite number ``> 0``.
        max_scale: The largest scale, a finite float32 number ``>= min_scale``.

    Returns:
        A `GradientTransformation` with state `DynamicLossScaleState(scale, good_steps,
        last_finite, total_notfinite, inner_state)`; read the scale with `loss_scale`.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> tx = gradchain.dynamic_loss_scaling(gradchain.sgd(0.1), 1024.0)
        >>> params = jnp.array([1.0, -2.0])
        >>> state = tx.init(params)
        >>> grads = jax.grad(lambda p: gradchain.scale_loss(jnp.sum(p**2), state))(params)
        >>> grads  # gradients of the scaled loss
        Array([ 2048., -4096.], dtype=float32)
        >>> updates, state = tx.update(grads, state, params)
        >>> updates
        Array([-0.2,  0.4], dtype=float32)
        >>> updates, state = tx.update(grads * jnp.inf, state, params)  # overflow: skipped
        >>> updates, gradchain.loss_scale(state), int(state.total_notfinite)
        (Array([0., 0.], dtype=float32), Array(512., dtype=float32), 1)

    References:
        Micikevicius et al., "Mixed Precision Training", ICLR 2018.
    """
    inner = as_transformation(_FN, "inner", inner)
    for name, value in (("initial_scale", initial_scale), ("min_scale", min_scale), ("max_scale", max_scale)):
        _check_finite_scale(name, value)
    check_scalar(_FN, "growth_interval", growth_interval, lo=1, integer=True)
    check_scalar(_FN, "growth_factor", growth_factor, lo=1.0, allow_inf=True)
    _check_finite_scale("growth_factor", growth_factor)
    check_scalar(_FN, "backoff_factor", backoff_factor, lo=0.0, hi=1.0, lo_open=True)
    lo, init, hi = (concrete_scalar(v) for v in (min_scale, initial_scale, max_scale))
    if lo is not None and hi is not None and hi < lo:
        raise ValueError(f"{_FN}: `max_scale` must be >= `min_scale` ({min_scale!r}), got {max_scale!r}.")
    if init is not None and ((lo is not None and init < lo) or (hi is not None and init > hi)):
        raise ValueError(
            f"{_FN}: `initial_scale` must be in [`min_scale`, `max_scale`] = "
            f"[{min_scale!r}, {max_scale!r}], got {initial_scale!r}."
        )
    f32 = jnp.float32
    interval = (
        growth_interval
        if isinstance(growth_interval, int)
        else jnp.asarray(growth_interval).astype(jnp.int32)
    )

    def init_fn(params):
        return DynamicLossScaleState(
            scale=jnp.asarray(initial_scale).astype(f32),
            good_steps=zero_count(),
            last_finite=jnp.ones([], jnp.bool_),
            total_notfinite=zero_count(),
            inner_state=inner.init(params),
        )

    def unscale(g, scale):
        dt = compute_dtype(g.dtype)
        return (g.astype(dt) / scale.astype(dt)).astype(g.dtype)

    def update_fn(updates, state, params=None, **extra_args):
        check_floating("dynamic_loss_scaling", updates)
        scale = jnp.asarray(state.scale)
        # The finiteness check reads the unscaled values without storing them; the taken
        # branch unscales again inside the inner update's own loops (so the unscaled
        # gradients are never materialized in memory).
        finite = all_finite(jax.tree.map(lambda g: unscale(g, scale), updates))

        def apply(inner_state):
            unscaled = jax.tree.map(lambda g: unscale(g, scale), updates)
            return inner.update(unscaled, inner_state, params, **extra_args)

        def skip(inner_state):
            return jax.tree.map(jnp.zeros_like, updates), inner_state

        updates, inner_state = cond(finite, apply, skip, state.inner_state)
        good = jnp.where(finite, safe_increment(state.good_steps), zero_count())
        grow = good >= interval
        grown = jnp.minimum(scale * hp(growth_factor, f32), hp(max_scale, f32))
        backed_off = jnp.maximum(scale * hp(backoff_factor, f32), hp(min_scale, f32))
        new_scale = jnp.where(finite, jnp.where(grow, grown, scale), backed_off)
        return updates, DynamicLossScaleState(
            scale=new_scale.astype(f32),
            good_steps=jnp.where(grow, zero_count(), good),
            last_finite=finite,
            total_notfinite=jnp.where(finite, state.total_notfinite, safe_increment(state.total_notfinite)),
            inner_state=inner_state,
        )

    return GradientTransformation(init_fn, update_fn)


def _find_state(fn: str, state: Any) -> DynamicLossScaleState:
    found = [s for _, s in find_states(state, DynamicLossScaleState)]
    if len(found) != 1:
        what = "no DynamicLossScaleState" if not found else f"{len(found)} DynamicLossScaleStates"
        raise ValueError(
            f"{fn}: `state` must hold exactly one DynamicLossScaleState, got {what} in a "
            f"{type(state).__name__}; pass the state of an optimizer built with "
            "`gradchain.dynamic_loss_scaling(...)`"
            + ("." if not found else ", or the one DynamicLossScaleState you mean.")
        )
    return found[0]


def loss_scale(state: Any) -> jax.Array:
    """The current loss scale ``S`` held in an optimizer state.

    Args:
        state: A `DynamicLossScaleState`, or any state containing exactly one (a
            `chain`/`named_chain` state, or a ``flax.nnx.Optimizer``'s ``opt_state``).

    Returns:
        A float32 scalar array.

    Raises:
        ValueError: If ``state`` holds no `DynamicLossScaleState`, or several.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.chain(gradchain.dynamic_loss_scaling(gradchain.sgd(0.1), 256.0))
        >>> gradchain.loss_scale(tx.init(jnp.zeros(2)))
        Array(256., dtype=float32)
    """
    return jnp.asarray(unwrap_variable(_find_state("loss_scale", state).scale))


def scale_loss(loss: Any, state: Any) -> jax.Array:
    """Multiply ``loss`` by the loss scale held in ``state``: ``S * loss``.

    Differentiate the result and pass the gradients to the `dynamic_loss_scaling`
    transformation whose state this is; it divides them by the same ``S``. The
    product is formed in float32 (float64 for a float64 loss) and returned in the
    loss's dtype; compute the loss in float32 if ``S * loss`` might exceed 65504.

    Args:
        loss: A scalar (or any array) of a floating dtype.
        state: A `DynamicLossScaleState`, or any state containing exactly one.

    Returns:
        ``S * loss`` with the dtype of ``loss``.

    Raises:
        ValueError: If ``state`` holds no `DynamicLossScaleState`, or several.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> state = gradchain.dynamic_loss_scaling(gradchain.sgd(0.1), 8.0).init(jnp.zeros(2))
        >>> gradchain.scale_loss(jnp.asarray(0.5, jnp.float16), state)
        Array(4., dtype=float16)
    """
    scale = jnp.asarray(unwrap_variable(_find_state("scale_loss", state).scale))
    loss = jnp.asarray(loss)
    dt = compute_dtype(loss.dtype)
    return (loss.astype(dt) * scale.astype(dt)).astype(loss.dtype)


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
    inner = as_transformation("apply_if_finite", "inner", inner)
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

        updates, inner_state = cond(apply, do_update, skip, state.inner_state)
        total = jnp.where(finite, state.total_notfinite, safe_increment(state.total_notfinite))
        return updates, ApplyIfFiniteState(notfinite_count, finite, total, inner_state)

    return GradientTransformation(init_fn, update_fn)
