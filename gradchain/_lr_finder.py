"""Learning-rate finder: short training runs at many rates, as one vmapped program.

Because a gradchain transformation can be built from a traced hyperparameter, a
whole sweep is ``jax.vmap`` over the learning rate of a ``lax.scan`` over the training
steps, compiled once by ``jax.jit``: the runs advance in lockstep, batched, instead of
one after another.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._base import GradientTransformation
from gradchain._numerics import is_tracer
from gradchain._transforms.scaling import scale_by_learning_rate
from gradchain._update import apply_updates
from gradchain._validate import check_positive

__all__ = ["LRFinderResult", "lr_finder"]


class LRFinderResult(NamedTuple):
    """What `lr_finder` returns.

    Attributes:
        learning_rates: ``[n_rates]`` float32, the rates tried, in the order given.
        losses: ``[n_rates, num_steps]``, ``losses[i, t]`` is the loss of run ``i``
            at step ``t``, measured on the parameters *before* update ``t`` (the loss
            whose gradient that update follows); ``losses[i, 0]`` is the initial loss.
        suggested_lr: float32 scalar, the suggested rate (see `lr_finder`), NaN when
            every run diverged.

    Examples:
        >>> import gradchain
        >>> gradchain.LRFinderResult._fields
        ('learning_rates', 'losses', 'suggested_lr')
    """

    learning_rates: jax.Array
    losses: jax.Array
    suggested_lr: jax.Array


def _default_optimizer(learning_rate) -> GradientTransformation:
    """Plain gradient descent: ``u = -learning_rate * g`` (what ``sgd(lr)`` does)."""
    return scale_by_learning_rate(learning_rate)


def _suggest(lrs: jax.Array, losses: jax.Array, safety_factor) -> jax.Array:
    """The documented rule: best smoothed final loss among non-diverged runs, / safety."""
    num_steps = losses.shape[1]
    tail = max(1, num_steps // 10)
    final = jnp.mean(losses[:, num_steps - tail :], axis=1)
    ok = jnp.logical_and(jnp.all(jnp.isfinite(losses), axis=1), final < losses[:, 0])
    score = jnp.where(ok, final, jnp.inf)
    best = jnp.argmin(score)
    lr = lrs[best] / jnp.asarray(safety_factor, lrs.dtype)
    return jnp.where(jnp.any(ok), lr, jnp.asarray(jnp.nan, lrs.dtype))


def _build(loss_fn, optimizer, num_steps, per_step_data):
    def run(lr, params, data):
        tx = optimizer(lr)

        def step(carry, batch):
            p, s = carry
            loss, g = jax.value_and_grad(loss_fn)(p, batch)
            u, s = tx.update(g, s, p)
            return (apply_updates(p, u), s), loss

        carry = (params, tx.init(params))
        if per_step_data:
            _, losses = jax.lax.scan(step, carry, data)
        else:
            _, losses = jax.lax.scan(lambda c, _: step(c, data), carry, None, length=num_steps)
        return losses

    def sweep(lrs, params, data, safety_factor):
        losses = jax.vmap(run, in_axes=(0, None, None))(lrs, params, data)
        return losses, _suggest(lrs, losses, safety_factor)

    return jax.jit(sweep)


_cached_build = functools.lru_cache(maxsize=32)(_build)


def lr_finder(
    loss_fn: Callable[[Any, Any], jax.Array],
    params: Any,
    data: Any,
    learning_rates,
    *,
    optimizer: Callable[[Any], GradientTransformation] | None = None,
    num_steps: int | None = None,
    per_step_data: bool = False,
    safety_factor=10.0,
) -> LRFinderResult:
    """Train one short run per learning rate, all at once, and suggest a rate.

    Every run starts from ``params`` and takes ``num_steps`` steps of
    ``optimizer(lr)``; the runs are ``jax.vmap``-ed over the (traced) learning rate and
    each is a ``lax.scan`` over steps, all in one ``jax.jit`` program. The compiled
    program is cached per ``(loss_fn, optimizer, num_steps, per_step_data)``, so pass
    the same function objects (not fresh lambdas) to reuse it.

    Suggestion rule, with ``k = max(1, num_steps // 10)``::

        final_i     = mean(losses[i, -k:])                      (smoothed final loss)
        diverged_i  = any(not finite(losses[i]))  or  not (final_i < losses[i, 0])
        i*          = argmin_{i not diverged} final_i
        suggested   = learning_rates[i*] / safety_factor        (NaN if all diverged)

    The rate with the lowest final loss of a short run tends to sit near the edge of
    stability; dividing by ``safety_factor`` (10 by default, as for fastai's
    ``lr_min``) leaves a margin for longer training. Pass ``safety_factor=1.0`` to get
    the best rate of the sweep itself.

    Args:
        loss_fn: ``loss_fn(params, batch) -> scalar loss``, differentiable in
            ``params``.
        params: The initial parameters (a pytree of float arrays).
        data: One batch (a pytree) used at every step, or with ``per_step_data=True``
            a pytree whose leaves have a leading axis of length ``num_steps``, one
            batch per step.
        learning_rates: A 1-D sequence of rates ``>= 0`` (e.g. ``np.logspace(-4, 0, 16)``).
        optimizer: ``optimizer(lr) -> GradientTransformation``, where ``lr`` is a traced
            float32 scalar (e.g. ``lambda lr: gradchain.adam(lr)``). Default: plain
            gradient descent, ``gradchain.scale_by_learning_rate(lr)``.
        num_steps: Steps per run, an int ``>= 1`` (default 100); with
            ``per_step_data`` it defaults to (and must equal) the data's leading axis.
        per_step_data: Whether ``data`` holds one batch per step (scanned over).
        safety_factor: The best rate is divided by it, ``> 0``.

    Returns:
        `LRFinderResult(learning_rates, losses, suggested_lr)`.

    Examples:
        >>> import jax.numpy as jnp, numpy as np, gradchain
        >>> x = jnp.linspace(-1.0, 1.0, 32)
        >>> data = (x, 3.0 * x + 1.0)
        >>> def loss_fn(p, batch):
        ...     xb, yb = batch
        ...     return jnp.mean((p["w"] * xb + p["b"] - yb) ** 2)
        >>> params = {"w": jnp.zeros([]), "b": jnp.zeros([])}
        >>> res = gradchain.lr_finder(loss_fn, params, data, [0.01, 0.1, 1.0, 10.0], num_steps=50)
        >>> res.losses.shape
        (4, 50)
        >>> bool(jnp.isfinite(res.losses[3]).all())  # lr = 10 diverges
        False
        >>> [round(float(v), 3) for v in res.losses[:, -1]]  # lr = 1 oscillates in b
        [1.727, 0.002, 1.0, nan]
        >>> round(float(res.suggested_lr), 6)  # 0.1 / safety_factor
        0.01
    """
    if not callable(loss_fn):
        raise TypeError(f"lr_finder: `loss_fn` must be callable, got {loss_fn!r}.")
    if optimizer is None:
        optimizer = _default_optimizer
    elif not callable(optimizer):
        raise TypeError(
            f"lr_finder: `optimizer` must be a function from a learning rate to a "
            f"GradientTransformation, got {optimizer!r}."
        )
    check_positive("lr_finder", "safety_factor", safety_factor)
    lrs = (
        np.asarray(learning_rates, dtype=np.float64)
        if not isinstance(learning_rates, jax.Array)
        else learning_rates
    )
    if lrs.ndim != 1 or lrs.shape[0] == 0:
        raise ValueError(
            f"lr_finder: `learning_rates` must be a non-empty 1-D sequence, got shape {lrs.shape}."
        )
    if not is_tracer(learning_rates) and (
        np.any(~np.isfinite(np.asarray(lrs))) or np.any(np.asarray(lrs) < 0)
    ):
        raise ValueError(f"lr_finder: `learning_rates` must be finite and >= 0, got {np.asarray(lrs)!r}.")
    if per_step_data:
        lengths = {np.shape(x)[0] if np.ndim(x) else None for x in jax.tree.leaves(data)}
        if len(lengths) != 1 or None in lengths:
            raise ValueError(
                "lr_finder: with `per_step_data=True` every leaf of `data` must have the same "
                f"leading (step) axis, got leading sizes {sorted(map(str, lengths))}."
            )
        (length,) = lengths
        if num_steps is not None and num_steps != length:
            raise ValueError(
                f"lr_finder: `num_steps` ({num_steps!r}) must equal the leading axis of `data` "
                f"({length}) with `per_step_data=True`."
            )
        num_steps = length
    elif num_steps is None:
        num_steps = 100
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
        raise ValueError(f"lr_finder: `num_steps` must be an int >= 1, got {num_steps!r}.")
    num_steps = int(num_steps)

    try:
        sweep = _cached_build(loss_fn, optimizer, num_steps, bool(per_step_data))
    except TypeError:  # unhashable loss_fn / optimizer: build without the cache
        sweep = _build(loss_fn, optimizer, num_steps, bool(per_step_data))
    lrs = jnp.asarray(lrs, jnp.float32)
    sf = jnp.asarray(safety_factor, jnp.float32)
    losses, suggested = sweep(lrs, params, data, sf)
    return LRFinderResult(learning_rates=lrs, losses=losses, suggested_lr=suggested)
