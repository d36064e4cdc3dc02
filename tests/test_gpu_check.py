"""benchmarks/gpu_check.sh's dry run: every part runs on the CPU and leaves its files.

The GPU check itself needs a GPU machine; its ``--dry-run`` takes the same path through the
script (the same parts, timeouts, logs and summary) with JAX on the CPU, the tests only
collected and the benchmarks at ``--tiny`` size. This runs it once and checks what the GPU
run would hand back: a summary row per part, each part ``ok``, and each part's files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("optax")
pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
TEST_PARTS = [
    "test_dtypes",
    "test_sharding",
    "test_nan",
    "test_muon_bf16",
    "test_low_precision",
    "test_adam_8bit",
]
BENCH_FILES = {
    "bench_step": ["optimizer_step_tiny.json", "optimizer_step_tiny.md"],
    "bench_step_1b": ["gpt_1b/optimizer_step_tiny.json", "gpt_1b/optimizer_step_tiny.md"],
    "bench_state": ["state_options_tiny.json", "state_options_tiny.md"],
}


@pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash, timeout"
)
def test_dry_run_runs_every_part_and_writes_its_files(tmp_path):
    out = tmp_path / "gpu"
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop("JAX_PLATFORMS", None)  # the script sets it (cpu) for a dry run
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    log = proc.stdout[-4000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, log

    rows = {}
    for line in (out / "summary.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 4 and cells[0] not in ("part", "---"):
            rows[cells[0]] = cells[1]
    assert list(rows) == ["env", *TEST_PARTS, *BENCH_FILES], rows
    for name, status in rows.items():
        expected = ("ok", "skipped (no tests/test_muon.py)") if name == "test_muon_bf16" else ("ok",)
        assert status in expected, (name, status, log)
        assert (out / "logs" / f"{name}.log").stat().st_size > 0, name
        print(f"{name}: {status}")

    versions = json.loads((out / "versions.json").read_text())
    assert versions["jax_backend"] == "cpu" and "torch" in versions, versions
    assert (out / "nvidia-smi.txt").read_text().strip()
    for name in TEST_PARTS:
        if rows[name] == "ok":  # collected, not run: a JUnit file and a count of selected tests
            assert (out / "tests" / f"{name}.xml").exists(), name
            assert " tests collected" in (out / "logs" / f"{name}.log").read_text(), name
    for name, files in BENCH_FILES.items():
        for f in files:
            assert (out / f).stat().st_size > 0, (name, f)
    step = json.loads((out / "optimizer_step_tiny.json").read_text())
    assert step["meta"]["device"] == "cpu" and step["meta"]["tiny"]
    assert {r["tree"] for r in step["results"]} == {"resnet50", "gpt2_small"}
    for r in step["results"]:  # the nnx.Optimizer contender holds Adam's two moments: 8 B/param
        assert abs(r["contenders"]["gradchain nnx.Optimizer"]["state_bytes_per_param"] - 8) < 0.01, r
    big = json.loads((out / "gpt_1b" / "optimizer_step_tiny.json").read_text())
    assert [r["tree"] for r in big["results"]] == ["gpt_1b"]
    state = json.loads((out / "state_options_tiny.json").read_text())
    assert set(state["results"][0]["options"]) == {"float32", "8bit"}
    assert "peak vs f32 state" in (out / "state_options_tiny.md").read_text()
