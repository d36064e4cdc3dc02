"""Benchmark: one optimizer step, gradchain vs Optax vs torch.optim, against the memory-bandwidth floor.

An optimizer step on a large model is a pure streaming kernel: every parameter, gradient
and moment is read and written once (or twice) with a handful of flops in between, so the
step time is bounded below by ``bytes that must move / memory bandwidth``. This script
measures that bandwidth ceiling and the step time of each contender, in ONE process, on
four float32 parameter trees:

* ``resnet50``     -- ~25.6M params, 161 leaves (ResNet-50's conv kernels, BN scales/biases, fc);
* ``gpt2_small``   -- ~124M params, 148 leaves (50257x768 embeddings, 12 attention/MLP blocks);
* ``many_small``   -- 2,000 leaves x 1,000 params (per-leaf overhead dominates);
* ``one_leaf_64m`` -- a single 64M-element leaf (pure bandwidth);
* ``gpt_1b``       -- ~1.1B params, 244 leaves (GPT-style, d=2048, 20 layers, 50,304 x 2,048
  embeddings): GPU only (one Adam contender holds ~18 GB); refused on CPU unless ``--force``.

Optimizers (``--optimizer``): ``canonical`` = chain(clip_by_global_norm(1.0),
scale_by_adam(), scale(-1e-3)); ``sgd`` = sgd(1e-2, momentum=0.9); ``adamw`` =
adamw(1e-3, weight_decay=1e-4). Second-order (``--optimizer soap|shampoo|second_order``,
on the ResNet-50-like and GPT-2-like trees; on a CPU use ``--quick`` sizes, as a full-size
GPT-2 SOAP step takes seconds there):
``soap`` = soap(3e-3, precondition_frequency=10) and ``shampoo`` = shampoo(1e-3,
block_size=1024, preconditioning_compute_steps=10), against pytorch_optimizer's ``SOAP``
and ``ScalableShampoo`` with the same settings (its other defaults kept: rank-4 conv
kernels get a factor per axis there, a stack of matrices over the leading axes in
gradchain; ScalableShampoo leaves sides longer than 8,192 unpreconditioned where gradchain
blocks them). Their step time is amortized over the refresh: a timed sample is a whole
number of refresh periods (10 steps: nine plain steps and one that recomputes the bases
or inverse roots), after a warm-up period that covers the first refresh. Optax 0.2.8 and
torch.optim have neither. Writes ``optimizer_step_second_order*.{json,md,png}``.

Every contender's optimizer state is reported in bytes per parameter (JAX: the state's
buffers; torch: the tensors in ``optimizer.state`` after the warm-up).

Contenders:

* ``gradchain``, ``optax``: ONE jitted ``(params, grads, state) -> (new_params, new_state)``
  with params and state donated (updated in place). Optax runs under
  ``jax.numpy_dtype_promotion("standard")``. Compile time is split into
  ``jit(f).trace(...)``, ``.lower()`` and ``.compile()``.
* ``gradchain nnx.Optimizer``, ``optax nnx.Optimizer``: ``flax.nnx.Optimizer(model, tx,
  wrt=nnx.Param)`` stepped by ``nnx.jit(lambda model, optimizer, grads:
  optimizer.update(model, grads), donate_argnums=(0, 1))``, each leaf an ``nnx.Param``
  (what a Flax NNX user runs; its compile column is the first call's time);
* ``torch foreach=False`` / ``torch foreach=True`` / ``torch fused=True``: torch.optim on
  tensors of the same shapes (``torch.set_num_threads`` = the CPU count JAX uses; on a GPU,
  CUDA tensors, where ``fused=True`` is torch's fused CUDA kernel); for the canonical chain
  ``clip_grad_norm_(params, 1.0, foreach=...)`` then ``Adam.step()``.

Device (``--device auto|cpu|gpu``, default ``auto``: the GPU when JAX and torch both see
one): everything runs on it; a timed sample ends with ``block_until_ready`` (JAX) or
``torch.cuda.synchronize()`` (torch on CUDA).

What is timed: after 2 warm-up steps, each repeat times every contender once, in an order
rotated from repeat to repeat (so no contender always runs first, or after the same
neighbour); a sample is ``n`` consecutive steps (``n`` chosen so a sample lasts >= ~20 ms)
ended by ``block_until_ready``, divided by ``n``. Reported: median, min and max per step.

The floor counts the float32 bytes that must cross the memory bus per parameter per step:
canonical chain 32 B (grads read twice: once for the global norm, once for the update;
params, mu, nu read and written), adamw 28 B (grads read once), sgd with momentum 20 B
(read g, p, m; write p, m). Ceiling: best of several runs of a jitted ``x * 1.0001 + y``
over two 256 MB float32 arrays (3 x 256 MB moved). On a GPU the ceiling is a
device-to-device copy of a 1 GiB float32 buffer (2 x 1 GiB moved), the better of a jitted
copy (XLA) and ``dst.copy_(src)`` (torch).

Writes ``optimizer_step.{json,md,png}`` (``optimizer_step_quick.*`` with ``--quick``,
``optimizer_step_tiny.*`` with ``--tiny``) under ``--out`` (default
``benchmarks/results/cpu``, ``benchmarks/results/gpu`` on a GPU).

    python benchmarks/optimizer_step.py            # full: all trees but gpt_1b, all optimizers
    python benchmarks/optimizer_step.py --quick    # 1/16-size trees, 200 small leaves, 3 repeats,
                                                   # canonical + sgd only (< 60 s)
    python benchmarks/optimizer_step.py --tree gpt_1b --optimizer canonical   # on a GPU
    python benchmarks/optimizer_step.py --tiny --tree resnet50,gpt_1b --force # smoke test (CPU)
    python benchmarks/optimizer_step.py --quick --optimizer second_order       # SOAP, Shampoo (CPU)
"""

from __future__ import annotations

import argparse
import datetime
import gc as pygc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

# JAX would otherwise reserve 75% of a GPU at start-up, leaving torch's contenders too little.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import gradchain as gc

# --------------------------------------------------------------------------- trees


def resnet50_shapes(div: int = 1) -> dict:
    """ResNet-50 (torchvision layout, HWIO kernels); ``div`` divides every channel count."""
    shapes = {}

    def conv_bn(name, k, cin, cout):
        shapes[f"{name}/kernel"] = (k, k, cin, cout)
        shapes[f"{name}/bn/scale"] = (cout,)
        shapes[f"{name}/bn/bias"] = (cout,)

    c = 64 // div
    conv_bn("stem", 7, 3, c)
    cin = c
    for stage, (n_blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512))):
        w = width // div
        for b in range(n_blocks):
            name = f"stage{stage + 1}/block{b}"
            conv_bn(f"{name}/conv1", 1, cin, w)
            conv_bn(f"{name}/conv2", 3, w, w)
            conv_bn(f"{name}/conv3", 1, w, 4 * w)
            if b == 0:
                conv_bn(f"{name}/downsample", 1, cin, 4 * w)
            cin = 4 * w
    shapes["fc/kernel"] = (cin, 1000 // div)
    shapes["fc/bias"] = (1000 // div,)
    return shapes


def gpt2_shapes(d: int = 768, vocab: int = 50257, ctx: int = 1024, layers: int = 12) -> dict:
    shapes = {"wte": (vocab, d), "wpe": (ctx, d)}
    for i in range(layers):
        p = f"h{i}"
        shapes.update(
            {
                f"{p}/ln_1/scale": (d,),
                f"{p}/ln_1/bias": (d,),
                f"{p}/attn/c_attn/kernel": (d, 3 * d),
                f"{p}/attn/c_attn/bias": (3 * d,),
                f"{p}/attn/c_proj/kernel": (d, d),
                f"{p}/attn/c_proj/bias": (d,),
                f"{p}/ln_2/scale": (d,),
                f"{p}/ln_2/bias": (d,),
                f"{p}/mlp/c_fc/kernel": (d, 4 * d),
                f"{p}/mlp/c_fc/bias": (4 * d,),
                f"{p}/mlp/c_proj/kernel": (4 * d, d),
                f"{p}/mlp/c_proj/bias": (d,),
            }
        )
    shapes["ln_f/scale"] = (d,)
    shapes["ln_f/bias"] = (d,)
    return shapes


def tree_shapes(name: str, quick: bool, tiny: bool = False) -> dict:
    """The shapes of tree ``name``: full size, ``quick`` (~1/16) or ``tiny`` (~1/1000, smoke tests)."""
    if name == "resnet50":
        return resnet50_shapes(16 if tiny else 4 if quick else 1)  # channels / 4 -> ~1/16 of the params
    if name == "gpt2_small":
        if tiny:
            return gpt2_shapes(48, 1000, 64, 2)
        return gpt2_shapes(192, 50257 // 4, 256) if quick else gpt2_shapes()  # ~1/16
    if name == "many_small":
        return {f"leaf{i:04d}": (1000,) for i in range(20 if tiny else 200 if quick else 2000)}
    if name == "one_leaf_64m":
        return {"w": ((2**16 if tiny else 4 * 2**20 if quick else 64 * 2**20),)}
    if name == "gpt_1b":
        if tiny:
            return gpt2_shapes(64, 512, 64, 2)
        return gpt2_shapes(512, 50304, 512, 20) if quick else gpt2_shapes(2048, 50304, 2048, 20)
    raise ValueError(name)


TREES = {
    "resnet50": "ResNet-50 conv kernels + BN scales/biases + fc",
    "gpt2_small": "GPT-2 small: embeddings 50257x768 + 12 attention/MLP blocks + LayerNorms",
    "many_small": "2,000 leaves x 1,000 params",
    "one_leaf_64m": "one 64M-element leaf",
    "gpt_1b": "GPT-style 1.1B: embeddings 50304x2048 + 20 attention/MLP blocks (d=2048) + LayerNorms",
}
GPU_ONLY_TREES = ("gpt_1b",)  # too large for a CPU run (refused unless --force)
DEFAULT_TREES = [t for t in TREES if t not in GPU_ONLY_TREES]
# One Adam contender on gpt_1b holds ~18 GB (params, grads, two moments): the default
# contenders there leave out torch's two slow reference loops.
BIG_TREE_CONTENDERS = ("gradchain flat", "gradchain", "optax", "torch fused=True")


def select_device(choice: str) -> str:
    """``"cpu"`` or ``"gpu"``, for ``--device auto|cpu|gpu``; call before JAX starts a backend.

    ``auto`` picks the GPU when JAX's default backend is one and torch sees CUDA (the torch
    contenders must share the device). ``cpu`` keeps JAX off any GPU.
    """
    if choice == "cpu":
        jax.config.update("jax_platforms", "cpu")
        return "cpu"
    backend = jax.default_backend()
    if choice == "gpu":
        if backend != "gpu":
            raise SystemExit(f"--device gpu: JAX's backend is {backend!r} (no GPU visible to JAX)")
        return "gpu"
    if backend == "gpu":
        import torch

        if torch.cuda.is_available():
            return "gpu"
        print("JAX sees a GPU but torch does not: running on the CPU", flush=True)
        jax.config.update("jax_platforms", "cpu")  # only if no array was made yet
    return "cpu"


def device_info(device: str) -> dict:
    """What the run ran on: JAX's devices, and on a GPU torch's CUDA device and versions."""
    info = {
        "device": device,
        "jax_devices": [str(d) for d in jax.devices()],
        "backend": jax.default_backend(),
    }
    if device == "gpu":
        import torch

        props = torch.cuda.get_device_properties(0)
        info.update(
            cuda_device=torch.cuda.get_device_name(0),
            cuda_memory_gb=round(props.total_memory / 2**30, 1),
            torch_cuda=torch.version.cuda,
            jax_device_kind=jax.devices()[0].device_kind,
        )
    return info


def parse_trees(parser, text: str, device: str, force: bool) -> list[str]:
    """``--tree``: ``all`` (every tree but the GPU-only ones on a CPU), or a comma-separated list."""
    if text == "all":
        return list(TREES) if device == "gpu" else list(DEFAULT_TREES)
    trees = [t.strip() for t in text.split(",") if t.strip()]
    for t in trees:
        if t not in TREES:
            parser.error(f"unknown tree {t!r}; choose from {list(TREES)} or 'all'")
        if t in GPU_ONLY_TREES and device != "gpu" and not force:
            parser.error(
                f"--tree {t}: ~1.1B parameters, ~18 GB and minutes per step for each Adam contender on a "
                "CPU; run it on a GPU (--device gpu), or pass --force (e.g. with --tiny for a smoke test)"
            )
    return trees


# --------------------------------------------------------------------------- optimizers

OPTIMIZERS = {
    "canonical": "chain(clip_by_global_norm(1.0), scale_by_adam(), scale(-1e-3))",
    "sgd": "sgd(1e-2, momentum=0.9)",
    "adamw": "adamw(1e-3, weight_decay=1e-4)",
    "soap": "soap(3e-3, precondition_frequency=10) vs pytorch_optimizer.SOAP(lr=3e-3, precondition_frequency=10)",
    "shampoo": (
        "shampoo(1e-3, block_size=1024, preconditioning_compute_steps=10) vs pytorch_optimizer.ScalableShampoo"
        "(lr=1e-3, block_size=1024, preconditioning_compute_steps=10, start_preconditioning_step=5)"
    ),
}
FIRST_ORDER = ("canonical", "sgd", "adamw")
# Steps between refreshes of the second-order optimizers' bases or roots: a timed sample
# is a whole number of these periods, so its time per step is amortized over the refresh.
REFRESH_PERIOD = {"soap": 10, "shampoo": 10}
SECOND_ORDER_TREES = ("resnet50", "gpt2_small", "gpt_1b")
SECOND_ORDER_CONTENDERS = ("gradchain", "pytorch_optimizer")
BYTES_PER_PARAM = {
    "canonical": (32, "read g twice (global norm, then update), read p, mu, nu, write p, mu, nu: 8 x 4 B"),
    "adamw": (28, "read g, p, mu, nu, write p, mu, nu: 7 x 4 B"),
    "sgd": (20, "read g, p, m, write p, m: 5 x 4 B"),
}  # no streaming floor for the second-order optimizers: their steps are matrix products


def gc_tx(opt):
    if opt == "canonical":
        return gc.chain(gc.clip_by_global_norm(1.0), gc.scale_by_adam(), gc.scale(-1e-3))
    if opt == "sgd":
        return gc.sgd(1e-2, momentum=0.9)
    if opt == "soap":
        return gc.soap(3e-3, precondition_frequency=10)
    if opt == "shampoo":
        return gc.shampoo(1e-3, block_size=1024, preconditioning_compute_steps=10)
    return gc.adamw(1e-3, weight_decay=1e-4)


def optax_tx(opt):
    import optax

    if opt not in FIRST_ORDER:
        raise ValueError(f"Optax 0.2.8 has no {opt}")

    if opt == "canonical":
        return optax.chain(optax.clip_by_global_norm(1.0), optax.scale_by_adam(), optax.scale(-1e-3))
    if opt == "sgd":
        return optax.sgd(1e-2, momentum=0.9)
    return optax.adamw(1e-3, weight_decay=1e-4)


# --------------------------------------------------------------------------- contenders


def library(lib, opt):
    """``(tx, apply_updates, promotion)`` of contender ``lib``: Optax's (traced under standard
    dtype promotion, which it needs) or gradchain's."""
    import contextlib

    if lib.startswith("optax"):
        import optax

        return optax_tx(opt), optax.apply_updates, lambda: jax.numpy_dtype_promotion("standard")
    return gc_tx(opt), gc.apply_updates, contextlib.nullcontext


class JaxContender:
    """One jitted, donated step; compile time split into trace / lower / compile."""

    def __init__(self, lib, opt, params_np, grads_np):
        flat = lib == "gradchain flat"
        tx, apply, ctx = library(lib, opt)

        def step(params, grads, state):
            updates, state = tx.update(grads, state, params)
            return apply(params, updates), state

        self.params = {k: jnp.array(v, copy=True) for k, v in params_np.items()}
        self.grads = {k: jnp.array(v, copy=True) for k, v in grads_np.items()}
        if flat:
            # The fast path: parameters, gradients and state live in one buffer per dtype
            # across steps (the gradient arrives flat when the loss unravels the params).
            self.params, layout = gc.ravel_by_dtype(self.params)
            self.grads = layout.ravel(self.grads)
        with ctx():
            self.state = jax.block_until_ready(jax.jit(tx.init)(self.params))
            t0 = time.perf_counter()
            traced = jax.jit(step, donate_argnums=(0, 2)).trace(self.params, self.grads, self.state)
            t1 = time.perf_counter()
            lowered = traced.lower()
            t2 = time.perf_counter()
            self.compiled = lowered.compile()
            t3 = time.perf_counter()
        self.compile_s = {"trace": t1 - t0, "lower": t2 - t1, "compile": t3 - t2, "total": t3 - t0}

    def run(self, n):
        p, s = self.params, self.state
        for _ in range(n):
            p, s = self.compiled(p, self.grads, s)
        jax.block_until_ready((p, s))
        self.params, self.state = p, s

    def state_bytes(self):
        return sum(x.nbytes for x in jax.tree.leaves(self.state))


class NnxContender:
    """``flax.nnx.Optimizer`` as a Flax user runs it: ``nnx.jit`` of ``optimizer.update(model,
    grads)``, the model and the optimizer passed in (updated in place, their buffers donated
    like the other JAX contenders'), each leaf an ``nnx.Param`` of a module. Compile time:
    the first call (trace, lower and compile), ``compile_s["total"]`` alone."""

    def __init__(self, lib, opt, params_np, grads_np):
        from flax import nnx

        tx, _, self.ctx = library(lib, opt)

        class Model(nnx.Module):
            def __init__(self, arrays):
                self.w = nnx.data({k: nnx.Param(jnp.array(v, copy=True)) for k, v in arrays.items()})

        self.model = Model(params_np)
        self.grads = nnx.state(Model(grads_np), nnx.Param)  # what nnx.grad returns: a State of Params
        with self.ctx():
            self.optimizer = nnx.Optimizer(self.model, tx, wrt=nnx.Param)
            self.step = nnx.jit(
                lambda model, optimizer, grads: optimizer.update(model, grads), donate_argnums=(0, 1)
            )
            t0 = time.perf_counter()
            self.step(self.model, self.optimizer, self.grads)
            jax.block_until_ready(nnx.state(self.model))
        self.compile_s = {"total": time.perf_counter() - t0}

    def run(self, n):
        from flax import nnx

        with self.ctx():
            for _ in range(n):
                self.step(self.model, self.optimizer, self.grads)
        jax.block_until_ready(nnx.state(self.model))

    def state_bytes(self):
        from flax import nnx

        return sum(x.nbytes for x in jax.tree.leaves(nnx.state(self.optimizer, nnx.OptState)))


class TorchContender:
    def __init__(self, mode, opt, params_np, grads_np, device="cpu"):
        import torch

        self.torch = torch
        self.cuda = device == "gpu"
        where = "cuda" if self.cuda else "cpu"
        kw = {"fused": True} if mode == "fused" else {"foreach": mode == "foreach"}
        self.clip_foreach = mode != "loop"
        self.params = []
        for k, v in params_np.items():
            p = torch.from_numpy(v.copy()).to(where).requires_grad_()
            p.grad = torch.from_numpy(grads_np[k].copy()).to(where)
            self.params.append(p)
        self.opt = opt
        if mode == "reference":
            import pytorch_optimizer

            if opt == "soap":
                self.optim = pytorch_optimizer.SOAP(self.params, lr=3e-3, precondition_frequency=10)
            else:
                self.optim = pytorch_optimizer.ScalableShampoo(
                    self.params,
                    lr=1e-3,
                    block_size=1024,
                    preconditioning_compute_steps=10,
                    start_preconditioning_step=5,
                )
        elif opt == "canonical":
            self.optim = torch.optim.Adam(self.params, lr=1e-3, **kw)
        elif opt == "sgd":
            self.optim = torch.optim.SGD(self.params, lr=1e-2, momentum=0.9, **kw)
        else:
            self.optim = torch.optim.AdamW(self.params, lr=1e-3, weight_decay=1e-4, **kw)
        self.compile_s = None

    def run(self, n):
        torch = self.torch
        with torch.no_grad():
            for _ in range(n):
                if self.opt == "canonical":
                    torch.nn.utils.clip_grad_norm_(self.params, 1.0, foreach=self.clip_foreach)
                self.optim.step()
        if self.cuda:
            torch.cuda.synchronize()

    def state_bytes(self):
        return sum(t.numel() * t.element_size() for st in self.optim.state.values() for t in _tensors(st))


def _tensors(x):
    """The torch tensors in an optimizer's per-parameter state (nested dicts and lists)."""
    import torch

    if torch.is_tensor(x):
        yield x
    elif isinstance(x, dict):
        for v in x.values():
            yield from _tensors(v)
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from _tensors(v)
    elif hasattr(x, "__dict__"):  # ScalableShampoo keeps a preconditioner object per parameter
        yield from _tensors(vars(x))


CONTENDERS = (
    "gradchain",
    "gradchain flat",
    "optax",
    "gradchain nnx.Optimizer",
    "optax nnx.Optimizer",
    "torch foreach=False",
    "torch foreach=True",
    "torch fused=True",
    "pytorch_optimizer",
)


def make_contender(name, opt, params_np, grads_np, device="cpu"):
    if opt not in FIRST_ORDER and name not in SECOND_ORDER_CONTENDERS:
        raise ValueError(f"contender {name!r} has no {opt}; choose from {SECOND_ORDER_CONTENDERS}")
    if opt in FIRST_ORDER and name == "pytorch_optimizer":
        raise ValueError(f"contender {name!r} runs only {tuple(REFRESH_PERIOD)}")
    if name in ("gradchain", "gradchain flat", "optax"):
        return JaxContender(name, opt, params_np, grads_np)
    if name.endswith("nnx.Optimizer"):
        return NnxContender(name, opt, params_np, grads_np)
    mode = {
        "torch foreach=False": "loop",
        "torch foreach=True": "foreach",
        "torch fused=True": "fused",
        "pytorch_optimizer": "reference",
    }[name]
    return TorchContender(mode, opt, params_np, grads_np, device)


# --------------------------------------------------------------------------- measurement


def bandwidth_ceiling(runs: int, device: str = "cpu", n: int = 64 * 2**20) -> dict:
    """The best streaming rate of two kernels (XLA and torch, all threads) on two float32
    arrays of ``n`` values (256 MB; smaller for a smoke test, where caches make it meaningless).

    The ceiling is the larger of the two bests: the machine's streaming bandwidth as the
    best of two independent implementations sees it, so no contender can beat it by
    being the one that measures it. On a GPU: `copy_ceiling`.
    """
    if device == "gpu":
        return copy_ceiling(runs)
    import torch

    x = jnp.ones(n, jnp.float32)
    y = jnp.full(n, 0.5, jnp.float32)
    # x is donated, so the output reuses x's buffer: no fresh 256 MB allocation (and its
    # page faults) per call, as in the donated optimizer steps.
    f = jax.jit(lambda x, y: x * 1.0001 + y, donate_argnums=0)
    x = jax.block_until_ready(f(x, y))
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        x = jax.block_until_ready(f(x, y))
        times.append(time.perf_counter() - t0)
    # The same kernel without donation: every call allocates (and page-faults) a fresh output.
    g = jax.jit(lambda x, y: x * 1.0001 + y)
    jax.block_until_ready(g(x, y))
    fresh = []
    for _ in range(runs):
        t0 = time.perf_counter()
        jax.block_until_ready(g(x, y))
        fresh.append(time.perf_counter() - t0)
    del x, y
    # torch, in place, on all threads: x = x * 1.0001 + y
    tx_, ty_ = torch.ones(n), torch.full((n,), 0.5)
    torch.add(ty_, tx_, alpha=1.0001, out=tx_)
    ttimes = []
    for _ in range(runs):
        t0 = time.perf_counter()
        torch.add(ty_, tx_, alpha=1.0001, out=tx_)
        ttimes.append(time.perf_counter() - t0)
    del tx_, ty_
    moved = 3 * 4 * n
    xla_best, torch_best = moved / min(times) / 1e9, moved / min(ttimes) / 1e9
    return {
        "not_donated_gb_per_s_best": moved / min(fresh) / 1e9,
        "kernel": (
            f"x = x * 1.0001 + y on two {4 * n / 2**20:.0f} MB float32 arrays (3 x {4 * n / 2**20:.0f} MB "
            f"moved), best of {runs}: jit with x donated (XLA) and torch.add(..., out=x) ({torch.get_num_threads()} threads)"
        ),
        "bytes": moved,
        "seconds": times,
        "torch_seconds": ttimes,
        "xla_gb_per_s_best": xla_best,
        "torch_gb_per_s_best": torch_best,
        "gb_per_s_best": max(xla_best, torch_best),
        "gb_per_s_median": moved / statistics.median(times) / 1e9,
    }


def copy_ceiling(runs: int, n: int = 2**28) -> dict:
    """The GPU's device-to-device copy rate: a 1 GiB float32 buffer copied (read + write),
    best of ``runs``, by a jitted copy (XLA; ``x + 0`` would be folded away) and by torch's
    ``dst.copy_(src)`` with ``torch.cuda.synchronize()``."""
    import torch

    x = jnp.ones(n, jnp.float32)
    f = jax.jit(jnp.copy)
    jax.block_until_ready(f(x))
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        jax.block_until_ready(f(x))
        times.append(time.perf_counter() - t0)
    del x
    src, dst = torch.ones(n, device="cuda"), torch.empty(n, device="cuda")
    dst.copy_(src)
    torch.cuda.synchronize()
    ttimes = []
    for _ in range(runs):
        t0 = time.perf_counter()
        dst.copy_(src)
        torch.cuda.synchronize()
        ttimes.append(time.perf_counter() - t0)
    del src, dst
    torch.cuda.empty_cache()
    moved = 2 * 4 * n
    xla_best, torch_best = moved / min(times) / 1e9, moved / min(ttimes) / 1e9
    return {
        "not_donated_gb_per_s_best": xla_best,
        "kernel": (
            f"device-to-device copy of a {4 * n / 2**30:.0f} GiB float32 buffer (2 x {4 * n / 2**30:.0f} GiB moved), "
            f"best of {runs}: jax.jit(jnp.copy) (XLA) and dst.copy_(src) (torch, CUDA-synchronized)"
        ),
        "bytes": moved,
        "seconds": times,
        "torch_seconds": ttimes,
        "xla_gb_per_s_best": xla_best,
        "torch_gb_per_s_best": torch_best,
        "gb_per_s_best": max(xla_best, torch_best),
        "gb_per_s_median": moved / statistics.median(times) / 1e9,
    }


def time_side_by_side(live: dict, repeats: int, period: int = 1) -> tuple[dict, dict]:
    """Seconds per step of each contender (objects with ``run(n)``), ``repeats`` samples each,
    and the steps per sample of each.

    Two warm-up steps, then a calibration picks ``n`` so that a sample of ``n`` steps lasts
    >= ~20 ms; each repeat times every contender once, the order rotated by one each
    repeat (and reversed every other round). With ``period > 1`` (an optimizer that
    refreshes every ``period`` steps) the warm-up is ``period`` steps and a second
    ``period`` calibrates, and ``n`` is a whole number of periods.
    """
    inner = {}
    for name, c in live.items():
        c.run(max(1, period - 1) if period > 1 else 1)
        t0 = time.perf_counter()
        c.run(period)
        dt = (time.perf_counter() - t0) / period
        n = max(1, min(50, int(0.02 / max(dt, 1e-6))))
        inner[name] = -(-n // period) * period
    samples = {name: [] for name in live}
    names = list(live)
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        if (r // len(names)) % 2:
            order = order[::-1]
        for name in order:
            t0 = time.perf_counter()
            live[name].run(inner[name])
            samples[name].append((time.perf_counter() - t0) / inner[name])
    return samples, inner


def bench(tree, opt, contenders, repeats, quick, ceiling_gbs, rng, tiny=False, device="cpu"):
    shapes = tree_shapes(tree, quick, tiny)
    n_params = int(sum(np.prod(s) for s in shapes.values()))
    params_np = {k: (0.02 * rng.standard_normal(s, dtype=np.float32)) for k, s in shapes.items()}
    grads_np = {k: (1e-4 * rng.standard_normal(s, dtype=np.float32)) for k, s in shapes.items()}
    live = {}
    for name in contenders:
        live[name] = make_contender(name, opt, params_np, grads_np, device)
    del params_np, grads_np
    samples, inner = time_side_by_side(live, repeats, REFRESH_PERIOD.get(opt, 1))
    names = list(live)
    bpp = BYTES_PER_PARAM[opt][0] if opt in BYTES_PER_PARAM else None
    floor_bytes = None if bpp is None else bpp * n_params
    floor_s = None if bpp is None else floor_bytes / (ceiling_gbs * 1e9)
    out = {
        "tree": tree,
        "optimizer": opt,
        "n_params": n_params,
        "n_leaves": len(shapes),
        "bytes_per_param": bpp,
        "floor_bytes": floor_bytes,
        "floor_s": floor_s,
        "refresh_period": REFRESH_PERIOD.get(opt, 1),
        "contenders": {},
    }
    for name in names:
        med = statistics.median(samples[name])
        out["contenders"][name] = {
            "median_s": med,
            "min_s": min(samples[name]),
            "max_s": max(samples[name]),
            "steps_per_sample": inner[name],
            "samples_s": samples[name],
            "effective_gb_per_s": None if bpp is None else floor_bytes / med / 1e9,
            "pct_of_ceiling": None if bpp is None else 100.0 * floor_s / med,
            "compile_s": live[name].compile_s,
            "state_bytes_per_param": live[name].state_bytes() / n_params,
        }
    del live
    pygc.collect()
    if device == "gpu":
        import torch

        torch.cuda.empty_cache()
    return out


# --------------------------------------------------------------------------- reporting


def fmt_ms(s):
    return f"{s * 1e3:.3g}" if s < 0.1 else f"{s * 1e3:.0f}"


def table(results, tree):
    rows = [r for r in results if r["tree"] == tree]
    if not rows:
        return []
    r0 = rows[0]
    lines = [
        f"### {tree}: {r0['n_params'] / 1e6:.2f}M params, {r0['n_leaves']} leaves",
        "",
        (
            "| optimizer | contender | median ms | min ms | max ms | floor ms | eff. GB/s | % of ceiling |"
            " state B/param | trace s | lower s | compile s |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        for name, c in r["contenders"].items():
            cs = c["compile_s"]
            if not cs:
                comp = "- | - | -"
            elif "trace" not in cs:  # only the first call was timed (nnx.jit)
                comp = f"- | - | {cs['total']:.2f} (first call)"
            else:
                comp = f"{cs['trace']:.2f} | {cs['lower']:.2f} | {cs['compile']:.2f}"
            if r["floor_s"] is None:
                roof = "- | - | -"
            else:
                roof = f"{fmt_ms(r['floor_s'])} | {c['effective_gb_per_s']:.1f} | {c['pct_of_ceiling']:.0f}%"
            lines.append(
                f"| {r['optimizer']} | {name} | {fmt_ms(c['median_s'])} | {fmt_ms(c['min_s'])} | "
                f"{fmt_ms(c['max_s'])} | {roof} | {c['state_bytes_per_param']:.1f} | {comp} |"
            )
    lines.append("")
    return lines


def plot(results, trees, opts, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(opts), len(trees), figsize=(4.2 * len(trees), 3.3 * len(opts)), squeeze=False
    )
    colors = ["tab:blue", "tab:cyan", "tab:orange", "tab:gray", "tab:olive", "tab:green"]
    for i, opt in enumerate(opts):
        for j, tree in enumerate(trees):
            ax = axes[i][j]
            r = next((r for r in results if r["tree"] == tree and r["optimizer"] == opt), None)
            if r is None:
                ax.axis("off")
                continue
            names = list(r["contenders"])
            med = [r["contenders"][n]["median_s"] * 1e3 for n in names]
            lo = [m - r["contenders"][n]["min_s"] * 1e3 for m, n in zip(med, names)]
            hi = [r["contenders"][n]["max_s"] * 1e3 - m for m, n in zip(med, names)]
            ax.bar(range(len(names)), med, yerr=[lo, hi], color=colors[: len(names)], capsize=2)
            if r["floor_s"] is not None:
                ax.axhline(r["floor_s"] * 1e3, color="red", ls="--", lw=1, label="bandwidth floor")
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels([n.replace("torch ", "torch\n") for n in names], fontsize=7)
            ax.set_title(f"{tree} / {opt}", fontsize=9)
            ax.set_ylabel("ms per step", fontsize=8)
            if i == 0 and j == 0 and r["floor_s"] is not None:
                ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def versions():
    import jaxlib
    import optax
    import torch

    return {
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "optax": optax.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument(
        "--quick", action="store_true", help="1/16-size trees, 200 small leaves, few repeats (< 60 s)"
    )
    parser.add_argument(
        "--tiny", action="store_true", help="~1/1000-size trees, 1 repeat, small ceiling arrays: a smoke test"
    )
    parser.add_argument(
        "--tree",
        default="all",
        help="comma-separated subset of: " + ", ".join(TREES) + " (default all; gpt_1b only on a GPU)",
    )
    parser.add_argument(
        "--optimizer",
        choices=[*OPTIMIZERS, "all", "second_order"],
        default=None,
        help=(
            "default and 'all': canonical, sgd, adamw (quick: canonical and sgd); "
            "'second_order': soap and shampoo (run apart from the first-order ones)"
        ),
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed samples per contender (default 20; 10 for gpt2_small and gpt_1b; 3 quick; 1 tiny)",
    )
    parser.add_argument(
        "--contenders",
        default=None,
        help="comma-separated subset of: "
        + ", ".join(CONTENDERS)
        + " (default all; on gpt_1b: "
        + ", ".join(BIG_TREE_CONTENDERS)
        + ")",
    )
    parser.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto")
    parser.add_argument("--force", action="store_true", help="run GPU-only trees (gpt_1b) on a CPU")
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default benchmarks/results/cpu or /gpu)"
    )
    args = parser.parse_args(argv)
    t_start = time.perf_counter()
    device = select_device(args.device)
    quick = args.quick or args.tiny
    out_dir = args.out or Path(__file__).resolve().parent / "results" / device

    import torch

    n_threads = os.cpu_count() or 1
    torch.set_num_threads(n_threads)
    if args.optimizer is None:
        opts = ["canonical", "sgd"] if quick else list(FIRST_ORDER)
    elif args.optimizer in ("all", "second_order"):
        opts = list(FIRST_ORDER) if args.optimizer == "all" else list(REFRESH_PERIOD)
    else:
        opts = [args.optimizer]
    second_order = opts[0] in REFRESH_PERIOD
    if second_order and args.tree == "all":
        trees = [t for t in SECOND_ORDER_TREES if device == "gpu" or t not in GPU_ONLY_TREES]
    else:
        trees = parse_trees(parser, args.tree, device, args.force)
    if second_order:
        for t in trees:
            if t not in SECOND_ORDER_TREES:
                parser.error(f"--tree {t}: {opts[0]} runs on {SECOND_ORDER_TREES} (trees of matrices)")
    allowed = (
        SECOND_ORDER_CONTENDERS if second_order else tuple(c for c in CONTENDERS if c != "pytorch_optimizer")
    )
    chosen = None
    if args.contenders is not None:
        chosen = [c.strip() for c in args.contenders.split(",") if c.strip()]
        for c in chosen:
            if c not in allowed:
                parser.error(f"unknown contender {c!r} for {', '.join(opts)}; choose from {allowed}")

    def contenders_for(tree):
        if chosen is not None:
            return chosen
        if second_order:
            return list(SECOND_ORDER_CONTENDERS)
        return list(BIG_TREE_CONTENDERS) if tree in GPU_ONLY_TREES else list(allowed)

    ceiling = (
        bandwidth_ceiling(2, device, n=2**20) if args.tiny and device == "cpu" else
        bandwidth_ceiling(5 if quick else 10, device)
    )  # fmt: skip
    ceil_gbs = ceiling["gb_per_s_best"]
    print(
        f"[{device}] bandwidth ceiling: {ceil_gbs:.1f} GB/s (best of XLA {ceiling['xla_gb_per_s_best']:.1f}, "
        f"torch {ceiling['torch_gb_per_s_best']:.1f}); XLA median {ceiling['gb_per_s_median']:.1f} GB/s; "
        f"without donation {ceiling['not_donated_gb_per_s_best']:.1f} GB/s (best)",
        flush=True,
    )

    rng = np.random.default_rng(0)
    results = []
    for tree in trees:
        for opt in opts:
            big = tree in ("gpt2_small", "gpt_1b")
            reps = args.repeats or (1 if args.tiny else 3 if quick else (10 if big else 20))
            t0 = time.perf_counter()
            r = bench(tree, opt, contenders_for(tree), reps, quick, ceil_gbs, rng, args.tiny, device)
            r["repeats"] = reps
            r["wall_s"] = time.perf_counter() - t0
            results.append(r)
            print(f"[{tree} / {opt}: {r['wall_s']:.1f} s]", flush=True)
        print("\n".join(table(results, tree)), flush=True)

    size = " (tiny)" if args.tiny else " (quick: scaled down)" if quick else ""
    meta = {
        "benchmark": "optimizer_step",
        "quick": quick,
        "tiny": args.tiny,
        "command": " ".join(
            ["python", "benchmarks/optimizer_step.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "optimizers": {o: OPTIMIZERS[o] for o in opts},
        "bytes_per_param": {
            o: {"bytes": BYTES_PER_PARAM[o][0], "counted": BYTES_PER_PARAM[o][1]}
            for o in opts
            if o in BYTES_PER_PARAM
        },
        "trees": {t: TREES[t] + size for t in trees},
        "contenders": {t: contenders_for(t) for t in trees},
        "ceiling": ceiling,
        **device_info(device),
        "devices": [str(d) for d in jax.devices()],
        "processor": platform.processor(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_num_threads": torch.get_num_threads(),
        "versions": versions(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "load_avg_1min_at_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "total_wall_s": time.perf_counter() - t_start,
    }
    report = {"meta": meta, "results": results}

    v = meta["versions"]
    where = (
        f"{meta['cuda_device']} ({meta['cuda_memory_gb']} GB), CUDA {meta['torch_cuda']}"
        if device == "gpu"
        else f"{meta['devices']} ({meta['processor'] or meta['machine']}, {meta['cpu_count']} CPUs, "
        f"torch threads {meta['torch_num_threads']})"
    )
    lines = [
        f"# optimizer_step benchmark{' (tiny)' if args.tiny else ' (quick)' if quick else ''}",
        "",
        (
            f"{meta['date_utc']}; {where}; jax {v['jax']}, jaxlib {v['jaxlib']}, optax {v['optax']}, "
            f"torch {v['torch']}, numpy {v['numpy']}, python {v['python']}."
        ),
        "",
        f"Bandwidth ceiling: **{ceil_gbs:.1f} GB/s** ({ceiling['kernel']}: XLA {ceiling['xla_gb_per_s_best']:.1f}, "
        f"torch {ceiling['torch_gb_per_s_best']:.1f} GB/s; XLA median {ceiling['gb_per_s_median']:.1f} GB/s"
        + (
            f"; x donated -- without donation, a fresh output buffer per call: "
            f"{ceiling['not_donated_gb_per_s_best']:.1f} GB/s"
            if device == "cpu"
            else ""
        )
        + (
            "). Floor = bytes per param x params / ceiling: "
            + "; ".join(f"{o} {BYTES_PER_PARAM[o][0]} B ({BYTES_PER_PARAM[o][1]})" for o in opts)
            + ". Effective GB/s = floor bytes / median step time."
            if not second_order
            else "). No floor for "
            + " and ".join(opts)
            + ": their steps are matrix products. Time per step amortized over the refresh period (10 steps): "
            + "; ".join(f"{o} = {OPTIMIZERS[o]}" for o in opts)
            + "."
        )
        + " State B/param: the optimizer state's bytes per parameter.",
        "",
        (
            f"Median / min / max of {', '.join(sorted({str(r['repeats']) for r in results}))} samples per contender, "
            "order rotated across repeats, after "
            + (
                "a warm-up of 9 steps and a calibration of 10 (samples of whole refresh periods)"
                if second_order
                else "2 warm-up steps"
            )
            + "; JAX steps jitted with params and state donated"
            + ("; torch on CUDA, each sample ended by torch.cuda.synchronize()" if device == "gpu" else "")
            + ". Compile columns: `jit(step).trace(...)`, `.lower()`, `.compile()` seconds."
        ),
        "",
        f"Reproduce: `{meta['command']}` (total wall time {meta['total_wall_s']:.0f} s).",
        "",
    ]
    for tree in trees:
        lines += table(results, tree)
    text = "\n".join(lines)

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = (
        "optimizer_step"
        + ("_second_order" if second_order else "")
        + ("_tiny" if args.tiny else "_quick" if quick else "")
    )
    (out_dir / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / f"{stem}.md").write_text(text + "\n")
    try:
        plot(
            results,
            trees,
            opts,
            out_dir / f"{stem}.png",
            f"optimizer step, {meta.get('cuda_device') or meta['processor'] or meta['machine']}"
            f"{'' if device == 'gpu' else ' x' + str(meta['cpu_count'])}, "
            f"ceiling {ceil_gbs:.1f} GB/s (dashed: floor){' [tiny]' if args.tiny else ' [quick]' if quick else ''}",
        )
        wrote = "json,md,png"
    except ImportError:  # no matplotlib (e.g. on a bare GPU machine): the tables are written
        wrote = "json,md"
    print(f"total {meta['total_wall_s']:.1f} s; wrote {out_dir / stem}.{{{wrote}}}")
    return report


if __name__ == "__main__":
    main()
