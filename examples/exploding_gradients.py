"""Exploding gradients: plain SGD diverges, gradient clipping rescues it.

What it shows
-------------
A 20-layer tanh network without biases (width 32, a regression target on 256 fixed
inputs) trained full-batch with ``gradchain.sgd`` alone and with a clipping
transformation chained in front of it::

    gradchain.chain(gradchain.clip_by_global_norm(1.0), gradchain.sgd(lr))

in two situations (both vmapped into one program per method: gradchain hyperparameters
may be tracers, so the learning rate is an input):

A. Exploding from the start: weights drawn with 3x the variance-preserving scale (the
   "chaotic" regime of deep tanh networks) make the gradient grow about 1.3x per layer
   towards the input (the right-hand panel of the figure shows it per layer), and SGD
   at lr 0.15 overshoots into NaN within ~50 steps. ``clip_by_value``,
   ``clip_by_global_norm``, ``autoclip`` (a percentile of the norms seen so far) and
   ``adaptive_grad_clip`` (each unit's update bounded relative to its weights) all
   train. ``zclip`` does NOT: it clips norms that are spikes relative to its own
   running mean and variance, and a gradient that is huge from the first step is its
   normal - it only slows the blow-up.
B. Spikes: a well-initialised network (2x scale, lr 0.1) where SGD trains well until
   every 50th batch is corrupted (targets x30); the second corrupted step throws it to
   NaN. Every clipping method survives. The adaptive ones (``autoclip``, ``zclip``) learn
   what a normal gradient norm is and cut only the spikes; ``clip_by_value(0.1)``, a
   fixed per-coordinate bound, also distorts the direction of every ordinary step and
   ends highest.

The script checks that SGD diverges in both situations and that the methods named
above rescue it (final loss finite and below half the initial one; 80% with
``--quick``), and exits non-zero otherwise. Writes ``exploding_gradients.png``
(losses, raw gradient norms, per-layer gradient norms at initialization and a summary)
into ``--out``.
``--quick`` (CI): 150 steps instead of 500.

Run::

    python examples/exploding_gradients.py
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

DEPTH, WIDTH, N = 20, 32, 256
LOSS_TOP, NORM_TOP = 1e3, 1e6  # plot limits: curves that blow up leave the top of the panel
SCENARIOS = {  # name: (init gain, learning rate, spike every k steps (0: never), spike size)
    "A: exploding from the start": (3.0, 0.15, 0, 1.0),
    "B: spikes (corrupted batches)": (2.0, 0.1, 50, 30.0),
}
METHODS = {  # name: (clipping transformation in front of sgd, must rescue A, must rescue B)
    "sgd (no clipping)": (None, False, False),
    "clip_by_value(0.1)": (lambda: gradchain.clip_by_value(0.1), True, True),
    "clip_by_global_norm(1.0)": (lambda: gradchain.clip_by_global_norm(1.0), True, True),
    "autoclip(10.0)": (lambda: gradchain.autoclip(10.0), True, True),
    "zclip()": (lambda: gradchain.zclip(), False, True),
    "adaptive_grad_clip(0.01)": (lambda: gradchain.adaptive_grad_clip(0.01, axis=-2), True, True),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--steps", type=int, default=500, help="training steps (default 500)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="150 steps (for CI); still checks the results")
    p.add_argument(
        "--out",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "outputs"),
        help="folder for the PNG (default: examples/outputs/, created if missing; git ignores it)",
    )
    return p.parse_args(argv)


def problem(seed):
    kx, kt, kw, ko = jax.random.split(jax.random.key(seed), 4)
    x = jax.random.normal(kx, (N, WIDTH))
    y = jnp.sin(2.0 * x @ (jax.random.normal(kt, (WIDTH,)) / np.sqrt(WIDTH)))[:, None]
    w_unit = jax.random.normal(kw, (DEPTH, WIDTH, WIDTH)) / np.sqrt(WIDTH)  # variance-preserving scale
    w_out = jax.random.normal(ko, (WIDTH, 1)) / np.sqrt(WIDTH)
    return x, y, w_unit, w_out


def forward(params, x):
    """20 tanh layers (a scan over the stacked (DEPTH, 32, 32) weights), then a linear readout."""
    h, _ = jax.lax.scan(lambda h, w: (jnp.tanh(h @ w), None), x, params["w"])
    return h @ params["w_out"]


def loss_fn(params, x, y):
    return jnp.mean((forward(params, x) - y) ** 2)


def make_train(clip, x, y, w_unit, w_out):
    def train(gain, lr, target_scale):
        """One run: ``len(target_scale)`` full-batch steps; target_scale[t] != 1 corrupts batch t."""
        tx = gradchain.sgd(lr) if clip is None else gradchain.chain(clip(), gradchain.sgd(lr))
        params = {"w": w_unit * gain, "w_out": w_out}

        def step(carry, scale):
            params, state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y * scale)
            updates, state = tx.update(grads, state, params)
            # record the loss of the batch trained on and the raw gradient norm (before clipping)
            return (gradchain.apply_updates(params, updates), state), (loss, gradchain.global_norm(grads))

        _, (losses, norms) = jax.lax.scan(step, (params, tx.init(params)), target_scale)
        return losses, norms

    return jax.jit(jax.vmap(train))  # over the scenarios


def main(argv=None) -> int:
    args = parse_args(argv)
    steps = 150 if args.quick else args.steps
    x, y, w_unit, w_out = problem(args.seed)
    gains = jnp.array([s[0] for s in SCENARIOS.values()])
    lrs = jnp.array([s[1] for s in SCENARIOS.values()])
    scales = np.ones((len(SCENARIOS), steps), np.float32)
    for i, (_, _, every, size) in enumerate(SCENARIOS.values()):
        if every:
            scales[i, every::every] = size
    print(f"{DEPTH}-layer tanh network, {N} examples, {steps} full-batch SGD steps per run")

    results = {}
    t0 = time.perf_counter()
    for name, (clip, _, _) in tqdm(METHODS.items(), desc="methods", unit="method", file=sys.stdout):
        losses, norms = make_train(clip, x, y, w_unit, w_out)(gains, lrs, jnp.asarray(scales))
        results[name] = (np.asarray(losses), np.asarray(norms))
    print(f"trained {len(METHODS)} methods x {len(SCENARIOS)} situations in {time.perf_counter() - t0:.1f} s")

    ok = True
    for k, scenario in enumerate(SCENARIOS):
        print(f"\n{scenario}")
        for name, (_, rescue_a, rescue_b) in METHODS.items():
            losses, norms = results[name][0][k], results[name][1][k]
            finite = np.isfinite(losses)
            start, final = losses[0], losses[-1]
            status = (
                f"final loss {final:.3g}"
                if np.isfinite(final)
                else f"DIVERGED (non-finite loss at step {int(np.argmin(finite))})"
            )
            print(
                f"  {name:26s} loss {start:.3f} -> {status:42s} "
                f"largest raw gradient norm {np.nanmax(norms):.3g}"
            )
            diverged = not np.isfinite(final) or final > 10 * start
            rescued = np.isfinite(final) and final < (0.8 if args.quick else 0.5) * start
            if name.startswith("sgd") and not diverged:
                print(f"  FAILED: plain SGD was expected to diverge in {scenario}", file=sys.stderr)
                ok = False
            if (rescue_a, rescue_b)[k] and not rescued:
                print(f"  FAILED: {name} was expected to rescue {scenario}", file=sys.stderr)
                ok = False

    grads0 = jax.grad(loss_fn)({"w": w_unit * gains[0], "w_out": w_out}, x, y)
    layer_norms = np.linalg.norm(np.asarray(grads0["w"]).reshape(DEPTH, -1), axis=1)
    path = plot(args, results, scales, layer_norms)
    print(f"\nwrote {path}")
    if not ok:
        return 1
    print("OK: SGD diverges in both situations; clipping rescues it")
    return 0


def plot(args, results, scales, layer_norms) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = dict(zip(METHODS, ["black", "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]))
    fig, ax = plt.subplots(2, 3, figsize=(18, 10.5), layout="constrained")
    for k, (scenario, (gain, lr, every, size)) in enumerate(SCENARIOS.items()):
        corrupted = scales[k] != 1.0
        for name in METHODS:
            losses, norms = results[name][0][k], results[name][1][k]
            bad = ~np.isfinite(losses)
            # the loss of the batch trained on; corrupted batches are left out (gaps), so this is the clean loss
            losses = np.where(bad | corrupted, np.nan, losses)
            norms = np.where(np.isfinite(norms), norms, np.nan)
            lw = 2.2 if name.startswith("sgd") else 1.3
            ax[k, 0].semilogy(losses, color=colors[name], lw=lw, label=name)
            ax[k, 1].semilogy(norms, color=colors[name], lw=lw, alpha=0.85, label=name)
            if bad.any():  # mark where the loss became NaN/inf, on the top edge
                t = int(np.argmax(bad))
                ax[k, 0].plot(
                    t, LOSS_TOP, "X", color=colors[name], ms=14, mec="white", clip_on=False, zorder=5
                )
                ax[k, 0].annotate(
                    f"NaN at step {t}",
                    (t, LOSS_TOP),
                    textcoords="offset points",
                    xytext=(10, -14),
                    color=colors[name],
                    fontweight="bold",
                )
        ax[k, 0].set_ylim(top=LOSS_TOP)
        ax[k, 1].set_ylim(top=NORM_TOP)
        for a in ax[k, :2]:
            if every:
                for t in range(every, scales.shape[1], every):
                    a.axvline(t, color="gray", lw=0.6, ls=":")
            a.set_xlabel("step")
        short = scenario.split(" (")[0]
        ax[k, 0].set(
            title=f"{short}\ntraining loss (init gain {gain}, lr {lr})",
            ylabel=f"MSE (log scale, cut at {LOSS_TOP:g})",
        )
        ax[k, 1].set(
            title=f"{short}\nraw gradient norm, before clipping",
            ylabel=f"global L2 norm (log scale, cut at {NORM_TOP:g})",
        )
        if every:
            ax[k, 1].text(
                0.99,
                0.98,
                f"dotted: corrupted batches (targets x{size:g})",
                transform=ax[k, 1].transAxes,
                ha="right",
                va="top",
                fontsize=9,
                color="dimgray",
            )
    handles, labels = ax[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(METHODS), fontsize=11)

    a = ax[0, 2]
    a.semilogy(np.arange(1, DEPTH + 1), layer_norms, "o-", color="black")
    a.set(
        title="Why A explodes: gradient norm per layer at initialization",
        xlabel="layer (1 = next to the input)",
        ylabel="||dL/dW_layer|| (log scale)",
    )
    a.set_xticks(range(1, DEPTH + 1, 2))

    a = ax[1, 2]
    names = list(METHODS)
    pos = np.arange(len(names))
    for k, scenario in enumerate(SCENARIOS):
        finals = np.array([results[n][0][k][-1] for n in names])
        shown = np.where(np.isfinite(finals), np.minimum(finals, 1e3), 1e3)
        bars = a.barh(
            pos + (0.2 if k else -0.2),
            shown,
            height=0.4,
            log=True,
            label=scenario.split(":")[0],
            color=["tab:gray", "tab:cyan"][k],
        )
        for b, f in zip(bars, finals):
            if not np.isfinite(f) or f > 1e3:
                a.text(b.get_width(), b.get_y() + b.get_height() / 2, " diverged", va="center", fontsize=8)
    a.set_yticks(pos, names)
    a.invert_yaxis()
    a.set(title="Final loss per method (lower is better)", xlabel="final MSE (log scale)")
    a.legend(loc="lower right")
    fig.suptitle(f"{DEPTH}-layer tanh network: chain(<clipping>, sgd(lr)) vs plain sgd(lr)", fontsize=14)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "exploding_gradients.png")
    fig.savefig(path, dpi=85)
    plt.close(fig)
    return path


if __name__ == "__main__":
    sys.exit(main())
