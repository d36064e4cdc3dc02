"""Where a many-leaf optimizer step spends its time: per buffer, per kernel, per byte.

One process, one Adam step (the same arithmetic written five ways), a tree of ``--leaves``
float32 leaves of ``--size`` values each, jitted with the parameters and the state donated:

* ``pass-through``: returns its inputs (parameters, gradients and two moments per leaf
  in, parameters and moments out): the cost of handing that many buffers to a jitted call;
* ``tree``: Adam leaf by leaf, the state a tree like the parameters (what
  ``nnx.Optimizer`` and ``TrainState`` run today);
* ``bucketed (concat p, g)``: the moments kept in one flat buffer; the gradients and the
  parameters concatenated into it each step, the new parameters sliced back out;
* ``bucketed (p + slice)``: the moments flat, the gradients concatenated, each
  parameter updated by its slice of the flat update (one fused add per leaf);
* ``flat``: parameters, gradients and moments all flat (``ravel_by_dtype``'s fast path);
* ``gradchain adam`` / ``optax adam``: the libraries' ``chain(scale_by_adam(), scale(-lr))``
  and ``apply_updates`` on the tree (the same step through their public APIs).

It prints the step time (best of 5 x ``--repeats``), the compile time and XLA's count of
fusions, and writes ``tree_overheads.{json,md}`` under ``--out``. Run it with nothing else
running::

    python benchmarks/tree_overheads.py                       # 2,000 leaves x 1,000
    python benchmarks/tree_overheads.py --leaves 500 --size 4000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time

import jax
import jax.numpy as jnp
import numpy as np

B1, B2, EPS, LR = 0.9, 0.999, 1e-8, 1e-3


def adam(g, m, v, p, t):
    m = B1 * m + (1 - B1) * g
    v = B2 * v + (1 - B2) * g * g
    return p - LR * (m / (1 - B1**t)) / (jnp.sqrt(v / (1 - B2**t)) + EPS), m, v


def library_txs():
    import optax

    import gradchain as gc

    return {
        "gradchain adam": (gc.chain(gc.scale_by_adam(B1, B2, EPS), gc.scale(-LR)), gc.apply_updates),
        "optax adam": (optax.chain(optax.scale_by_adam(B1, B2, EPS), optax.scale(-LR)), optax.apply_updates),
    }


def contenders(keys, offsets):
    def pass_through(p, g, s):
        return p, s

    def tree(p, g, s):
        m, v, t = s
        t = t + 1
        tf = t.astype(jnp.float32)
        out = {k: adam(g[k], m[k], v[k], p[k], tf) for k in keys}
        pick = lambda i: {k: o[i] for k, o in out.items()}
        return pick(0), (pick(1), pick(2), t)

    def concat(tree_):
        return jnp.concatenate([tree_[k].reshape(-1) for k in keys])

    def split(flat, like):
        return {k: flat[offsets[i] : offsets[i + 1]].reshape(like[k].shape) for i, k in enumerate(keys)}

    def bucketed_concat(p, g, s):
        m, v, t = s
        t = t + 1
        pn, m, v = adam(concat(g), m, v, concat(p), t.astype(jnp.float32))
        return split(pn, p), (m, v, t)

    def bucketed_slice(fence):
        # the moments flat, the gradients concatenated, each parameter plus its slice of
        # the flat update; ``fence`` wraps the concatenation and the flat update (identity,
        # or an optimization barrier: materialized, no fusion through them)
        def step(p, g, s):
            m, v, t = s
            t = t + 1
            tf = t.astype(jnp.float32)
            gf = fence(concat(g))
            m = B1 * m + (1 - B1) * gf
            v = B2 * v + (1 - B2) * gf * gf
            u = fence(-LR * (m / (1 - B1**tf)) / (jnp.sqrt(v / (1 - B2**tf)) + EPS))
            return {k: p[k] + x for (k, x) in split(u, p).items()}, (m, v, t)

        return step

    def flat(p, g, s):
        m, v, t = s
        t = t + 1
        pn, m, v = adam(g, m, v, p, t.astype(jnp.float32))
        return pn, (m, v, t)

    def library(name):
        tx, apply = library_txs()[name]

        def step(p, g, s):
            u, s = tx.update(g, s, p)
            return apply(p, u), s

        return step

    return {
        "pass-through": (pass_through, "tree"),
        "tree": (tree, "tree"),
        "bucketed (concat p, g)": (bucketed_concat, "bucket"),
        "bucketed (p + slice)": (bucketed_slice(lambda x: x), "bucket"),
        "bucketed (barriers)": (bucketed_slice(jax.lax.optimization_barrier), "bucket"),
        "flat": (flat, "flat"),
        "gradchain adam": (library("gradchain adam"), "gradchain adam"),
        "optax adam": (library("optax adam"), "optax adam"),
    }


def measure(fn, args, repeats):
    t0 = time.perf_counter()
    compiled = jax.jit(fn, donate_argnums=(0, 2)).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    fusions = len(re.findall(r"^\s*(?:ROOT\s+)?\S+ = \S+ fusion\(", compiled.as_text() or "", re.M))
    p, g, s = args
    p, s = compiled(p, g, s)
    jax.block_until_ready((p, s))
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(repeats):
            p, s = compiled(p, g, s)
        jax.block_until_ready((p, s))
        best = min(best, (time.perf_counter() - t0) / repeats)
    return best, compile_s, fusions


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--leaves", type=int, default=2000)
    ap.add_argument("--size", type=int, default=1000, help="values per leaf")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "cpu"))
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    keys = [f"p{i:05d}" for i in range(args.leaves)]
    params = {k: rng.standard_normal(args.size).astype(np.float32) for k in keys}
    grads = {k: jnp.asarray(rng.standard_normal(args.size), jnp.float32) for k in keys}
    offsets = np.cumsum([0] + [args.size] * args.leaves)
    n = int(offsets[-1])

    def inputs(kind):  # fresh buffers for each contender (its call donates them)
        zero = jnp.zeros((), jnp.int32)
        if kind == "flat":
            p = jnp.asarray(np.concatenate([params[k] for k in keys]))
            return p, jnp.concatenate([grads[k] for k in keys]), (jnp.zeros(n), jnp.zeros(n), zero)
        p = {k: jnp.asarray(x) for k, x in params.items()}
        if kind in ("gradchain adam", "optax adam"):
            return p, grads, jax.jit(library_txs()[kind][0].init)(p)
        if kind == "bucket":
            return p, grads, (jnp.zeros(n), jnp.zeros(n), zero)
        z = lambda: {k: jnp.zeros(args.size, jnp.float32) for k in keys}
        return p, grads, (z(), z(), zero)

    rows = []
    print(f"{args.leaves} leaves x {args.size} float32 values, one Adam step; {jax.devices()[0].device_kind}")
    print("| contender | step ms | vs flat | compile s | fusions |\n|---|---:|---:|---:|---:|")
    results = {
        name: measure(fn, inputs(kind), args.repeats)
        for name, (fn, kind) in contenders(keys, offsets).items()
    }
    flat_s = results["flat"][0]
    for name, (s, c, f) in results.items():
        rows.append(
            {"contender": name, "step_ms": 1e3 * s, "vs_flat": s / flat_s, "compile_s": c, "fusions": f}
        )
        print(f"| {name} | {1e3 * s:.2f} | {s / flat_s:.1f}x | {c:.2f} | {f} |")
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"tree_overheads_{args.leaves}x{args.size}")
    meta = {"leaves": args.leaves, "size": args.size, "jax": jax.__version__, "device": str(jax.devices()[0])}
    with open(stem + ".json", "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=2)
    with open(stem + ".md", "w") as f:
        f.write(f"# tree_overheads: {args.leaves} leaves x {args.size} float32, one Adam step\n\n")
        f.write(
            f"jax {jax.__version__}, {jax.devices()[0]}. Reproduce: `python benchmarks/tree_overheads.py "
            f"--leaves {args.leaves} --size {args.size}`.\n\n"
        )
        f.write("| contender | step ms | vs flat | compile s | fusions |\n|---|---:|---:|---:|---:|\n")
        for r in rows:
            f.write(
                f"| {r['contender']} | {r['step_ms']:.2f} | {r['vs_flat']:.1f}x | {r['compile_s']:.2f} | {r['fusions']} |\n"
            )
    print(f"wrote {stem}.{{json,md}}")


if __name__ == "__main__":
    main()
