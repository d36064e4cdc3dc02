"""Optimizers: each a short `chain` of building blocks, named and parameterised as in Optax.

The math of every optimizer lives once, in its building blocks' docstrings; here each
docstring says which chain it is. Every ``learning_rate`` is a number ``>= 0``, a scalar
array or tracer (so an optimizer can be built inside ``jit``/``vmap``, e.g. for a
learning-rate sweep), or a schedule ``count -> value``; the sign flip happens once, in
`scale_by_learning_rate`. An invalid argument raises an error that names the optimizer
(and, for a building block's argument, the block), e.g.
``"adam: `learning_rate` must be >= 0, got -1.0."``.
"""
