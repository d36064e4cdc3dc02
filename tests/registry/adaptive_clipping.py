import gradchain as gc
from tests.registry import Case

CASES = [
    Case(
        "autoclip",
        lambda: gc.autoclip(percentile=10.0, history_size=8),
        traced=lambda p: gc.autoclip(percentile=p, history_size=8),
        traced_values=(10.0, 50.0),
    ),
    Case("autoclip", lambda: gc.autoclip(percentile=50.0, history_size=2), variant="wrap"),
    Case(
        "zclip",
        lambda: gc.zclip(alpha=0.9, z_thresh=0.5, warmup_steps=2),
        traced=lambda a: gc.zclip(alpha=a, z_thresh=0.5, warmup_steps=2),
        traced_values=(0.9, 0.97),
    ),
    Case(
        "zclip",
        lambda: gc.zclip(warmup_steps=1, max_norm=5.0),
        variant="max_norm",
        traced=lambda m: gc.zclip(warmup_steps=1, max_norm=m),
        traced_values=(1.0, 5.0),
    ),
]
