"""Test-wide settings: strict dtype promotion and rank promotion errors, as Equinox does.

Optax itself fails under strict promotion, so oracle calls go through
``helpers.run_optax``, which switches back to standard promotion around them.

The tests compile thousands of small programs, and compiling is most of the suite's time.
They compile with XLA:CPU's elemental emitters (``--xla_cpu_use_fusion_emitters=false``:
the same HLO and arithmetic in half the time) and without LLVM's optimizations
(``--xla_backend_optimization_level=0``: a third less again); subprocess tests inherit
both. Unoptimized code may contract multiplies and adds into FMAs differently, so the few
tests whose claim depends on the exact arithmetic of optimized code (two different programs
equal bit for bit, or a parity through an iteration that amplifies rounding) are listed in
`AS_SHIPPED`: the main run leaves them out and ``tests/test_as_shipped.py`` runs them, in one
subprocess, with XLA's default flags. ``GRADCHAIN_TEST_XLA_DEFAULTS=1`` runs the whole
suite with XLA's defaults instead (it passes both ways).
"""

import os

FAST_COMPILE_FLAGS = ("--xla_cpu_use_fusion_emitters=false", "--xla_backend_optimization_level=0")
XLA_DEFAULTS = os.environ.get("GRADCHAIN_TEST_XLA_DEFAULTS") == "1"

if not XLA_DEFAULTS:
    for _flag in FAST_COMPILE_FLAGS:
        if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()

import jax  # noqa: E402

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


import chex  # noqa: E402
import pytest  # noqa: E402

# Node ids (a test function stands for all its parametrizations, as on pytest's command
# line) of the tests that run with XLA's default flags (tests/test_as_shipped.py).
AS_SHIPPED = (
    # bit for bit: the fused 8-bit step against the unfused formulation
    "tests/test_quantized.py::test_fused_step_equals_the_unfused_formulation",
    "tests/test_quantized.py::test_fused_step_equals_the_unfused_formulation_in_a_donated_chain",
    # bit for bit: an Optax run resumed in gradchain against the run done wholly in Optax
    "tests/test_migrate.py::test_an_optax_run_continues_in_gradchain",
    # L-BFGS's whole compiled run against Optax's (40 Rosenbrock steps, 1e-4)
    "tests/test_lbfgs.py::test_lbfgs_jitted_float32_rosenbrock_whole_run_is_optaxs_and_reaches_the_minimum",
    # Newton-Schulz iterations amplify rounding: Optax parity at 2e-5, jit against eager at 1e-5
    "tests/test_muon.py::test_muon_matches_optax",
    "tests/test_muon.py::test_stack_sharded_along_its_batch_axis_needs_no_communication",
    "tests/test_contract.py::test_jit_eager_checkpoint_and_vmap_over_models_and_hyperparameters[scale_by_muon]",
)


def pytest_collection_modifyitems(config, items):
    if XLA_DEFAULTS:
        return
    kept, left_out = [], []
    for item in items:
        listed = item.nodeid in AS_SHIPPED or item.nodeid.split("[")[0] in AS_SHIPPED
        (left_out if listed else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


@pytest.fixture(autouse=True)
def _fresh_trace_counters():
    """`chex.assert_max_traces` counts per function across tests: start each test at zero."""
    chex.clear_trace_counter()
    yield
