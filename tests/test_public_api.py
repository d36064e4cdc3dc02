"""The public surface: every transformation factory is in the registry, and vice versa."""

import inspect

import gradchain
from tests.registry import CASES


def _public():
    names = getattr(gradchain, "__all__", None) or [n for n in vars(gradchain) if not n.startswith("_")]
    return {n: getattr(gradchain, n) for n in names}


def _is_factory(obj) -> bool:
    if not inspect.isfunction(obj):
        return False
    ret = inspect.signature(obj).return_annotation
    return ret in ("GradientTransformation", gradchain.GradientTransformation)


def test_every_public_function_declares_what_it_returns():
    missing = [
        n
        for n, f in _public().items()
        if inspect.isfunction(f) and inspect.signature(f).return_annotation is inspect.Signature.empty
    ]
    assert not missing, f"public functions without a return annotation: {missing}"


# Factories the registry's contract tests cannot drive (they run on arbitrary trees), each
# with the test file that covers it instead.
NOT_IN_REGISTRY = {
    "unraveled": "runs only on the flat buffers of one FlatLayout: tests/test_flat.py",
    "clip": "Optax's name for clip_by_value (the same function): tests/test_utilities.py",
    "multi_transform": "Optax's name for partition (the same function): tests/test_utilities.py",
    "with_extra_args_support": "wraps a given transformation: tests/test_utilities.py",
}


def test_registry_covers_every_transformation_factory():
    factories = {n for n, f in _public().items() if _is_factory(f)} - set(NOT_IN_REGISTRY)
    covered = {c.name for c in CASES}
    assert not factories - covered, (
        f"public transformations missing from tests/registry: {sorted(factories - covered)}"
    )
    assert not covered - factories, (
        f"registry names that are not public factories: {sorted(covered - factories)}"
    )
