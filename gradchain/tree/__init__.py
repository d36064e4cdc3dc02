"""Optax's ``optax.tree`` namespace: the `gradchain.tree_utils` functions under short names.

``gradchain.tree.add`` is ``gradchain.tree_utils.tree_add``, ``tree.norm`` is
``tree_utils.tree_norm``, ``tree.map_params`` is ``gradchain.tree_map_params``, and so on
(``max``, ``min``, ``sum`` and ``set`` shadow the builtins only inside this namespace).
"""

# ruff: noqa: F401 (renaming re-exports: `__all__` below lists them)

from gradchain._transforms.moment_helpers import bias_correction as bias_correction
from gradchain._transforms.moment_helpers import update_infinity_moment as update_infinity_moment
from gradchain._transforms.moment_helpers import update_moment as update_moment
from gradchain._transforms.moment_helpers import update_moment_per_elem_norm as update_moment_per_elem_norm
from gradchain._tree_dtypes import tree_batch_shape as batch_shape
from gradchain._tree_dtypes import tree_cast as cast
from gradchain._tree_dtypes import tree_cast_like as cast_like
from gradchain._tree_dtypes import tree_dtype as dtype
from gradchain._tree_dtypes import tree_full_like as full_like
from gradchain._tree_dtypes import tree_ones_like as ones_like
from gradchain._tree_dtypes import tree_random_like as random_like
from gradchain._tree_dtypes import tree_split_key_like as split_key_like
from gradchain._tree_dtypes import tree_unwrap_random_key_data as unwrap_random_key_data
from gradchain._tree_dtypes import tree_zeros_like as zeros_like
from gradchain._tree_math import tree_add as add
from gradchain._tree_math import tree_add_scale as add_scale
from gradchain._tree_math import tree_allclose as allclose
from gradchain._tree_math import tree_clip as clip
from gradchain._tree_math import tree_conj as conj
from gradchain._tree_math import tree_div as div
from gradchain._tree_math import tree_max as max
from gradchain._tree_math import tree_min as min
from gradchain._tree_math import tree_mul as mul
from gradchain._tree_math import tree_norm as norm
from gradchain._tree_math import tree_real as real
from gradchain._tree_math import tree_scale as scale
from gradchain._tree_math import tree_size as size
from gradchain._tree_math import tree_sub as sub
from gradchain._tree_math import tree_sum as sum
from gradchain._tree_math import tree_vdot as vdot
from gradchain._tree_math import tree_where as where
from gradchain._tree_state import tree_get as get
from gradchain._tree_state import tree_get_all_with_path as get_all_with_path
from gradchain._tree_state import tree_set as set
from gradchain._utilities import tree_map_params as map_params

__all__ = sorted(n for n in dir() if not n.startswith("_"))
