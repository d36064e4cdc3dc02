"""Test-wide settings: strict dtype promotion and rank promotion errors, as Equinox does.

Optax itself fails under strict promotion, so oracle calls go through
``helpers.run_optax``, which switches back to standard promotion around them.

The tests compile thousands of small programs, and XLA:CPU's fusion emitters spend most
of each compile: the suite uses its elemental emitters instead
(``--xla_cpu_use_fusion_emitters=false``, the same HLO and arithmetic, compiled in half
the time; subprocess tests inherit it). ``GRADCHAIN_TEST_XLA_DEFAULTS=1`` runs the suite
with XLA's default flags instead (it passes both ways).
"""

import os

if os.environ.get("GRADCHAIN_TEST_XLA_DEFAULTS") != "1":
    _flag = "--xla_cpu_use_fusion_emitters=false"
    if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()

import jax

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


import chex  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_trace_counters():
    """`chex.assert_max_traces` counts per function across tests: start each test at zero."""
    chex.clear_trace_counter()
    yield
