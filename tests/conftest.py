"""Test-wide settings: strict dtype promotion and rank promotion errors, as Equinox does.

Optax itself fails under strict promotion, so oracle calls go through
``helpers.run_optax``, which switches back to standard promotion around them.
"""

import jax

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")
