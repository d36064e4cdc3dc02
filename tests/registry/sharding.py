import jax
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import gradchain as gc
from gradchain import shard_state
from tests.registry import Case

# one device in the main test session: a 1-device mesh; tests/sharding_checks.py has 8
_MESH = jax.make_mesh((1,), ("data",), axis_types=(AxisType.Auto,))
_REPLICATED = NamedSharding(_MESH, P())

CASES = [
    Case(
        "shard_state",
        lambda: shard_state(gc.adam(0.1), _REPLICATED),
        traced=lambda lr: shard_state(gc.adam(lr), _REPLICATED),
    ),
    Case(
        "shard_state",
        lambda: shard_state(
            gc.chain(gc.clip_by_global_norm(1.0), gc.adamw(0.1)), _REPLICATED, zero_axis="data"
        ),
        variant="zero",
    ),
]
