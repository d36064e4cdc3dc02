"""Benchmark: optimizer-state options (bf16, 8-bit, loss scaling, flat, ZeRO-1) against float32 Adam.

Every option is Adam (lr 1e-3) inside the canonical chain
``chain(clip_by_global_norm(1.0), <adam>, scale(-1e-3))``, on float32 parameters:

* ``float32``      -- ``scale_by_adam()``: the baseline;
* ``bf16``         -- ``scale_by_adam(mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16)``;
* ``bf16_mu``      -- ``scale_by_adam(mu_dtype=jnp.bfloat16)`` (second moment float32);
* ``8bit``         -- ``scale_by_adam_8bit()`` (block-wise 8-bit moments, blocks of 2048,
  leaves of >= 4096 values; smaller leaves keep float32 moments);
* ``loss_scaling`` -- ``dynamic_loss_scaling(<float32 chain>)``, fed the gradients times
  the initial scale 2**15 (as the gradients of a scaled loss arrive), so it unscales them
  back to the baseline's gradients;
* ``flat``         -- the float32 chain on ``gradchain.ravel_by_dtype`` buffers: params,
  grads and state are one 1-D buffer each (the flat-buffer fast path);
* ``zero1``        -- the float32 chain with its state split over a 1-D ``"data"`` mesh of
  all devices (``gradchain.state_shardings(tx, params, zero_axis="data")``), params and
  grads replicated. Runs only with more than one device (``--devices N``; on CPU that
  re-executes the script with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``).

Trees (from ``optimizer_step.py``): ``gpt2_small`` (124.4M params, 148 leaves) and
``resnet50`` (25.6M, 161 leaves); ``--quick`` uses their ~1/16 versions, ``--tiny`` ~1/1000
(a smoke test). ``--device auto|cpu|gpu`` (default ``auto``: the GPU when JAX has one).

Recorded per option and tree:

* state bytes: the sum of ``x.nbytes`` over the state's leaves (exact; counts and scales
  included), per device too (for ``zero1``: the shards on device 0), and the ratio to
  float32 Adam's;
* the step's XLA scratch memory (``compiled.memory_analysis().temp_size_in_bytes``,
  per device), and the step's peak besides params and grads, state + scratch, against
  float32 Adam's state bytes (``peak vs f32 state``);
* step time, median / min / max ms, and the ratio of medians to the baseline's;
* compile time (``jit(step).trace()``, ``.lower()``, ``.compile()``; the table shows the sum);
* a quality indicator: after 10 steps of a gradient sequence (per leaf a fixed scale
  ``10**U(-4.5, -2.5)``, per element a fixed log-normal magnitude ``exp(N(0, 1))``, times
  ``0.3 + N(0, 1)`` drawn afresh each step), from the same params, ``params`` = max over
  leaves of ``max|p - p_ref| / max|p_ref|`` and, for the total update ``d = p_10 - p_0``,
  ``update max`` = max over leaves of ``max|d - d_ref| / max|d_ref|`` and ``update median`` =
  the median over all elements of ``|d - d_ref| / |d_ref|``, against float32 Adam.

What is timed, as in ``optimizer_step.py``: ONE jitted ``(params, grads, state) ->
(new_params, new_state)`` per option, params and state donated; 2 warm-up steps; a sample is
``n`` consecutive steps (``n`` chosen so it lasts >= ~20 ms) ended by
``jax.block_until_ready``, divided by ``n``; each repeat times every live option once, the
order rotated from repeat to repeat (reversed every other round). To bound memory, at most
``--max-alive`` options (default 3 at full size: a GPT-2-size float32 option holds ~2 GB)
are alive at once: the options run in groups, each with its own float32 baseline, and each
ratio is to the baseline of its own group (the baseline row pools all its samples).

Writes ``state_options.{json,md,png}`` (``state_options_quick.*`` with ``--quick``,
``state_options_tiny.*`` with ``--tiny``; a ``_<N>dev`` suffix with N > 1 devices) under
``--out`` (default ``benchmarks/results/cpu``, ``benchmarks/results/gpu`` on a GPU).

    python benchmarks/state_options.py                # full: both trees, all options (~8 min)
    python benchmarks/state_options.py --quick        # 1/16-size trees, 3 repeats (~1.5 min, mostly
                                                      # XLA compiles: 6 options x 2 trees)
    python benchmarks/state_options.py --quick --tree gpt2_small   # one tree (~40 s)
    python benchmarks/state_options.py --quick --devices 8   # adds zero1 (8 simulated CPU devices)
"""

from __future__ import annotations

import argparse
import datetime
import gc as pygc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # as optimizer_step.py

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import gradchain as gc
from benchmarks.optimizer_step import (
    device_info,
    fmt_ms,
    select_device,
    time_side_by_side,
    tree_shapes,
    versions,
)
from gradchain import scale_by_adam_8bit

TREES = {
    "gpt2_small": "GPT-2 small: embeddings 50257x768 + 12 attention/MLP blocks + LayerNorms",
    "resnet50": "ResNet-50 conv kernels + BN scales/biases + fc",
}
OPTIONS = {
    "float32": "scale_by_adam() -- the baseline",
    "bf16": "scale_by_adam(mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16)",
    "bf16_mu": "scale_by_adam(mu_dtype=jnp.bfloat16)",
    "8bit": "scale_by_adam_8bit() (block_size=2048, min_8bit_size=4096)",
    "loss_scaling": "dynamic_loss_scaling(<float32 chain>), gradients of a loss scaled by 2**15",
    "flat": "the float32 chain on ravel_by_dtype buffers (params, grads, state flat)",
    "zero1": "the float32 chain, state split over the 'data' mesh axis (state_shardings(..., zero_axis='data'))",
}
LOSS_SCALE = 2.0**15  # dynamic_loss_scaling's default initial scale; exact in float32
QUALITY_STEPS = 10


def adam_for(option):
    if option == "bf16":
        return gc.scale_by_adam(mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16)
    if option == "bf16_mu":
        return gc.scale_by_adam(mu_dtype=jnp.bfloat16)
    if option == "8bit":
        return scale_by_adam_8bit()
    return gc.scale_by_adam()


def make_tx(option):
    tx = gc.chain(gc.clip_by_global_norm(1.0), adam_for(option), gc.scale(-1e-3))
    return gc.dynamic_loss_scaling(tx, LOSS_SCALE) if option == "loss_scaling" else tx


def to_device(tree):
    """Fresh device copies (``copy=True``: a donated buffer must not alias the NumPy arrays)."""
    return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


def tree_bytes(tree):
    return int(sum(x.nbytes for x in jax.tree.leaves(tree)))


def bytes_on_first_device(tree):
    """Bytes of the shards of ``tree``'s leaves that live on ``jax.devices()[0]``."""
    dev0 = jax.devices()[0]
    total = 0
    for x in jax.tree.leaves(tree):
        total += sum(s.data.nbytes for s in x.addressable_shards if s.device == dev0)
    return int(total)


# --------------------------------------------------------------------------- one option


class Option:
    """One option's jitted, donated step, its state and its numbers."""

    def __init__(self, name, params_np, grads_np, mesh):
        self.name = name
        tx = make_tx(name)
        self.layout = None
        shardings = None
        if name == "zero1":
            from jax.sharding import NamedSharding, PartitionSpec

            replicated = NamedSharding(mesh, PartitionSpec())
            self.place = lambda tree: jax.device_put(to_device(tree), replicated)
            params = self.place(params_np)
            state_sh = gc.state_shardings(tx, params, zero_axis="data")
            init = jax.jit(tx.init, out_shardings=state_sh)
            shardings = {
                "in_shardings": (replicated, replicated, state_sh),
                "out_shardings": (replicated, state_sh),
            }
        elif name == "flat":
            params, self.layout = gc.ravel_by_dtype(to_device(params_np))
            self.place = lambda tree: self.layout.ravel(to_device(tree))
            init = jax.jit(tx.init)
        else:
            self.place = to_device
            params = to_device(params_np)
            init = jax.jit(tx.init)
        self.init = init

        def step(params, grads, state):
            updates, state = tx.update(grads, state, params)
            return gc.apply_updates(params, updates), state

        self.grads = self.place(self.scaled(grads_np))
        self.params = params
        self.state = jax.block_until_ready(init(params))
        t0 = time.perf_counter()
        traced = jax.jit(step, donate_argnums=(0, 2), **(shardings or {})).trace(
            self.params, self.grads, self.state
        )
        t1 = time.perf_counter()
        lowered = traced.lower()
        t2 = time.perf_counter()
        self.compiled = lowered.compile()
        t3 = time.perf_counter()
        self.compile_s = {"trace": t1 - t0, "lower": t2 - t1, "compile": t3 - t2, "total": t3 - t0}
        mem = self.compiled.memory_analysis()  # None where the backend does not report it
        self.step_memory = None
        if mem is not None:
            self.step_memory = {
                "temp_bytes": int(mem.temp_size_in_bytes),
                "argument_bytes": int(mem.argument_size_in_bytes),
                "output_bytes": int(mem.output_size_in_bytes),
                "alias_bytes": int(mem.alias_size_in_bytes),
            }
        self.state_bytes = tree_bytes(self.state)
        self.state_bytes_per_device = bytes_on_first_device(self.state)
        self.state_dtypes = sorted({str(x.dtype) for x in jax.tree.leaves(self.state)})

    def scaled(self, grads):
        if self.name != "loss_scaling":
            return grads
        return jax.tree.map(lambda g: g * np.float32(LOSS_SCALE), grads)

    def run(self, n):
        p, s = self.params, self.state
        for _ in range(n):
            p, s = self.compiled(p, self.grads, s)
        jax.block_until_ready((p, s))
        self.params, self.state = p, s

    def restart(self, params_np):
        """Fresh params and state (for the quality run); the timing buffers are dropped."""
        self.params = self.state = None
        self.params = self.place(params_np)
        self.state = jax.block_until_ready(self.init(self.params))

    def quality_step(self, grads):
        g = self.place(self.scaled(grads))
        self.params, self.state = self.compiled(self.params, g, self.state)

    def params_tree_np(self):
        p = self.layout.unravel(self.params) if self.layout is not None else self.params
        return {k: np.asarray(v) for k, v in p.items()}


# --------------------------------------------------------------------------- quality


def quality_gradients(shapes, seed=1):
    """``t -> grads``: the quality run's gradient sequence (see the module docstring), in NumPy.

    Drawn as one flat buffer and split into views (nothing to compile); per-leaf scales
    and per-element magnitudes are fixed, the noise at step ``t`` depends on ``t`` only.
    """
    names = list(shapes)
    sizes = [int(np.prod(shapes[k], dtype=np.int64)) for k in names]
    rng = np.random.default_rng(seed)
    mags = np.repeat(10.0 ** rng.uniform(-4.5, -2.5, len(sizes)), sizes).astype(np.float32)
    mags *= np.exp(rng.standard_normal(mags.size, dtype=np.float32))
    ends = np.cumsum(sizes)[:-1]

    def grads_at(t):
        g = np.random.default_rng([seed, t]).standard_normal(mags.size, dtype=np.float32)
        g += np.float32(0.3)
        g *= mags
        return {k: v.reshape(shapes[k]) for k, v in zip(names, np.split(g, ends))}

    return grads_at


def quality_metrics(params, params0, ref):
    """``params``/``update max``/``update median`` of the module docstring (float64 per leaf)."""
    p_worst = u_worst = 0.0
    rel = []
    for k in ref:
        p = params[k].astype(np.float64)
        r = ref[k].astype(np.float64)
        p0 = params0[k].astype(np.float64)
        p_worst = max(p_worst, float(np.max(np.abs(p - r)) / max(np.max(np.abs(r)), 1e-30)))
        d, dr = p - p0, r - p0
        diff = np.abs(d - dr)
        u_worst = max(u_worst, float(np.max(diff) / max(np.max(np.abs(dr)), 1e-30)))
        nz = np.abs(dr) > 0
        rel.append((diff[nz] / np.abs(dr[nz])).astype(np.float32))
    rel = np.concatenate(rel)
    return {
        "params_max_rel": p_worst,
        "update_max_rel": u_worst,
        "update_median_rel": float(np.median(rel)) if rel.size else 0.0,
    }


# --------------------------------------------------------------------------- measurement


def groups_of(options, max_alive):
    """The baseline first in every group, at most ``max_alive`` options per group (0: one group)."""
    rest = [o for o in options if o != "float32"]
    if max_alive <= 0 or len(rest) + 1 <= max_alive:
        return [["float32", *rest]]
    k = max(1, max_alive - 1)
    return [["float32", *rest[i : i + k]] for i in range(0, len(rest), k)]


def bench(tree, options, repeats, quick, max_alive, mesh, rng, tiny=False):
    shapes = tree_shapes(tree, quick, tiny)
    n_params = int(sum(np.prod(s) for s in shapes.values()))
    params_np = {k: (0.02 * rng.standard_normal(s, dtype=np.float32)) for k, s in shapes.items()}
    grads_np = {k: (1e-4 * rng.standard_normal(s, dtype=np.float32)) for k, s in shapes.items()}
    out = {
        "tree": tree,
        "n_params": n_params,
        "n_leaves": len(shapes),
        "param_bytes": 4 * n_params,
        "groups": groups_of(options, max_alive),
        "options": {},
    }
    gen = quality_gradients(shapes)
    ref = None
    base_samples = []
    for group in out["groups"]:
        live = {}
        for name in group:
            t0 = time.perf_counter()
            live[name] = Option(name, params_np, grads_np, mesh)
            print(f"  [{tree}] built {name} ({time.perf_counter() - t0:.1f} s)", flush=True)
        t_timing = time.perf_counter()
        samples, inner = time_side_by_side(live, repeats)
        names = list(live)
        t_quality = time.perf_counter()
        # Quality: QUALITY_STEPS steps of the same gradient sequence from the same params.
        for c in live.values():
            c.restart(params_np)
        for t in range(QUALITY_STEPS):
            g = gen(t)
            for c in live.values():
                c.quality_step(g)
            del g
        t_metrics = time.perf_counter()
        finals = {name: c.params_tree_np() for name, c in live.items()}
        print(
            f"  [{tree}] timed {', '.join(names)}: {t_quality - t_timing:.1f} s; "
            f"quality run: {t_metrics - t_quality:.1f} s",
            flush=True,
        )
        if ref is None:
            ref = finals["float32"]
        group_base = statistics.median(samples["float32"])
        base_samples += samples["float32"]
        for name in names:
            if name == "float32" and "float32" in out["options"]:
                continue
            c = live[name]
            med = statistics.median(samples[name])
            out["options"][name] = {
                "median_s": med,
                "min_s": min(samples[name]),
                "max_s": max(samples[name]),
                "steps_per_sample": inner[name],
                "samples_s": samples[name],
                "baseline_median_s_in_group": group_base,
                "time_ratio": med / group_base,
                "compile_s": c.compile_s,
                "state_bytes": c.state_bytes,
                "state_bytes_per_device": c.state_bytes_per_device,
                "state_dtypes": c.state_dtypes,
                "step_memory_per_device": c.step_memory,
                "quality": quality_metrics(finals[name], params_np, ref),
            }
        del live, finals
        pygc.collect()
    b = out["options"]["float32"]
    b.update(
        median_s=statistics.median(base_samples),
        min_s=min(base_samples),
        max_s=max(base_samples),
        samples_s=base_samples,
    )
    for o in out["options"].values():
        o["state_ratio"] = o["state_bytes"] / b["state_bytes"]
        o["state_per_device_ratio"] = o["state_bytes_per_device"] / b["state_bytes"]
    del params_np, grads_np
    pygc.collect()
    return out


# --------------------------------------------------------------------------- reporting


def fmt_mb(n):
    return f"{n / 2**20:.1f}"


def fmt_rel(x):
    return "0" if x == 0 else f"{x:.1e}"


def table(r):
    lines = [
        (
            f"### {r['tree']}: {r['n_params'] / 1e6:.2f}M params ({fmt_mb(r['param_bytes'])} MB float32), "
            f"{r['n_leaves']} leaves"
        ),
        "",
        (
            "| option | state MB | vs f32 | state MB / device (vs f32) | step scratch MB | state + scratch MB "
            "(vs f32) | peak vs f32 state | median ms | min ms | max ms | time vs f32 | compile s | params | "
            "update max | update median |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def held(o):  # per device: the state and the step's scratch
        mem = o["step_memory_per_device"]
        return o["state_bytes_per_device"] + (mem["temp_bytes"] if mem else 0)

    base_held = held(r["options"]["float32"])
    base_state = r["options"]["float32"]["state_bytes_per_device"]
    for name, o in r["options"].items():
        mem = o["step_memory_per_device"]
        q = o["quality"]
        lines.append(
            f"| {name} | {fmt_mb(o['state_bytes'])} | {o['state_ratio']:.3f}x | "
            f"{fmt_mb(o['state_bytes_per_device'])} ({o['state_per_device_ratio']:.3f}x) | "
            f"{fmt_mb(mem['temp_bytes']) if mem else '-'} | "
            f"{fmt_mb(held(o))} ({held(o) / base_held:.2f}x) | {held(o) / base_state:.2f}x | "
            f"{fmt_ms(o['median_s'])} | {fmt_ms(o['min_s'])} | {fmt_ms(o['max_s'])} | "
            f"{o['time_ratio']:.2f}x | {o['compile_s']['total']:.2f} | {fmt_rel(q['params_max_rel'])} | "
            f"{fmt_rel(q['update_max_rel'])} | {fmt_rel(q['update_median_rel'])} |"
        )
    lines.append("")
    return lines


def plot(results, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(results), figsize=(4.8 * len(results), 6.0), squeeze=False)
    for j, r in enumerate(results):
        names = list(r["options"])
        opts = [r["options"][n] for n in names]
        ax = axes[0][j]
        ax.bar(range(len(names)), [o["state_bytes"] / 2**20 for o in opts], color="tab:gray", label="total")
        ax.bar(
            range(len(names)),
            [o["state_bytes_per_device"] / 2**20 for o in opts],
            color="tab:blue",
            width=0.5,
            label="per device",
        )
        ax.set_title(f"{r['tree']}: optimizer state", fontsize=9)
        ax.set_ylabel("MB", fontsize=8)
        ax.legend(fontsize=7)
        ax = axes[1][j]
        med = [o["median_s"] * 1e3 for o in opts]
        lo = [m - o["min_s"] * 1e3 for m, o in zip(med, opts)]
        hi = [o["max_s"] * 1e3 - m for m, o in zip(med, opts)]
        ax.bar(range(len(names)), med, yerr=[lo, hi], color="tab:orange", capsize=2)
        ax.set_title(f"{r['tree']}: step time", fontsize=9)
        ax.set_ylabel("ms per step", fontsize=8)
        for a in axes[:, j]:
            a.set_xticks(range(len(names)))
            a.set_xticklabels(names, fontsize=7, rotation=30)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fmt_load(x):
    return f"{x:.2f}" if isinstance(x, (int, float)) else "n/a"


def markdown(report):
    meta, results = report["meta"], report["results"]
    v = meta["versions"]
    n_dev = len(meta["devices"])
    dev = f"{n_dev} devices" if n_dev > 1 else meta["devices"][0]
    options = list(meta["options"])
    if meta.get("cuda_device"):
        dev = f"{dev}: {meta['cuda_device']} ({meta['cuda_memory_gb']} GB)"
    size = " (tiny)" if meta.get("tiny") else " (quick)" if meta["quick"] else ""
    lines = [
        f"# state_options benchmark{size}",
        "",
        (
            f"{meta['date_utc']}; {dev} ({meta['processor'] or meta['machine']}, {meta['cpu_count']} CPUs); "
            f"jax {v['jax']}, jaxlib {v['jaxlib']}, numpy {v['numpy']}, python {v['python']}; "
            f"1-min load average at the end: {fmt_load(meta['load_avg_1min_at_end'])}."
        ),
        "",
        f"All options: `{meta['chain']}`, Adam lr 1e-3. "
        + "; ".join(f"`{o}` = {d}" for o, d in meta["options"].items())
        + ".",
        "",
        (
            "State MB: sum of `nbytes` over the state's leaves (exact); per device: the shards on device 0. "
            "Step scratch: XLA's temp buffers of the jitted step, per device "
            "(`memory_analysis().temp_size_in_bytes`); state + scratch is what a step holds besides params "
            "and grads (params and state are donated, updated in place), `peak vs f32 state` the same "
            "against float32 Adam's state alone. "
            f"Time: median / min / max of {', '.join(sorted({str(r['repeats']) for r in results}))} samples "
            "per option, order rotated across repeats, after 2 warm-up steps; steps jitted with params and "
            f"state donated; at most {meta['max_alive'] or 'all'} options alive at once, each group with its "
            "own float32 baseline (`time vs f32` is to the baseline of the same group; the float32 row pools "
            "its samples from all groups). Compile: trace + lower + compile seconds."
        ),
        "",
        (
            f"Quality after {meta['quality_steps']} steps of the same random gradients, vs float32 Adam: "
            "`params` = max over leaves of max|p - p_ref| / max|p_ref|; for the total update d = p_10 - p_0, "
            "`update max` = max over leaves of max|d - d_ref| / max|d_ref|, `update median` = median of "
            "|d - d_ref| / |d_ref| over all elements."
        ),
        "",
    ]
    if "zero1" in options:
        lines += [
            (
                f"**zero1 on {n_dev} devices.** "
                + (
                    "These are simulated CPU devices sharing the same cores and memory: the per-device state "
                    "is real, the step time is not a measure of scaling (all devices run on the same cores)."
                    if meta["backend"] == "cpu"
                    else "Step time includes the all-gather of the updates."
                )
                + " The other options run on device 0 alone."
            ),
            "",
        ]
    lines += [f"Reproduce: `{meta['command']}` (total wall time {meta['total_wall_s']:.0f} s).", ""]
    for r in results:
        lines += table(r)
    return "\n".join(lines)


def write_outputs(report, out):
    meta = report["meta"]
    n_dev = len(meta["devices"])
    out.mkdir(parents=True, exist_ok=True)
    size = "_tiny" if meta.get("tiny") else "_quick" if meta["quick"] else ""
    stem = "state_options" + size + (f"_{n_dev}dev" if n_dev > 1 else "")
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{stem}.md").write_text(markdown(report) + "\n")
    dev = f"{n_dev} devices" if n_dev > 1 else meta["devices"][0]
    try:
        plot(
            report["results"],
            out / f"{stem}.png",
            f"optimizer state options vs float32 Adam, {meta.get('cuda_device') or meta['processor'] or meta['machine']} "
            f"x{meta['cpu_count']}, {dev}{' [tiny]' if meta.get('tiny') else ' [quick]' if meta['quick'] else ''}",
        )
        wrote = "json,md,png"
    except ImportError:
        wrote = "json,md"
    print(f"total {meta['total_wall_s']:.1f} s; wrote {out / stem}.{{{wrote}}}")


# --------------------------------------------------------------------------- main


def reexec_with_devices(n, argv):
    """Run this script again in a subprocess with ``n`` host CPU devices; its exit code."""
    if os.environ.get("_STATE_OPTIONS_REEXEC"):
        raise SystemExit(f"--devices {n}: still {len(jax.devices())} device(s) after re-executing")
    env = dict(os.environ, _STATE_OPTIONS_REEXEC="1")
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
    env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={n}"])
    print(f"re-executing with XLA_FLAGS={env['XLA_FLAGS']!r}", flush=True)
    return subprocess.call([sys.executable, str(Path(__file__).resolve()), *argv], env=env)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument(
        "--quick", action="store_true", help="1/16-size trees, 3 repeats (~1.5 min, mostly compiles)"
    )
    parser.add_argument("--tiny", action="store_true", help="~1/1000-size trees, 1 repeat: a smoke test")
    parser.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto")
    parser.add_argument("--tree", choices=[*TREES, "all"], default="all")
    parser.add_argument(
        "--options",
        default=",".join(OPTIONS),
        help="comma-separated subset of: "
        + ", ".join(OPTIONS)
        + " (float32 always runs; zero1 needs > 1 device)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed samples per option (default 20; 10 for gpt2_small; 3 quick)",
    )
    parser.add_argument(
        "--max-alive",
        type=int,
        default=None,
        help="options alive at once, the baseline included (default 3; quick: 0 = all)",
    )
    parser.add_argument(
        "--devices",
        type=int,
        default=None,
        help="run with N devices (on CPU: re-executes with --xla_force_host_platform_device_count=N)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default benchmarks/results/cpu or /gpu)"
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="measure nothing: rewrite the Markdown and PNG of a saved JSON report (under --out)",
    )
    args = parser.parse_args(argv)
    if args.from_json is not None:
        report = json.loads(args.from_json.read_text())
        write_outputs(report, args.out or args.from_json.parent)
        return report
    device = select_device(args.device)
    quick = args.quick or args.tiny
    out_dir = args.out or Path(__file__).resolve().parent / "results" / device
    if args.devices is not None and args.devices != len(jax.devices()):
        if jax.default_backend() != "cpu":
            parser.error(f"--devices {args.devices}: this backend has {len(jax.devices())} devices")
        return reexec_with_devices(args.devices, argv)
    t_start = time.perf_counter()

    options = [o.strip() for o in args.options.split(",") if o.strip()]
    for o in options:
        if o not in OPTIONS:
            parser.error(f"unknown option {o!r}; choose from {list(OPTIONS)}")
    options = ["float32", *[o for o in OPTIONS if o in options and o != "float32"]]
    n_dev = len(jax.devices())
    mesh = None
    if "zero1" in options:
        if n_dev > 1:
            mesh = jax.make_mesh((n_dev,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
        else:
            options.remove("zero1")
            print("zero1 skipped: one device (use --devices N)", flush=True)
    max_alive = args.max_alive if args.max_alive is not None else (0 if quick else 3)
    trees = list(TREES) if args.tree == "all" else [args.tree]

    rng = np.random.default_rng(0)
    results = []
    for tree in trees:
        reps = args.repeats or (1 if args.tiny else 3 if quick else (10 if tree == "gpt2_small" else 20))
        t0 = time.perf_counter()
        r = bench(tree, options, reps, quick, max_alive, mesh, rng, args.tiny)
        r["repeats"] = reps
        r["wall_s"] = time.perf_counter() - t0
        results.append(r)
        print(f"[{tree}: {r['wall_s']:.1f} s]", flush=True)
        print("\n".join(table(r)), flush=True)

    cmd = ["python", "benchmarks/state_options.py", *argv]
    size = " (tiny: ~1/1000 size)" if args.tiny else " (quick: ~1/16 size)" if quick else ""
    meta = {
        "benchmark": "state_options",
        "quick": quick,
        "tiny": args.tiny,
        "command": " ".join(cmd),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "chain": "chain(clip_by_global_norm(1.0), <adam>, scale(-1e-3)), float32 params",
        "options": {o: OPTIONS[o] for o in options},
        "trees": {t: TREES[t] + size for t in trees},
        "max_alive": max_alive,
        "quality_steps": QUALITY_STEPS,
        **device_info(device),
        "devices": [str(d) for d in jax.devices()],
        "processor": platform.processor(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "versions": versions(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "load_avg_1min_at_end": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "total_wall_s": time.perf_counter() - t_start,
    }
    report = {"meta": meta, "results": results}

    write_outputs(report, out_dir)
    return report


if __name__ == "__main__":
    rc = main()
    if isinstance(rc, int):
        sys.exit(rc)
