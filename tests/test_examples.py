"""Smoke tests for the runnable examples: each one runs with ``--quick`` and must succeed.

Every example checks its own results in ``--quick`` mode (accuracy above chance, loss
going down, divergence where expected) and exits non-zero otherwise; here each runs in
a subprocess (one test per run, so pytest-xdist spreads them over the workers), and the
test checks the exit code, the "OK:" line and that the PNG was written. ``--help`` is
checked in-process (it needs no training).

Skipped unless the ``examples`` extra is installed (flax, matplotlib, tqdm,
scikit-learn, mlxtend).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

for _mod in ("flax", "matplotlib", "tqdm", "sklearn", "mlxtend"):
    pytest.importorskip(_mod)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# id: (script, extra arguments, PNG it writes)
RUNS = {
    "cnn_mnist-optimizer": ("cnn_mnist.py", ["--style", "optimizer"], "cnn_mnist_optimizer.png"),
    "cnn_digits-functional": (
        "cnn_mnist.py",
        ["--style", "functional", "--dataset", "digits", "--moments", "8bit"],
        "cnn_digits_functional.png",
    ),
    "cnn_mnist-flat-bf16": (
        "cnn_mnist.py",
        ["--style", "flat", "--moments", "bfloat16"],
        "cnn_mnist_flat.png",
    ),
    "regression": ("regression.py", [], "regression.png"),
    "lr_sweep": ("lr_sweep.py", [], "lr_sweep.png"),
    "exploding_gradients": ("exploding_gradients.py", [], "exploding_gradients.png"),
    "optimizer_tour": ("optimizer_tour.py", [], "optimizer_tour.png"),
    "bf16_training": ("bf16_training.py", [], "bf16_training.png"),
    "lm_optimizers": ("lm_optimizers.py", [], "lm_optimizers.png"),
}
SCRIPTS = sorted({script for script, _, _ in RUNS.values()})
TIMEOUT_S = 300


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("JAX_PLATFORMS", "cpu")
    # compile-fast (conftest.py), and the pytest workers share the cores
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
    env["MPLBACKEND"] = "Agg"
    return env


@pytest.mark.parametrize("name", list(RUNS))
def test_example_quick(name, tmp_path):
    script, extra, png = RUNS[name]
    cmd = [sys.executable, str(EXAMPLES / script), "--quick", "--out", str(tmp_path), *extra]
    proc = subprocess.run(
        cmd, check=False, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S
    )
    log = f"\n--- stdout (tail) ---\n{proc.stdout[-3000:]}\n--- stderr (tail) ---\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, f"{name} exited with {proc.returncode}{log}"
    assert "OK:" in proc.stdout, f"{name} did not report its checks{log}"
    path = tmp_path / png
    assert path.is_file() and path.stat().st_size > 10_000, f"{name} did not write {path}{log}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script, capsys):
    """``--help`` exits 0 and documents ``--quick`` and ``--out``; importing the script trains nothing."""
    spec = importlib.util.spec_from_file_location(f"example_{script[:-3]}", EXAMPLES / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.__doc__ and "What it shows" in module.__doc__
    with pytest.raises(SystemExit) as exit_info:
        module.parse_args(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--quick" in out and "--out" in out


def test_every_example_is_run():
    scripts = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(SCRIPTS)
