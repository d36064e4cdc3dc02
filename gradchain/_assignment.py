"""The linear assignment problem (Optax's ``optax.assignment``), jit-able.

Given an ``n x m`` cost matrix ``C``, choose ``min(n, m)`` (row, column) pairs, no row
or column twice, of least total cost::

    minimize   sum_ij C_ij X_ij
    subject to X_ij in {0, 1},  sum_j X_ij <= 1,  sum_i X_ij <= 1,  sum_ij X_ij = min(n, m)

Both functions solve it exactly in ``O(n^2 m)`` with shortest augmenting paths and dual
potentials (the Hungarian method), transposing first so that ``n <= m``; they differ in
the bookkeeping, and return Optax's index order (below). Costs must be real and finite
(``+inf`` marks a forbidden pair, as long as an assignment avoiding them exists);
concrete inputs with NaN or ``-inf`` raise.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._numerics import is_tracer, promote

__all__ = ["base_hungarian_algorithm", "hungarian_algorithm"]


def _prepare(fn: str, cost_matrix: Any) -> jax.Array:
    c = jnp.asarray(cost_matrix)
    if c.ndim != 2:
        raise ValueError(f"{fn}: `cost_matrix` must be a 2-D array, got shape {c.shape}.")
    if not (jnp.issubdtype(c.dtype, jnp.floating) or jnp.issubdtype(c.dtype, jnp.integer) or c.dtype == bool):
        raise TypeError(f"{fn}: `cost_matrix` must hold real numbers, got dtype {c.dtype}.")
    if not is_tracer(c) and c.size and jnp.issubdtype(c.dtype, jnp.floating):
        a = np.asarray(c, np.float64)
        if np.isnan(a).any() or (a == -np.inf).any():
            raise ValueError(f"{fn}: `cost_matrix` must not hold NaN or -inf, got {cost_matrix!r}.")
    return c


def _empty() -> tuple[jax.Array, jax.Array]:
    return jnp.zeros(0, int), jnp.zeros(0, int)


def hungarian_algorithm(cost_matrix: Any) -> tuple[jax.Array, jax.Array]:
    """Solve the linear assignment problem; the faster of the two (a simpler program).

    Rows are placed one at a time; each grows a tree of tight columns (reduced cost
    ``C_ij - u_i - v_j = 0``) until it reaches a free column, moving the potentials by
    the smallest slack ``delta`` at each step, then flips the path::

        slack_j = min over tree rows i of (C_ij - u_i - v_j)
        delta   = min over columns outside the tree of slack_j
        u_i += delta (rows in the tree),  v_j -= delta (columns in the tree)

    Args:
        cost_matrix: An ``n x m`` real matrix.

    Returns:
        ``(i, j)``, integer arrays of length ``min(n, m)`` with the optimal cost
        ``cost_matrix[i, j].sum()``. As in Optax: for ``n == m``, ``j = arange(n)``
        and ``i[k]`` is column ``k``'s row; for ``n < m`` the rows in decreasing order;
        for ``n > m`` the columns in decreasing order.

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> cost = jnp.array([[8, 4, 7], [5, 2, 3], [9, 6, 7], [9, 4, 8]])
        >>> i, j = gradchain.assignment.hungarian_algorithm(cost)
        >>> print(i, j, cost[i, j].sum())
        [1 3 0] [2 1 0] 15

    References:
        Dehghani et al., "Scenic: A JAX Library for Computer Vision Research and Beyond",
        CVPR 2022 (the implementation Optax follows); Kuhn, "The Hungarian method for the
        assignment problem", Naval Research Logistics Quarterly, 1955.
    """
    c = _prepare("hungarian_algorithm", cost_matrix)
    if 0 in c.shape:
        return _empty()
    return _scenic(c)


def base_hungarian_algorithm(cost_matrix: Any) -> tuple[jax.Array, jax.Array]:
    """Solve the linear assignment problem with Crouse's shortest augmenting paths (as SciPy).

    For each row in turn, a Dijkstra search over reduced costs finds the cheapest path
    to a free column; the potentials then absorb the path costs and the path is flipped::

        d_j = min over visited rows i of (d_i + C_ij - u_i - v_j)     (shortest path costs)
        u_i += d_min - d_{col(i)} (visited rows),  v_j -= d_min - d_j (visited columns)

    Computed in JAX's default floating dtype (float32, or float64 under x64).

    Args:
        cost_matrix: An ``n x m`` real matrix.

    Returns:
        ``(i, j)``, integer arrays of length ``min(n, m)`` with the optimal cost
        ``cost_matrix[i, j].sum()``, the rows ``i`` in increasing order (Optax's).

    Examples:
        >>> import jax.numpy as jnp, gradchain
        >>> cost = jnp.array([[90, 80, 75, 70], [35, 85, 55, 65], [125, 95, 90, 95],
        ...                   [45, 110, 95, 115], [50, 100, 90, 100]])
        >>> i, j = gradchain.assignment.base_hungarian_algorithm(cost)
        >>> print(i, j, cost[i, j].sum())
        [0 1 2 3] [3 2 1 0] 265

    References:
        Crouse, "On implementing 2D rectangular assignment algorithms", IEEE Transactions
        on Aerospace and Electronic Systems, 2016.
    """
    c = _prepare("base_hungarian_algorithm", cost_matrix)
    if 0 in c.shape:
        return _empty()
    return _crouse(c)


@jax.jit
def _scenic(c: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`hungarian_algorithm` on a non-empty matrix (compiled once per shape and dtype)."""
    transpose = c.shape[0] > c.shape[1]
    if transpose:
        c = c.T
    n, m = c.shape
    dt = promote(c.dtype, jax.dtypes.canonicalize_dtype(jnp.float64))
    c = c.astype(dt)
    inf = jnp.asarray(jnp.inf, dt)
    # 1-based rows and columns; column 0 holds the row being placed. u[n + 1] absorbs
    # the potential updates of columns outside the tree (a scatter without a branch).
    u, v, owner = jnp.zeros(n + 2, dt), jnp.zeros(m + 1, dt), jnp.zeros(m + 1, int)

    def place_row(carry, row):
        u, v, owner = carry
        owner = owner.at[0].set(row + 1)

        def grow(s):
            u, v, in_tree, slack, prev, col = s
            in_tree = in_tree.at[col].set(True)
            out = ~in_tree[1:]
            i = owner[col]
            reduced = jnp.where(out, c[i - 1, :] - u[i] - v[1:], inf)
            better = reduced < slack
            prev = jnp.where(better, col, prev)
            slack = jnp.where(better, reduced, slack)
            masked = jnp.where(out, slack, inf)
            nxt, delta = jnp.argmin(masked) + 1, jnp.min(masked)
            u = u.at[jnp.where(in_tree, owner, n + 1)].add(delta)
            v = jnp.where(in_tree, v - delta, v)
            slack = jnp.where(out, slack - delta, slack)
            return u, v, in_tree, slack, prev, nxt

        start = (u, v, jnp.zeros(m + 1, bool), jnp.full(m, inf), jnp.zeros(m, int), 0)
        u, v, _, _, prev, col = jax.lax.while_loop(lambda s: owner[s[-1]] != 0, grow, start)

        def flip(s):
            owner, col = s
            back = prev[col - 1]
            return owner.at[col].set(owner[back]), back

        owner, _ = jax.lax.while_loop(lambda s: s[1] != 0, flip, (owner, col))
        return (u, v, owner), None

    (_, _, owner), _ = jax.lax.scan(place_row, (u, v, owner), jnp.arange(n))
    if n == m:
        rows, cols = owner[1:], jnp.arange(n)
    else:
        rows, cols = jax.lax.top_k(owner[1:], n)
    rows = rows - 1
    return (cols, rows) if transpose else (rows, cols)


@jax.jit
def _crouse(c: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`base_hungarian_algorithm` on a non-empty matrix (compiled once per shape and dtype)."""
    transpose = c.shape[1] < c.shape[0]
    if transpose:
        c = c.T
    c = c.astype(float)
    n, m = c.shape
    dt = c.dtype
    inf = jnp.asarray(jnp.inf, dt)
    positions = jnp.arange(m)

    def augment_row(row, carry):
        u, v, path, row4col, col4row = carry

        def step(s):  # one Dijkstra step: settle the nearest unvisited column
            d_min, left, remaining, rows_seen, cols_seen, dist, path, i, sink = s
            rows_seen = rows_seen.at[i].set(True)
            active = positions < left
            js = remaining
            r = d_min + c[i, js] - u[i] - v[js]
            improve = active & (r < dist[js])
            live = jnp.where(active, js, m)  # `remaining` repeats settled columns past `left`: drop them
            path = path.at[live].set(jnp.where(improve, i, path[js]), mode="drop")
            dist = dist.at[live].set(jnp.minimum(dist[js], r), mode="drop")
            vals = jnp.where(active, dist[js], inf)
            lowest = jnp.min(vals)
            at_min = active & (vals == lowest)
            free_at_min = at_min & (row4col[js] == -1)
            # SciPy's scan order: the first column at the minimum, unless a free one ties later
            index = jnp.where(free_at_min.any(), m - 1 - jnp.argmax(free_at_min[::-1]), jnp.argmax(at_min))
            j = js[index]
            found = lowest < inf
            is_free = row4col[j] == -1
            sink = jnp.where(found & is_free, j, -1)
            i = jnp.where(is_free, i, row4col[j])
            cols_seen = cols_seen.at[j].set(cols_seen[j] | found)
            left = jnp.where(found, left - 1, 0)  # no finite path: stop (infeasible costs)
            remaining = remaining.at[index].set(remaining[jnp.maximum(left, 0)])
            return lowest, left, remaining, rows_seen, cols_seen, dist, path, i, sink

        start = (
            jnp.zeros((), dt), jnp.asarray(m), positions[::-1], jnp.zeros(n, bool), jnp.zeros(m, bool),
            jnp.full(m, inf), path, row, jnp.asarray(-1),
        )  # fmt: skip
        s = jax.lax.while_loop(lambda s: (s[-1] == -1) & (s[1] > 0), step, start)
        d_min, _, _, rows_seen, cols_seen, dist, path, _, sink = s

        u = u.at[row].add(d_min)
        others = rows_seen & (jnp.arange(n) != row)
        u = jnp.where(others, u + d_min - dist[col4row], u)
        v = jnp.where(cols_seen, v + dist - d_min, v)

        def flip(s):
            j, row4col, col4row, _ = s
            i = path[j]
            row4col = row4col.at[j].set(i)
            return col4row[i], row4col, col4row.at[i].set(j), i == row

        done = sink == -1  # (infeasible: leave the assignment as it is)
        _, row4col, col4row, _ = jax.lax.while_loop(lambda s: ~s[-1], flip, (sink, row4col, col4row, done))
        return u, v, path, row4col, col4row

    start = (jnp.zeros(n, dt), jnp.zeros(m, dt), jnp.full(m, -1), jnp.full(m, -1), jnp.full(n, -1))
    *_, col4row = jax.lax.fori_loop(0, n, augment_row, start)
    if transpose:
        order = jnp.argsort(col4row)
        return col4row[order], order
    return jnp.arange(n), col4row
