"""Smoothing by random perturbations (Optax's ``optax.perturbations``).

`make_perturbed_fun` turns any function of a pytree, differentiable or not (an argmax,
a ranking, a step function), into a Monte-Carlo estimate of its smoothed version whose
JAX derivatives of every order are unbiased estimates of the smoothed derivatives.
`Normal` and `Gumbel` are the noise distributions. Same key, same samples, same numbers
as Optax.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from gradchain._numerics import hp
from gradchain._tree_dtypes import tree_random_like
from gradchain._tree_math import tree_add_scale, tree_scale, tree_sum
from gradchain._validate import check_int, check_positive

__all__ = ["Gumbel", "Normal", "make_perturbed_fun"]


class Normal:
    """The standard normal distribution: ``sample`` and the unnormalized ``log_prob``.

    ::

        log_prob(z) = -z**2 / 2

    Examples:
        >>> import jax, gradchain
        >>> gradchain.perturbations.Normal().sample(jax.random.key(0), (3,)).shape
        (3,)
    """

    def sample(self, key: Any, sample_shape: tuple[int, ...] = (), dtype: Any = float) -> jax.Array:
        """``jax.random.normal(key, sample_shape, dtype)``."""
        return jax.random.normal(key, sample_shape, dtype)

    def log_prob(self, inputs: jax.Array) -> jax.Array:
        """``-inputs**2 / 2`` (up to a constant)."""
        return -0.5 * inputs**2


class Gumbel:
    """The standard Gumbel distribution: ``sample`` and ``log_prob``.

    ::

        log_prob(z) = -z - exp(-z)

    Examples:
        >>> import jax, gradchain
        >>> gradchain.perturbations.Gumbel().sample(jax.random.key(0), (2, 2)).shape
        (2, 2)
    """

    def sample(self, key: Any, sample_shape: tuple[int, ...] = (), dtype: Any = float) -> jax.Array:
        """``jax.random.gumbel(key, sample_shape, dtype)``."""
        return jax.random.gumbel(key, sample_shape, dtype)

    def log_prob(self, inputs: jax.Array) -> jax.Array:
        """``-inputs - exp(-inputs)``."""
        return -inputs - jnp.exp(-inputs)


def _magic_box(x: jax.Array) -> jax.Array:
    """1 in value, with the derivative of ``exp(x)`` (DiCE's score-function operator)."""
    return jnp.exp(x - jax.lax.stop_gradient(x))


def make_perturbed_fun(
    fun: Callable[[Any], Any],
    num_samples: int = 1000,
    sigma: Any = 0.1,
    noise: Any = Gumbel(),  # noqa: B008 (Optax's default; the object is stateless)
    use_baseline: bool = True,
) -> Callable[[Any, Any], Any]:
    """A stochastic, differentiable approximation of ``fun`` by averaging it over perturbed inputs.

    With ``z ~ noise`` and ``n = num_samples`` samples (one key each, split from the
    key the returned function takes)::

        f_sigma(x) = E_z[ f(x + sigma * z) ]
        estimate   = (1/n) sum_k [ B_k f(y_k) + (1 - B_k) f(x) ],   y_k = x + sigma z_k
        B_k        = magic_box(sum log_prob((y_k - x) / sigma))     (value 1)

    ``y_k`` is held constant under differentiation, so the derivatives flow through the
    score ``log_prob`` only (REINFORCE, any order); ``f`` is never differentiated. The
    baseline term ``(1 - B_k) f(x)`` (``use_baseline``) is 0 in value and lowers the
    variance of the derivatives.

    Args:
        fun: A function from a pytree of arrays to a pytree of arrays.
        num_samples: The number of perturbations averaged, ``>= 1``.
        sigma: The scale of the perturbations, ``> 0``.
        noise: The distribution: an object with ``sample(key, shape, dtype)`` and
            ``log_prob(z)``, e.g. `Gumbel` (the default) or `Normal`.
        use_baseline: Subtract ``f(x)`` as a control variate.

    Returns:
        ``perturbed(key, x)``, with ``fun``'s output structure.

    Examples:
        >>> import jax, jax.numpy as jnp, gradchain
        >>> f = lambda x: jnp.sum(jnp.maximum(x, 0.0))
        >>> fn = gradchain.perturbations.make_perturbed_fun(f, 1_000, 0.1)
        >>> with jnp.printoptions(precision=2):
        ...     print(jax.grad(fn, argnums=1)(jax.random.key(0), jnp.zeros(3)))
        [0.69 0.72 0.58]

    References:
        Berthet et al., "Learning with Differentiable Perturbed Optimizers", NeurIPS 2020;
        Foerster et al., "DiCE: The Infinitely Differentiable Monte Carlo Estimator", ICML 2018.
    """
    fn = "make_perturbed_fun"
    if not callable(fun):
        raise TypeError(f"{fn}: `fun` must be callable, got {fun!r}.")
    check_int(fn, "num_samples", num_samples, 1)
    check_positive(fn, "sigma", sigma)
    if not (callable(getattr(noise, "sample", None)) and callable(getattr(noise, "log_prob", None))):
        raise TypeError(
            f"{fn}: `noise` must have `sample` and `log_prob` methods (e.g. Gumbel()), got {noise!r}."
        )
    if not isinstance(use_baseline, bool):
        raise TypeError(f"{fn}: `use_baseline` must be a bool, got {use_baseline!r}.")

    def perturbed(key: Any, x: Any) -> Any:
        def one_sample(key, x, baseline):
            z = tree_random_like(key, x, sampler=noise.sample)
            y = jax.lax.stop_gradient(jax.tree.map(lambda xi, zi: xi + hp(sigma, zi.dtype) * zi, x, z))
            z = jax.tree.map(lambda xi, yi: (yi - xi) / hp(sigma, yi.dtype), x, y)
            box = _magic_box(tree_sum(jax.tree.map(noise.log_prob, z)))
            out = tree_scale(box, fun(y))
            return tree_add_scale(out, 1 - box, baseline) if use_baseline else out

        baseline = fun(jax.lax.stop_gradient(x)) if use_baseline else None
        keys = jax.random.split(key, num_samples)
        outs = jax.vmap(one_sample, in_axes=(0, None, None))(keys, x, baseline)
        return jax.tree.map(lambda o: jnp.mean(o, axis=0), outs)

    return perturbed
