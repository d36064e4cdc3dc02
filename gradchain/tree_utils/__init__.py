"""Optax's ``optax.tree_utils`` namespace: arithmetic, norms, casting, random trees and state search.

The same functions under their short names are `gradchain.tree` (``tree.add`` is
``tree_utils.tree_add``). The moment helpers (``tree_update_moment``, ...,
``tree_bias_correction``) and ``tree_map_params`` are the top-level gradchain objects
(``gradchain.update_moment``, ...), as in Optax; see the README's porting table for
how those differ from Optax. Optax's deprecated names (``tree_scalar_mul``,
``tree_add_scalar_mul``, ``tree_l1_norm``, ``tree_l2_norm``, ``tree_linf_norm``) still
resolve, with Optax's `DeprecationWarning`.
"""

# ruff: noqa: F401 (renaming re-exports: `__all__` below lists them)

import functools as _functools
import warnings as _warnings

from gradchain._transforms.moment_helpers import bias_correction as tree_bias_correction
from gradchain._transforms.moment_helpers import update_infinity_moment as tree_update_infinity_moment
from gradchain._transforms.moment_helpers import update_moment as tree_update_moment
from gradchain._transforms.moment_helpers import (
    update_moment_per_elem_norm as tree_update_moment_per_elem_norm,
)
from gradchain._tree_dtypes import tree_batch_shape as tree_batch_shape
from gradchain._tree_dtypes import tree_cast as tree_cast
from gradchain._tree_dtypes import tree_cast_like as tree_cast_like
from gradchain._tree_dtypes import tree_dtype as tree_dtype
from gradchain._tree_dtypes import tree_full_like as tree_full_like
from gradchain._tree_dtypes import tree_ones_like as tree_ones_like
from gradchain._tree_dtypes import tree_random_like as tree_random_like
from gradchain._tree_dtypes import tree_split_key_like as tree_split_key_like
from gradchain._tree_dtypes import tree_unwrap_random_key_data as tree_unwrap_random_key_data
from gradchain._tree_dtypes import tree_zeros_like as tree_zeros_like
from gradchain._tree_math import tree_add as tree_add
from gradchain._tree_math import tree_add_scale as tree_add_scale
from gradchain._tree_math import tree_allclose as tree_allclose
from gradchain._tree_math import tree_clip as tree_clip
from gradchain._tree_math import tree_conj as tree_conj
from gradchain._tree_math import tree_div as tree_div
from gradchain._tree_math import tree_max as tree_max
from gradchain._tree_math import tree_min as tree_min
from gradchain._tree_math import tree_mul as tree_mul
from gradchain._tree_math import tree_norm as tree_norm
from gradchain._tree_math import tree_real as tree_real
from gradchain._tree_math import tree_scale as tree_scale
from gradchain._tree_math import tree_size as tree_size
from gradchain._tree_math import tree_sub as tree_sub
from gradchain._tree_math import tree_sum as tree_sum
from gradchain._tree_math import tree_vdot as tree_vdot
from gradchain._tree_math import tree_where as tree_where
from gradchain._tree_state import NamedTupleKey as NamedTupleKey
from gradchain._tree_state import tree_get as tree_get
from gradchain._tree_state import tree_get_all_with_path as tree_get_all_with_path
from gradchain._tree_state import tree_set as tree_set
from gradchain._utilities import tree_map_params as tree_map_params

_DEPRECATED = {
    "tree_scalar_mul": ("tree_scale", lambda: tree_scale),
    "tree_add_scalar_mul": ("tree_add_scale", lambda: tree_add_scale),
    "tree_l1_norm": ("tree_norm(..., ord=1)", lambda: _functools.partial(tree_norm, ord=1)),
    "tree_l2_norm": ("tree_norm", lambda: _functools.partial(tree_norm, ord=2)),
    "tree_linf_norm": ("tree_norm(..., ord=jnp.inf)", lambda: _functools.partial(tree_norm, ord="inf")),
}


def __getattr__(name: str):
    if name in _DEPRECATED:
        new, get = _DEPRECATED[name]
        _warnings.warn(
            f"gradchain.tree_utils.{name} is deprecated (as in Optax 0.2.5): use gradchain.tree_utils.{new}.",
            DeprecationWarning,
            stacklevel=2,
        )
        return get()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(n for n in dir() if not n.startswith("_"))
