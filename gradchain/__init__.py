"""gradchain: composable gradient transformations for JAX."""
# DEVELOPMENT VERSION: collects the public names of every family module that exists.
# Frozen into explicit `from gradchain._x import y as y` lines before release.
import importlib as _importlib
import importlib.util as _util

from gradchain._base import EmptyState as EmptyState
from gradchain._base import GradientTransformation as GradientTransformation
from gradchain._base import identity as identity
from gradchain._base import stateless as stateless
from gradchain._chain import chain as chain
from gradchain._chain import named_chain as named_chain
from gradchain._tree import global_norm as global_norm
from gradchain._update import apply_updates as apply_updates
from gradchain._update import incremental_update as incremental_update

_MODULES = [
    "gradchain.transforms.scaling",
    "gradchain.transforms.clipping",
    "gradchain.transforms.momentum",
    "gradchain.transforms.adaptive",
    "gradchain.transforms.adaptive_more",
    "gradchain.transforms.layerwise",
    "gradchain.transforms.regularization",
    "gradchain.transforms.accumulation",
    "gradchain.transforms.adaptive_clipping",
    "gradchain.transforms.monitoring",
    "gradchain.transforms.control",
    "gradchain.wrappers",
    "gradchain.optimizers",
    "gradchain.lr_finder",
    "gradchain.schedules",
]
for _m in _MODULES:
    if _util.find_spec(_m) is not None:
        _mod = _importlib.import_module(_m)
        for _n in getattr(_mod, "__all__", ()):
            globals()[_n] = getattr(_mod, _n)
from gradchain import losses as losses  # noqa: E402
from gradchain import schedules as schedules  # noqa: E402

__version__ = "0.1.0"
