"""A griffe extension: gradchain's docstrings, readied for the Markdown reference pages.

The docstrings are Google style with reStructuredText literal blocks (``Update rule::``
followed by an indented block). Before mkdocstrings renders them, each docstring is
rewritten:

* a literal block that `mathblocks.to_latex` can read as a list of assignments becomes a
  display formula (``$$ \\begin{aligned} ... $$``, typeset by KaTeX), followed by a
  collapsed block with the formula exactly as written in the source;
* any other literal block (code, pseudo-code) becomes a fenced ``text`` block;
* reST roles (``:func:`chain```) become code spans;
* a class field without a docstring gets its trailing source comment as one
  (``mu: Any  # per-param tree, `mu_dtype` or param dtype``), which is how gradchain's
  state NamedTuples document their fields;
* an argument entry that documents several arguments at once (``b1, b2, eps: As in
  `scale_by_adam`.``) becomes one entry per argument, so each gets a row of the table.

The source is never changed; only what the site shows.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import griffe

sys.path.insert(0, str(Path(__file__).parent))
from mathblocks import to_latex

_ROLE = re.compile(r":(?:func|class|meth|data|attr|mod|obj):`~?([^`]+)`")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def rewrite(doc: str) -> str:
    """The docstring with its literal blocks turned into math or fenced text."""
    lines = _ROLE.sub(r"`\1`", doc).split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::") and not line.strip().startswith(">>>"):
            base = _indent(line)
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            k = j
            while k < len(lines) and (not lines[k].strip() or _indent(lines[k]) > base):
                k += 1
            block = lines[j:k]
            while block and not block[-1].strip():
                block.pop()
                k -= 1
            if j < len(lines) and block and _indent(block[0]) > base:
                head = line.rstrip()[:-2].rstrip()
                pad = " " * base
                if head.strip():
                    out.append(head + ":")
                    out.append("")
                body = "\n".join(ln[base:] for ln in block)
                latex = to_latex(body)
                if latex is not None:
                    out += [pad + "$$", *[pad + ln for ln in latex.split("\n")], pad + "$$", ""]
                    out.append(pad + '??? quote "As written in the docstring"')
                    out.append("")
                    out += [
                        pad + "    ```text",
                        *[pad + "    " + ln for ln in _dedent(block)],
                        pad + "    ```",
                    ]
                else:
                    out += [pad + "```text", *[pad + ln for ln in _dedent(block)], pad + "```"]
                i = k
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


_SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Keyword Args|Other Parameters):\s*$")
_NAMES = r"[A-Za-z_][A-Za-z0-9_]*(?:\s*,\s*[A-Za-z_][A-Za-z0-9_]*)*"


def split_grouped_args(doc: str) -> str:
    """``a, b: text`` in an Args section -> ``a: text`` and ``b: text``."""
    lines = doc.split("\n")
    out: list[str] = []
    i = 0
    section_indent = None
    while i < len(lines):
        line = lines[i]
        m = _SECTION.match(line)
        if m:
            section_indent = len(m.group(1))
            out.append(line)
            i += 1
            continue
        if section_indent is not None and line.strip() and _indent(line) <= section_indent:
            section_indent = None
        if section_indent is not None and line.strip():
            item = _indent(line)
            # the names may run over several lines, each ending with a comma
            head, j = line.strip(), i
            while head.endswith(",") and j + 1 < len(lines) and _indent(lines[j + 1]) > item:
                j += 1
                head += " " + lines[j].strip()
            g = re.match(rf"^({_NAMES})\s*:\s*(.*)$", head)
            if g and "," in g.group(1):
                names = [n.strip() for n in g.group(1).split(",")]
                k = j + 1
                cont = []
                while k < len(lines) and lines[k].strip() and _indent(lines[k]) > item:
                    cont.append(lines[k])
                    k += 1
                for name in names:
                    out.append(" " * item + f"{name}: {g.group(2)}")
                    out += cont
                i = k
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


def _dedent(block: list[str]) -> list[str]:
    width = min(_indent(ln) for ln in block if ln.strip())
    return [ln[width:] if ln.strip() else "" for ln in block]


class GradchainDocstrings(griffe.Extension):
    """Rewrite each docstring once, when griffe loads the object."""

    def __init__(self) -> None:
        super().__init__()
        self.done: set[int] = set()  # docstrings already rewritten (or made from a comment)

    def on_instance(self, *, node, obj, agent, **kwargs) -> None:
        if obj.is_attribute and obj.docstring is None and obj.parent is not None and obj.parent.is_class:
            try:
                first = obj.lines[0] if obj.lines else ""
            except (OSError, ValueError, IndexError):  # no source at hand
                first = ""
            m = re.search(r"#\s*(.+?)\s*$", first)
            if m and not m.group(1).startswith(("noqa", "type:", "pyright")):
                obj.docstring = griffe.Docstring(m.group(1)[0].upper() + m.group(1)[1:] + ".", parent=obj)
                self.done.add(id(obj.docstring))
        if obj.docstring is not None and id(obj.docstring) not in self.done:
            obj.docstring.value = rewrite(split_grouped_args(obj.docstring.value))
            self.done.add(id(obj.docstring))
