import gradchain as gc
from tests.registry import Case

CASES = [
    Case(
        "gradient_health",
        lambda: gc.gradient_health(explode_factor=1.5, warmup_steps=1),
        needs_params=True,
        traced=lambda f: gc.gradient_health(explode_factor=f, warmup_steps=1),
        traced_values=(1.1, 3.0),
    ),
]
