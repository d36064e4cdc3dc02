"""Regression with gradchain: batch vs stochastic vs mini-batch descent, then a regularized MLP.

What it shows
-------------
Part 1 - linear regression on ``y = 4 + 3 x + noise`` (1,000 points, noise sd 0.5). ONE
transformation, ``gradchain.sgd(gradchain.cosine_decay_schedule(0.1, STEPS))``, is run
three times for the same number of steps; only the batch each gradient is computed on
differs:

    batch       all 1,000 points per step (smooth, most work per step)
    stochastic  one point per step (cheap steps, noisy path)
    mini-batch  32 points per step (in between)

Each recovers the intercept 4 and the slope 3 within 0.1 (checked; the least-squares fit
is printed for reference). The figure shows the full-data loss per step, the paths in
(intercept, slope) space and the fitted lines.

Part 2 - a small MLP on scikit-learn's diabetes table (442 patients, 10 features, shipped
with scikit-learn; 60/20/20 train/validation/test split, fixed seed), trained full-batch
with::

    gradchain.chain(
        gradchain.add_decayed_weights(3e-2),     # L2, before Adam (--penalty l1: add_l1_penalty(1e-2))
        gradchain.adam(3e-3),
        gradchain.early_stopping(patience=100),  # zero updates once value=val_loss stalls
    )

Early stopping reads the validation loss through ``tx.update(..., value=val_loss)``: the
extra keyword is forwarded by ``chain`` to every member; the loop leaves when the state's
``should_stop`` turns True and keeps the parameters of the best validation step. The
script reports the stopping step and the test R^2 next to linear least squares fitted on
the same split (checked: R^2 > 0.25 and no worse than least squares minus 0.05).

``--quick`` (CI) runs part 1 unchanged (it takes about a second) and caps part 2 at 300
steps (test R^2 > 0.1). Writes ``regression.png`` into ``--out``.

Run::

    python examples/regression.py
    python examples/regression.py --penalty l1
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

import gradchain

TRUE_INTERCEPT, TRUE_SLOPE = 4.0, 3.0
MODES = {"batch": None, "stochastic": 1, "mini-batch": 32}  # batch size (None: all points)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--steps", type=int, default=1000, help="steps per mode in part 1 (default 1000)")
    p.add_argument("--penalty", choices=["l2", "l1"], default="l2", help="MLP regularization (default l2)")
    p.add_argument(
        "--strength", type=float, default=None, help="penalty coefficient (default 3e-2 L2, 1e-2 L1)"
    )
    p.add_argument("--patience", type=int, default=100, help="early-stopping patience in steps (default 100)")
    p.add_argument("--max-steps", type=int, default=3000, help="MLP step budget (default 3000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="short MLP run for CI; still checks the results")
    p.add_argument(
        "--out",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "outputs"),
        help="folder for the PNG (default: examples/outputs/, created if missing; git ignores it)",
    )
    return p.parse_args(argv)


# ============================================================================ part 1: linear regression
def linear_data(seed: int, n: int = 1000):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 2.0, n).astype(np.float32)
    y = (TRUE_INTERCEPT + TRUE_SLOPE * x + rng.normal(0.0, 0.5, n)).astype(np.float32)
    return x, y


def mse(theta, x, y):
    return jnp.mean((theta[0] + theta[1] * x - y) ** 2)


def fit_linear(tx, x, y, batch_size, steps, seed, bar):
    """``steps`` updates of ``tx`` on batches of ``batch_size`` points (None: all of them)."""

    @jax.jit
    def step(theta, opt_state, xb, yb):
        grads = jax.grad(mse)(theta, xb, yb)
        updates, opt_state = tx.update(grads, opt_state, theta)
        return gradchain.apply_updates(theta, updates), opt_state

    full_loss = jax.jit(mse)
    theta = jnp.zeros(2)  # (intercept, slope)
    opt_state = tx.init(theta)
    rng = np.random.default_rng(seed)
    n = len(x)
    perm, pos = rng.permutation(n), 0
    path, losses = [np.asarray(theta)], [float(full_loss(theta, x, y))]
    for _ in range(steps):
        if batch_size is None:
            xb, yb = x, y
        else:  # walk through a shuffled copy of the data; reshuffle after each epoch
            if pos + batch_size > n:
                perm, pos = rng.permutation(n), 0
            idx = perm[pos : pos + batch_size]
            pos += batch_size
            xb, yb = x[idx], y[idx]
        theta, opt_state = step(theta, opt_state, xb, yb)
        path.append(np.asarray(theta))
        losses.append(float(full_loss(theta, x, y)))
        bar.update()
    return np.asarray(path), np.asarray(losses)


def part1(args):
    x, y = linear_data(args.seed)
    ols = np.linalg.lstsq(np.c_[np.ones_like(x), x], y, rcond=None)[0]
    print(
        f"least squares on the data:  intercept {ols[0]:.3f}  slope {ols[1]:.3f}   "
        f"(truth {TRUE_INTERCEPT}, {TRUE_SLOPE})"
    )
    # The SAME transformation object for all three runs; only the batches differ.
    tx = gradchain.sgd(gradchain.cosine_decay_schedule(0.1, decay_steps=args.steps))
    results = {}
    with tqdm(
        total=len(MODES) * args.steps, desc="part 1: linear", unit="step", file=sys.stdout, mininterval=0.5
    ) as bar:
        for mode, bs in MODES.items():
            results[mode] = fit_linear(tx, x, y, bs, args.steps, args.seed + 1, bar)
    ok = True
    for mode, (path, losses) in results.items():
        b, w = path[-1]
        good = abs(b - TRUE_INTERCEPT) < 0.1 and abs(w - TRUE_SLOPE) < 0.1
        ok &= bool(good)
        print(
            f"{mode:>11} descent:  intercept {b:.3f}  slope {w:.3f}  final MSE {losses[-1]:.4f}  "
            f"{'ok' if good else 'NOT within 0.1 of (4, 3)'}"
        )
    return (x, y, ols, results), ok


# ============================================================================ part 2: MLP + early stopping
def diabetes_splits(seed: int):
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    x, y = d.data.astype(np.float32), d.target.astype(np.float32)
    perm = np.random.default_rng(seed).permutation(len(x))
    n_tr, n_va = int(0.6 * len(x)), int(0.2 * len(x))
    tr, va, te = perm[:n_tr], perm[n_tr : n_tr + n_va], perm[n_tr + n_va :]
    mu, sd = x[tr].mean(0), x[tr].std(0)
    y_mu, y_sd = y[tr].mean(), y[tr].std()
    norm = lambda i: ((x[i] - mu) / sd, (y[i] - y_mu) / y_sd)
    return norm(tr), norm(va), norm(te)


def init_mlp(key, sizes=(10, 16, 1)):
    params = []
    for k, (m, n) in zip(jax.random.split(key, len(sizes) - 1), itertools.pairwise(sizes)):
        params.append({"w": jax.random.normal(k, (m, n)) * np.sqrt(1.0 / m), "b": jnp.zeros(n)})
    return params


def mlp(params, x):
    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return (x @ params[-1]["w"] + params[-1]["b"])[:, 0]


def mlp_loss(params, x, y):
    return jnp.mean((mlp(params, x) - y) ** 2)


def r2(params, x, y):
    return 1.0 - float(jnp.sum((mlp(params, x) - y) ** 2) / jnp.sum((y - y.mean()) ** 2))


def part2(args):
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = diabetes_splits(args.seed)
    strength = args.strength if args.strength is not None else (3e-2 if args.penalty == "l2" else 1e-2)
    penalty = (
        gradchain.add_decayed_weights(strength)
        if args.penalty == "l2"
        else gradchain.add_l1_penalty(strength)
    )
    tx = gradchain.chain(penalty, gradchain.adam(3e-3), gradchain.early_stopping(patience=args.patience))
    params = init_mlp(jax.random.key(args.seed))
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state):
        train_loss, grads = jax.value_and_grad(mlp_loss)(params, x_tr, y_tr)
        val_loss = mlp_loss(params, x_va, y_va)  # the loss of the params this update would change
        updates, opt_state = tx.update(grads, opt_state, params, value=val_loss)
        return gradchain.apply_updates(params, updates), opt_state, train_loss, val_loss

    best = params
    max_steps = 300 if args.quick else args.max_steps
    train_curve, val_curve = [], []
    with tqdm(
        total=max_steps, desc=f"part 2: MLP ({args.penalty})", unit="step", file=sys.stdout, mininterval=0.5
    ) as bar:
        for _ in range(max_steps):
            before = params
            params, opt_state, tl, vl = step(params, opt_state)
            train_curve.append(float(tl))
            val_curve.append(float(vl))
            bar.update()
            stop = opt_state[-1]  # EarlyStoppingState: the last member of the chain
            if int(stop.best_step) == int(stop.count):  # val_loss was measured on `before`
                best = before
            if bool(stop.should_stop):
                bar.set_postfix(stopped_at=int(stop.count), best_step=int(stop.best_step))
                break
    stop = opt_state[-1]
    params = best  # restore the parameters of the best validation loss
    test_r2 = r2(params, x_te, y_te)
    design = lambda x: np.c_[np.ones(len(x)), x]
    w_ls = np.linalg.lstsq(design(x_tr), y_tr, rcond=None)[0]
    ls_r2 = 1.0 - np.sum((design(x_te) @ w_ls - y_te) ** 2) / np.sum((y_te - y_te.mean()) ** 2)
    stopped = bool(stop.should_stop)
    print(
        f"MLP ({args.penalty} {strength:g}): "
        + (
            f"early stopping at step {int(stop.count)} (best validation loss {float(stop.best_value):.3f} at "
            f"step {int(stop.best_step)})"
            if stopped
            else f"ran all {max_steps} steps without stopping"
        )
        + f"; test R^2 = {test_r2:.3f} (linear least squares on the same split: {ls_r2:.3f})"
    )
    ok = val_curve[-1] < val_curve[0] and (test_r2 > 0.1 if args.quick else test_r2 > max(0.25, ls_r2 - 0.05))
    pred = np.asarray(mlp(params, x_te))
    first_layer = np.asarray(params[0]["w"]).ravel()
    return (train_curve, val_curve, stop, y_te, pred, test_r2, first_layer, strength), ok


# ============================================================================ main
def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    res1, ok1 = part1(args)
    res2, ok2 = part2(args)
    print(f"total {time.perf_counter() - t0:.1f} s")
    path = plot(args, res1, res2)
    print(f"wrote {path}")
    if not (ok1 and ok2):
        print(
            "FAILED: "
            + ("linear fits not within 0.1 of (4, 3); " if not ok1 else "")
            + ("MLP test R^2 too low or validation loss did not improve" if not ok2 else ""),
            file=sys.stderr,
        )
        return 1
    print(f"OK: every descent mode recovers (4, 3) within 0.1; MLP test R^2 = {res2[5]:.3f}")
    return 0


def plot(args, res1, res2) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y, ols, results = res1
    train_curve, val_curve, stop, y_te, pred, test_r2, first_layer, strength = res2
    colors = {"batch": "tab:blue", "stochastic": "tab:red", "mini-batch": "tab:green"}
    fig, ax = plt.subplots(2, 3, figsize=(16, 9), constrained_layout=True)

    a = ax[0, 0]
    best = np.mean((ols[0] + ols[1] * x.astype(np.float64) - y) ** 2)
    for mode, (_, losses) in results.items():
        a.semilogy(
            np.maximum(losses - best, 1e-7),
            color=colors[mode],
            lw=1.2,
            label=f"{mode} (B={MODES[mode] or len(x)})",
        )
    a.set(
        title="Linear regression: full-data MSE above the least-squares optimum",
        xlabel="step",
        ylabel="MSE - min MSE (log scale)",
    )
    a.legend()

    a = ax[0, 1]
    for mode, (path, _) in results.items():
        a.plot(path[:, 0], path[:, 1], "-", color=colors[mode], lw=1, alpha=0.8, label=mode)
        a.plot(*path[-1], "o", color=colors[mode], ms=6)
    a.plot(TRUE_INTERCEPT, TRUE_SLOPE, "k*", ms=14, label="truth (4, 3)")
    a.set(title="Paths in parameter space (start (0, 0))", xlabel="intercept", ylabel="slope")
    a.legend()
    inset = a.inset_axes([0.55, 0.08, 0.42, 0.42])
    for mode, (path, _) in results.items():
        inset.plot(path[-300:, 0], path[-300:, 1], "-", color=colors[mode], lw=0.8)
    inset.plot(TRUE_INTERCEPT, TRUE_SLOPE, "k*", ms=10)
    inset.set(xlim=(3.8, 4.2), ylim=(2.8, 3.2), title="zoom: last 300 steps")
    inset.title.set_fontsize(8)
    inset.tick_params(labelsize=7)

    a = ax[0, 2]
    a.scatter(x, y, s=4, color="gray", alpha=0.4, label="data")
    xs = np.array([0.0, 2.0])
    for mode, (path, _) in results.items():
        b, w = path[-1]
        a.plot(xs, b + w * xs, color=colors[mode], lw=1.5, label=f"{mode}: {b:.2f} + {w:.2f} x")
    a.set(title="Fitted lines  (truth: y = 4 + 3 x + noise)", xlabel="x", ylabel="y")
    a.legend(loc="upper left")

    a = ax[1, 0]
    a.plot(train_curve, label="train", color="tab:blue")
    a.plot(val_curve, label="validation (value= for early_stopping)", color="tab:orange")
    if bool(stop.should_stop):
        a.axvline(
            int(stop.best_step) - 1, color="tab:green", ls=":", label=f"best val (step {int(stop.best_step)})"
        )
        a.axvline(int(stop.count) - 1, color="tab:red", ls="--", label=f"stopped (step {int(stop.count)})")
    a.set_yscale("log")
    a.set(
        title=f"MLP on diabetes, {args.penalty} {strength:g} + adam + early_stopping",
        xlabel="step (full batch)",
        ylabel="MSE, standardized target (log)",
    )
    a.legend()

    a = ax[1, 1]
    a.scatter(y_te, pred, s=12, alpha=0.7)
    lim = [min(y_te.min(), pred.min()), max(y_te.max(), pred.max())]
    a.plot(lim, lim, "k--", lw=1, label="perfect prediction")
    a.set(title=f"Test set: R$^2$ = {test_r2:.3f}", xlabel="true (standardized)", ylabel="predicted")
    a.legend()

    a = ax[1, 2]
    a.hist(first_layer, bins=40, color="tab:purple")
    frac = np.mean(np.abs(first_layer) < 1e-2)
    a.set(
        title=f"First-layer weights ({args.penalty}): {frac:.0%} with |w| < 0.01",
        xlabel="weight",
        ylabel="count",
    )
    fig.suptitle(
        "regression.py - one sgd transformation, three batchings; then regularized MLP with early stopping"
    )
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "regression.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


if __name__ == "__main__":
    sys.exit(main())
