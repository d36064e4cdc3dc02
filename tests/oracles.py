"""Reference implementations used as test oracles (never imported by the library).

``timm``'s package ``__init__`` imports torchvision (not installable beside the CPU torch
wheel the tests use), but its optimizers need only torch: `timm_optim` imports one
optimizer module of ``timm.optim`` without running the package ``__init__``.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import pathlib
import sys
import types


def timm_optim(module: str):
    """Returns the module ``timm.optim.<module>`` (e.g. ``timm_optim("adopt").Adopt``)."""
    if "timm.optim" not in sys.modules:
        spec = importlib.util.find_spec("timm")
        if spec is None or spec.origin is None:
            raise ImportError("timm is not installed (see the README's test command)")
        root = pathlib.Path(spec.origin).parent
        for name, path in (("timm", root), ("timm.optim", root / "optim")):
            stub = types.ModuleType(name)
            stub.__path__ = [str(path)]
            stub.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
            stub.__spec__.submodule_search_locations = [str(path)]
            sys.modules[name] = stub
    return importlib.import_module(f"timm.optim.{module}")
