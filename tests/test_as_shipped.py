"""The tests listed in ``conftest.AS_SHIPPED``, run in one subprocess with XLA's default flags.

The suite compiles without LLVM's optimizations to save time (conftest.py); these tests'
claims depend on the arithmetic of optimized code (bit-for-bit equality of two different
programs, parity through an iteration that amplifies rounding), which is what users run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import conftest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(conftest.XLA_DEFAULTS, reason="the whole run uses XLA's default flags: they ran in it")
def test_the_listed_tests_pass_with_xlas_default_flags():
    env = dict(os.environ, GRADCHAIN_TEST_XLA_DEFAULTS="1")
    flags = [f for f in env.get("XLA_FLAGS", "").split() if f not in conftest.FAST_COMPILE_FLAGS]
    env["XLA_FLAGS"] = " ".join(flags)
    cmd = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider"]
    proc = subprocess.run(
        [*cmd, *conftest.AS_SHIPPED],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, f"{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    # each listed node id selects at least one test (pytest fails on one that selects none),
    # and every selected test passed: none skipped or deselected
    n_passed = int(summary.split(" passed")[0].split()[-1]) if " passed in " in summary else 0
    assert n_passed >= len(conftest.AS_SHIPPED) and "skipped" not in summary, summary
    print(summary)
