"""Averages of the parameters along the trajectory: an exponential moving average
(`ema_params`, with timm's warm-up) and stochastic weight averaging (`swa_params`), and
`averaged_params`, which reads the average out of any optimizer state.

Both are chained LAST, after the learning rate: ``chain(adamw(1e-3), ema_params(0.999))``.
There they see the final update ``u`` and the parameters ``p`` it is added to, so the
parameters they average are exactly ``apply_updates(p, u)``, whatever the optimizer
before them (its clipping, schedules, masks); they pass the updates through unchanged,
so the optimizer's own state is not nested one level deeper, as a wrapper would nest
it (checkpoints of the plain optimizer keep their layout, plus one member). That is
what Keras (``use_ema``) and timm (``ModelEmaV3``, applied after ``optimizer.step()``)
do, folded into the step. Anything chained after them that changes the updates, or
updates applied with a different rule than `apply_updates`, would desynchronise the
average from the parameters.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain._base import GradientTransformation
from gradchain._kit import Compute, ema_update, map_leaves, store
from gradchain._numerics import as_leaf, compute_dtype, leaf_dtype, safe_increment, zero_count
from gradchain._tree import find_states, unwrap_variable
from gradchain._update import apply_updates
from gradchain._validate import (
    canonical_dtype,
    check_flag,
    check_positive,
    check_scalar,
    check_tree_match,
    concrete_scalar,
    require_params,
)

__all__ = ["AveragedParamsState", "averaged_params", "ema_params", "swa_params"]


class AveragedParamsState(NamedTuple):
    """State of `ema_params` and `swa_params` (one parameter copy per parameter)."""

    count: jax.Array  # int32 scalar: optimizer steps seen
    n_averaged: jax.Array  # int32 scalar: parameter sets averaged so far (torch's `n_averaged`)
    average: Any  # per-param tree: the average, `average_dtype` (at least float32) or the param's


def _average_dtype(p, average_dtype):
    return compute_dtype(leaf_dtype(p)) if average_dtype is None else average_dtype


def _init_average(params, average_dtype):
    """A copy of the parameters in the average's dtype (a new buffer, the parameters' sharding)."""

    def leaf(p):
        p = as_leaf(p)
        dt = _average_dtype(p, average_dtype)
        return jnp.zeros_like(p, dtype=dt) + p.astype(dt)

    return jax.tree.map(leaf, params)


def _int_arg(fn: str, name: str, value, lo: int):
    """An integer hyperparameter ``>= lo``: a Python int, or an int32 array/tracer."""
    check_scalar(fn, name, value, lo=lo, integer=True)
    x = concrete_scalar(value)
    return int(x) if x is not None else jnp.asarray(value).astype(jnp.int32)


def _averaging(fn: str, average_dtype, rule) -> GradientTransformation:
    """Average ``apply_updates(params, updates)`` into the state.

    ``rule(t, n) -> (take, copy, combine)`` at step ``t`` (1-based) with ``n`` sets
    averaged so far: whether to average this step's parameters, whether to copy them
    instead (the first set, or a zero decay), and ``combine(a, x, c)``, the new average
    of ``a`` and the parameters ``x`` (both cast by ``c``, a `Compute`).
    """
    average_dtype = canonical_dtype(fn, "average_dtype", average_dtype)

    def init_fn(params):
        return AveragedParamsState(
            count=zero_count(), n_averaged=zero_count(), average=_init_average(params, average_dtype)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        require_params(fn, params)
        check_tree_match(fn, updates, state.average)
        check_tree_match(fn, updates, params, "`params`")
        count = safe_increment(state.count)
        new_params = apply_updates(params, updates)
        take, copy, combine = rule(count, state.n_averaged)

        def leaf(x, a):
            c = Compute(x, a)
            x, a_ = c(x), c(a)
            new = jnp.where(copy, x, combine(a_, x, c))
            return (store(jnp.where(take, new, a_), a),)

        (average,) = map_leaves(leaf, new_params, state.average)
        n_averaged = jnp.where(take, safe_increment(state.n_averaged), state.n_averaged)
        return updates, AveragedParamsState(count=count, n_averaged=n_averaged, average=average)

    return GradientTransformation(init_fn, update_fn)


def ema_params(
    decay,
    *,
    min_decay=0.0,
    update_after_step=0,
    use_warmup: bool = False,
    warmup_gamma=1.0,
    warmup_power=2 / 3,
    average_dtype: Any = None,
) -> GradientTransformation:
    """An exponential moving average of the parameters (model EMA), chained last.

    ``chain(optimizer, ema_params(decay))``: passes the updates through and keeps the
    average of the parameters after each step, ``x_t = apply_updates(p, u)`` (read it
    with `averaged_params`). With ``s = max(t - update_after_step - 1, 0)`` at step
    ``t = 1, 2, ...``::

        d_t = 0                                                        if s == 0
        d_t = decay                                                    (use_warmup=False)
        d_t = max(min(1 - (1 + s / warmup_gamma)**-warmup_power, decay), min_decay)
                                                                       (use_warmup=True)
        a_t = x_t                                                      if d_t == 0 (a copy)
        a_t = d_t * a_{t-1} + (1 - d_t) * x_t                          otherwise

    with ``a_0`` the initial parameters. The first step copies the parameters (as
    ``torch.optim.swa_utils.AveragedModel`` and timm's ``ModelEmaV3`` do), so the
    average does not start from the initialisation. ``ema_params(decay)`` is
    ``AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))`` updated after
    every ``optimizer.step()``; with the keyword arguments it is timm's
    ``ModelEmaV3(model, decay, min_decay, update_after_step, use_warmup, warmup_gamma,
    warmup_power)`` updated with ``step=t``.

    Memory: one copy of the parameters, in ``average_dtype``: by default the
    parameter's dtype, but float32 for bfloat16/float16 parameters (a bfloat16 average
    cannot move by ``(1 - decay) * (x - a)`` at typical decays: the change rounds
    away). The average is computed in at least float32 and rounded once.

    Args:
        decay: The decay, in ``[0, 1]`` (a number, or a scalar array/tracer).
        min_decay: Lower bound of the warmed-up decay, in ``[0, 1]`` (``use_warmup`` only).
        update_after_step: An integer ``>= 0``: steps ``1 .. update_after_step + 1``
            copy the parameters, averaging starts after them.
        use_warmup: Ramp the decay up as timm's (and @crowsonkb's) power-law warm-up
            does: with the defaults it reaches 0.999 after 31.6K steps.
        warmup_gamma: The warm-up's inverse multiplicative factor, ``> 0``.
        warmup_power: The warm-up's exponent, ``> 0`` (2/3 for long runs, 3/4 for short).
        average_dtype: Storage dtype of the average; ``None``: see above.

    Returns:
        A `GradientTransformation` with state `AveragedParamsState(count, n_averaged,
        average)` whose updates are its input; ``update`` needs ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.chain(gradchain.sgd(1.0), gradchain.ema_params(0.5))
        >>> params = jnp.array([0.0])
        >>> state = tx.init(params)
        >>> for g in [-4.0, -4.0, -4.0]:  # the parameters go 4, 8, 12
        ...     updates, state = tx.update(jnp.array([g]), state, params)
        ...     params = gradchain.apply_updates(params, updates)
        >>> gradchain.averaged_params(state)  # 4, then (4 + 8) / 2, then (6 + 12) / 2
        Array([9.], dtype=float32)

    References:
        Polyak & Juditsky, "Acceleration of Stochastic Approximation by Averaging",
        SIAM J. Control Optim. 1992; ``torch.optim.swa_utils.AveragedModel``; timm's
        ``timm.utils.ModelEmaV3``.
    """
    fn = "ema_params"
    check_scalar(fn, "decay", decay, lo=0.0, hi=1.0)
    check_scalar(fn, "min_decay", min_decay, lo=0.0, hi=1.0)
    after = _int_arg(fn, "update_after_step", update_after_step, 0)
    use_warmup = check_flag(fn, "use_warmup", use_warmup)
    check_positive(fn, "warmup_gamma", warmup_gamma)
    check_positive(fn, "warmup_power", warmup_power)

    def rule(t, n):
        del n
        s = jnp.maximum(t - 1 - after, 0)

        def combine(a, x, c):
            if not use_warmup:
                return ema_update(a, x, decay)
            s_ = c.real(s)
            warm = 1 - (1 + s_ / c.hp(warmup_gamma, real=True)) ** -c.hp(warmup_power, real=True)
            d = jnp.maximum(jnp.minimum(warm, c.hp(decay, real=True)), c.hp(min_decay, real=True))
            return ema_update(a, x, d)

        return jnp.asarray(True), s == 0, combine

    return _averaging(fn, average_dtype, rule)


def swa_params(start_step=0, update_period=1, *, average_dtype: Any = None) -> GradientTransformation:
    """Stochastic weight averaging: the equal average of the parameters, chained last.

    ``chain(optimizer, swa_params(start_step, update_period))``: passes the updates
    through and averages the parameters after step ``t = 1, 2, ...``,
    ``x_t = apply_updates(p, u)``, on the steps with ``t >= start_step`` and
    ``(t - start_step) mod update_period == 0`` (read it with `averaged_params`). With
    ``n`` the number of parameter sets averaged before, on those steps::

        a = x_t                         if n == 0
        a = a + (x_t - a) / (n + 1)     otherwise
        n = n + 1

    and ``a`` is unchanged on the others (the initial parameters until the first).
    This is ``torch.optim.swa_utils.AveragedModel(model)`` (its default average) with
    ``update_parameters(model)`` called after those steps, as torch's SWA recipes do
    from the SWA start on (once per epoch: ``update_period`` = steps per epoch).

    Memory: one copy of the parameters, in ``average_dtype`` (``None``: the
    parameter's dtype, float32 for bfloat16/float16 parameters, as in `ema_params`).

    Args:
        start_step: An integer ``>= 0``, the first step whose parameters are averaged
            (0 and 1 both start at the first step when ``update_period`` is 1).
        update_period: An integer ``>= 1``: steps between two averaged steps.
        average_dtype: Storage dtype of the average; ``None``: see above.

    Returns:
        A `GradientTransformation` with state `AveragedParamsState(count, n_averaged,
        average)` whose updates are its input; ``update`` needs ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.chain(gradchain.sgd(1.0), gradchain.swa_params(start_step=2))
        >>> params = jnp.array([0.0])
        >>> state = tx.init(params)
        >>> for _ in range(4):  # the parameters go 1, 2, 3, 4: steps 2, 3 and 4 are averaged
        ...     updates, state = tx.update(jnp.array([-1.0]), state, params)
        ...     params = gradchain.apply_updates(params, updates)
        >>> gradchain.averaged_params(state), int(state[-1].n_averaged)
        (Array([3.], dtype=float32), 3)

    References:
        Izmailov et al., "Averaging Weights Leads to Wider Optima and Better
        Generalization", UAI 2018; ``torch.optim.swa_utils.AveragedModel``.
    """
    fn = "swa_params"
    start = _int_arg(fn, "start_step", start_step, 0)
    period = _int_arg(fn, "update_period", update_period, 1)

    def rule(t, n):
        take = (t >= start) & (jnp.mod(t - start, period) == 0)

        def combine(a, x, c):
            return a + (x - a) / (c.real(n) + 1)

        return take, n == 0, combine

    return _averaging(fn, average_dtype, rule)


def averaged_params(state: Any, params: Any = None) -> Any:
    """The averaged parameters kept by `ema_params` or `swa_params` inside an optimizer state.

    Finds the one `AveragedParamsState` inside ``state`` (a chain's, a wrapper's, an
    ``nnx.Optimizer``'s ``opt_state``), as ``optax.contrib.schedule_free_eval_params``
    reads the schedule-free state::

        eval_params = averaged_params(opt_state, params)

    Args:
        state: An optimizer state holding exactly one `AveragedParamsState` (pass the
            member's state, e.g. ``state[-1]``, when there are several).
        params: Optional, the current parameters: the average is then returned in their
            dtypes (bfloat16 parameters get their float32 average rounded once), and
            leaves that the average leaves out (masked by `masked`/`partition`) are
            taken from ``params``.

    Returns:
        The average, a tree with the parameters' structure (before the first
        averaged step: the initial parameters).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.chain(gradchain.sgd(1.0), gradchain.swa_params())
        >>> p = jnp.array([1.5], jnp.bfloat16)
        >>> state = tx.init(p)
        >>> gradchain.averaged_params(state), gradchain.averaged_params(state, p)
        (Array([1.5], dtype=float32), Array([1.5], dtype=bfloat16))
    """
    fn = "averaged_params"
    found = find_states(state, AveragedParamsState)
    if not found:
        raise ValueError(
            f"{fn}: no AveragedParamsState in `state` (got {type(state).__name__}); pass the state "
            "of a chain that ends with `gradchain.ema_params(...)` or `gradchain.swa_params(...)`."
        )
    if len(found) > 1:
        paths = ", ".join(jax.tree_util.keystr(path) or "(root)" for path, _ in found)
        raise ValueError(
            f"{fn}: `state` holds {len(found)} AveragedParamsState (at {paths}); pass the state of "
            "the one to read, e.g. `state[-1]`."
        )
    is_variable = lambda x: hasattr(x, "get_value")  # a flax.nnx Variable: read its array
    average = jax.tree.map(unwrap_variable, found[0][1].average, is_leaf=is_variable)
    if params is None:
        return average
    params = jax.tree.map(unwrap_variable, params, is_leaf=is_variable)
    treedef = jax.tree.structure(params)
    try:
        subs = treedef.flatten_up_to(average)
    except (ValueError, TypeError):
        raise ValueError(
            f"{fn}: the average does not have the structure of `params`.\n"
            f"  average: {jax.tree.structure(average)}\n  params:  {treedef}"
        ) from None
    out = []
    for p, a in zip(jax.tree.leaves(params), subs):
        if not jax.tree.leaves(a):  # left out by a mask: the parameter itself
            out.append(p)
            continue
        if jnp.shape(a) != jnp.shape(p):
            raise ValueError(
                f"{fn}: the average holds shape {jnp.shape(a)} where `params` has {jnp.shape(p)}."
            )
        out.append(jnp.asarray(a).astype(leaf_dtype(p)))
    return treedef.unflatten(out)
