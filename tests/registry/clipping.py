import gradchain as gc
from tests.registry import Case

CASES = [
    Case("clip_by_value", lambda: gc.clip_by_value(0.5), traced=gc.clip_by_value),
    Case(
        "clip_by_global_norm",
        lambda: gc.clip_by_global_norm(1.0),
        traced=gc.clip_by_global_norm,
        traced_values=(0.5, 100.0),
    ),
    Case("clip_by_norm", lambda: gc.clip_by_norm(1.0), traced=gc.clip_by_norm, traced_values=(0.5, 100.0)),
    Case(
        "clip_by_block_rms",
        lambda: gc.clip_by_block_rms(0.5),
        traced=gc.clip_by_block_rms,
        traced_values=(0.5, 100.0),
    ),
    Case(
        "adaptive_grad_clip",
        lambda: gc.adaptive_grad_clip(0.1),
        traced=gc.adaptive_grad_clip,
        traced_values=(0.05, 10.0),
        needs_params=True,
    ),
    Case(
        "adaptive_grad_clip",
        lambda: gc.adaptive_grad_clip(0.1, eps=1.0, axis=-1),
        variant="axis",
        needs_params=True,
    ),
]
