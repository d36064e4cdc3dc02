"""Test-wide settings: strict dtype promotion and rank promotion errors, as Equinox does.

Optax itself fails under strict promotion, so oracle calls go through
``helpers.run_optax``, which switches back to standard promotion around them.
"""

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
