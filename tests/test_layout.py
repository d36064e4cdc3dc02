"""The README's layout section lists every module of the package, and the layering holds:
no module imports another module's private name."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "gradchain"


def _modules():
    return sorted(p for p in PKG.rglob("*.py") if p.name != "__init__.py" and "losses" not in p.parts
                  and "schedules" not in p.parts and "projections" not in p.parts)  # fmt: skip


def test_readme_layout_lists_every_module():
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("## Layout") :]
    block = block[: block.index("```", block.index("```") + 3)]
    missing = [
        str(p.relative_to(PKG)) for p in _modules() if not re.search(rf"\b{re.escape(p.name)}\b", block)
    ]
    assert not missing, f"modules missing from the README's layout section: {missing}"


def test_no_module_imports_another_modules_private_name():
    offenders = []
    for path in PKG.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gradchain"):
                for alias in node.names:
                    if alias.name.startswith("_"):
                        offenders.append(f"{path.relative_to(ROOT)}: from {node.module} import {alias.name}")
    assert not offenders, "\n".join(offenders)


def test_no_module_is_over_600_lines():
    long = {
        str(p.relative_to(ROOT)): n for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > 600
    }
    assert not long, f"modules over 600 lines: {long}"
