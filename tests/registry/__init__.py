"""The registry of every public transformation and optimizer, driving test_contract.py.

Each family has one module here defining ``CASES``, a list of `Case`; this package
collects them all. `test_public_api.py` fails when a public name has no case.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Case:
    """One public transformation (or optimizer) with example arguments.

    Attributes:
        name: The public ``gradchain`` name this case covers.
        make: Builds the transformation with concrete example hyperparameters.
        traced: Builds it from one scalar hyperparameter that may be a tracer (for the
            build-inside-``jit``/``vmap`` check); ``None`` if it has no numeric one.
        traced_values: Values of that hyperparameter to sweep.
        extra_args: Keyword arguments passed to every ``update`` call.
        needs_params: ``update`` requires ``params``.
        variant: Distinguishes several cases of one name.
        bf16: Whether the bfloat16-parameter check applies.
    """

    name: str
    make: Callable[[], Any]
    traced: Callable[[Any], Any] | None = None
    traced_values: tuple = (0.01, 0.1)
    extra_args: Mapping[str, Any] = dataclasses.field(default_factory=lambda: {"value": jnp.asarray(1.0)})
    needs_params: bool = False
    variant: str = ""
    bf16: bool = True

    @property
    def id(self) -> str:
        return self.name + (f"[{self.variant}]" if self.variant else "")


def all_cases() -> list[Case]:
    cases = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        mod = importlib.import_module(f"{__name__}.{info.name}")
        cases.extend(getattr(mod, "CASES", []))
    return cases


CASES = all_cases()
