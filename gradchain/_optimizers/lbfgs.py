"""L-BFGS as a chain: preconditioner, sign flip (or learning rate), line search."""

from __future__ import annotations

from typing import Any

from gradchain._base import GradientTransformation, ScalarOrSchedule, as_transformation, identity
from gradchain._chain import chain
from gradchain._optimizers.common import learning_rate_step, named_errors
from gradchain._transforms.lbfgs import scale_by_lbfgs
from gradchain._transforms.linesearch import scale_by_zoom_linesearch
from gradchain._transforms.scaling import scale

__all__ = ["lbfgs"]

_ZOOM = scale_by_zoom_linesearch(max_linesearch_steps=20, initial_guess_strategy="one")


def lbfgs(
    learning_rate: ScalarOrSchedule | None = None,
    memory_size: int = 10,
    *,
    scale_init_precond: bool = True,
    linesearch: Any = _ZOOM,
) -> GradientTransformation:
    """L-BFGS: ``chain(scale_by_lbfgs(memory_size, ...), scale(-1), linesearch)``.

    See `scale_by_lbfgs` for the quasi-Newton direction and `scale_by_zoom_linesearch` for
    the default line search (20 evaluations, first trial step 1), which needs the extra
    arguments ``value_fn`` (and optionally ``value``, ``grad``) in ``update``. With a
    ``learning_rate``, ``scale_by_learning_rate(learning_rate)`` replaces ``scale(-1)``;
    ``linesearch=None`` uses no line search (the chain then ends with `identity`, so the
    state keeps Optax's three members).

    Args:
        learning_rate: ``None`` (the line search sets the step), or a number ``>= 0``,
            scalar array/tracer or schedule multiplying the direction.
        memory_size: Number of past ``(s, y)`` pairs, an int ``>= 1``.
        scale_init_precond: Scale the initial inverse Hessian (see `scale_by_lbfgs`).
        linesearch: A line-search transformation (gradchain's or Optax's), or ``None``.

    Returns:
        A `GradientTransformation` (a `chain` of three members).

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> f = lambda w: jnp.sum((w - jnp.array([1.0, -2.0])) ** 2)
        >>> tx = gradchain.lbfgs()
        >>> w = jnp.zeros(2); state = tx.init(w)
        >>> for _ in range(3):
        ...     v, g = jax.value_and_grad(f)(w)
        ...     u, state = tx.update(g, state, w, value=v, grad=g, value_fn=f)
        ...     w = gradchain.apply_updates(w, u)
        >>> w
        Array([ 1., -2.], dtype=float32)

    References:
        Liu & Nocedal, "On the limited memory BFGS method for large scale optimization",
        Math. Programming 1989. Nocedal & Wright, "Numerical Optimization", 2nd ed. 2006.
    """
    with named_errors("lbfgs"):
        precond = scale_by_lbfgs(memory_size, scale_init_precond=scale_init_precond)
        step = scale(-1.0) if learning_rate is None else learning_rate_step("lbfgs", learning_rate)
        search = identity() if linesearch is None else as_transformation("lbfgs", "linesearch", linesearch)
        return chain(precond, step, search)
