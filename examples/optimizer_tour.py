"""A tour of classic optimizers on two 2-D test functions, trajectories over the contours.

What it shows
-------------
SGD, momentum, Nesterov momentum, Adagrad, RMSprop, Adam and AdamW, all gradchain
optimizers (each a short ``chain`` of building blocks: ``sgd(lr, momentum=0.9)`` is
``chain(trace(0.9), scale_by_learning_rate(lr))``, ``adam(lr)`` is
``chain(scale_by_adam(), scale_by_learning_rate(lr))``, ...) on

* the Rosenbrock function ``(1 - x)^2 + 100 (y - x^2)^2`` from (-1.2, 1): a curved,
  narrow valley with its minimum at (1, 1);
* an ill-conditioned quadratic ``0.5 (p - c)^T A (p - c)`` with condition number 30,
  its axes rotated by 30 degrees (so per-coordinate methods cannot simply rescale x and
  y), minimum at c = (1, 2).

To compare them fairly, each optimizer runs at its best learning rate from a 19-point
log grid (1e-4 ... 3), chosen by the mean of log10(f - f*) over the run (fast AND
stable), among the runs that stay inside the plotted window. The whole grid is one
``jax.vmap`` over the learning rate per optimizer and problem (gradchain
hyperparameters may be tracers). AdamW's decoupled weight decay
(0.01) pulls towards the origin, so it settles next to the minimum, not on it.

Checks that every optimizer lowers f at least 10x on both problems (exit code 1
otherwise). Writes ``optimizer_tour.png`` into ``--out``: trajectories over the
contours (top) and f - f* per step (bottom). ``--quick`` (CI): 300/100 steps instead
of 1000/200.

Run::

    python examples/optimizer_tour.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

import gradchain

OPTIMIZERS = {
    "SGD": lambda lr: gradchain.sgd(lr),
    "Momentum (0.9)": lambda lr: gradchain.sgd(lr, momentum=0.9),
    "Nesterov (0.9)": lambda lr: gradchain.sgd(lr, momentum=0.9, nesterov=True),
    "Adagrad": lambda lr: gradchain.adagrad(lr),
    "RMSprop": lambda lr: gradchain.rmsprop(lr),
    "Adam": lambda lr: gradchain.adam(lr),
    "AdamW (wd 0.01)": lambda lr: gradchain.adamw(lr, weight_decay=0.01),
}
LEARNING_RATES = np.logspace(-4, 0.5, 19)


def rosenbrock(p):
    return (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2


_TH = np.deg2rad(30.0)
_R = np.array([[np.cos(_TH), -np.sin(_TH)], [np.sin(_TH), np.cos(_TH)]])
_A = jnp.asarray(_R @ np.diag([1.0, 30.0]) @ _R.T, dtype=jnp.float32)
_C = jnp.array([1.0, 2.0])


def quadratic(p):
    d = p - _C
    return 0.5 * d @ _A @ d


PROBLEMS = {  # name: (f, start, minimizer, steps, quick steps, plot window)
    "Rosenbrock": (rosenbrock, (-1.2, 1.0), (1.0, 1.0), 1000, 300, ((-2.0, 2.0), (-1.0, 3.0))),
    "Ill-conditioned quadratic (cond 30, rotated)": (
        quadratic,
        (-3.0, 4.0),
        (1.0, 2.0),
        200,
        100,
        ((-4.0, 4.0), (-1.0, 5.0)),
    ),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="fewer steps (for CI); still checks the results")
    p.add_argument(
        "--out",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "outputs"),
        help="folder for the PNG (default: examples/outputs/, created if missing; git ignores it)",
    )
    return p.parse_args(argv)


def make_sweep(f, start, steps, make_tx):
    """A jitted function: learning rates (n,) -> paths (n, steps + 1, 2) and values (n, steps + 1)."""
    x0 = jnp.asarray(start, dtype=jnp.float32)

    def run(lr):
        tx = make_tx(lr)  # lr is a tracer: one program for the whole grid

        def step(carry, _):
            p, state = carry
            updates, state = tx.update(jax.grad(f)(p), state, p)
            p = gradchain.apply_updates(p, updates)
            return (p, state), p

        _, path = jax.lax.scan(step, (x0, tx.init(x0)), None, length=steps)
        path = jnp.concatenate([x0[None], path])
        return path, jax.vmap(f)(path)

    return jax.jit(jax.vmap(run))


def main(argv=None) -> int:
    args = parse_args(argv)
    lrs = jnp.asarray(LEARNING_RATES, dtype=jnp.float32)
    results = {}
    t0 = time.perf_counter()
    jobs = [(p, o) for p in PROBLEMS for o in OPTIMIZERS]
    for prob, opt in tqdm(jobs, desc="optimizer x problem", unit="run", file=sys.stdout):
        f, start, xstar, steps, quick_steps, ((x_lo, x_hi), (y_lo, y_hi)) = PROBLEMS[prob]
        paths, values = make_sweep(f, start, quick_steps if args.quick else steps, OPTIMIZERS[opt])(lrs)
        paths, values = np.asarray(paths), np.asarray(values)
        fstar = float(f(jnp.asarray(xstar)))
        gap = values - fstar
        inside = (
            (paths[..., 0] >= x_lo)
            & (paths[..., 0] <= x_hi)
            & (paths[..., 1] >= y_lo)
            & (paths[..., 1] <= y_hi)
        ).all(axis=1)
        ok = np.isfinite(gap).all(axis=1) & inside  # runs that leave the plotted window do not count
        score = np.where(ok, np.log10(np.maximum(gap, 1e-12)).mean(axis=1), np.inf)
        best = int(np.argmin(score))
        results[prob, opt] = (float(LEARNING_RATES[best]), paths[best], np.maximum(gap[best], 0.0))
    print(f"{len(jobs)} grids of {len(LEARNING_RATES)} learning rates in {time.perf_counter() - t0:.1f} s")

    failed = []
    for prob in PROBLEMS:
        print(f"\n{prob}:")
        for opt in OPTIMIZERS:
            lr, path, gap = results[prob, opt]
            print(
                f"  {opt:16s} best lr {lr:8.2e}   f - f*: {gap[0]:8.3g} -> {gap[-1]:9.3g}   "
                f"end point ({path[-1, 0]:+.3f}, {path[-1, 1]:+.3f})"
            )
            if not (np.isfinite(gap[-1]) and gap[-1] < gap[0] / 10):
                failed.append(f"{opt} on {prob}")

    path = plot(args, results)
    print(f"\nwrote {path}")
    if failed:
        print("FAILED: f not lowered 10x by " + ", ".join(failed), file=sys.stderr)
        return 1
    print("OK: every optimizer lowers f at least 10x on both problems")
    return 0


def plot(args, results) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = dict(zip(OPTIMIZERS, plt.get_cmap("tab10").colors))
    fig, ax = plt.subplots(2, 2, figsize=(16, 13), constrained_layout=True, height_ratios=[3, 2])
    for j, (prob, (f, start, xstar, *_, window)) in enumerate(PROBLEMS.items()):
        (x_lo, x_hi), (y_lo, y_hi) = window
        xs, ys = np.meshgrid(np.linspace(x_lo, x_hi, 300), np.linspace(y_lo, y_hi, 300))
        grid = jnp.stack([jnp.asarray(xs, jnp.float32), jnp.asarray(ys, jnp.float32)], axis=-1).reshape(-1, 2)
        zs = np.asarray(jax.vmap(f)(grid)).reshape(xs.shape)
        fstar = float(f(jnp.asarray(xstar)))
        a = ax[0, j]
        a.contour(
            xs,
            ys,
            zs - fstar + 1e-3,
            levels=np.logspace(-2, np.log10(zs.max() - fstar + 1e-3), 18),
            cmap="Greys",
            linewidths=0.7,
            norm=matplotlib.colors.LogNorm(),
        )
        for opt in OPTIMIZERS:
            lr, path, gap = results[prob, opt]
            a.plot(
                path[:, 0],
                path[:, 1],
                "-",
                color=colors[opt],
                lw=1.4,
                alpha=0.9,
                label=f"{opt} (lr {lr:.1e})",
            )
            a.plot(path[-1, 0], path[-1, 1], "o", color=colors[opt], ms=6, mec="white")
        a.plot(*start, "ks", ms=9, label="start")
        a.plot(*xstar, "*", color="gold", mec="black", ms=18, label="minimum")
        a.set(xlim=(x_lo, x_hi), ylim=(y_lo, y_hi), xlabel="x", ylabel="y", title=f"{prob}: trajectories")
        a.set_aspect("equal")
        a.legend(loc="lower right" if j == 0 else "upper right", fontsize=9, framealpha=0.9)

        b = ax[1, j]
        for opt in OPTIMIZERS:
            lr, path, gap = results[prob, opt]
            b.semilogy(np.maximum(gap, 1e-12), color=colors[opt], lw=1.4, label=opt)
        b.set(
            xlabel="step",
            ylabel="f - f* (log scale, floored at 1e-12)",
            title=f"{prob}: distance to the optimum",
        )
        b.legend(fontsize=9, ncol=2)
    fig.suptitle(
        "gradchain optimizers, each at its best learning rate from a 19-point grid (one vmap per grid)",
        fontsize=14,
    )
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "optimizer_tour.png")
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


if __name__ == "__main__":
    sys.exit(main())
