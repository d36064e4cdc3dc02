"""The documentation site: it builds strictly, documents every public name, quotes the
README's porting tables faithfully, its code runs, and in a real browser its math renders
and its search finds things.

The build (``mkdocs build --strict`` into a temp dir) runs once per test session, shared by
the pytest-xdist workers through a lock. The browser part uses Debian's ``chromium`` and
``chromium-driver`` through selenium and is skipped, with the reason, when either is
missing; everything else never skips. ``GRADCHAIN_UPDATE_SCREENSHOT=1`` also writes the
browser's screenshot to ``docs/images/browser_check.png`` (otherwise it goes to the test's
temp dir, so that a test run leaves the checkout clean).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import html
import http.server
import importlib
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import gradchain

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs" / "_gen"))
import mathblocks  # noqa: E402

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


# ---------------------------------------------------------------- the strict build


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """The built site, built once per session (once per run under pytest-xdist)."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # one directory for all the workers of this run
    out, log = shared / "docs-site", shared / "docs-build.log"
    with open(shared / "docs-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "index.html").exists() and not log.exists():
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                env={**os.environ, "NO_MKDOCS_2_WARNING": "1", "JAX_PLATFORMS": "cpu"},
                timeout=600,
            )
            log.write_text(
                f"rc={proc.returncode} seconds={time.perf_counter() - start:.1f}\n{proc.stdout}\n{proc.stderr}"
            )
    text = log.read_text()
    assert text.startswith("rc=0 "), (
        "mkdocs build --strict failed (pip install -e '.[docs]'):\n" + text[-6000:]
    )
    return out


def test_strict_build(site):
    assert (site / "index.html").is_file()
    assert (site / "search" / "search_index.json").is_file()
    for page in (
        "getting-started",
        "porting-optax",
        "porting-torch",
        "porting-keras",
        "writing-a-transformation",
    ):
        assert (site / page / "index.html").is_file(), page
    for page in ("speed", "scale-and-memory", "examples", "changelog", "reference"):
        assert (site / page / "index.html").is_file(), page


# ---------------------------------------------------------------- every public name


def _expected_public_paths() -> set[str]:
    """``gradchain.NAME`` for ``gradchain.__all__`` and ``gradchain.SUB.NAME`` for the
    ``__all__`` of every public subpackage and submodule (found on disk, not listed here)."""
    expected = {f"gradchain.{n}" for n in gradchain.__all__}
    for info in pkgutil.walk_packages(gradchain.__path__, "gradchain.", onerror=lambda name: None):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        module = importlib.import_module(info.name)
        names = getattr(module, "__all__", None)
        if names is None:
            names = [
                n
                for n in dir(module)
                if not n.startswith("_") and not hasattr(getattr(module, n), "__path__")
            ]
        expected |= {f"{info.name}.{n}" for n in names}
    return expected


def _index_rows(site: Path) -> list[tuple[str, str | None]]:
    """(public path, link target or None) for each row of the API index's tables."""
    page = (site / "reference" / "index.html").read_text()
    rows = []
    for cell in re.findall(r"<tr>\s*<td>(.*?)</td>", page, re.S):
        code = re.search(r"<code>(gradchain[^<]*)</code>", cell)
        if code:
            href = re.search(r'<a href="([^"]+)"', cell)
            rows.append((html.unescape(code.group(1)), href.group(1) if href else None))
    return rows


def test_api_index_lists_every_public_name(site):
    listed = {path for path, _ in _index_rows(site)}
    expected = _expected_public_paths()
    assert not expected - listed, f"missing from the API index: {sorted(expected - listed)}"
    assert not listed - expected, f"in the API index but not public: {sorted(listed - expected)}"


def test_every_index_entry_links_to_its_documentation(site):
    """Each name's link lands on a heading of the reference with that object's anchor."""
    missing = []
    for path, href in _index_rows(site):
        if href is None:
            assert hasattr(importlib.import_module(path), "__name__"), path  # a namespace row
            continue
        page, _, anchor = href.partition("#")
        target = (site / "reference" / page / "index.html").read_text()
        if f'id="{anchor}"' not in target:
            missing.append((path, href))
    assert not missing, f"index links without a documented target: {missing[:20]}"


def test_update_rules_are_typeset(site):
    """The docstring formula of scale_by_adam is a display formula on its family's page."""
    page = (site / "reference" / "adam" / "index.html").read_text()
    block = page[page.index('id="gradchain.scale_by_adam"') :]
    block = block[: block.index('id="gradchain.scale_by_amsgrad"')]
    assert '<div class="arithmatex">' in block
    assert r"\begin{aligned}" in block and r"m_{t} &amp;= b_{1} \cdot m_{t-1}" in block
    assert "As written in the docstring" in block  # the plain-text original, collapsed


# ---------------------------------------------------------------- quoted tables


def _markdown_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| ---")]


def _cells(row: str) -> list[str]:
    """A Markdown table row's cells, split as Python-Markdown does: not on a pipe inside a
    code span or after a backslash."""
    cells, cell, in_code, prev = [], "", False, ""
    for ch in row.strip().strip("|"):
        if ch == "`":
            in_code = not in_code
        if ch == "|" and not in_code and prev != "\\":
            cells.append(cell)
            cell = ""
        else:
            cell += ch
        prev = ch
    return [c.strip() for c in [*cells, cell]]


def _norm(text: str) -> str:
    text = html.unescape(re.sub(r"<[^>]+>", "", text))
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"\s+", " ", text.replace("`", "").replace("**", "")).strip()


@functools.cache
def _readme_section(heading: str) -> str:
    sys.path.insert(0, str(ROOT / "docs" / "_gen"))
    import hooks

    return hooks.section((ROOT / "README.md").read_text(), heading)


@pytest.mark.parametrize(
    ("heading", "page"),
    [("Porting from Optax", "porting-optax"), ("From torch.optim", "porting-torch")],
)
def test_porting_tables_match_the_readme(site, heading, page):
    """Every row of the README's porting tables is a row of the guide, cell for cell."""
    built = (site / page / "index.html").read_text()
    built_rows = {
        " | ".join(_norm(c) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S))
        for row in re.findall(r"<tr>(.*?)</tr>", built, re.S)
    }
    rows = _markdown_rows(_readme_section(heading))
    assert len(rows) >= 10, f"README section {heading!r} has {len(rows)} table rows"
    for row in rows:
        want = " | ".join(_norm(c) for c in _cells(row))
        assert want in built_rows, f"README row not in {page}: {row}"


# ---------------------------------------------------------------- the guides' code


@pytest.mark.parametrize(
    "guide", ["getting-started.md", "writing-a-transformation.md", "scale-and-memory.md"]
)
def test_guide_code_runs(guide, tmp_path):
    """The guide's ```python blocks, run in order in one fresh interpreter."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / guide).read_text(), re.S)
    assert blocks, guide
    script = tmp_path / "guide.py"
    script.write_text("\n\n".join(blocks))
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


# ---------------------------------------------------------------- the formula converter


def test_math_converter_typesets_assignments():
    tex = mathblocks.to_latex(
        "m_t = b1 * m_{t-1} + (1 - b1) * g_t\nu_t = m_t / (sqrt(v_t + eps_root) + eps)   (Adam)"
    )
    assert tex is not None
    assert r"m_{t} &= b_{1} \cdot m_{t-1}" in tex
    assert r"\sqrt{v_{t} + \epsilon_{\text{root}}}" in tex
    assert r"\text{(Adam)}" in tex


@pytest.mark.parametrize(
    "block",
    [
        "chain(scale_by_adam(b1, b2), scale_by_learning_rate(lr))",  # code, not a formula
        "for i in 0 .. k-2:  y = y - A(d; params y)",  # pseudo-code
        "z_t ~ N(0, 1), one draw per coordinate",  # prose
        "u = state.count + 1",  # attribute access
        "a = b\n  + c",  # a continuation line
    ],
)
def test_math_converter_leaves_anything_else_alone(block):
    assert mathblocks.to_latex(block) is None


# ---------------------------------------------------------------- in a real browser


@contextlib.contextmanager
def _serve(directory: Path):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _browser():
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip(f"no {CHROMIUM} / {CHROMEDRIVER}: apt-get install -y chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium comes with the docs extra")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _wait(condition, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    return condition()


def test_in_a_browser_math_renders_and_search_finds(site, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver = _browser()
    try:
        with _serve(site) as url:
            # math: KaTeX typesets the guides' and the docstrings' formulas, without errors
            for page in ("getting-started/", "reference/adam/"):
                driver.get(f"{url}/{page}")
                count = _wait(
                    lambda: driver.execute_script("return document.querySelectorAll('.katex').length")
                )
                assert count > 0, f"no KaTeX output on {page}"
                errors = driver.execute_script("return document.querySelectorAll('.katex-error').length")
                assert errors == 0, f"{errors} formulas KaTeX could not typeset on {page}"
            assert driver.execute_script("return document.querySelectorAll('.katex-display').length") >= 3

            # search: type a query, see results that lead to adamw
            driver.get(f"{url}/reference/adam/")
            _wait(lambda: driver.execute_script("return document.querySelectorAll('.katex').length"))
            driver.execute_script(
                "document.getElementById('gradchain.scale_by_adam').scrollIntoView();window.scrollBy(0, -80)"
            )
            box = driver.find_element(By.CSS_SELECTOR, "input.md-search__input")
            box.click()
            box.send_keys("adamw")

            def results():
                items = driver.find_elements(By.CSS_SELECTOR, ".md-search-result__item")
                return [i for i in items if "adamw" in i.text.lower()]

            found = _wait(results)
            assert found, "search for 'adamw' shows no result mentioning adamw"
            links = driver.execute_script(
                "return [...document.querySelectorAll('.md-search-result__item a')].map(a => a.href)"
            )
            assert any("#gradchain.adamw" in link for link in links), links[:10]
            time.sleep(0.5)
            shot = tmp_path / "browser_check.png"
            driver.save_screenshot(str(shot))
            if os.environ.get("GRADCHAIN_UPDATE_SCREENSHOT") == "1":
                (ROOT / "docs" / "images").mkdir(exist_ok=True)
                shutil.copy(shot, ROOT / "docs" / "images" / "browser_check.png")

            # the API index page lists the names as links
            box.send_keys(Keys.ESCAPE)
            driver.get(f"{url}/reference/")
            assert len(driver.find_elements(By.CSS_SELECTOR, "td a code")) >= len(gradchain.__all__) - 10
    finally:
        driver.quit()
