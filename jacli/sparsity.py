"""The structural nonzero pattern of a Jacobian, from the tape alone (no values).

Each node's pattern says, for every component of its value, which input components it
depends on: a sparse boolean matrix (components x inputs), held as sorted COO pairs
with a row pointer. It is propagated forward over the tape (a loop: no recursion), as
CasADi propagates bit sets over its expression graph:

- an elementwise entry keeps its components apart: component k depends on what
  component k of each argument (after broadcasting) depends on, except through a
  partial that is identically zero (`sign`, the comparisons of the rules);
- `@`, `sum`, indexing, ... mix exactly the components they touch: `(A @ B)[i, j]`
  depends on row i of A and column j of B, `x[1:]` on the components it picks.

An operation without a rule here is taken as dense (each output component depends on
all its arguments' components): a superset, never a wrong zero. The Hessian's pattern
is the Jacobian pattern of the gradient's nodes (symbolic.gradient_tape): an entry
(i, j) is there where the gradient's component i depends on input j, the nonlinear
interactions of the program.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .prims import PRIMITIVES, _zero
from .tape import CONST, VAR, Tape


class Pattern(NamedTuple):
    """A sparse boolean matrix (size x n), sorted by row then column, no duplicates:
    row `rows[k]` depends on column `cols[k]`; `indptr` points into them per row."""
    shape: tuple                # the node's static shape (its rows are its components)
    rows: np.ndarray
    cols: np.ndarray
    indptr: np.ndarray

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def _ids(shape: tuple) -> np.ndarray:
    """Component numbers laid out in `shape`, row-major."""
    return np.arange(math.prod(shape), dtype=np.int64).reshape(shape)


def _make(shape: tuple, rows: np.ndarray, cols: np.ndarray, n: int, unique: bool) -> Pattern:
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    if not unique:
        keys = np.unique(rows * max(n, 1) + cols)
        rows, cols = keys // max(n, 1), keys % max(n, 1)
    size = math.prod(shape)
    indptr = np.searchsorted(rows, np.arange(size + 1, dtype=np.int64))
    return Pattern(tuple(shape), rows, cols, indptr)


def empty(shape: tuple) -> Pattern:
    nothing = np.zeros(0, dtype=np.int64)
    return Pattern(tuple(shape), nothing, nothing, np.zeros(math.prod(shape) + 1, np.int64))


def gather(p: Pattern, source: np.ndarray, shape: tuple, n: int) -> Pattern:
    """Component k of the result depends on what component source[k] of p depends on
    (-1: on nothing). `source` is laid out in the result's `shape`."""
    source = np.asarray(source, dtype=np.int64).reshape(-1)
    if len(p.indptr) == 1:   # p has no components (an empty slice): nothing to depend on
        return empty(shape)
    valid = source >= 0
    safe = np.where(valid, source, 0)
    counts = np.where(valid, p.indptr[safe + 1] - p.indptr[safe], 0)
    total = int(counts.sum())
    rows = np.repeat(np.arange(len(source), dtype=np.int64), counts)
    offsets = np.cumsum(counts) - counts
    positions = np.repeat(p.indptr[safe] - offsets, counts) + np.arange(total, dtype=np.int64)
    return _make(shape, rows, p.cols[positions], n, unique=True)


def scatter(p: Pattern, target: np.ndarray, shape: tuple, n: int) -> Pattern:
    """Component target[k] of the result depends on all that component k of p depends
    on (several k may share a target: a reduction). `target` is laid out in p's shape."""
    target = np.asarray(target, dtype=np.int64).reshape(-1)
    return _make(shape, target[p.rows], p.cols, n, unique=False)


def union(patterns: list[Pattern], shape: tuple, n: int) -> Pattern:
    patterns = [p for p in patterns if p is not None and len(p.rows)]
    if not patterns:
        return empty(shape)
    if len(patterns) == 1:
        return patterns[0]._replace(shape=tuple(shape))
    return _make(shape, np.concatenate([p.rows for p in patterns]),
                 np.concatenate([p.cols for p in patterns]), n, unique=False)


# --- how each operation mixes its arguments' components ------------------------------------

def _spread(p: Pattern, shape: tuple, n: int) -> Pattern:
    """p broadcast to `shape` (NumPy's rules: trailing axes aligned)."""
    if p.shape == tuple(shape):
        return p
    return gather(p, np.broadcast_to(_ids(p.shape), shape), shape, n)


def _reduce(p: Pattern, axes: tuple, n: int) -> Pattern:
    """p reduced over `axes`: the result keeps those axes with size 1."""
    kept = tuple(1 if k in axes else d for k, d in enumerate(p.shape))
    return scatter(p, np.broadcast_to(_ids(kept), p.shape), kept, n)


def _axes(axis, rank: int) -> tuple:
    return tuple(range(rank)) if axis is None or rank == 0 else ((axis + rank) % rank,)


def _reduction(args, shape, params, n):
    (p,) = args
    return _reduce(p, _axes(params[0], len(p.shape)), n)._replace(shape=tuple(shape))


def _along_axis(args, shape, params, n):
    """softmax, prod_others, prod_others_vjp: each component depends on every component
    of its slice along the axis (of every argument)."""
    axes = _axes(params[0] if params else None, len(shape))
    return union([_spread(_reduce(_spread(p, shape, n), axes, n), shape, n) for p in args],
                 shape, n)


def _per_matrix(p: Pattern, n: int) -> Pattern:
    """p reduced over its last two axes (one pattern per matrix of a stack), shape kept
    with ones."""
    return _reduce(p, (len(p.shape) - 2, len(p.shape) - 1), n)


def _elementwise(op: str):
    primitive = PRIMITIVES[op]
    zero = tuple(partial is _zero for partial in primitive.partials)

    def rule(args, shape, params, n):
        return union([_spread(p, shape, n) for k, p in enumerate(args)
                      if not (k < len(zero) and zero[k])], shape, n)
    return rule


def _index(args, shape, params, n):
    (p,), (spec,) = args, params
    key = tuple(slice(*item) if isinstance(item, tuple) else item for item in spec)
    return gather(p, _ids(p.shape)[key], shape, n)


def _index_scatter(args, shape, params, n):
    (p,), (spec, _) = args, params
    key = tuple(slice(*item) if isinstance(item, tuple) else item for item in spec)
    source = np.full(shape, -1, dtype=np.int64)
    region = source[key]
    source[key] = np.broadcast_to(_ids(p.shape), np.shape(region))
    return gather(p, source, shape, n)


def _sum_to(args, shape, params, n):
    (p,) = args
    if len(p.shape) < len(shape):
        return _spread(p, shape, n)
    lead = len(p.shape) - len(shape)
    kept = (1,) * lead + tuple(shape)
    return scatter(p, np.broadcast_to(_ids(kept), p.shape), shape, n)


def _reshape(args, shape, params, n):
    return args[0]._replace(shape=tuple(shape))


def _permuted(permute):
    def rule(args, shape, params, n):
        (p,) = args
        return gather(p, permute(_ids(p.shape)), shape, n)
    return rule


def _stack(args, shape, params, n):
    element = tuple(shape[1:])
    size = math.prod(element)
    parts = [_spread(p, element, n) for p in args]
    return _make(shape, np.concatenate([p.rows + k * size for k, p in enumerate(parts)]),
                 np.concatenate([p.cols for p in parts]), n, unique=True)


def _matmul(args, shape, params, n):
    a, b = args
    if len(a.shape) == 1:
        a = a._replace(shape=(1,) + a.shape)
    if len(b.shape) == 1:
        b = b._replace(shape=b.shape + (1,))
    rows_of_a = _reduce(a, (len(a.shape) - 1,), n)       # (..., p, 1)
    columns_of_b = _reduce(b, (len(b.shape) - 2,), n)    # (..., 1, r)
    full = np.broadcast_shapes(rows_of_a.shape, columns_of_b.shape)
    return union([_spread(rows_of_a, full, n), _spread(columns_of_b, full, n)],
                 full, n)._replace(shape=tuple(shape))


def _dot(args, shape, params, n):
    a, b = args
    if not a.shape or not b.shape:
        return _elementwise("mul")(args, shape, params, n)
    return union([_reduce(p, (0,), n) for p in args], (1,), n)._replace(shape=())


def _outer(args, shape, params, n):
    a, b = (p._replace(shape=(p.size,)) for p in args)
    return union([gather(a, np.broadcast_to(_ids(a.shape)[:, None], shape), shape, n),
                  gather(b, np.broadcast_to(_ids(b.shape)[None, :], shape), shape, n)],
                 shape, n)


def _diagonal(p: Pattern) -> np.ndarray:
    rows, columns = p.shape
    return np.arange(min(rows, columns), dtype=np.int64) * (columns + 1)


def _diag(args, shape, params, n):
    (p,) = args
    if len(p.shape) == 2:
        return gather(p, _diagonal(p), shape, n)
    source = np.full(shape, -1, dtype=np.int64)
    source[np.arange(p.shape[0]), np.arange(p.shape[0])] = np.arange(p.shape[0])
    return gather(p, source, shape, n)


def _trace(args, shape, params, n):
    (p,) = args
    diagonal = gather(p, _diagonal(p), (len(_diagonal(p)),), n)
    return scatter(diagonal, np.zeros(diagonal.size, np.int64), (), n)


def _det(args, shape, params, n):
    return _per_matrix(args[0], n)._replace(shape=tuple(shape))


def _inv(args, shape, params, n):
    return _spread(_per_matrix(args[0], n), shape, n)


def _solve(args, shape, params, n):
    a, b = args
    ones = (1,) if len(b.shape) == 1 else (1, 1)
    parts = [_spread(_per_matrix(a, n)._replace(shape=a.shape[:-2] + ones), shape, n)]
    # x[..., i] (vector b) or x[..., i, j] (matrix b) needs all of b's column
    parts.append(_spread(_reduce(b, (len(b.shape) - 1 if len(b.shape) == 1 else
                                     len(b.shape) - 2,), n), shape, n))
    return union(parts, shape, n)


def _dense(args, shape, params, n):
    """An operation without a rule: every component depends on every argument's."""
    parts = [scatter(p, np.zeros(p.size, np.int64), (), n) for p in args]
    return _spread(union(parts, (), n), shape, n)


RULES = {
    "index": _index, "index_scatter": _index_scatter,
    "broadcast_to": lambda args, shape, params, n: _spread(args[0], shape, n),
    "sum_to": _sum_to, "reshape": _reshape,
    "swap": _permuted(lambda ids: np.swapaxes(ids, -1, -2)),
    "transpose": _permuted(lambda ids: ids.T), "stack": _stack, "matmul": _matmul,
    "dot": _dot, "outer": _outer, "diag": _diag, "trace": _trace, "det": _det,
    "inv": _inv, "solve": _solve,
    **{name: _reduction for name in ("sum", "mean", "prod", "amax", "amin", "norm",
                                     "logsumexp")},
    **{name: _along_axis for name in ("softmax", "prod_others", "prod_others_vjp")},
}


def _rule(op: str):
    if op in RULES:
        return RULES[op]
    if PRIMITIVES[op].shape is None:
        return _elementwise(op)
    return _dense


# --- the pass ----------------------------------------------------------------------------

class Sparsity(NamedTuple):
    """A Jacobian's (or Hessian's) structural nonzeros: entry (rows[k], cols[k]) for each
    k, sorted by row then column (COO), of a `shape` (m, n) matrix."""
    rows: np.ndarray
    cols: np.ndarray
    shape: tuple

    @property
    def nnz(self) -> int:
        return len(self.rows)

    def dense(self) -> np.ndarray:
        """The pattern as an (m, n) boolean array."""
        mask = np.zeros(self.shape, dtype=bool)
        mask[self.rows, self.cols] = True
        return mask


def jacobian_pattern(tape: Tape, output_nodes: list[int], wrt: list[str],
                     wrt_shapes: list[tuple]) -> Sparsity:
    """The structural pattern of d outputs / d wrt over components: rows the outputs'
    components in order, columns the inputs'. `tape.shapes` must be set (a shape pass),
    or every node is a scalar."""
    shapes = tape.shapes if tape.shapes is not None else [()] * len(tape.nodes)
    sizes = [math.prod(s) for s in wrt_shapes]
    n = sum(sizes)
    start = dict(zip(wrt, np.cumsum([0] + sizes[:-1]).tolist()))
    needed = tape.dependencies(output_nodes)
    depends = tape.depends_on(wrt)
    last_use = {}
    for index, node in enumerate(tape.nodes):
        for arg in node.args:
            last_use[arg] = index
    for node in output_nodes:
        last_use[node] = len(tape.nodes)
    patterns: list[Pattern | None] = [None] * len(tape.nodes)
    rules: dict = {}
    for index, node in enumerate(tape.nodes):
        if not (needed[index] and depends[index]):
            continue
        shape = tuple(shapes[index])
        if node.op == VAR:
            ids = np.arange(math.prod(shape), dtype=np.int64)
            patterns[index] = _make(shape, ids, start[node.name] + ids, n, unique=True)
        elif node.op != CONST:
            if node.op not in rules:
                rules[node.op] = _rule(node.op)
            args = [patterns[a] if patterns[a] is not None else empty(tuple(shapes[a]))
                    for a in node.args]
            patterns[index] = rules[node.op](args, shape, node.params, n)
        for arg in set(node.args):   # a pattern no later entry reads is let go
            if last_use.get(arg) == index:
                patterns[arg] = None
    rows, cols, offset = [], [], 0
    for node in output_nodes:
        p = patterns[node]
        if p is not None:
            rows.append(p.rows + offset)
            cols.append(p.cols)
        offset += math.prod(shapes[node])
    if not rows:
        return Sparsity(np.zeros(0, np.int64), np.zeros(0, np.int64), (offset, n))
    # (an output named twice holds its node's rows twice: sorted, they stay unique)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    order = np.lexsort((cols, rows))
    return Sparsity(rows[order], cols[order], (offset, n))


def hessian_pattern(tape: Tape, output_node: int, wrt: list[str],
                    wrt_shapes: list[tuple]) -> Sparsity:
    """The structural pattern of the Hessian of one scalar output (n x n)."""
    from .symbolic import gradient_tape

    extended, gradient_nodes, _ = gradient_tape(tape, output_node, wrt)
    return jacobian_pattern(extended, gradient_nodes, wrt, wrt_shapes)
