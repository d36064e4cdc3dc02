"""Smoke tests for the benchmark scripts: each runs end to end on a tiny configuration
(``--tiny``, ~1/1000-size trees, where the script has it). ``state_options.py`` and
``optimizer_step.py``'s first-order optimizers run in benchmarks/gpu_check.sh's dry run
(test_gpu_check.py); here ``optimizer_step.py`` runs SOAP and Shampoo.

Timings are never asserted (performance targets live in the scripts' reports); these only
check that a script runs, prints its table and writes its files, so a refactor cannot
silently break a benchmark that CI otherwise never executes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("optax")
pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]

RUNS = {
    "muon_step": (
        ["muon_step.py", "--tiny", "--contenders", "gradchain"],
        "muon_step_tiny.json",
    ),
    # the first-order optimizers run in gpu_check.sh's dry run (test_gpu_check.py)
    "optimizer_step_second_order": (
        ["optimizer_step.py", "--tiny", "--tree", "resnet50", "--optimizer", "second_order"],
        "optimizer_step_second_order_tiny.json",
    ),
    "hlo_bytes": (["hlo_bytes.py", "--quick", "--tree", "one_leaf_64m"], "hlo_bytes_canonical_quick.json"),
    "tree_overheads": (
        ["tree_overheads.py", "--leaves", "20", "--size", "100", "--repeats", "2"],
        "tree_overheads_20x100.json",
    ),
}


@pytest.mark.parametrize("name", list(RUNS))
def test_benchmark_script_runs(name, tmp_path):
    args, output = RUNS[name]
    env = dict(os.environ, JAX_PLATFORMS="cpu", MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    # compile-fast (conftest.py), and the pytest workers share the cores
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
    cmd = [sys.executable, str(ROOT / "benchmarks" / args[0]), *args[1:], "--out", str(tmp_path)]
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    report = json.loads((tmp_path / output).read_text())
    assert report, output
    md = (tmp_path / output).with_suffix(".md").read_text()
    assert md.count("\n|") >= 3, md  # a Markdown table with at least one row
    if name == "optimizer_step_second_order":
        rows = {(r["optimizer"], c): v for r in report["results"] for c, v in r["contenders"].items()}
        assert set(rows) == {(o, c) for o in ("soap", "shampoo") for c in ("gradchain", "pytorch_optimizer")}
        for key, v in rows.items():
            # samples are whole refresh periods; SOAP and Shampoo hold more than Adam's 8 B/param
            assert v["steps_per_sample"] % 10 == 0 and v["state_bytes_per_param"] > 8, (key, v)
