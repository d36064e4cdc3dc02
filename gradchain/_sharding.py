"""Sharded optimizer state: the state's shardings for a parameter sharding, and ZeRO-1.

A gradient transformation's per-parameter state (moments, traces, accumulators) is
elementwise in the parameters, so it is best stored with the parameters' own
sharding: the step then needs no communication besides the reductions the
transformation itself asks for (a global norm is an all-reduce of partial sums).
Scalars (``count``, a recorded norm) and statistics of other shapes are replicated.

- `state_shardings` returns that tree of shardings, to give ``jax.jit`` explicit
  ``out_shardings`` for ``init`` and ``in_shardings``/``out_shardings`` for the step;
  with ``zero_axis=`` it also splits every per-parameter state leaf along a mesh axis
  the parameters do not use (ZeRO-1: data-parallel replicas each keep ``1/n`` of
  the optimizer state).
- `shard_state` wraps a transformation so that its ``init`` and ``update`` constrain
  the state (and the updates) to those shardings themselves, for training steps that
  are jitted without explicit shardings.

A sharded training step then reads::

    state_sh = state_shardings(tx, params)                  # params already placed
    state = jax.jit(tx.init, out_shardings=state_sh)(params)
    step = jax.jit(train_step, in_shardings=(param_sh, state_sh, batch_sh),
                   out_shardings=(param_sh, state_sh), donate_argnums=(0, 1))

Which state leaves are per-parameter is read from the structure alone, for any
transformation: a subtree of the state with the parameters' tree structure (with
``None`` or an empty node such as `MaskedNode` allowed in place of a leaf, as
`masked` and `partition` leave them) holds one leaf per parameter. Such a leaf gets

- the parameter's sharding if it has the parameter's shape;
- the parameter's partition spec without one axis if its shape is the parameter's
  shape without that axis (the row/column statistics of `scale_by_factored_rms`),
  when that axis is unambiguous; replicated otherwise;
- replicated for any other shape.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec, Sharding

from gradchain._base import GradientTransformation, as_transformation

__all__ = ["shard_state", "state_shardings"]


# ------------------------------------------------------------------------- helpers


def _is_sharding(x) -> bool:
    return isinstance(x, Sharding)


def _is_leaf(x) -> bool:
    """Whether ``x`` is a pytree leaf (``None`` and empty nodes are not)."""
    s = jax.tree.structure(x)
    return s.num_nodes == 1 and s.num_leaves == 1


def _param_shardings(fn: str, params: Any, param_shardings: Any) -> list:
    """One sharding per leaf of ``params`` (``param_shardings`` may be a prefix tree)."""
    treedef = jax.tree.structure(params)
    if param_shardings is None:
        out = []
        for path, p in jax.tree_util.tree_leaves_with_path(params):
            s = getattr(p, "sharding", None)
            if not _is_sharding(s):
                raise ValueError(
                    f"{fn}: parameter {jax.tree_util.keystr(path)} has no sharding (got a "
                    f"{type(p).__name__}); pass sharded arrays (`jax.device_put(x, sharding)`), "
                    "`jax.ShapeDtypeStruct(shape, dtype, sharding=...)` leaves, or `param_shardings`."
                )
            out.append(s)
        return out
    bad = [s for s in jax.tree.leaves(param_shardings, is_leaf=_is_sharding) if not _is_sharding(s)]
    if bad:
        raise TypeError(
            f"{fn}: `param_shardings` must be a pytree of `jax.sharding.Sharding` objects (or one "
            f"sharding for all parameters), got a leaf {bad[0]!r}."
        )
    try:
        subtrees = treedef.flatten_up_to(param_shardings)
    except (ValueError, TypeError):
        subtrees = None
    if subtrees is not None and all(_is_sharding(s) for s in subtrees):
        return subtrees
    try:  # a prefix of the parameter tree: one sharding for a whole subtree
        expanded = jax.tree.map(lambda s, sub: jax.tree.map(lambda _: s, sub), param_shardings, params)
        return treedef.flatten_up_to(expanded)
    except (ValueError, TypeError):
        raise ValueError(
            f"{fn}: the `param_shardings` tree does not match the parameters.\n"
            f"  param_shardings: {jax.tree.structure(param_shardings)}\n"
            f"  params:          {treedef}\n"
            "Give one sharding per parameter leaf, one per subtree (a prefix of the parameter "
            "tree), or a single sharding for all of them."
        ) from None


def _mesh_of(fn: str, shardings: list):
    """The one mesh of the `NamedSharding` parameters (``None`` if there are none)."""
    meshes = [s.mesh for s in shardings if isinstance(s, NamedSharding)]
    if not meshes:
        return None
    for m in meshes[1:]:
        if m != meshes[0]:
            raise ValueError(
                f"{fn}: the parameters are sharded over different meshes, {meshes[0]} and {m}; "
                "the optimizer state needs one mesh."
            )
    return meshes[0]


def _replicated(fn: str, mesh, shardings: list) -> Sharding:
    if mesh is not None:
        return NamedSharding(mesh, PartitionSpec())
    if shardings and all(s.is_fully_replicated and s == shardings[0] for s in shardings):
        return shardings[0]  # e.g. every parameter on one device
    raise ValueError(
        f"{fn}: cannot build a replicated sharding for the state's scalars from the parameters' "
        f"shardings {sorted({type(s).__name__ for s in shardings})}; shard the parameters with "
        "`jax.sharding.NamedSharding`."
    )


def _entries(spec: PartitionSpec, ndim: int) -> tuple:
    entries = tuple(spec)
    return entries + (None,) * (ndim - len(entries))


def _axes_in(entries) -> set:
    out = set()
    for e in entries:
        if e is not None and e is not PartitionSpec.UNCONSTRAINED:
            out.update(e if isinstance(e, tuple) else (e,))
    return out


def _leaf_spec(shape: tuple, p_shape: tuple, p_sharding: Sharding, drop: int | None = None):
    """The sharding of a per-parameter leaf of ``shape`` (a spec tuple, a Sharding, or None).

    ``drop``: the parameter axis the leaf is known to reduce over, if any.
    """
    shape, p_shape = tuple(shape), tuple(p_shape)
    if shape == p_shape:
        if isinstance(p_sharding, NamedSharding):
            return _entries(p_sharding.spec, len(shape))
        return p_sharding
    if not isinstance(p_sharding, NamedSharding) or len(shape) != len(p_shape) - 1:
        return None
    entries = _entries(p_sharding.spec, len(p_shape))
    axes = range(len(p_shape)) if drop is None else [drop]
    candidates = {entries[:k] + entries[k + 1 :] for k in axes if p_shape[:k] + p_shape[k + 1 :] == shape}
    return candidates.pop() if len(candidates) == 1 else None


def _add_zero_axis(entries: tuple, shape: tuple, axis, size: int) -> tuple:
    """``entries`` with ``axis`` on the first unsharded dimension divisible by ``size``."""
    names = axis if isinstance(axis, tuple) else (axis,)
    if set(names) & _axes_in(entries):
        return entries
    for i, (e, n) in enumerate(zip(entries, shape)):
        if e is None and n > 0 and n % size == 0:
            return (*entries[:i], axis, *entries[i + 1 :])
    return entries  # cannot be split evenly: stays as it is (replicated along `axis`)


def _per_param_leaves(node: Any, treedef) -> list | None:
    """``node``'s subtrees at the parameters' leaf positions, if it mirrors the parameters."""
    try:
        subs = treedef.flatten_up_to(node)
    except (ValueError, TypeError):
        return None
    for s in subs:
        if not _is_leaf(s) and jax.tree.leaves(s):
            return None
    return subs


def _assign(fn: str, state: Any, params: Any, shardings: list, zero_axis) -> Any:
    """The tree of shardings for ``state`` (leaves: arrays or shape-dtype structs)."""
    treedef = jax.tree.structure(params)
    p_shapes = [np.shape(p) for p in jax.tree.leaves(params)]
    mesh = _mesh_of(fn, shardings)
    zero_size = 1
    if zero_axis is not None:
        if mesh is None:
            raise ValueError(
                f"{fn}: `zero_axis` needs parameters sharded with `jax.sharding.NamedSharding` "
                "(even if fully replicated: `NamedSharding(mesh, PartitionSpec())`)."
            )
        names = zero_axis if isinstance(zero_axis, tuple) else (zero_axis,)
        unknown = [a for a in names if a not in mesh.shape]
        if unknown:
            raise ValueError(
                f"{fn}: `zero_axis` must name axes of the mesh {dict(mesh.shape)}, got {zero_axis!r}."
            )
        zero_size = int(np.prod([mesh.shape[a] for a in names]))
    replicated = None

    def as_sharding(spec) -> Sharding:
        nonlocal replicated
        if isinstance(spec, Sharding):
            return spec
        if spec is None or not _axes_in(spec):
            if replicated is None:
                replicated = _replicated(fn, mesh, shardings)
            return replicated
        assert mesh is not None  # a spec naming mesh axes only arises from NamedShardings
        return NamedSharding(mesh, PartitionSpec(*spec))

    def per_param(x, p_shape, p_sharding, drop=None) -> Sharding:
        shape = np.shape(x)
        spec = _leaf_spec(shape, p_shape, p_sharding, drop)
        if zero_axis is not None and not isinstance(spec, Sharding):
            spec = _add_zero_axis(spec or (None,) * len(shape), shape, zero_axis, zero_size)
        return as_sharding(spec)

    def reduced(node, field: str):
        # a per-parameter field that reduces one parameter axis (e.g. Adafactor's row and
        # column statistics) says which, through its state's `reduced_axes(field, shape)`;
        # with equal axis sizes the shapes alone could not tell
        tree = getattr(node, field)
        out = []
        for x, ps, sh in zip(treedef.flatten_up_to(tree), p_shapes, shardings):
            drop = node.reduced_axes(field, tuple(ps)) if _is_leaf(x) else None
            out.append(per_param(x, ps, sh, drop) if _is_leaf(x) else x)
        return treedef.unflatten(out)

    def walk(node):
        if callable(getattr(node, "reduced_axes", None)) and hasattr(node, "_fields"):
            fields = []
            for f in node._fields:
                child = getattr(node, f)
                mirrors = _per_param_leaves(child, treedef) is not None and jax.tree.leaves(child)
                fields.append(reduced(node, f) if mirrors else walk(child))
            return type(node)(*fields)
        subs = _per_param_leaves(node, treedef)
        if subs is not None:
            return treedef.unflatten(
                [per_param(s, ps, sh) if _is_leaf(s) else s for s, ps, sh in zip(subs, p_shapes, shardings)]
            )
        if _is_leaf(node):
            return as_sharding(None)
        children, node_def = jax.tree.flatten(node, is_leaf=lambda x: x is not node)
        return node_def.unflatten([walk(c) for c in children])

    return walk(state)


def _check_zero_axis(fn: str, zero_axis) -> Any:
    if zero_axis is None or isinstance(zero_axis, str):
        return zero_axis
    if isinstance(zero_axis, (tuple, list)) and zero_axis and all(isinstance(a, str) for a in zero_axis):
        return tuple(zero_axis) if len(zero_axis) > 1 else next(iter(zero_axis))
    raise TypeError(
        f"{fn}: `zero_axis` must be None, a mesh axis name or a tuple of names, got {zero_axis!r}."
    )


# ------------------------------------------------------------------------- public


def state_shardings(
    tx: GradientTransformation, params: Any, param_shardings: Any = None, *, zero_axis: Any = None
) -> Any:
    """The shardings of ``tx.init(params)``'s leaves, for ``jax.jit`` in/out shardings.

    Per-parameter state leaves (found from the state's structure, see the module
    docstring) take their parameter's sharding; every other leaf is replicated. With
    ``zero_axis`` (ZeRO-1), each per-parameter leaf is further split along that mesh
    axis, on its first dimension that is not sharded yet and whose size the axis size
    divides; a leaf with no such dimension (or whose parameter already uses the axis)
    keeps its parameter's sharding, i.e. stays replicated along the axis::

        sharding(leaf) = sharding(param)            same shape as its parameter
                       = spec(param) minus axis k   shape of the parameter without axis k
                       = replicated                 otherwise, and for leaves of no parameter
        zero_axis a:  spec(leaf)[d] = a  for the first d with spec[d] = None and size % |a| = 0

    Only shapes are read (through ``jax.eval_shape``): nothing is computed or moved.

    Args:
        tx: The transformation (e.g. a whole optimizer ``chain``).
        params: The parameters, or a tree of ``jax.ShapeDtypeStruct``; if
            ``param_shardings`` is None their leaves' ``.sharding`` is used.
        param_shardings: A tree of `jax.sharding.Sharding` with the structure of
            ``params`` (or a prefix of it, e.g. one sharding for every parameter).
            Shardings other than `NamedSharding` are kept for same-shape leaves only.
        zero_axis: A mesh axis name (or a tuple of names) to split the per-parameter
            state over, typically the data-parallel axis; None for no splitting.

    Returns:
        A pytree with the structure of ``tx.init(params)`` whose leaves are shardings,
        usable as ``jax.jit(tx.init, out_shardings=...)`` and in a step's
        ``in_shardings``/``out_shardings``.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> from jax.sharding import NamedSharding, PartitionSpec as P
        >>> from gradchain import state_shardings
        >>> mesh = jax.make_mesh((1,), ("data",))
        >>> params = {"w": jnp.zeros((4, 2)), "b": jnp.zeros(2)}
        >>> replicated = NamedSharding(mesh, P())
        >>> tx = gradchain.adam(1e-3)
        >>> sh = state_shardings(tx, params, replicated, zero_axis="data")
        >>> sh[0].mu["w"].spec, sh[0].count.spec
        (P('data', None), P())
        >>> state = jax.jit(tx.init, out_shardings=sh)(params)
        >>> state[0].nu["w"].sharding == sh[0].nu["w"]
        True

    References:
        Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training Trillion
        Parameter Models", SC 2020.
    """
    fn = "state_shardings"
    tx = as_transformation(fn, "tx", tx)
    zero_axis = _check_zero_axis(fn, zero_axis)
    shardings = _param_shardings(fn, params, param_shardings)
    shapes = jax.tree.map(lambda p: jax.ShapeDtypeStruct(np.shape(p), jnp.result_type(p)), params)
    state = jax.eval_shape(tx.init, shapes)
    return _assign(fn, state, params, shardings, zero_axis)


def _constrain(x, sharding: Sharding):
    """Put ``x`` on ``sharding``: a sharding constraint, or ``reshard`` for explicit mesh axes.

    A one-device sharding has nothing to split: ``x`` is left where JAX put it, so that a
    script written for a mesh runs on one device exactly as without the wrapper (no
    committed arrays, no retrace when jit's outputs come back as inputs).
    """
    if sharding.num_devices == 1:
        return x
    if isinstance(sharding, NamedSharding):
        types = dict(zip(sharding.mesh.axis_names, sharding.mesh.axis_types))
        used = _axes_in(sharding.spec)
        explicit = [a for a in used if types[a] == AxisType.Explicit]
        if explicit or (not used and all(t == AxisType.Explicit for t in types.values())):
            return jax.sharding.reshard(x, sharding)
    return jax.lax.with_sharding_constraint(x, sharding)


def _constrain_tree(tree: Any, shardings: Any) -> Any:
    return jax.tree.map(_constrain, tree, shardings)


def shard_state(
    inner: GradientTransformation, param_shardings: Any, *, zero_axis: Any = None
) -> GradientTransformation:
    """Keep ``inner``'s state (and its updates) on the shardings `state_shardings` gives.

    ``init`` and ``update`` end with a sharding constraint (``jax.sharding.reshard`` on
    meshes with explicit axes): the state leaves on their `state_shardings`, the
    updates on ``param_shardings``; values are those of ``inner``, and so is the
    state's structure (a checkpoint of ``inner`` loads into it)::

        state_t = constrain(inner.state_t, state_shardings(inner, params, param_shardings, zero_axis))
        u_t = constrain(inner.u_t, param_shardings)

    Under ``jit`` the compiler then places the state as asked whatever shardings the
    step was given; with ``zero_axis`` (ZeRO-1, parameters replicated over a
    data-parallel axis) each replica updates its slice of the state and the updates
    are gathered once. The values are ``inner``'s, up to the order in which sums over
    shards (norms) are added. Shardings of one device are not applied: on a one-device
    mesh the wrapper is ``inner`` itself.

    Args:
        inner: The transformation whose state to place.
        param_shardings: A tree of `jax.sharding.Sharding` with the structure of the
            parameters (or a prefix of it, e.g. one sharding for all).
        zero_axis: As in `state_shardings`: a mesh axis (or tuple of axes) to split the
            per-parameter state over, or None.

    Returns:
        A `GradientTransformation` with ``inner``'s state.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> from jax.sharding import NamedSharding, PartitionSpec as P
        >>> from gradchain import shard_state
        >>> mesh = jax.make_mesh((1,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
        >>> tx = shard_state(gradchain.adam(0.1), NamedSharding(mesh, P()), zero_axis="data")
        >>> params = {"w": jnp.ones((2, 2))}
        >>> u, state = jax.jit(tx.update)(params, jax.jit(tx.init)(params))
        >>> u["w"]
        Array([[-0.1, -0.1],
               [-0.1, -0.1]], dtype=float32)
        >>> jax.tree.structure(state) == jax.tree.structure(gradchain.adam(0.1).init(params))
        True
    """
    fn = "shard_state"
    inner = as_transformation(fn, "inner", inner)
    zero_axis = _check_zero_axis(fn, zero_axis)
    leaves = jax.tree.leaves(param_shardings, is_leaf=_is_sharding)
    if not leaves or not all(_is_sharding(s) for s in leaves):
        raise TypeError(
            f"{fn}: `param_shardings` must be a pytree of `jax.sharding.Sharding` objects (or one "
            f"sharding for all parameters), got {param_shardings!r}."
        )

    def place(updates_like, state):
        shardings = _param_shardings(fn, updates_like, param_shardings)
        return _constrain_tree(state, _assign(fn, state, updates_like, shardings, zero_axis)), shardings

    def init_fn(params):
        state, _ = place(params, inner.init(params))
        return state

    def update_fn(updates, state, params=None, **extra_args):
        updates, state = inner.update(updates, state, params, **extra_args)
        state, shardings = place(updates, state)
        treedef = jax.tree.structure(updates)
        updates = treedef.unflatten([_constrain(u, s) for u, s in zip(jax.tree.leaves(updates), shardings)])
        return updates, state

    return GradientTransformation(init_fn, update_fn)
