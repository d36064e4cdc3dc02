"""Porting is an import change: every public name of Optax 0.2.8 (top level and each public
submodule) has a gradchain counterpart under the same path, or a rename in the README's
porting table."""

from __future__ import annotations

import importlib
import re
import types
from pathlib import Path

import optax
import pytest

import gradchain

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()

# Optax's public submodules; `optax.X.name` must be `gradchain.X.name`.
NAMESPACES = (
    "",
    "losses",
    "schedules",
    "transforms",
    "projections",
    "contrib",
    "tree_utils",
    "tree",
    "second_order",
    "assignment",
    "perturbations",
    "microbatching",
    "experimental",
)


def _rename_rows() -> list[str]:
    """The rows of the README's first porting table (Optax name -> gradchain name)."""
    section = README[README.index("### Porting from Optax") :]
    start = section.index("| ---")
    header = section.rfind("\n", 0, start - 1) + 1
    table = section[header : section.index("\n\n", start)]
    return [row for row in table.splitlines()[2:] if row.startswith("|")]


def _renamed() -> set[str]:
    """The Optax names the README's porting table maps to another gradchain name."""
    return {m for row in _rename_rows() for m in re.findall(r"`optax\.([\w.]+)", row)}


def _public(module) -> list[str]:
    names = []
    for n in dir(module):
        obj = getattr(module, n)
        if n.startswith("_"):
            continue
        # modules the namespace merely imported (functools, typing, ...) are not Optax names
        if isinstance(obj, types.ModuleType) and not obj.__name__.startswith("optax"):
            continue
        names.append(n)
    return names


def _optax_names():
    for ns in NAMESPACES:
        module = importlib.import_module(f"optax.{ns}" if ns else "optax")
        for n in _public(module):
            yield ns, n


def _missing():
    renamed = _renamed()
    out = []
    for ns, n in _optax_names():
        path = f"{ns}.{n}" if ns else n
        try:
            target = importlib.import_module(f"gradchain.{ns}") if ns else gradchain
        except ImportError:
            target = None
        if target is None or not hasattr(target, n):
            if path not in renamed:
                out.append(f"optax.{path}")
    return out


def test_optax_has_the_names_this_test_expects():
    assert len(list(_optax_names())) > 400, "optax 0.2.8's public surface was not enumerated"
    assert optax.__version__ == "0.2.8"


def test_every_optax_name_has_a_counterpart_or_a_documented_rename():
    missing = _missing()
    assert not missing, (
        f"{len(missing)} Optax names have no gradchain counterpart and no README rename: {missing}"
    )


@pytest.mark.parametrize("ns", [ns for ns in NAMESPACES if ns])
def test_each_namespace_is_importable_as_in_optax(ns):
    module = importlib.import_module(f"gradchain.{ns}")
    assert getattr(gradchain, ns) is module


def test_the_readme_renames_name_real_gradchain_objects():
    rows = _rename_rows()
    assert len(rows) >= 4
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        for name in re.findall(r"`(\w+)", cells[1]):
            assert hasattr(gradchain, name), (
                f"README porting table names gradchain.{name}, which does not exist"
            )
