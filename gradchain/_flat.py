"""Flat, dtype-grouped parameter buffers: the fast path for many-leaf and large models.

A jitted training step pays a fixed cost for every array passed in or out (about 2 us
per buffer on CPU, plus compile time that grows with the number of leaves), and each
leaf's update is a separate loop. Keeping the parameters, the gradients and the whole
optimizer state in a few flat 1-D buffers, one per dtype, removes both costs: a
2,000-leaf model becomes one buffer per dtype, and every elementwise transformation
runs as one long loop.

The recipe: ravel once, unravel inside the loss, so the gradient arrives flat::

    flat, layout = gradchain.ravel_by_dtype(params)      # {"float32": f32[n], ...}
    def loss_fn(flat, batch):
        return loss(layout.unravel(flat), batch)         # views of the flat buffers
    state = tx.init(flat)
    grads = jax.grad(loss_fn)(flat, batch)               # flat, like `flat`
    updates, state = tx.update(grads, state, flat)
    flat = gradchain.apply_updates(flat, updates)

Every transformation whose rule is elementwise, or uses only global reductions (global
norm, finiteness checks, schedules), gives the same numbers on the flat buffers as on
the tree, to float32 rounding (summation order). Transformations that look at each
leaf separately (per-leaf norms such as `scale_by_trust_ratio`, `clip_by_block_rms`,
LARS/LAMB, Adafactor's factored moments, masks given as trees) must see the tree: wrap
them in `unraveled`, which unravels the flat updates for them and ravels their output.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._base import GradientTransformation, as_transformation

__all__ = ["FlatLayout", "ravel_by_dtype", "unraveled"]


def _key(dtype) -> str:
    return np.dtype(dtype).name


@dataclasses.dataclass(frozen=True, eq=False)
class FlatLayout:
    """Where each leaf of a pytree lives in the flat, dtype-grouped buffers.

    Built by `ravel_by_dtype`; static (holds no arrays), so it can be closed over by
    jitted functions.

    Attributes:
        treedef: The tree structure of the original pytree.
        shapes: Each leaf's shape, in `jax.tree.leaves` order.
        dtypes: Each leaf's dtype.
        paths: Each leaf's key path, as a string (for error messages).
        groups: For each buffer key (the dtype's name, e.g. ``"float32"``), the leaf
            indices it holds, in order.
        sizes: For each buffer key, its total length.
    """

    treedef: Any
    shapes: tuple
    dtypes: tuple
    paths: tuple
    groups: dict
    sizes: dict

    @classmethod
    def from_tree(cls, tree: Any) -> FlatLayout:
        with_path, treedef = jax.tree.flatten_with_path(tree)
        shapes, dtypes, paths, groups, sizes = [], [], [], {}, {}
        for i, (path, leaf) in enumerate(with_path):
            if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
                leaf = np.asarray(leaf)
            shapes.append(tuple(leaf.shape))
            dtypes.append(np.dtype(leaf.dtype))
            paths.append(jax.tree_util.keystr(path))
            k = _key(leaf.dtype)
            groups.setdefault(k, []).append(i)
            sizes[k] = sizes.get(k, 0) + int(np.prod(leaf.shape, dtype=np.int64))
        return cls(
            treedef, tuple(shapes), tuple(dtypes), tuple(paths),
            {k: tuple(v) for k, v in groups.items()}, sizes,
        )  # fmt: skip

    @property
    def num_leaves(self) -> int:
        return len(self.shapes)

    def ravel(self, tree: Any) -> FlatBuffers:
        """The flat buffers of ``tree``, which must have this layout's structure, shapes and dtypes.

        Args:
            tree: A pytree like the one the layout was built from (e.g. the gradients of
                the tree-shaped parameters).

        Returns:
            A dict from dtype name to a 1-D array holding that dtype's leaves, in order.
        """
        leaves, treedef = jax.tree.flatten(tree)
        if treedef != self.treedef:
            raise ValueError(
                "FlatLayout.ravel: `tree` does not have the layout's structure.\n"
                f"  tree:      {treedef}\n"
                f"  expected:  {self.treedef}"
            )
        out = FlatBuffers()
        for k, idx in self.groups.items():
            parts = []
            for i in idx:
                leaf = jnp.asarray(leaves[i])
                if tuple(leaf.shape) != self.shapes[i] or leaf.dtype != self.dtypes[i]:
                    raise ValueError(
                        f"FlatLayout.ravel: leaf {self.paths[i]} must have shape {self.shapes[i]} "
                        f"and dtype {self.dtypes[i].name}, got shape {tuple(leaf.shape)} and "
                        f"dtype {leaf.dtype.name}."
                    )
                parts.append(jnp.ravel(leaf))
            out[k] = parts[0] if len(parts) == 1 else jnp.concatenate(parts)
        return FlatBuffers(sorted(out.items()))

    def unravel(self, flat: dict) -> Any:
        """The pytree whose leaves are the slices of ``flat`` (the inverse of `ravel`).

        Differentiable: the gradient of a function of ``unravel(flat)`` with respect to
        ``flat`` is again a dict of flat buffers (the per-leaf gradients concatenated).

        Args:
            flat: A dict of 1-D buffers, as returned by `ravel` / `ravel_by_dtype`.

        Returns:
            The pytree, with the layout's structure, shapes and dtypes.
        """
        if not isinstance(flat, dict) or set(flat) != set(self.groups):
            got = sorted(flat) if isinstance(flat, dict) else type(flat).__name__
            raise ValueError(
                f"FlatLayout.unravel: `flat` must be a dict with the keys {sorted(self.groups)}, got {got}."
            )
        leaves = [None] * self.num_leaves
        for k, idx in self.groups.items():
            buf = flat[k]
            if jnp.ndim(buf) != 1 or buf.shape[0] != self.sizes[k] or _key(buf.dtype) != k:
                raise ValueError(
                    f"FlatLayout.unravel: `flat[{k!r}]` must be a 1-D {k} array of length "
                    f"{self.sizes[k]}, got shape {tuple(jnp.shape(buf))} and dtype {jnp.result_type(buf).name}."
                )
            sizes = [int(np.prod(self.shapes[i], dtype=np.int64)) for i in idx]
            # `jnp.split` (not per-leaf slicing): its transpose is one concatenate, so the
            # gradient with respect to `flat` is built in one pass.
            pieces = jnp.split(buf, np.cumsum(sizes)[:-1].tolist()) if len(idx) > 1 else [buf]
            for i, piece in zip(idx, pieces):
                leaves[i] = piece.reshape(self.shapes[i])
        return jax.tree.unflatten(self.treedef, leaves)

    def __repr__(self) -> str:
        groups = ", ".join(f"{k}: {len(v)} leaves / {self.sizes[k]}" for k, v in self.groups.items())
        return f"FlatLayout({groups})"


class FlatBuffers(dict):
    """The flat buffers of `ravel_by_dtype`: a dict from dtype name to a 1-D array.

    A pytree like a dict (keys sorted), of its own type so that a transformation that
    acts on each parameter separately (per-leaf norms, factored moments, masks built
    from the parameters) can tell it is given dtype buffers instead of layers, and
    refuse them with an error that says to wrap it in `unraveled`.
    """

    gradchain_flat_buffers = True


def _flatten_with_keys(d: FlatBuffers):
    keys = tuple(sorted(d))
    return [(jax.tree_util.DictKey(k), d[k]) for k in keys], keys


jax.tree_util.register_pytree_with_keys(
    FlatBuffers,
    _flatten_with_keys,
    lambda keys, values: FlatBuffers(zip(keys, values)),
    lambda d: ([d[k] for k in sorted(d)], tuple(sorted(d))),
)


def ravel_by_dtype(tree: Any) -> tuple[FlatBuffers, FlatLayout]:
    """Pack a pytree into one flat 1-D buffer per dtype.

    Unlike `jax.flatten_util.ravel_pytree`, dtypes are never promoted: a model with
    float32 and bfloat16 leaves gets a ``"float32"`` and a ``"bfloat16"`` buffer.

    Args:
        tree: A pytree of arrays (e.g. model parameters).

    Returns:
        ``(flat, layout)``: a dict from dtype name to a 1-D array, and the `FlatLayout`
        whose ``unravel(flat)`` rebuilds the tree and whose ``ravel(tree)`` packs any tree
        of the same shape (e.g. its gradients).

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> params = {"b": jnp.zeros(2), "w": jnp.ones((2, 2))}
        >>> flat, layout = gradchain.ravel_by_dtype(params)
        >>> flat["float32"]
        Array([0., 0., 1., 1., 1., 1.], dtype=float32)
        >>> loss = lambda flat: jnp.sum(layout.unravel(flat)["w"] ** 2)
        >>> jax.grad(loss)(flat)["float32"]
        Array([0., 0., 2., 2., 2., 2.], dtype=float32)
        >>> tx = gradchain.adam(1e-3)
        >>> state = tx.init(flat)
        >>> updates, state = tx.update(jax.grad(loss)(flat), state, flat)
        >>> layout.unravel(gradchain.apply_updates(flat, updates))["w"]
        Array([[0.999, 0.999],
               [0.999, 0.999]], dtype=float32)
    """
    layout = FlatLayout.from_tree(tree)
    return layout.ravel(tree), layout


def unraveled(inner: GradientTransformation, layout: FlatLayout) -> GradientTransformation:
    """Run a per-leaf transformation on the tree view of flat buffers.

    ``inner`` sees the updates (and parameters) as the original pytree; its output is
    raveled back, so it composes with flat-buffer chains. Use it for transformations
    whose rule depends on leaf boundaries (per-leaf norms, factored moments, tree masks).

    Args:
        inner: The transformation to run on the tree.
        layout: The `FlatLayout` of the flat buffers (from `ravel_by_dtype`).

    Returns:
        A `GradientTransformation` on flat buffers; its state is ``inner``'s state
        (per-leaf state stays tree-shaped).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> params = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([1.0])}
        >>> flat, layout = gradchain.ravel_by_dtype(params)
        >>> tx = gradchain.unraveled(gradchain.clip_by_block_rms(1.0), layout)
        >>> tx.update(flat, tx.init(flat))[0]["float32"]
        Array([0.84852815, 1.1313709 , 1.        ], dtype=float32)
    """
    inner = as_transformation("unraveled", "inner", inner)
    if not isinstance(layout, FlatLayout):
        raise TypeError(
            f"unraveled: `layout` must be a FlatLayout (from ravel_by_dtype), got {type(layout).__name__}."
        )

    def init_fn(params):
        return inner.init(layout.unravel(params))

    def update_fn(updates, state, params=None, **extra_args):
        tree_params = None if params is None else layout.unravel(params)
        new, state = inner.update(layout.unravel(updates), state, tree_params, **extra_args)
        return layout.ravel(new), state

    return GradientTransformation(init_fn, update_fn)
