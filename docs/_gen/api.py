"""gradchain's public surface, read from the code: every public path, its object, its family.

Used by the docs build (``hooks.py`` generates the API reference from it) and by
``tests/test_docs.py`` (which checks the built index against the same names). Nothing here
is edited when a name is added: a new name appears under the family of the private module
it comes from, and a module missing from ``FAMILIES`` gets a page titled after its file.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from typing import Any

# module (or module prefix) -> (family title, page slug, nav section). Longest prefix wins;
# several modules may share a family (its building blocks and its optimizers).
FAMILIES: dict[str, tuple[str, str, str]] = {
    # foundations
    "gradchain._base": ("The contract", "core", "Foundations"),
    "gradchain._chain": ("The contract", "core", "Foundations"),
    "gradchain._update": ("The contract", "core", "Foundations"),
    "gradchain._tree": ("The contract", "core", "Foundations"),
    "gradchain._numerics": ("The contract", "core", "Foundations"),
    "gradchain._utilities": ("Optax's utilities and aliases", "optax-utilities", "Foundations"),
    "gradchain._migrate": ("Moving an Optax run", "migrate", "Foundations"),
    "gradchain._flat": ("Flat buffers (the fast path)", "flat", "Foundations"),
    "gradchain._sharding": ("Sharding and ZeRO-1", "sharding", "Foundations"),
    "gradchain._low_precision": ("Low-precision parameters", "low-precision", "Foundations"),
    "gradchain._lr_finder": ("Learning-rate finder", "lr-finder", "Foundations"),
    "gradchain.tree": ("Tree utilities", "tree-utils", "Foundations"),
    "gradchain.tree_utils": ("Tree utilities", "tree-utils", "Foundations"),
    "gradchain._tree_math": ("Tree utilities", "tree-utils", "Foundations"),
    "gradchain._tree_dtypes": ("Tree utilities", "tree-utils", "Foundations"),
    "gradchain._tree_state": ("Tree utilities", "tree-utils", "Foundations"),
    # families of transformations, each with its optimizers
    "gradchain._optimizers.classic": ("Classic optimizers", "classic", "Families"),
    "gradchain._transforms.momentum": ("Momentum", "momentum", "Families"),
    "gradchain._transforms.rms": ("RMS family (Adagrad, RMSprop)", "rms", "Families"),
    "gradchain._transforms.adam": ("Adam family", "adam", "Families"),
    "gradchain._optimizers.adam": ("Adam family", "adam", "Families"),
    "gradchain._transforms.adam_variants": ("Adam variants", "adam-variants", "Families"),
    "gradchain._optimizers.adam_variants": ("Adam variants", "adam-variants", "Families"),
    "gradchain._transforms.adam_contrib": ("More Adam-style methods", "adam-contrib", "Families"),
    "gradchain._optimizers.adam_contrib": ("More Adam-style methods", "adam-contrib", "Families"),
    "gradchain._transforms.moment_helpers": ("Moment helpers", "moment-helpers", "Families"),
    "gradchain._transforms.sign": ("Sign methods (Lion, signSGD, Rprop)", "sign", "Families"),
    "gradchain._transforms.sm3": ("Sign methods (Lion, signSGD, Rprop)", "sign", "Families"),
    "gradchain._optimizers.sign_and_misc": ("Sign methods (Lion, signSGD, Rprop)", "sign", "Families"),
    "gradchain._transforms.layerwise": ("Layer-wise (LAMB, LARS, Adafactor)", "layerwise", "Families"),
    "gradchain._optimizers.layerwise": ("Layer-wise (LAMB, LARS, Adafactor)", "layerwise", "Families"),
    "gradchain._transforms.step_size": ("Step-size rules (Polyak, DoG)", "step-size", "Families"),
    "gradchain._transforms.noise": ("Gradient noise", "noise", "Families"),
    "gradchain._transforms.lr_free": ("Learning-rate-free methods", "lr-free", "Families"),
    "gradchain._transforms.lr_free_more": ("Learning-rate-free methods", "lr-free", "Families"),
    "gradchain._optimizers.lr_free": ("Learning-rate-free methods", "lr-free", "Families"),
    "gradchain._transforms.schedule_free": ("Schedule-free", "schedule-free", "Families"),
    "gradchain._optimizers.schedule_free": ("Schedule-free", "schedule-free", "Families"),
    "gradchain._transforms.muon": ("Muon", "muon", "Families"),
    "gradchain._optimizers.muon": ("Muon", "muon", "Families"),
    "gradchain._transforms.mars_madgrad": ("MARS and MADGRAD", "mars-madgrad", "Families"),
    "gradchain._transforms.shampoo": ("Second order (Shampoo, SOAP, Sophia)", "second-order", "Families"),
    "gradchain._transforms.soap": ("Second order (Shampoo, SOAP, Sophia)", "second-order", "Families"),
    "gradchain._transforms.sophia": ("Second order (Shampoo, SOAP, Sophia)", "second-order", "Families"),
    "gradchain._optimizers.second_order": (
        "Second order (Shampoo, SOAP, Sophia)",
        "second-order",
        "Families",
    ),
    "gradchain._transforms.lbfgs": ("Quasi-Newton and line search", "lbfgs", "Families"),
    "gradchain._transforms.linesearch": ("Quasi-Newton and line search", "lbfgs", "Families"),
    "gradchain._optimizers.lbfgs": ("Quasi-Newton and line search", "lbfgs", "Families"),
    "gradchain._transforms.linalg": ("Linear algebra", "linalg", "Families"),
    "gradchain._transforms.galore": ("GaLore", "galore", "Families"),
    "gradchain._transforms.contrib_misc": (
        "Momo, DP-SGD and other contrib methods",
        "contrib-misc",
        "Families",
    ),
    "gradchain._optimizers.contrib_misc": (
        "Momo, DP-SGD and other contrib methods",
        "contrib-misc",
        "Families",
    ),
    "gradchain._transforms.privacy": ("Differential privacy", "privacy", "Families"),
    "gradchain._transforms.quantized": ("8-bit state", "quantized", "Families"),
    # building blocks that are not a family of optimizers
    "gradchain._transforms.clipping": ("Clipping", "clipping", "Building blocks"),
    "gradchain._transforms.clip_functions": ("Clipping", "clipping", "Building blocks"),
    "gradchain._transforms.scaling": ("Scaling and learning rates", "scaling", "Building blocks"),
    "gradchain._transforms.regularization": ("Regularization", "regularization", "Building blocks"),
    "gradchain._transforms.elementwise_control": ("Element-wise control", "elementwise", "Building blocks"),
    "gradchain._transforms.plateau": ("Plateaus and early stopping", "plateau", "Building blocks"),
    "gradchain._transforms.monitoring": ("Monitoring", "monitoring", "Building blocks"),
    "gradchain._wrappers.measurements": ("Monitoring", "monitoring", "Building blocks"),
    # wrappers: anything that takes an inner transformation
    "gradchain._masking": ("Masking and partitioning", "masking", "Wrappers"),
    "gradchain._wrappers.masking": ("Masking and partitioning", "masking", "Wrappers"),
    "gradchain._wrappers.hyperparams": ("Injected hyperparameters", "hyperparams", "Wrappers"),
    "gradchain._wrappers.finite": ("Non-finite steps and loss scaling", "finite", "Wrappers"),
    "gradchain._wrappers.accumulation": ("Accumulation and micro-batching", "accumulation", "Wrappers"),
    "gradchain._wrappers.microbatch": ("Accumulation and micro-batching", "accumulation", "Wrappers"),
    "gradchain._wrappers.control": ("Conditional application", "control", "Wrappers"),
    "gradchain._wrappers.lookahead": ("Lookahead", "lookahead", "Wrappers"),
    "gradchain._wrappers.averaging": ("Weight averaging (EMA, SWA)", "averaging", "Wrappers"),
    "gradchain._wrappers.cautious": ("Cautious updates", "cautious", "Wrappers"),
    "gradchain._wrappers.complex_valued": ("Complex parameters", "complex", "Wrappers"),
    "gradchain._wrappers.sam": ("Sharpness-aware minimization", "sam", "Wrappers"),
    # Optax's smaller namespaces
    "gradchain._aggregating": ("Per-example aggregation", "aggregating", "Optax namespaces"),
    "gradchain._microbatching": ("Micro-batched vmap", "microbatching", "Optax namespaces"),
    "gradchain._assignment": ("Linear assignment", "assignment", "Optax namespaces"),
    "gradchain._perturbations": ("Perturbation smoothing", "perturbations", "Optax namespaces"),
    "gradchain._second_order": ("Hessian helpers", "second-order-helpers", "Optax namespaces"),
    # public namespaces with private modules inside
    "gradchain.schedules": ("Schedules", "schedules", "Schedules, losses, projections"),
    "gradchain.losses": ("Losses", "losses", "Schedules, losses, projections"),
    "gradchain.projections": ("Projections", "projections", "Schedules, losses, projections"),
}
SECTIONS = [
    "Foundations",
    "Families",
    "Building blocks",
    "Wrappers",
    "Schedules, losses, projections",
    "Optax namespaces",
    "Other",
]
# kinds of module, for the sub-headings of a family page
KINDS = [("gradchain._optimizers.", "Optimizers"), ("gradchain._wrappers.", "Wrappers")]


@dataclasses.dataclass(frozen=True)
class Family:
    title: str
    slug: str
    section: str
    known: bool  # False: a module missing from FAMILIES, titled after its file


@dataclasses.dataclass
class Entry:
    """One documented object: its canonical public path and every other path to it."""

    canonical: str  # e.g. "gradchain.adam", "gradchain.losses.dice_loss"
    paths: list[str]  # every public path, canonical first
    module: str  # the private module it comes from
    family: Family
    line: int  # position in its module, for ordering
    kind: str  # "function", "class", "alias"


def family_of(module: str) -> Family:
    """The family of a private module: the longest matching prefix, else its file name."""
    best = max((k for k in FAMILIES if module == k or module.startswith(k + ".")), key=len, default=None)
    if best is not None:
        title, slug, section = FAMILIES[best]
        return Family(title, slug, section, True)
    last = [p for p in module.split(".") if p.strip("_")][-1].strip("_")
    title = last.replace("_", " ").capitalize()
    section = (
        "Wrappers"
        if "._wrappers." in module
        else "Families"
        if "._transforms." in module or "._optimizers." in module
        else "Other"
    )
    return Family(title, "x-" + re.sub(r"[^a-z0-9]+", "-", last.lower()).strip("-"), section, False)


def namespaces() -> dict[str, Any]:
    """``gradchain`` and each public subpackage or submodule, found on disk (no list to edit)."""
    import gradchain

    out = {"gradchain": gradchain}
    found = pkgutil.walk_packages(gradchain.__path__, "gradchain.", onerror=lambda name: None)
    for name in sorted(info.name for info in found):
        if not any(part.startswith("_") for part in name.split(".")):
            out[name] = importlib.import_module(name)
    return out


def public_names(module) -> list[str]:
    """A namespace's ``__all__``, or its public non-module names when it has none."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in dir(module) if not n.startswith("_") and not inspect.ismodule(getattr(module, n))]
    return list(names)


def _import_origin(namespace, name: str) -> str | None:
    """The module a namespace's ``from X import name`` line names (for aliases such as
    ``Params = Any``, whose object does not know where it was defined)."""
    try:
        tree = ast.parse(Path(inspect.getfile(namespace)).read_text())
    except (OSError, TypeError, SyntaxError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return node.module
    return None


def _line_in(module: str, name: str, obj) -> int:
    try:
        return inspect.getsourcelines(obj)[1]
    except (OSError, TypeError):
        pass
    try:
        source = Path(inspect.getfile(importlib.import_module(module))).read_text()
    except (OSError, TypeError, ImportError):
        return 10**6
    m = re.search(rf"^{re.escape(name)}\b\s*[:=]", source, re.M)
    return source[: m.start()].count("\n") + 1 if m else 10**6


def collect() -> tuple[list[Entry], dict[str, list[str]]]:
    """Every documented object (one entry per object) and each namespace's public names.

    The canonical path of an object is in the public subpackage whose private modules define
    it (``gradchain.losses.huber_loss``), else at the top level (``gradchain.adam``), else
    in the first namespace that has it (Optax's ``contrib``/``transforms`` names).
    """
    spaces = namespaces()
    names = {ns: public_names(mod) for ns, mod in spaces.items()}
    by_object: dict[object, list[tuple[str, str, object]]] = {}
    order: list[object] = []
    for ns, mod in spaces.items():
        for name in names[ns]:
            obj = getattr(mod, name)
            if inspect.ismodule(obj):
                continue  # a namespace: listed with its own names
            # one entry per gradchain object, whatever it is called where; objects from
            # elsewhere (``Params = Any``) by the module that names them
            if (getattr(obj, "__module__", None) or "").startswith("gradchain"):
                key = id(obj)
            else:
                key = (_import_origin(mod, name) or ns, name)
            if key not in by_object:
                by_object[key] = []
                order.append(key)
            by_object[key].append((ns, name, obj))
    entries = []
    for key in order:
        places = by_object[key]
        ns0, name0, obj = places[0]
        module = getattr(obj, "__module__", None) or ""
        if not module.startswith("gradchain"):
            module = _import_origin(spaces[ns0], name0) or ns0
        paths = [f"{ns}.{name}" for ns, name, _ in places]
        home = [p for p in paths if p.count(".") >= 2 and module.startswith(p.rsplit(".", 1)[0] + ".")]
        top = [p for p in paths if p.count(".") == 1]
        own = getattr(obj, "__name__", None)
        prefer = sorted(home or top or paths, key=lambda p: p.rsplit(".", 1)[1] != own)  # stable
        canonical = prefer[0]
        paths = [canonical] + [p for p in paths if p != canonical]
        kind = "class" if inspect.isclass(obj) else "function" if callable(obj) else "alias"
        short = canonical.rsplit(".", 1)[1]
        entries.append(Entry(canonical, paths, module, family_of(module), _line_in(module, short, obj), kind))
    return entries, names


def slug_of_module_kind(module: str) -> str:
    for prefix, title in KINDS:
        if module.startswith(prefix):
            return title
    return "Building blocks"
