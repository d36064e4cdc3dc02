"""The release: a wheel and an sdist build, and the wheel works outside the checkout.

One module-scoped build (``python -m build --no-isolation``, so it uses this environment's
setuptools and needs no network), then checks on what it made:

* the wheel carries ``gradchain/py.typed`` and the version of ``pyproject.toml``;
* installed into a fresh virtual environment, ``import gradchain`` resolves to that
  environment's site-packages, not to the checkout, and README.md's first Python block runs
  there. The fresh environment has its own site-packages (where the wheel goes, with
  ``pip install --no-deps --ignore-installed``) and reuses this environment's JAX through a
  ``.pth`` line, which puts this site-packages *after* its own: a ``.pth`` in a directory
  reached that way is not executed, so the checkout's editable-install hook stays off;
* the sdist holds what the tests and the docs build need (``tests/``, ``docs/``,
  ``mkdocs.yml``, the examples and benchmarks the tests run, README and CHANGELOG).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("build", reason="`python -m build` comes with the docs extra: pip install -e '.[docs]'")


def _version() -> str:
    """pyproject.toml's ``version`` (the one place it is written)."""
    m = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert m, "pyproject.toml has no static version"
    return m.group(1)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # setuptools also refreshes gradchain.egg-info/ and build/ in the checkout (both ignored by git)
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def _one(dist: Path, pattern: str) -> Path:
    found = sorted(dist.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {dist}, found {found}"
    return found[0]


def test_wheel_ships_py_typed_and_the_version(dist):
    wheel = _one(dist, "gradchain-*.whl")
    assert wheel.name.startswith(f"gradchain-{_version()}-py3-none-any"), wheel.name
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        metadata = z.read(f"gradchain-{_version()}.dist-info/METADATA").decode()
    assert "gradchain/py.typed" in names
    assert "gradchain/__init__.py" in names
    assert not any(n.startswith(("tests/", "docs/", "examples/")) for n in names), (
        "the wheel holds the package only"
    )
    assert f"Version: {_version()}" in metadata
    assert re.search(r"^Requires-Dist: jax>=", metadata, re.M)


def _readme_first_python_block() -> str:
    m = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert m, "README.md has no ```python block"
    return m.group(1)


def test_wheel_installs_and_runs_outside_the_checkout(dist, tmp_path):
    wheel = _one(dist, "gradchain-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    # reuse this environment's JAX and NumPy, after the fresh site-packages
    (site / "zz_reuse_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(JAX_PLATFORMS="cpu", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INDEX="1")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--ignore-installed", "--quiet", str(wheel)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr

    script = tmp_path / "use_gradchain.py"
    script.write_text(
        "import importlib.metadata, gradchain\n"
        "print('FILE', gradchain.__file__)\n"
        "print('VERSION', importlib.metadata.version('gradchain'))\n"
        "print('ATTR', getattr(gradchain, '__version__', None))\n"
        "import pathlib; print('TYPED', (pathlib.Path(gradchain.__file__).parent / 'py.typed').is_file())\n"
        + _readme_first_python_block()
        + "\nprint('README OK', sorted(params))\n"
    )
    run = subprocess.run(
        [python, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = dict(line.split(" ", 1) for line in run.stdout.splitlines() if " " in line)
    imported = Path(lines["FILE"]).resolve()
    assert imported.is_relative_to(site.resolve()), f"gradchain imported from {imported}, not {site}"
    assert not imported.is_relative_to(ROOT), imported
    assert lines["VERSION"] == _version()
    assert lines["ATTR"] == _version(), "gradchain.__version__ must match pyproject.toml"
    assert lines["TYPED"] == "True"
    assert "README OK ['b', 'w']" in run.stdout


def _needed_by_tests() -> set[str]:
    """Files the test suite and the docs build read from the source tree."""
    needed = {"README.md", "CHANGELOG.md", "pyproject.toml", "mkdocs.yml"}
    for folder in ("tests", "docs", "examples", "benchmarks"):
        for path in (ROOT / folder).rglob("*"):
            rel = path.relative_to(ROOT)
            skip = {"__pycache__", "outputs"} & set(rel.parts) or path.suffix in (".pyc", ".tmp")
            if path.is_file() and not skip:
                needed.add(rel.as_posix())
    return needed


def test_sdist_holds_what_the_tests_need(dist):
    sdist = _one(dist, "gradchain-*.tar.gz")
    prefix = f"gradchain-{_version()}/"
    with tarfile.open(sdist) as tar:
        members = {m.name[len(prefix) :] for m in tar.getmembers() if m.isfile()}
    assert "gradchain/py.typed" in members
    assert "gradchain/__init__.py" in members
    missing = sorted(_needed_by_tests() - members)
    assert not missing, (
        f"{len(missing)} files the tests need are not in the sdist (MANIFEST.in: graft tests docs "
        f"examples benchmarks; include CHANGELOG.md mkdocs.yml), e.g. {missing[:10]}"
    )
