"""What every optimizer module shares: building-block errors named by the optimizer, the
learning-rate step, Optax's bool masks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import jax

from gradchain._base import GradientTransformation, ScalarOrSchedule
from gradchain._transforms.scaling import scale_by_learning_rate
from gradchain._validate import check_nonnegative

__all__ = ["Mask", "as_mask", "learning_rate_step", "named_errors"]

Mask = Any  # None, a bool, a pytree of bools mirroring the params, or a callable params -> such a pytree


@contextlib.contextmanager
def named_errors(fn: str) -> Iterator[None]:
    """Prefix the optimizer's name to errors raised while building its chain.

    ``adam(0.1, b1=1.0)`` then reads "adam: scale_by_adam: `b1` must be ...": which
    optimizer, which building block, which argument. (The block's message already says
    everything, so the block's traceback is not chained.)
    """
    try:
        yield
    except (ValueError, TypeError) as e:
        if str(e).startswith(f"{fn}:") or type(e) not in (ValueError, TypeError):
            raise
        raise type(e)(f"{fn}: {e}") from None


def learning_rate_step(fn: str, learning_rate: ScalarOrSchedule) -> GradientTransformation:
    """``scale_by_learning_rate(learning_rate)``, its argument checked under the optimizer's name."""
    check_nonnegative(fn, "learning_rate", learning_rate, allow_schedule=True)
    return scale_by_learning_rate(learning_rate)


def as_mask(mask: Mask) -> Mask:
    """Optax's bool masks as gradchain masks: True means everywhere (no mask), False nowhere."""
    if mask is True:
        return None
    if mask is False:
        return lambda params: jax.tree.map(lambda _: False, params)
    return mask
