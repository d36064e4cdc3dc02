"""Moving a run from Optax: `from_optax_state` turns an Optax optimizer state into the
state of the equivalent gradchain transformation, leaf for leaf."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._base import as_transformation
from gradchain._masking import MaskedNode

__all__ = ["from_optax_state"]

_FN = "from_optax_state"

# Optax state fields that gradchain derives from other leaves instead of storing: a
# plain schedule's own step counter in `inject_hyperparams` (equal to the step count).
_DERIVED = frozenset({"hyperparams_states"})


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _is_empty(x) -> bool:
    """An Optax node holding nothing: ``EmptyState()``, ``None``, ``{}``, ``[]``, a MaskedNode."""
    if x is None or isinstance(x, MaskedNode) or type(x).__name__ == "MaskedNode":
        return True
    if isinstance(x, (tuple, list, Mapping)):
        return all(_is_empty(v) for v in (x.values() if isinstance(x, Mapping) else x))
    return False


def _fields(x) -> dict | None:
    """A NamedTuple's or a restored dict's fields by name; ``None`` for other nodes."""
    if _is_namedtuple(x):
        return dict(zip(type(x)._fields, x, strict=True))
    if isinstance(x, Mapping):
        return dict(x)
    return None


def _items(x) -> list | None:
    """A tuple's or list's entries, also from a ``{"0": .., "1": ..}`` state dict."""
    if isinstance(x, (tuple, list)) and not _is_namedtuple(x):
        return list(x)
    if isinstance(x, Mapping) and x and all(str(k).isdigit() for k in x):
        return [x[k] for k in sorted(x, key=lambda k: int(k))]
    return None


def _step_count(source) -> int | None:
    """The step count recorded in an Optax state: the largest ``count`` field found."""
    counts = []

    def visit(x):
        f = _fields(x)
        if f is not None:
            for k, v in f.items():
                if k in ("count", "step", "mini_step", "gradient_step") and np.ndim(v) == 0 and v is not None:
                    if k == "count" and np.issubdtype(np.asarray(v).dtype, np.integer):
                        counts.append(int(np.asarray(v)))
                else:
                    visit(v)
            return
        items = _items(x)
        if items is not None:
            for v in items:
                visit(v)

    visit(source)
    return max(counts) if counts else None


def _fill(template, count, path):
    """A template node with no Optax counterpart: its counters take the step count, the
    rest keep their initial values (recorded statistics such as a clipped norm)."""

    def leaf(kp, x):
        name = path + jax.tree_util.keystr(kp)
        if x is not None and name.endswith("count") and np.ndim(x) == 0:
            if count is None:
                raise ValueError(
                    f"{_FN}: the gradchain state at `{name}` counts steps, but the Optax "
                    "state records no step count to take it from: pass `step=` (the steps taken)."
                )
            return jnp.asarray(count, dtype=jnp.asarray(x).dtype)
        return x

    return jax.tree_util.tree_map_with_path(leaf, template, is_leaf=lambda x: x is None)


def _leaf(template, source, path):
    if source is None or _is_empty(source):
        raise ValueError(
            f"{_FN}: the Optax state holds nothing at `{path}`, where gradchain keeps {template!r}."
        )
    x = np.asarray(source)
    t = jnp.asarray(template)
    if x.shape != t.shape:
        raise ValueError(
            f"{_FN}: the leaf at `{path}` has shape {x.shape} in the Optax state and {t.shape} in gradchain's."
        )
    if x.dtype != t.dtype:
        y = x.astype(t.dtype)
        if not np.array_equal(y.astype(x.dtype), x, equal_nan=True):
            raise TypeError(
                f"{_FN}: the leaf at `{path}` is {x.dtype} in the Optax state and {t.dtype} in gradchain's, "
                "and its values do not convert exactly."
            )
        x = y
    return jnp.asarray(x, dtype=t.dtype)


def _convert(template, source, count, path):
    if template is None:
        if source is not None and not _is_empty(source) and np.size(source) > 1:
            raise ValueError(
                f"{_FN}: the Optax state holds an array of shape {np.shape(source)} at `{path}`, "
                "where gradchain keeps nothing."
            )
        return None
    if isinstance(template, MaskedNode):
        return template
    if _is_namedtuple(template):
        src = {} if _is_empty(source) else _fields(source)
        if src is None:
            raise ValueError(
                f"{_FN}: at `{path}` gradchain has {type(template).__name__}{template._fields} but the Optax "
                f"state has {type(source).__name__}."
            )
        out = {}
        for name, value in zip(template._fields, template, strict=True):
            sub = f"{path}.{name}"
            out[name] = _convert(value, src[name], count, sub) if name in src else _fill(value, count, sub)
        dropped = [k for k, v in src.items() if k not in out and k not in _DERIVED and not _is_empty(v)]
        if dropped:
            raise ValueError(
                f"{_FN}: the Optax state's fields {dropped} at `{path}` have no place in gradchain's "
                f"{type(template).__name__}{template._fields}: the transformations differ."
            )
        return type(template)(**out)
    if isinstance(template, (tuple, list)):
        items = [None] * len(template) if _is_empty(source) and not _items(source) else _items(source)
        if items is None or len(items) != len(template):
            raise ValueError(
                f"{_FN}: at `{path}` gradchain's state has {len(template)} entries "
                f"({[type(t).__name__ for t in template]}) and the Optax state "
                f"{'a ' + type(source).__name__ if items is None else len(items)}: the chains differ.\n"
                f"  gradchain: {jax.tree_util.tree_structure(template)}\n"
                f"  Optax:     {jax.tree_util.tree_structure(source)}"
            )
        out = [
            _convert(t, s, count, f"{path}[{i}]")
            for i, (t, s) in enumerate(zip(template, items, strict=True))
        ]
        return type(template)(out)
    if isinstance(template, Mapping):
        src = _fields(source) if not _is_empty(source) or isinstance(source, Mapping) else {}
        if src is None or set(src) != set(template):
            raise ValueError(
                f"{_FN}: at `{path}` gradchain's state has keys {sorted(map(str, template))} and the Optax "
                f"state {sorted(map(str, src)) if src is not None else type(source).__name__}."
            )
        return type(template)({k: _convert(v, src[k], count, f"{path}[{k!r}]") for k, v in template.items()})
    if _is_empty(source) and not _is_empty(template):
        return _fill(template, count, path)
    return _leaf(template, source, path)


def from_optax_state(tx, optax_state: Any, params: Any, *, step: int | None = None) -> Any:
    """Convert an Optax optimizer state into the state of the equivalent gradchain ``tx``.

    For moving a run that Optax trained (a checkpoint of its state) to the same
    optimizer written with gradchain's names: every state leaf Optax keeps is copied bit
    for bit into ``tx.init(params)``'s structure, matched by position in chains and by
    field name in states. Leaves that only gradchain keeps take their values from the
    step count (counters) or their initial value (recorded statistics such as
    `clip_by_global_norm`'s norm); leaves that only Optax keeps as placeholders are
    dropped. ``optax_state`` may hold Optax's own state classes, or the plain dicts,
    lists and ``None`` that a checkpoint restored without a target gives (orbax,
    ``flax.serialization``).

    Args:
        tx: The gradchain transformation that continues the run.
        optax_state: The Optax optimizer state (restored from a checkpoint).
        params: The parameters (or a tree of ``jax.ShapeDtypeStruct``) the state is for.
        step: The number of steps Optax took; needed only when its state records no
            step count (e.g. a plain ``optax.rmsprop``) and gradchain's counts steps.
            Default: the largest ``count`` in the Optax state.

    Returns:
        A state for ``tx``, ready for ``tx.update``.

    Raises:
        ValueError: When the two states do not describe the same transformation (a
            chain of a different length, a field with no counterpart, a shape that
            differs), naming the path and showing both structures.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> params = {"w": jnp.ones(3)}
        >>> # optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-3)) after one step,
        >>> # as orbax restores it without a target: dicts, lists and None
        >>> opt_state = [None, [{"count": jnp.asarray(1, jnp.int32),
        ...                      "mu": {"w": jnp.full(3, 0.1)}, "nu": {"w": jnp.full(3, 0.001)}},
        ...                     None, None]]
        >>> tx = gradchain.chain(gradchain.clip_by_global_norm(1.0), gradchain.adamw(1e-3))
        >>> state = gradchain.from_optax_state(tx, opt_state, params)
        >>> state[1][0].count, state[1][0].mu["w"]
        (Array(1, dtype=int32), Array([0.1, 0.1, 0.1], dtype=float32))
    """
    tx = as_transformation(_FN, "tx", tx)
    params = jax.tree.map(
        lambda p: jnp.zeros(p.shape, p.dtype) if isinstance(p, jax.ShapeDtypeStruct) else p, params
    )
    init = tx.init(params)
    count = _step_count(optax_state)
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise TypeError(f"{_FN}: `step` must be a non-negative int, got {step!r}.")
        if count is not None and count != step:
            raise ValueError(f"{_FN}: `step` is {step} but the Optax state's count is {count}.")
        count = int(step)
    return _convert(init, optax_state, count, "state")
