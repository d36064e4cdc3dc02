"""MkDocs hooks: generate the API reference from the code, and pull shared text in.

* ``on_config``: reads gradchain's public surface (`api.collect`) and expands the
  ``API reference`` entry of the nav into one page per family, grouped by section.
* ``on_files``: adds the generated pages (``reference/*.md``), the changelog and the
  pictures that live outside ``docs/`` (the examples' plots, the benchmark plots).
* ``on_page_markdown``: replaces ``<!-- include: FILE#HEADING -->`` with that section of
  FILE (``<!-- include: FILE -->``: the whole file), so the guides quote README.md,
  benchmarks/README.md and examples/README.md instead of copying them; relative links in
  the quoted text are rewritten to the site's pages or to plain file names.

Every page of the reference is regenerated at each build, so a name added to the code
appears without editing anything here.
"""

from __future__ import annotations

import ast
import logging
import re
import sys
from pathlib import Path

from mkdocs.structure.files import File

sys.path.insert(0, str(Path(__file__).parent))
import api

log = logging.getLogger("mkdocs.plugins.gradchain")
ROOT = Path(__file__).resolve().parents[2]
STATE: dict = {}

# repository files that have a page of their own on the site
PAGE_FOR = {
    "CONTRIBUTING.md": "writing-a-transformation.md",
    "README.md": "index.md",
    "examples/README.md": "examples.md",
    "benchmarks/README.md": "speed.md",
    "CHANGELOG.md": "changelog.md",
}


# ---------------------------------------------------------------- the reference pages


def _families(entries):
    order = {fam: i for i, fam in enumerate(dict.fromkeys(api.FAMILIES.values()))}
    fams = {}
    for e in entries:
        fams.setdefault(e.family, []).append(e)
    key = lambda f: (api.SECTIONS.index(f.section), order.get((f.title, f.slug, f.section), 10**6), f.title)
    return {f: fams[f] for f in sorted(fams, key=key)}


def _family_page(family, entries) -> str:
    out = [f"# {family.title}", ""]
    groups: dict[str, list] = {}
    # functions first (what a reader looks for), then their state classes, in source order
    for e in sorted(entries, key=lambda e: (e.module, e.kind == "class", e.line, e.canonical)):
        groups.setdefault(api.slug_of_module_kind(e.module), []).append(e)
    kinds = [k for k in ("Building blocks", "Optimizers", "Wrappers") if k in groups]
    names = ", ".join(
        f"[`{e.canonical.rsplit('.', 1)[1]}`](#{e.canonical})" for k in kinds for e in groups[k]
    )
    out += [f"On this page: {names}.", ""]
    for kind in kinds:
        out += [f"## {kind}", ""]
        for e in groups[kind]:
            out += [f"::: {e.canonical}", "    options:", "      heading_level: 3"]
            if e.kind == "class":  # fields on one line each: `count: Array`
                out += ["      separate_signature: false"]
            out += [""]
            if len(e.paths) > 1:
                others = ", ".join(f"`{p}`" for p in e.paths[1:])
                out += [f"Also available as {others}.", ""]
    return "\n".join(out)


def _index_page(entries, names, pages) -> str:
    where = {}
    for e in entries:
        for p in e.paths:
            where[p] = e
    out = [
        "# API index",
        "",
        "Every public name, by namespace, with the page that documents it. Generated from",
        "`__all__` of `gradchain` and of each public subpackage at build time.",
        "",
    ]
    spaces = list(names)
    out += ["Namespaces: " + ", ".join(f"[`{ns}`](#{ns.replace('.', '-')})" for ns in spaces) + ".", ""]
    for ns in spaces:
        out += [f"## `{ns}` {{#{ns.replace('.', '-')}}}", ""]
        out += [f"{len(names[ns])} names.", "", "| name | page | documented as |", "| --- | --- | --- |"]
        for name in sorted(names[ns], key=str.lower):
            path = f"{ns}.{name}"
            if path in names:  # a namespace
                out.append(f"| `{path}` | [namespace](#{path.replace('.', '-')}) | |")
                continue
            e = where[path]
            link = f"{pages[e.family]}#{e.canonical}"
            same = "" if e.canonical == path else f"`{e.canonical}`"
            out.append(f"| [`{path}`]({link}) | [{e.family.title}]({link}) | {same} |")
        out.append("")
    return "\n".join(out)


def on_config(config, **kwargs):
    entries, names = api.collect()
    families = _families(entries)
    pages = {f: f"{f.slug}.md" for f in families}
    STATE.update(entries=entries, names=names, families=families, pages=pages)
    unknown = sorted({e.module for e in entries if not e.family.known})
    if unknown:
        log.info("gradchain docs: modules without a family title (titled after the file): %s", unknown)
    sections: dict[str, list] = {}
    for fam in families:
        sections.setdefault(fam.section, []).append({fam.title: f"reference/{pages[fam]}"})
    reference = [{"API index": "reference/index.md"}] + [
        {s: sections[s]} for s in api.SECTIONS if s in sections
    ]
    nav = config["nav"] or []
    for item in nav:
        if isinstance(item, dict) and "API reference" in item:
            item["API reference"] = reference
    return config


def on_files(files, config, **kwargs):
    families, pages = STATE["families"], STATE["pages"]
    for fam, entries in families.items():
        files.append(File.generated(config, f"reference/{pages[fam]}", content=_family_page(fam, entries)))
    files.append(
        File.generated(
            config,
            "reference/index.md",
            content=_index_page(STATE["entries"], STATE["names"], pages),
        )
    )
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    files.append(
        File.generated(config, "changelog.md", content=_relink(changelog, "CHANGELOG.md", "changelog.md"))
    )
    for folder, target in (("examples/images", "examples/images"), ("benchmarks/results/cpu", "benchmarks")):
        for png in sorted((ROOT / folder).glob("*.png")):
            files.append(File.generated(config, f"{target}/{png.name}", abs_src_path=str(png)))
    return files


# ---------------------------------------------------------------- quoting shared text

_INCLUDE = re.compile(r"<!--\s*include:\s*(?P<file>[^#\s]+)(?:#(?P<heading>[^>]*?))?\s*(?P<opts>\|[^>]*)?-->")
_LINK = re.compile(r"(!?)\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)\)")


def section(text: str, heading: str) -> str:
    """The section of a Markdown text under ``heading`` (up to the next heading of the same
    or a higher level), without the heading line. A heading is matched by its start, and
    ``Parent > Child`` looks for Child inside Parent's section."""
    for want in heading.split(" > "):
        text = _one_section(text, want.strip())
    return text


def _one_section(text: str, want: str) -> str:
    lines = text.split("\n")
    in_code = False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            in_code = not in_code
        m = re.match(r"^(#+)\s+(.*?)\s*$", line)
        if m and not in_code and m.group(2).startswith(want):
            level = len(m.group(1))
            j = i + 1
            in_code = False
            while j < len(lines):
                if lines[j].startswith("```"):
                    in_code = not in_code
                n = re.match(r"^(#+)\s", lines[j])
                if n and not in_code and len(n.group(1)) <= level:
                    break
                j += 1
            return "\n".join(lines[i + 1 : j]).strip("\n")
    raise KeyError(f"no heading starting with {want!r}")


def _intro(text: str) -> str:
    """Text before its first heading."""
    out, in_code = [], False
    for line in text.split("\n"):
        if line.startswith("```"):
            in_code = not in_code
        if not in_code and re.match(r"^#+\s", line):
            break
        out.append(line)
    return "\n".join(out).strip("\n")


def _relink(text: str, source: str, page: str) -> str:
    """Rewrite relative links of text quoted from ``source`` for the page ``page``."""
    src_dir = Path(source).parent
    depth = len(Path(page).parent.parts)
    up = "../" * depth

    def fix(m):
        bang, label, target = m.group(1), m.group("text"), m.group("target")
        if re.match(r"^[a-z]+:|^#", target):
            return m.group(0)
        path, _, anchor = target.partition("#")
        rel = (src_dir / path).as_posix()
        rel = str(Path(rel)).replace("\\", "/")
        if rel in PAGE_FOR:
            return f"{bang}[{label}]({up}{PAGE_FOR[rel]}{'#' + anchor if anchor else ''})"
        if rel.startswith("examples/images/") or rel.startswith("benchmarks/results/cpu/"):
            site = rel if rel.startswith("examples/") else "benchmarks/" + Path(rel).name
            return f"{bang}[{label}]({up}{site})"
        # a file that is not on the site: its path in the repository, as code
        if bang:
            raise ValueError(f"{source}: picture {rel} is not on the site")
        if label.strip("`") in (rel, path, Path(path).name):
            return f"`{rel}`"
        return f"{label} (`{rel}`)"

    return _LINK.sub(fix, text)


def _shift(text: str, by: int) -> str:
    if by <= 0:
        return text
    out, in_code = [], False
    for line in text.split("\n"):
        if line.startswith("```"):
            in_code = not in_code
        if not in_code and re.match(r"^#+\s", line):
            line = "#" * by + line
        out.append(line)
    return "\n".join(out)


def include(markdown: str, page_src: str) -> str:
    def repl(m):
        source = m.group("file")
        text = (ROOT / source).read_text(encoding="utf-8")
        if m.group("heading"):
            text = section(text, m.group("heading"))
        opts = (m.group("opts") or "").strip("| ").split()
        for opt in opts:
            if opt.startswith("shift="):
                text = _shift(text, int(opt.split("=", 1)[1]))
            if opt == "no-title":
                text = re.sub(r"\A#[^\n]*\n+", "", text)
            if opt == "intro":
                text = _intro(text)
        return _relink(text, source, page_src)

    return _INCLUDE.sub(repl, markdown)


_GALLERY = re.compile(r"<!--\s*gallery\s*-->")
_NAMESPACES = re.compile(r"<!--\s*namespaces\s*-->")


def namespace_table(page_src: str) -> str:
    """The public namespaces other than the top level, each with its docstring's summary."""
    up = "../" * len(Path(page_src).parent.parts)
    rows = ["| namespace | names | what it holds |", "| --- | ---: | --- |"]
    for ns, module in api.namespaces().items():
        if ns == "gradchain":
            continue
        doc = (module.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        # a pipe outside a code span would end the table cell
        doc = "".join(
            p if i % 2 else p.replace("|", "\\|") for i, p in enumerate(re.split(r"(`+[^`]*`+)", doc))
        )
        anchor = ns.replace(".", "-")
        rows.append(f"| [`{ns}`]({up}reference/index.md#{anchor}) | {len(STATE['names'][ns])} | {doc} |")
    return "\n".join(rows)


def on_page_markdown(markdown, page, config, files, **kwargs):
    markdown = include(markdown, page.file.src_uri)
    markdown = _NAMESPACES.sub(lambda m: namespace_table(page.file.src_uri), markdown)
    return _GALLERY.sub(lambda m: gallery(), markdown)


# ---------------------------------------------------------------- the examples gallery


def gallery() -> str:
    """One entry per script in examples/: its docstring's first paragraph, the caption
    examples/README.md gives its picture (``**script.py**: caption``), and its plot."""
    readme = (ROOT / "examples/README.md").read_text(encoding="utf-8")
    captions = dict(re.findall(r"^\*\*([\w.]+\.py)\*\*:\s*(.*?)(?:\n!\[|\n\n)", readme, re.M | re.S))
    out = []
    for script in sorted((ROOT / "examples").glob("*.py")):
        doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
        summary = doc.strip().split("\n\n")[0].replace("\n", " ")
        out += [f"### `{script.name}`", "", summary, ""]
        if script.name in captions:
            out += ["*The plot:* " + " ".join(captions[script.name].split()), ""]
        images = sorted((ROOT / "examples/images").glob(f"{script.stem}*.png"))
        for png in images:
            out += [f"![{script.stem}: {png.stem}](examples/images/{png.name})", ""]
        if not images:
            out += [
                f"The plot is written to `--out` when the script runs (`python examples/{script.name}`).",
                "",
            ]
        out += [
            f"Run it: `python examples/{script.name}` (`--quick` for a short run, `--help` for the options).",
            "",
        ]
    return "\n".join(out)
