"""Cautious updates: drop the coordinates of an update that disagree in sign with the gradient
(`cautious`), and weight decay applied only where it agrees with the update
(`add_cautious_weight_decay`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain._base import GradientTransformation, ScalarOrSchedule, as_transformation
from gradchain._kit import Compute, map_leaves, store
from gradchain._masking import masked
from gradchain._numerics import hp, promote, safe_increment, zero_count
from gradchain._validate import (
    check_flag,
    check_floating,
    check_nonnegative,
    check_positive,
    check_tree_match,
    require_params,
    schedule_value,
)

__all__ = ["AddCautiousWeightDecayState", "add_cautious_weight_decay", "cautious"]

_RESCALES = ("leaf", "global", "none")


def _parts(x: jax.Array) -> jax.Array:
    """A real view of ``x``: complex leaves as their real and imaginary parts (as torch's
    ``view_as_real``, so each part is masked on its own)."""
    return jnp.stack([x.real, x.imag]) if jnp.iscomplexobj(x) else x


def _unparts(x: jax.Array, like: jax.Array) -> jax.Array:
    return jax.lax.complex(x[0], x[1]) if jnp.iscomplexobj(like) else x


def cautious(
    inner: GradientTransformation, eps=1e-3, *, rescale: str = "leaf", descent: bool = True
) -> GradientTransformation:
    """Cautious optimizer: zero the update's coordinates that disagree with the gradient.

    With ``u = inner(g)``, a mask keeps the coordinates where ``u`` moves along the
    descent direction ``-g`` and rescales the survivors by the fraction kept::

        keep = (u * g < 0)                     (descent=True: `inner` is an optimizer)
        keep = (u * g > 0)                     (descent=False: a block before the learning rate)
        r = max(mean(keep), eps)               (the mean over each leaf, or over all leaves)
        u' = u * keep / r

    ``g`` is what `cautious` receives (the gradient, when it comes first in a chain).
    An optimizer's updates are negated (``-lr * ...``), so by default agreement reads
    ``u * g < 0``: ``cautious(gradchain.adamw(1e-3))``. Wrapped around a building block
    before the learning rate, ``descent=False`` compares ``u`` with ``g`` directly, as
    timm does (it masks AdamW's first moment, Lion's sign, ADOPT's momentum with the
    pre-learning-rate update): ``chain(cautious(scale_by_adam(), descent=False),
    add_decayed_weights(wd), scale_by_learning_rate(lr))`` is timm's
    ``AdamW(..., caution=True)`` (its decoupled decay is not masked). Complex leaves are
    masked part by part (real and imaginary), as timm's ``view_as_real`` does.

    Args:
        inner: The transformation whose updates are masked (an optimizer, or a block).
        eps: Floor of the kept fraction, ``> 0``: a leaf where almost everything is
            masked is scaled up at most ``1 / eps`` times (timm's 1e-3).
        rescale: ``'leaf'`` (timm's, the authors' default: each parameter tensor by its
            own kept fraction), ``'global'`` (one fraction over all leaves) or
            ``'none'`` (mask only).
        descent: Whether ``inner`` returns descent steps (see above).

    Returns:
        A `GradientTransformation` whose state is ``inner``'s own (a checkpoint of the
        plain optimizer loads into the cautious one).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.cautious(gradchain.sgd(1.0, momentum=0.9))
        >>> state = tx.init(jnp.zeros(4))
        >>> _, state = tx.update(jnp.array([1.0, 1.0, 1.0, 1.0]), state)
        >>> u, _ = tx.update(jnp.array([1.0, -0.5, 1.0, -0.5]), state)  # momentum 1.9, 0.4, ...
        >>> u  # the step -0.4 would go up the gradient -0.5: dropped; the rest doubled (half kept)
        Array([-3.8,  0. , -3.8,  0. ], dtype=float32)

    References:
        Liang et al., "Cautious Optimizers: Improving Training with One Line of Code", 2024
        (arXiv:2411.16085); timm's ``caution=True`` optimizers.
    """
    fn = "cautious"
    inner = as_transformation(fn, "inner", inner)
    check_positive(fn, "eps", eps)
    descent = check_flag(fn, "descent", descent)
    if not isinstance(rescale, str) or rescale not in _RESCALES:
        options = " or ".join(repr(r) for r in _RESCALES)
        err = TypeError if not isinstance(rescale, str) else ValueError
        raise err(f"{fn}: `rescale` must be {options}, got {rescale!r}.")

    def update_fn(updates, state, params=None, **extra_args):
        check_floating(fn, updates)
        new_updates, new_state = inner.update(updates, state, params, **extra_args)
        check_tree_match(fn, new_updates, updates, "the incoming updates", floating=False)

        def mask_leaf(u, g):
            c = Compute(u, g)
            x, y = _parts(c(u)), _parts(c(g))
            agree = jnp.sign(x) * jnp.sign(y)  # (the signs: x * y could underflow to 0)
            keep = agree < 0 if descent else agree > 0
            kept = jnp.sum(keep, dtype=jnp.int32).astype(c.rdt)
            # a NaN update passes, for `apply_if_finite` or the user to see
            return jnp.where(keep | jnp.isnan(x), x, jnp.zeros_like(x)), kept, max(x.size, 1)

        kept_u, kept, sizes = map_leaves(mask_leaf, new_updates, updates)
        frac = None
        if rescale == "global" and jax.tree.leaves(kept):
            dt = promote(*[k.dtype for k in jax.tree.leaves(kept)])
            total = sum(jnp.sum(k.astype(dt)) for k in jax.tree.leaves(kept))
            frac = jnp.asarray(total) / sum(jax.tree.leaves(sizes))

        def scale_leaf(u, x, k, n):
            y = x
            if rescale != "none":
                f = k / n if frac is None else frac.astype(k.dtype)
                y = x / jnp.maximum(f, hp(eps, f.dtype))
            return (store(_unparts(y, u), u),)

        (out,) = map_leaves(scale_leaf, new_updates, kept_u, kept, sizes)
        return out, new_state

    return GradientTransformation(inner.init, update_fn)


class AddCautiousWeightDecayState(NamedTuple):
    """State of `add_cautious_weight_decay`."""

    count: jax.Array  # int32 scalar: steps taken (the argument of a `weight_decay` schedule)


def add_cautious_weight_decay(
    weight_decay: ScalarOrSchedule = 0.0, mask: Any | Callable[[Any], Any] | None = None
) -> GradientTransformation:
    """Cautious weight decay: add ``weight_decay * p`` only where it agrees with the update.

    Placed like decoupled weight decay, after the optimizer's scaling and before the
    learning rate (``chain(scale_by_adam(), add_cautious_weight_decay(wd),
    scale_by_learning_rate(lr))``), it decays a coordinate only where the update already
    moves the parameter towards zero. Update rule, at step ``t = count`` (0 first)::

        u_t = g_t + wd_t * 1[g_t * p_t >= 0] * p_t     (wd_t = weight_decay, or weight_decay(t))

    with ``g`` the incoming (not yet negated) update, so the step ``-lr * u`` shrinks
    ``p`` only where ``-lr * g`` does too. Complex leaves are tested part by part.

    Args:
        weight_decay: A number ``>= 0``, a scalar array/tracer, or a schedule.
        mask: ``None`` (every leaf), a pytree of bools with the structure of the params
            (True where to decay), or a callable returning one (see `masked`).

    Returns:
        A `GradientTransformation` with state `AddCautiousWeightDecayState(count)` (inside
        a `MaskedState` when ``mask`` is given); ``update`` needs ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.add_cautious_weight_decay(0.1)
        >>> p = jnp.array([1.0, 1.0, -2.0])
        >>> tx.update(jnp.array([0.5, -0.5, -0.5]), tx.init(p), p)[0]  # the second keeps its update
        Array([ 0.6, -0.5, -0.7], dtype=float32)

    References:
        Chen et al., "Cautious Weight Decay", 2025 (arXiv:2510.12402), Algorithm 1.
    """
    fn = "add_cautious_weight_decay"
    check_nonnegative(fn, "weight_decay", weight_decay, allow_schedule=True)

    def init_fn(params):
        del params
        return AddCautiousWeightDecayState(count=zero_count())

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        new_state = AddCautiousWeightDecayState(count=safe_increment(state.count))
        if not jax.tree.leaves(updates):
            return updates, new_state
        require_params(fn, params)
        check_tree_match(fn, updates, params, "`params`")
        if (
            isinstance(weight_decay, (int, float))
            and not isinstance(weight_decay, bool)
            and weight_decay == 0
        ):
            return updates, new_state
        wd = (
            schedule_value(fn, "weight_decay", weight_decay(state.count))
            if callable(weight_decay)
            else weight_decay
        )

        def leaf(g, p):
            c = Compute(g, p)
            x, q = _parts(c(g)), _parts(c(p))
            y = x + c.hp(wd, real=True) * jnp.where(jnp.sign(x) * jnp.sign(q) >= 0, q, jnp.zeros_like(q))
            return (store(_unparts(y, g), g),)

        (out,) = map_leaves(leaf, updates, params)
        return out, new_state

    tx = GradientTransformation(init_fn, update_fn)
    return tx if mask is None else masked(tx, mask)
