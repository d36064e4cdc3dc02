"""Monitoring: record gradient statistics in the state, pass the updates unchanged.

`gradient_health` measures the updates it sees; `health_report` reads its state back
as Python numbers for logging, from the transformation's own state or from any
`chain`/`named_chain` (or ``flax.nnx.Optimizer``) state that contains it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain._base import GradientTransformation
from gradchain._numerics import compute_dtype, hp, safe_increment, zero_count
from gradchain._tree import find_states, global_norm, stats_dtype, unwrap_variable
from gradchain._validate import (
    check_decay,
    check_floating,
    check_int,
    check_nonnegative,
    check_positive,
    require_params,
)

__all__ = ["GradientHealthState", "gradient_health", "health_report"]


class GradientHealthState(NamedTuple):
    """State of `gradient_health`: what it measured at the last step (and counters).

    Read it with `health_report`, or field by field.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.gradient_health()
        >>> p = jnp.ones(4)
        >>> _, state = tx.update(jnp.full(4, 0.5), tx.init(p), p)
        >>> float(state.grad_norm), float(state.update_param_ratio), bool(state.exploding)
        (1.0, 0.5, False)
    """

    count: jax.Array  # int32 scalar: steps taken
    grad_norm: jax.Array  # float32 scalar: global L2 norm of the incoming updates
    max_abs: jax.Array  # float32 scalar: largest absolute element of the incoming updates
    nonfinite_fraction: jax.Array  # float32 scalar: fraction of elements that are NaN or +-inf
    update_param_ratio: jax.Array  # float32 scalar: ||updates|| / ||params||
    avg_norm: jax.Array  # float32 scalar: running average of the finite norms
    exploding: jax.Array  # bool scalar: the last norm was flagged as exploding
    vanishing: jax.Array  # bool scalar: the last norm was flagged as vanishing
    num_exploding: jax.Array  # int32 scalar: steps flagged exploding so far
    num_vanishing: jax.Array  # int32 scalar: steps flagged vanishing so far


def gradient_health(
    explode_factor=10.0,
    vanish_threshold=1e-7,
    decay=0.99,
    *,
    warmup_steps: int = 10,
) -> GradientTransformation:
    """Record the health of the incoming updates in the state; pass them unchanged.

    At step ``t = count + 1``, for incoming updates ``g`` and parameters ``p`` (all
    leaves together, ``N`` elements; statistics in float32, float64 for float64 params)::

        grad_norm          = ||g||_2
        max_abs            = max_i |g_i|
        nonfinite_fraction = #{i : g_i is NaN or +-inf} / N        (0 when N = 0)
        update_param_ratio = ||g||_2 / ||p||_2        (0 if both are 0, inf if only ||p|| is)
        exploding          = not finite(grad_norm)
                             or (t > warmup_steps and grad_norm > explode_factor * avg_{t-1})
        vanishing          = grad_norm < vanish_threshold
        w_t                = max(1 - decay, 1 / t)
        avg_t              = avg_{t-1} + w_t * (grad_norm - avg_{t-1})   if grad_norm is finite
                             avg_{t-1}                                    otherwise
        u_t                = g_t

    ``avg`` is the exact mean of the norms for the first ``1 / (1 - decay)`` steps and
    an exponential moving average after. ``grad_norm`` and ``max_abs`` are NaN or inf
    when some element is (``nonfinite_fraction`` says how many).

    What is measured depends on where it sits in a chain: first, it sees the raw
    gradients (and the ratio is ``||grad|| / ||params||``); last, it sees the final
    updates, and ``update_param_ratio`` is then the relative size of the step actually
    applied (``||Δp|| / ||p||``, typically 1e-4 to 1e-2). Put one at each end of a
    `named_chain` to log both.

    Args:
        explode_factor: A norm above ``explode_factor`` times the running average is
            flagged as exploding (after warm-up); ``> 0``.
        vanish_threshold: A norm below it is flagged as vanishing; ``>= 0``.
        decay: Decay of the running average of the norm, in ``[0, 1)``.
        warmup_steps: Steps before the exploding test starts, a Python int ``>= 0``.

    Returns:
        A `GradientTransformation` with state `GradientHealthState`; ``update`` needs
        ``params``.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.named_chain(("health", gradchain.gradient_health()),
        ...                            ("sgd", gradchain.scale_by_learning_rate(0.1)))
        >>> params = {"w": jnp.array([1.0, 2.0, 2.0])}
        >>> state = tx.init(params)
        >>> _, state = tx.update({"w": jnp.array([0.0, -3.0, 4.0])}, state, params)
        >>> report = gradchain.health_report(state)
        >>> report["grad_norm"], report["max_abs"], report["update_param_ratio"]
        (5.0, 4.0, 1.6666666269302368)
        >>> report["exploding"], report["vanishing"]
        (False, False)
    """
    check_positive("gradient_health", "explode_factor", explode_factor)
    check_nonnegative("gradient_health", "vanish_threshold", vanish_threshold)
    check_decay("gradient_health", "decay", decay)
    check_int("gradient_health", "warmup_steps", warmup_steps, 0)

    def init_fn(params):
        dt = stats_dtype(params)
        zero = jnp.zeros([], dt)
        no = jnp.zeros([], jnp.bool_)
        return GradientHealthState(
            count=zero_count(),
            grad_norm=zero,
            max_abs=zero,
            nonfinite_fraction=zero,
            update_param_ratio=zero,
            avg_norm=zero,
            exploding=no,
            vanishing=no,
            num_exploding=zero_count(),
            num_vanishing=zero_count(),
        )

    def update_fn(updates, state, params=None, **extra_args):
        check_floating("gradient_health", updates)
        del extra_args
        require_params("gradient_health", params)
        dt = state.grad_norm.dtype
        leaves = [jnp.asarray(g) for g in jax.tree.leaves(updates)]
        norm = global_norm(updates).astype(dt)
        p_norm = global_norm(params).astype(dt)
        size = sum(g.size for g in leaves)
        if leaves:
            max_abs = jnp.max(
                jnp.stack(
                    [
                        jnp.abs(g.astype(compute_dtype(g.dtype))).max().astype(dt)
                        if g.size
                        else jnp.zeros([], dt)
                        for g in leaves
                    ]
                )
            )
            bad = sum((jnp.sum(~jnp.isfinite(g)).astype(jnp.int32) for g in leaves), jnp.zeros([], jnp.int32))
            nonfinite = bad.astype(dt) / max(size, 1)
        else:
            max_abs = jnp.zeros([], dt)
            nonfinite = jnp.zeros([], dt)

        safe_p = jnp.where(p_norm > 0, p_norm, jnp.ones_like(p_norm))
        ratio = jnp.where(p_norm > 0, norm / safe_p, jnp.where(norm > 0, jnp.inf, 0.0).astype(dt))

        t = state.count + 1
        finite = jnp.isfinite(norm)
        past = jnp.logical_and(t > warmup_steps, norm > hp(explode_factor, dt) * state.avg_norm)
        exploding = jnp.logical_or(jnp.logical_not(finite), past)
        vanishing = norm < hp(vanish_threshold, dt)
        w = jnp.maximum(1 - hp(decay, dt), 1 / t.astype(dt))
        avg = jnp.where(finite, state.avg_norm + w * (norm - state.avg_norm), state.avg_norm)

        new_state = GradientHealthState(
            count=safe_increment(state.count),
            grad_norm=norm,
            max_abs=max_abs.astype(dt),
            nonfinite_fraction=nonfinite.astype(dt),
            update_param_ratio=ratio.astype(dt),
            avg_norm=avg.astype(dt),
            exploding=exploding,
            vanishing=vanishing,
            num_exploding=jnp.where(exploding, safe_increment(state.num_exploding), state.num_exploding),
            num_vanishing=jnp.where(vanishing, safe_increment(state.num_vanishing), state.num_vanishing),
        )
        return updates, new_state

    return GradientTransformation(init_fn, update_fn)


def _key_name(entry) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def _as_python(name: str, x) -> float | int | bool:
    x = jax.device_get(unwrap_variable(x))
    if jnp.ndim(x) != 0:
        raise ValueError(
            f"health_report: field `{name}` has shape {jnp.shape(x)}, not a scalar; a batched "
            "(vmapped) state must be indexed first, e.g. `jax.tree.map(lambda x: x[0], state)`."
        )
    if jnp.issubdtype(jnp.result_type(x), jnp.bool_):
        return bool(x)
    if jnp.issubdtype(jnp.result_type(x), jnp.integer):
        return int(x)
    return float(x)


def health_report(state: Any) -> dict[str, float | int | bool]:
    """Read `gradient_health` measurements back as Python numbers, for logging.

    ``state`` may be a `GradientHealthState`, or any state containing such states: a
    `chain`/`named_chain` state or the ``opt_state`` of a ``flax.nnx.Optimizer``. With
    one health state inside, the keys are its field names; with several, each key is
    prefixed with where the state sits, e.g. ``"grads/grad_norm"`` for the member
    named ``"grads"`` of a `named_chain` (``"0/grad_norm"`` in a `chain`).

    Args:
        state: An optimizer state holding at least one unbatched `GradientHealthState`.

    Returns:
        A dict from field name to a Python ``float`` (measurements), ``int``
        (``count``, ``num_exploding``, ``num_vanishing``) or ``bool`` (flags).

    Raises:
        ValueError: If ``state`` contains no `GradientHealthState`.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> tx = gradchain.named_chain(("grads", gradchain.gradient_health()),
        ...                            ("sgd", gradchain.scale_by_learning_rate(0.5)),
        ...                            ("step", gradchain.gradient_health()))
        >>> p = jnp.array([3.0, 4.0])
        >>> _, state = tx.update(jnp.array([2.0, 0.0]), tx.init(p), p)
        >>> report = gradchain.health_report(state)
        >>> report["grads/grad_norm"], report["step/grad_norm"], report["step/update_param_ratio"]
        (2.0, 1.0, 0.2)
        >>> report["step/count"]
        1
    """
    found = find_states(state, GradientHealthState)
    if not found:
        raise ValueError(
            f"health_report: no GradientHealthState in `state` (got {type(state).__name__}); "
            "pass the state of a chain that contains `gradchain.gradient_health()`."
        )
    report: dict[str, float | int | bool] = {}
    for path, s in found:
        prefix = "/".join(_key_name(e) for e in path) + "/" if len(found) > 1 else ""
        for name, value in s._asdict().items():
            report[prefix + name] = _as_python(name, value)
    return report
