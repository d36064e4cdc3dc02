"""Test-wide settings: strict dtype promotion and rank promotion errors, as Equinox does.

Optax itself fails under strict promotion, so oracle calls go through
``helpers.run_optax``, which switches back to standard promotion around them.
"""

import os

# Tests run thousands of tiny programs: compilation dominates, not run time. LLVM's
# optimization passes are what compilation spends most on, so tests skip them (the same
# program either way; only its machine code is less optimized). Set before JAX starts.
# Subprocesses (examples, benchmarks in quick mode) inherit it: they too mostly compile.
TEST_XLA_FLAG = "--xla_backend_optimization_level=0"
if TEST_XLA_FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + TEST_XLA_FLAG).strip()

import jax  # noqa: E402

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


import chex  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_trace_counters():
    """`chex.assert_max_traces` counts per function across tests: start each test at zero."""
    chex.clear_trace_counter()
    yield
