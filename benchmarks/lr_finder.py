"""Benchmark: a learning-rate sweep as ONE vmapped program vs the same runs one at a time.

Two problems (``--problem``), each trained with Adam (``gradchain.adam``) at 16 learning
rates log-spaced in [1e-4, 1] for ``--steps`` full-batch steps per run:

* ``linreg``: linear regression, 64 samples x 8 features -- tiny steps, where the cost
  of a run on CPU is per-operation overhead, which batching the runs amortizes;
* ``mlp``: a 16-32-1 tanh MLP on 256 samples -- steps large enough that a CPU core is
  busy with arithmetic, which batching cannot remove.

What is timed (wall clock, ``block_until_ready`` on the results, median of ``--repeats``):

* ``sweep``: ``gradchain.lr_finder`` with all 16 rates: one ``jit(vmap(scan))`` program.
* ``sequential``: ``gradchain.lr_finder`` called 16 times with one rate each; the
  one-rate program is compiled once (the rate is a traced argument) and reused for
  the other 15 rates -- the best case for running them one after another.
* ``stepwise``: the way the finders users know (fastai's, PyTorch's lr-finder) run:
  16 runs one after another, each a Python loop calling one jitted training step per
  iteration (compiled once, the rate a traced argument); timed excluding compilation.
* ``sequential, recompiled``: 16 runs each jitted with its rate baked in as a
  constant (a fresh closure per rate), as a naive loop over rates would do: 16 compiles.

Each is reported *including* compilation (a fresh loss function object every repeat
forces a new trace and compile) and, for the first two, *excluding* it (the compiled
program called again). The speedups compare like with like.

Writes ``lr_finder.json`` and ``lr_finder.md`` (``lr_finder_quick.*`` with ``--quick``)
under ``--out`` (default ``benchmarks/results/cpu``).

    python benchmarks/lr_finder.py            # full: 200 steps, 5 repeats, both problems
    python benchmarks/lr_finder.py --quick    # 50 steps, 3 repeats, no 16-compile baseline
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import gradchain as gc

N_RATES = 16


def make_problem(name: str, seed: int = 0):
    """``(loss_fn, params, data)`` for the named problem."""
    rng = np.random.default_rng(seed)
    if name == "linreg":  # 64 samples x 8 features, linear model: overhead-bound on CPU
        x = rng.standard_normal((64, 8)).astype(np.float32)
        y = x @ rng.standard_normal(8).astype(np.float32) + 0.1 * rng.standard_normal(64).astype(np.float32)
        params = {"w": jnp.zeros(8, jnp.float32), "b": jnp.zeros([], jnp.float32)}
        return linreg_loss, params, (jnp.asarray(x), jnp.asarray(y))
    # "mlp": 256 samples, 16 -> 32 -> 1 tanh MLP: compute-bound on CPU
    x = rng.standard_normal((256, 16)).astype(np.float32)
    teacher = rng.standard_normal((16, 1)).astype(np.float32)
    y = np.tanh(x @ teacher) + 0.05 * rng.standard_normal((256, 1)).astype(np.float32)
    params = {
        "w1": jnp.asarray(rng.standard_normal((16, 32)) / 4.0, jnp.float32),
        "b1": jnp.zeros(32, jnp.float32),
        "w2": jnp.asarray(rng.standard_normal((32, 1)) / np.sqrt(32), jnp.float32),
        "b2": jnp.zeros(1, jnp.float32),
    }
    return mlp_loss, params, (jnp.asarray(x), jnp.asarray(y))


def linreg_loss(params, batch):
    x, y = batch
    return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)


def mlp_loss(params, batch):
    x, y = batch
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    return jnp.mean((h @ params["w2"] + params["b2"] - y) ** 2)


def optimizer(lr):
    if hasattr(gc, "adam"):
        return gc.adam(lr)
    return gc.scale_by_learning_rate(lr)  # until gradchain.optimizers exists


def fresh(loss_fn):
    """A new function object: gradchain's compile cache misses, so jit compiles again."""
    return lambda p, b: loss_fn(p, b)


def timed(fn) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t0


def sweep(loss_fn, params, data, lrs, steps):
    return gc.lr_finder(loss_fn, params, data, lrs, optimizer=optimizer, num_steps=steps).losses


def sequential(loss_fn, params, data, lrs, steps):
    return [
        gc.lr_finder(loss_fn, params, data, [lr], optimizer=optimizer, num_steps=steps).losses for lr in lrs
    ]


_STEPWISE = {}


def _stepwise_step(loss_fn):
    """One jitted training step with the learning rate as a traced argument (cached)."""
    if loss_fn not in _STEPWISE:

        @jax.jit
        def step(p, s, d, lr):
            loss, g = jax.value_and_grad(loss_fn)(p, d)
            u, s = optimizer(lr).update(g, s, p)
            return gc.apply_updates(p, u), s, loss

        _STEPWISE[loss_fn] = step
    return _STEPWISE[loss_fn]


def stepwise(loss_fn, params, data, lrs, steps):
    step = _stepwise_step(loss_fn)
    out = []
    for lr in lrs:
        lr = jnp.float32(lr)
        p, s, losses = params, optimizer(lr).init(params), []
        for _ in range(steps):
            p, s, loss = step(p, s, data, lr)
            losses.append(loss)
        out.append(jnp.stack(losses))
    return out


def sequential_recompiled(loss_fn, params, data, lrs, steps):
    out = []
    for lr in lrs:

        def run(p, d, lr=float(lr)):
            tx = optimizer(lr)

            def step(carry, _):
                q, s = carry
                loss, g = jax.value_and_grad(loss_fn)(q, d)
                u, s = tx.update(g, s, q)
                return (gc.apply_updates(q, u), s), loss

            return jax.lax.scan(step, (p, tx.init(p)), None, length=steps)[1]

        out.append(jax.jit(run)(params, data))
    return out


ROWS = (
    ("sweep, incl. compile", "sweep (1 vmapped program), incl. compile"),
    ("sweep, excl. compile", "sweep (1 vmapped program), excl. compile"),
    ("seq, incl. compile", "sequential (16 runs, 1 compile), incl. compile"),
    ("seq, excl. compile", "sequential (16 runs, 1 compile), excl. compile"),
    ("seq16, incl. compile", "sequential (16 runs, 16 compiles), incl. compile"),
    ("stepwise, excl. compile", "step by step (16 runs, 1 jitted step per iteration), excl. compile"),
)


def bench_problem(name: str, steps: int, repeats: int, recompiled: bool) -> dict:
    loss_fn, params, data = make_problem(name)
    lrs = np.logspace(-4, 0, N_RATES)
    # Correctness first: the sweep and the one-at-a-time runs give the same curves.
    a = np.asarray(sweep(loss_fn, params, data, lrs, steps))
    b = np.concatenate([np.asarray(x) for x in sequential(loss_fn, params, data, lrs, steps)])
    max_diff = float(np.nanmax(np.abs(a - b) / np.maximum(np.abs(b), 1e-6)))

    fns = {
        "sweep, incl. compile": lambda: sweep(fresh(loss_fn), params, data, lrs, steps),
        "sweep, excl. compile": lambda: sweep(loss_fn, params, data, lrs, steps),
        "seq, incl. compile": lambda: sequential(fresh(loss_fn), params, data, lrs, steps),
        "seq, excl. compile": lambda: sequential(loss_fn, params, data, lrs, steps),
        "seq16, incl. compile": lambda: sequential_recompiled(loss_fn, params, data, lrs, steps),
        "stepwise, excl. compile": lambda: stepwise(loss_fn, params, data, lrs, steps),
    }
    c = np.stack([np.asarray(x) for x in stepwise(loss_fn, params, data, lrs, steps)])  # also warms up
    max_diff = max(max_diff, float(np.nanmax(np.abs(a - c) / np.maximum(np.abs(c), 1e-6))))
    seconds = {}
    for key, label in ROWS:
        if key == "seq16, incl. compile" and not recompiled:
            continue
        n = max(1, repeats // 2) if key == "seq16, incl. compile" else repeats
        seconds[label] = [timed(fns[key]) for _ in range(n)]
    med = {k: statistics.median(v) for k, v in seconds.items()}
    lab = dict(ROWS)
    speedup = {
        "excl. compile: sequential / sweep": med[lab["seq, excl. compile"]]
        / med[lab["sweep, excl. compile"]],
        "incl. compile: sequential (1 compile) / sweep": med[lab["seq, incl. compile"]]
        / med[lab["sweep, incl. compile"]],
        "excl. compile: step by step (fastai/torch-finder style) / sweep": med[lab["stepwise, excl. compile"]]
        / med[lab["sweep, excl. compile"]],
    }
    if recompiled:
        speedup["incl. compile: sequential (16 compiles) / sweep"] = (
            med[lab["seq16, incl. compile"]] / med[lab["sweep, incl. compile"]]
        )
    res = gc.lr_finder(loss_fn, params, data, lrs, optimizer=optimizer, num_steps=steps)
    return {
        "seconds": seconds,
        "median_seconds": med,
        "speedup": speedup,
        "max_rel_diff_sweep_vs_sequential": max_diff,
        "suggested_lr": float(res.suggested_lr),
    }


PROBLEMS = {
    "linreg": "linear regression, 64 samples x 8 features, full batch",
    "mlp": "MLP 16-32-1 tanh, 256 samples, full batch",
}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("--quick", action="store_true", help="50 steps, 3 repeats, no 16-compile baseline")
    parser.add_argument("--steps", type=int, default=None, help="training steps per run (default 200)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per row (default 5)")
    parser.add_argument("--problem", choices=[*PROBLEMS, "all"], default="all")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "cpu")
    args = parser.parse_args(argv)
    steps = args.steps or (50 if args.quick else 200)
    repeats = args.repeats or (3 if args.quick else 5)
    names = list(PROBLEMS) if args.problem == "all" else [args.problem]

    results = {name: bench_problem(name, steps, repeats, recompiled=not args.quick) for name in names}
    meta = {
        "benchmark": "lr_finder",
        "quick": args.quick,
        "steps": steps,
        "repeats": repeats,
        "n_rates": N_RATES,
        "learning_rates": "logspace(-4, 0, 16)",
        "optimizer": "gradchain.adam" if hasattr(gc, "adam") else "gradchain.scale_by_learning_rate",
        "problems": {n: PROBLEMS[n] for n in names},
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0]),
        "cpu_count": os.cpu_count(),
        "load_avg_1min_at_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    report = {"meta": meta, "results": results}

    lines = [
        (
            f"# lr_finder benchmark: {N_RATES} rates x {steps} steps, {meta['optimizer']}, "
            f"{meta['device']} ({meta['cpu_count']} CPUs), median of {repeats}"
        ),
        "",
    ]
    for name, r in results.items():
        width = max(map(len, r["median_seconds"]))
        lines += [f"## {name}: {PROBLEMS[name]}", ""]
        lines.append(f"| {'what':<{width}} | median s |")
        lines.append(f"|{'-' * (width + 2)}|---------:|")
        for k, v in r["median_seconds"].items():
            lines.append(f"| {k:<{width}} | {v:8.3f} |")
        lines.append("")
        for k, v in r["speedup"].items():
            lines.append(f"- speedup, {k}: **{v:.1f}x**")
        lines.append(
            f"- max relative difference of the loss curves, sweep vs sequential: "
            f"{r['max_rel_diff_sweep_vs_sequential']:.1e}"
        )
        lines.append(f"- suggested learning rate: {r['suggested_lr']:.3g}")
        lines.append("")
    lines.append(f"jax {meta['jax']}; 1-min load average at the end: {meta['load_avg_1min_at_end']}")
    text = "\n".join(lines)
    print(text)

    args.out.mkdir(parents=True, exist_ok=True)
    stem = "lr_finder_quick" if args.quick else "lr_finder"
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(text + "\n")
    return report


if __name__ == "__main__":
    main()
