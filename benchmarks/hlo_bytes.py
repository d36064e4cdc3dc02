"""Where the bytes go: XLA's compiled view of one optimizer step (no timing).

For the canonical chain ``chain(clip_by_global_norm(1.0), scale_by_adam(), scale(-1e-3))``
(and ``--optimizer sgd`` / ``adamw``) this compiles the same jitted, donated step as
``optimizer_step.py`` for gradchain on the tree, gradchain on flat buffers
(`gradchain.ravel_by_dtype`) and Optax, and reads off the compiled executable:

* ``bytes/param``: XLA's cost analysis ("bytes accessed") divided by the parameter count,
  to compare with the floor (32 B for the canonical chain: grads read twice, params and
  both moments read and written once);
* the full-size loop fusions and how many bytes each streams (operands + outputs of the
  size of a leaf), which is what the cost model sums;
* the number of buffers passed in and out of the executable (each costs ~2 us per call on
  CPU) and the number of fusions (kernels launched per step).

    python benchmarks/hlo_bytes.py                 # canonical chain, all trees
    python benchmarks/hlo_bytes.py --optimizer adamw --tree gpt2_small
    python benchmarks/hlo_bytes.py --quick         # small trees (< 30 s)

Writes ``hlo_bytes{,_quick}.{json,md}`` under ``--out`` (default ``benchmarks/results/cpu``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from optimizer_step import OPTIMIZERS, gc_tx, optax_tx, tree_shapes, versions

import gradchain as gc

TREES = ("resnet50", "gpt2_small", "many_small", "one_leaf_64m")


def compiled_step(lib: str, opt: str, shapes: dict):
    import contextlib

    params = {k: jax.ShapeDtypeStruct(s, jnp.float32) for k, s in shapes.items()}
    if lib == "gradchain flat":
        n = int(sum(np.prod(s) for s in shapes.values()))
        params = {"float32": jax.ShapeDtypeStruct((n,), jnp.float32)}
    if lib == "optax":
        import optax

        tx, apply, ctx = optax_tx(opt), optax.apply_updates, jax.numpy_dtype_promotion("standard")
    else:
        tx, apply, ctx = gc_tx(opt), gc.apply_updates, contextlib.nullcontext()

    def step(p, g, s):
        u, s = tx.update(g, s, p)
        return apply(p, u), s

    with ctx:
        state = jax.eval_shape(tx.init, params)
        t0 = time.perf_counter()
        c = jax.jit(step, donate_argnums=(0, 2)).lower(params, params, state).compile()
        seconds = time.perf_counter() - t0
    n_in = len(jax.tree.leaves((params, params, state)))
    n_out = len(jax.tree.leaves((params, state)))
    return c, n_in, n_out, seconds


def analyse(c, n_params: int, big: int) -> dict:
    text = c.as_text()
    cost = c.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    entry = text[text.index("ENTRY") :]
    fusions = [ln for ln in entry.splitlines() if " fusion(" in ln]
    # loop fusions over full-size leaves: count their operands/outputs of >= `big` elements
    streams = []
    for ln in fusions:
        out = re.match(r"\s*(?:ROOT )?%[\w.-]+ = (\(?[^ ]+)", ln)
        shapes = re.findall(r"f32\[(\d+)\]", ln.split(" fusion(")[0])
        if not out or not shapes or max(int(s) for s in shapes) < big:
            continue
        name = re.match(r"\s*(?:ROOT )?(%[\w.-]+)", ln).group(1)
        streams.append(name)
    return {
        "bytes_accessed_per_param": cost.get("bytes accessed", float("nan")) / n_params,
        "flops_per_param": cost.get("flops", float("nan")) / n_params,
        "fusions": len(fusions),
        "full_size_fusions": len(streams),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="1/16-size trees, 200 small leaves")
    parser.add_argument("--tree", choices=[*TREES, "all"], default="all")
    parser.add_argument("--optimizer", choices=list(OPTIMIZERS), default="canonical")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "cpu")
    args = parser.parse_args(argv)
    trees = list(TREES) if args.tree == "all" else [args.tree]
    rows = []
    for tree in trees:
        shapes = tree_shapes(tree, args.quick)
        if tree == "many_small" and not args.quick:
            shapes = tree_shapes(tree, True)  # 200 leaves: bytes/param do not depend on the count
        n_params = int(sum(np.prod(s) for s in shapes.values()))
        big = min(int(np.prod(s)) for s in shapes.values())
        for lib in ("gradchain", "gradchain flat", "optax"):
            c, n_in, n_out, seconds = compiled_step(lib, args.optimizer, shapes)
            r = {"tree": tree, "contender": lib, "n_params": n_params, "n_leaves": len(shapes),
                 "buffers_in": n_in, "buffers_out": n_out, "compile_s": seconds,
                 **analyse(c, n_params, big)}  # fmt: skip
            rows.append(r)
            print(f"{tree:13s} {lib:15s} {r['bytes_accessed_per_param']:6.1f} B/param  "
                  f"{r['fusions']:5d} fusions  {n_in:5d} in / {n_out:5d} out buffers  compile {seconds:.2f} s",
                  flush=True)  # fmt: skip
    v = versions()
    lines = [
        f"# hlo_bytes ({args.optimizer}{', quick' if args.quick else ''})",
        "",
        f"{datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}; "
        f"{jax.devices()[0].platform}; jax {v['jax']}, optax {v['optax']}. XLA's cost analysis of the "
        "compiled, donated step; `many_small` uses 200 leaves in both modes (bytes/param do not depend "
        "on the count). Reproduce: `python benchmarks/hlo_bytes.py"
        + (" --quick" if args.quick else "")
        + f" --optimizer {args.optimizer}`.",
        "",
        "| tree | contender | bytes accessed / param | fusions | buffers in / out | compile s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['tree']} | {r['contender']} | {r['bytes_accessed_per_param']:.1f} | {r['fusions']} | "
                     f"{r['buffers_in']} / {r['buffers_out']} | {r['compile_s']:.2f} |")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"hlo_bytes_{args.optimizer}" + ("_quick" if args.quick else "")
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    (args.out / f"{stem}.json").write_text(json.dumps({"versions": v, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out / stem}.{{md,json}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
