"""The array primitives: structural, linear, reduction and matrix operations.

Registered into prims.PRIMITIVES. Every value is laid out (K, B, *shape) (engine.py):
these forwards act on the trailing axes only. A primitive's static parameters (an
index spec, an axis, a shape) follow its arguments: `forward(*args, *params)`, and the
ops namespace is called the same way, `m.sum(x, axis)`, `m.index(g, spec)`.

Each rule is written once against the ops namespace `m`, one per argument:
`vjp[i](m, g, ans, args, params)` and `jvp[i](m, t, ans, args, params)`. Linear
primitives give a map and its transpose (index <-> index_scatter, broadcast_to <->
sum_to, reshape <-> reshape, transpose <-> transpose, diag <-> diag); bilinear ones one
map per argument; det, inv, solve, norm, logsumexp, softmax, prod and max/min both
modes from one formula. The transposes are primitives too, so a rule's output can be
differentiated again (Hessians).

Beside each rule, `explain` writes it as text for `tape --explain`: the linear map the
primitive applies to the cotangent ḡ, one per argument (`Wᵀ @ ḡ`, `ḡ broadcast to [3]`).

The static shape rules are not here: each primitive takes shapes.SHAPE_RULES[name], the
rules the shape pass (shapes.infer_shapes) runs, with their caret messages.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .prims import PRIMITIVES, STACKED, SUMMED_VJP, Primitive, align, rank
from .shapes import SHAPE_RULES

ALL = slice(None)


def defarray(name, arity, forward, vjp=None, jvp=None, *, internal=False, symbol=None,
             explain=None):
    """Registers an array primitive; its static shape rule is shapes.SHAPE_RULES[name]
    (the one definition, with the shape pass's caret messages). `explain`: its vjp rules
    as text, one per argument (see Written)."""
    PRIMITIVES[name] = Primitive(name, arity, forward, (), None, symbol, internal,
                                 SHAPE_RULES[name], vjp, jvp, explain)


class Written(NamedTuple):
    """What the text of a vjp rule (`tape --explain`) names: the arguments as the tape
    view names them (a variable by its name, a constant by its number, any other entry
    as v3), their static shapes, the entry's params, and the entry itself (name, shape).
    The cotangent arriving at the entry is written ḡ."""
    args: tuple[str, ...]
    shapes: tuple[tuple, ...]
    params: tuple
    ans: str
    shape: tuple


def _lift(a):
    """A value in the (K, B, *shape) layout (a bare number becomes (1, 1))."""
    a = np.asarray(a, dtype=float)
    return a if a.ndim >= 2 else a.reshape((1, 1) + a.shape)


def _axes(axis, r: int) -> tuple[int, ...]:
    """The static axes a reduction runs over: all for None (and for a scalar)."""
    if axis is None or r == 0:
        return tuple(range(r))
    return ((axis + r) % r,)


def _numpy_axes(axis, r):
    return tuple(2 + k for k in _axes(axis, r))


def _kept(shape: tuple, axis) -> tuple:
    reduced = _axes(axis, len(shape))
    return tuple(1 if k in reduced else d for k, d in enumerate(shape))


def _unreduce(m, g, shape: tuple, axis):
    """A reduction's result spread back over the shape it reduced (the transpose of sum)."""
    kept = _kept(shape, axis)
    if kept != tuple(m.shape(g)):
        g = m.reshape(g, kept)
    return g if kept == shape else m.broadcast_to(g, shape)


def _singular():
    # A singular matrix: the result is nan, and the warning names the call (the engine's
    # floating-point callback sees an invalid operation while evaluating this entry).
    np.divide(np.zeros(1), np.zeros(1))


def _per_matrix(solver, *arrays):
    """`solver` over a stack of matrices, one at a time where the stack holds a singular
    one: the singular ones give nan (with a warning), the others their values."""
    try:
        return solver(*arrays)
    except np.linalg.LinAlgError:
        pass
    # every array is a stack of matrices (solve's vector b comes as columns (..., n, 1))
    lead = np.broadcast_shapes(*[a.shape[:-2] for a in arrays])
    arrays = [np.broadcast_to(a, lead + a.shape[-2:]) for a in arrays]
    out = np.empty(lead + arrays[-1].shape[-2:])   # inv(a): a's shape; solve(a, b): b's
    for k in np.ndindex(*lead):
        try:
            out[k] = solver(*[a[k] for a in arrays])
        except np.linalg.LinAlgError:
            _singular()
            out[k] = np.nan
    return out


# --- forwards -------------------------------------------------------------------------

def _key(spec):
    """An index spec (ints and (start, stop, step) triples) as a NumPy subscript."""
    return tuple(slice(*item) if isinstance(item, tuple) else item for item in spec)


def _stack(*args):
    args = [_lift(a) for a in args]
    lead = np.broadcast_shapes(*[a.shape[:2] for a in args])
    return np.stack([np.broadcast_to(a, lead + a.shape[2:]) for a in args], axis=2)


def _index(x, spec):
    return _lift(x)[(ALL, ALL) + _key(spec)]


def _index_scatter(g, spec, shape):
    g = _lift(g)
    out = np.zeros(g.shape[:2] + tuple(shape))
    out[(ALL, ALL) + _key(spec)] = g
    return out


def _broadcast_to(x, shape):
    x = align(_lift(x), len(shape))
    return np.broadcast_to(x, x.shape[:2] + tuple(shape))


def _sum_to(x, shape):
    x, shape = _lift(x), tuple(shape)
    have = x.shape[2:]
    if have == shape:
        return x
    if len(have) < len(shape):
        return _broadcast_to(x, shape)
    lead = len(have) - len(shape)
    axes = tuple(range(2, 2 + lead)) + tuple(
        2 + lead + k for k, d in enumerate(shape) if d == 1 and have[lead + k] != 1)
    return np.sum(x, axis=axes).reshape(x.shape[:2] + shape)


def _reshape(x, shape):
    x = _lift(x)
    return x.reshape(x.shape[:2] + tuple(shape))


def _matmul(a, b):
    a, b = _lift(a), _lift(b)
    ra, rb = rank(a), rank(b)
    if ra == 1:
        a = a[..., None, :]
    if rb == 1:
        b = b[..., :, None]
    top = max(rank(a), rank(b))
    out = np.matmul(align(a, top), align(b, top))
    if ra == 1:
        out = out[..., 0, :]
    if rb == 1:
        out = out[..., 0]
    return out


def _reduction(f):
    def forward(x, axis=None):
        x = _lift(x)
        return f(x, axis=_numpy_axes(axis, rank(x)))
    return forward


def _finite_max(x, axes):
    # (initial=-inf: an empty slice has no largest element; its logsumexp is -inf)
    top = np.max(x, axis=axes, keepdims=True, initial=-np.inf) if axes else x
    return np.where(np.isfinite(top), top, 0.0)


def _logsumexp(x, axis=None):
    x = _lift(x)
    axes = _numpy_axes(axis, rank(x))
    if not axes:
        return x.copy()
    top = _finite_max(x, axes)
    out = np.log(np.sum(np.exp(x - top), axis=axes, keepdims=True)) + top
    return np.squeeze(out, axis=axes)


def _softmax(x, axis=-1):
    x = _lift(x)
    axes = _numpy_axes(axis, rank(x))
    e = np.exp(x - _finite_max(x, axes))
    return e / np.sum(e, axis=axes, keepdims=True)


def _norm(x, axis=None):
    x = _lift(x)
    return np.sqrt(np.sum(x * x, axis=_numpy_axes(axis, rank(x))))


def _along_last(x, axis, f):
    """f applied along one axis (or all elements flattened, for None), moved last."""
    x = _lift(x)
    r = rank(x)
    if axis is None or r == 0:
        flat = x.reshape(x.shape[:2] + (-1,))
        return f(flat).reshape(x.shape)
    k = 2 + (axis + r) % r
    return np.moveaxis(f(np.moveaxis(x, k, -1)), -1, k)


def _exclusive_products(v):
    # prod_{k != i} v_k without dividing by v_i: products from the left times from the right
    if v.shape[-1] == 0:   # an empty slice: nothing to multiply
        return v.copy()
    ones = np.ones(v.shape[:-1] + (1,))
    left = np.cumprod(np.concatenate([ones, v[..., :-1]], axis=-1), axis=-1)
    right = np.cumprod(np.concatenate([ones, v[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
    return left * right


def _prod_others(x, axis=None):
    return _along_last(x, axis, _exclusive_products)


def _prod_others_vjp(x, g, axis=None):
    """sum_{i != j} g_i prod_{k != i, j} x_k: the transpose (and, being symmetric, the
    tangent map) of prod_others, exact at zeros. Evaluated only, never differentiated
    (Hessians differentiate first-derivative nodes once, numerically)."""
    x, g = np.broadcast_arrays(_lift(x), _lift(g))

    def pairs(v, w):
        eye = np.eye(v.shape[-1], dtype=bool)
        p = np.where(eye, 0.0, _exclusive_products(np.where(eye, 1.0, v[..., None, :])))
        return np.einsum("...i,...ij->...j", w, p)
    r = rank(x)
    if axis is None or r == 0:
        flat = x.shape[:2] + (-1,)
        return pairs(x.reshape(flat), g.reshape(flat)).reshape(x.shape)
    k = 2 + (axis + r) % r
    return np.moveaxis(pairs(np.moveaxis(x, k, -1), np.moveaxis(g, k, -1)), -1, k)


def _dot(a, b):
    a, b = _lift(a), _lift(b)
    if rank(a) == 0 or rank(b) == 0:   # a scalar scales, as in NumPy
        return PRIMITIVES["mul"].forward(a, b)
    if a.ndim == 3 and b.ndim == 3 and a.shape[1] == 1 and b.shape[0] == 1:
        # K seed rows (K, 1, n), the same at every point, against B points (1, B, n): one
        # matrix product, (K, B) laid out point by point, so that what is built on it is
        # too, as the Jacobian (B, m, n) is (its rows are then copied in as they lie)
        return (b[0] @ a[:, 0].T).T
    # no product array in between (of K rows and B points: (K, B, n))
    return np.einsum("...i,...i->...", a, b)


def _outer(a, b):
    return np.multiply(_lift(a)[..., :, None], _lift(b)[..., None, :])


def _transpose(x):
    x = _lift(x)
    return np.transpose(x, (0, 1) + tuple(range(x.ndim - 1, 1, -1)))


def _swap(x):
    return np.swapaxes(_lift(x), -1, -2)


def _diag(x):
    x = _lift(x)
    if rank(x) == 2:
        return np.diagonal(x, axis1=-2, axis2=-1).copy()
    n = x.shape[-1]
    out = np.zeros(x.shape + (n,))
    out[..., np.arange(n), np.arange(n)] = x
    return out


def _trace(x):
    return np.trace(_lift(x), axis1=-2, axis2=-1)


def _inv(x):
    return _per_matrix(np.linalg.inv, _lift(x))


def _adjugate(x):
    """adj(X) = det(X) X^-1, for singular X too, per matrix of a stack: from the SVD
    X = U diag(s) V^T, adj(X) = det(U) det(V) V diag(prod_{j != i} s_j) U^T."""
    x = _lift(x)
    finite = np.all(np.isfinite(x), axis=(-2, -1))[..., None, None]
    u, s, vt = np.linalg.svd(np.where(finite, x, 0.0))
    sign = (np.linalg.det(u) * np.linalg.det(vt))[..., None, None]
    scaled = np.swapaxes(vt, -1, -2) * _exclusive_products(s)[..., None, :]
    return np.where(finite, sign * np.matmul(scaled, np.swapaxes(u, -1, -2)), np.nan)


def _solve(a, b):
    """NumPy 2's solve: b a vector (n,) or a matrix of right-hand sides (n, k), A and b
    stacks of them broadcast over their leading axes."""
    a, b = _lift(a), _lift(b)
    vector = rank(b) == 1
    q = b[..., None] if vector else b
    top = max(rank(a), rank(q))
    out = _per_matrix(np.linalg.solve, align(a, top), align(q, top))
    return out[..., 0] if vector else out


# --- rules ----------------------------------------------------------------------------

def _tie_weights(m, x, ans, axis):
    # ties share equally: 1[x_i = max] / #ties, per reduced slice
    hits = m.equal(x, _unreduce(m, ans, tuple(m.shape(x)), axis))
    return m.div(hits, _unreduce(m, m.sum(hits, axis), tuple(m.shape(x)), axis))


def _norm_weights(m, x, ans, axis):
    # x / norm, with norm'(0) = 0: the divisor is 1 where the norm is 0 (then x = 0)
    spread = _unreduce(m, ans, tuple(m.shape(x)), axis)
    return m.div(x, m.add(spread, m.is_zero(spread)))


def _weighted_reduction(weights):
    """VJP unreduce(g) * w and JVP sum(t * w) for a reduction whose partial is w."""
    def vjp(m, g, ans, args, params):
        (x,), axis = args, params[0]
        return m.mul(_unreduce(m, g, tuple(m.shape(x)), axis), weights(m, x, ans, axis))

    def jvp(m, t, ans, args, params):
        (x,), axis = args, params[0]
        return m.sum(m.mul(t, weights(m, x, ans, axis)), axis)
    return (vjp,), (jvp,)


def _promote(m, a, b):
    """matmul's arguments as matrices (a vector a as (1, n), b as (n, 1))."""
    sa, sb = tuple(m.shape(a)), tuple(m.shape(b))
    a2 = a if len(sa) > 1 else m.reshape(a, (1,) + sa)
    b2 = b if len(sb) > 1 else m.reshape(b, sb + (1,))
    return a2, b2


def _matmul_vjp(position):
    def rule(m, g, ans, args, params):
        a, b = args
        a2, b2 = _promote(m, a, b)
        # the product's shape with both promoted to matrices: matmul's one shape rule
        out2 = SHAPE_RULES["matmul"]([tuple(m.shape(a2)), tuple(m.shape(b2))], ())
        g2 = m.reshape(g, out2) if tuple(m.shape(g)) != out2 else g
        if position == 0:
            d, target, like = m.matmul(g2, m.swap(b2)), a2, a
        else:
            d, target, like = m.matmul(m.swap(a2), g2), b2, b
        if tuple(m.shape(d)) != tuple(m.shape(target)):
            d = m.sum_to(d, tuple(m.shape(target)))
        like_shape = tuple(m.shape(like))
        return m.reshape(d, like_shape) if len(like_shape) == 1 else d
    return rule


def _matmul_summed(position):
    """matmul's cotangent of a matrix or vector shared by every point, summed over the
    points as one product over them (sum_b g_b b_b^T), never held per point. None (the
    per-point rule, then a sum) for stacks of matrices."""
    def rule(m, g, ans, args, params):
        a, b = args
        a2, b2 = _promote(m, a, b)
        if len(m.shape(a2)) != 2 or len(m.shape(b2)) != 2 or not isinstance(g, np.ndarray):
            return None
        out2 = SHAPE_RULES["matmul"]([tuple(m.shape(a2)), tuple(m.shape(b2))], ())
        g2 = np.asarray(g).reshape(np.shape(g)[:2] + out2)
        other = _lift(b2 if position == 0 else a2)
        points = max(g2.shape[1], other.shape[1])
        g2 = np.broadcast_to(g2, g2.shape[:1] + (points,) + g2.shape[2:])
        other = np.broadcast_to(other, other.shape[:1] + (points,) + other.shape[2:])
        spec = "kbpr,kbqr->kpq" if position == 0 else "kbpq,kbpr->kqr"
        d = np.einsum(spec, *((g2, other) if position == 0 else (other, g2)), optimize=True)
        like = tuple(m.shape(args[position]))
        return d.reshape((d.shape[0], 1) + like)
    return rule


def _per_matrix_scalar(m, v):
    """A value with one number per matrix of a stack (det's), as (..., 1, 1): it then
    broadcasts against the stack's matrices."""
    shape = tuple(m.shape(v))
    return m.reshape(v, shape + (1, 1)) if shape else v


def _det_partial(m, ans, x):
    # d det(X) / dX = adj(X)^T (= det(X) X^-T where X is invertible, and finite where it
    # is not: det is a polynomial), for each matrix of a stack
    return m.swap(m.adjugate(x))


def _per_matrix_sum(m, v):
    """The sum of each matrix of a stack (all elements for one matrix)."""
    if len(m.shape(v)) == 2:
        return m.sum(v, None)
    return m.sum(m.sum(v, -1), -1)


def _det_jvp(m, t, ans, args, params):
    return _per_matrix_sum(m, m.mul(t, _det_partial(m, ans, args[0])))


def _adjugate_jvp(m, t, ans, args, params):
    # adj = det X^-1: d adj[T] = tr(adj T) X^-1 - X^-1 T adj (X invertible: the second
    # derivatives of det at a singular matrix stay nan)
    y = m.inv(args[0])
    trace = _per_matrix_scalar(m, _per_matrix_sum(m, m.mul(m.swap(ans), t)))
    return m.sub(m.mul(trace, y), m.matmul(m.matmul(y, t), ans))


def _adjugate_vjp(m, g, ans, args, params):
    # the transpose of the map above: <G, X^-1> adj^T - X^-T G adj^T
    y = m.inv(args[0])
    inner = _per_matrix_scalar(m, _per_matrix_sum(m, m.mul(g, y)))
    return m.sub(m.mul(inner, m.swap(ans)), m.matmul(m.matmul(m.swap(y), g), m.swap(ans)))


def _summed_to(m, v, like):
    """v summed over the axes it was broadcast along, to the shape of `like`."""
    shape = tuple(m.shape(like))
    return v if tuple(m.shape(v)) == shape else m.sum_to(v, shape)


def _columns(m, v, vector: bool):
    """solve's vector right-hand side (..., n) as columns (..., n, 1)."""
    return m.reshape(v, tuple(m.shape(v)) + (1,)) if vector else v


def _uncolumns(m, v, vector: bool):
    return m.reshape(v, tuple(m.shape(v))[:-1]) if vector else v


def _solve_cotangent(m, g, args):
    """A^-T g as columns (..., n, k), before summing to b's shape."""
    vector = len(m.shape(args[1])) == 1
    return m.solve(m.swap(args[0]), _columns(m, g, vector)), vector


def _solve_vjp_b(m, g, ans, args, params):
    gb, vector = _solve_cotangent(m, g, args)
    return _summed_to(m, _uncolumns(m, gb, vector), args[1])


def _solve_vjp_a(m, g, ans, args, params):
    gb, vector = _solve_cotangent(m, g, args)
    return _summed_to(m, m.neg(m.matmul(gb, m.swap(_columns(m, ans, vector)))), args[0])


def _solve_jvp_a(m, t, ans, args, params):
    vector = len(m.shape(args[1])) == 1
    step = m.neg(m.matmul(t, _columns(m, ans, vector)))
    return _uncolumns(m, m.solve(args[0], step), vector)


def _solve_jvp_b(m, t, ans, args, params):
    vector = len(m.shape(args[1])) == 1
    return _uncolumns(m, m.solve(args[0], _columns(m, t, vector)), vector)


def _trace_vjp(m, g, ans, args, params):
    shape = tuple(m.shape(args[0]))
    k = min(shape)
    square = m.diag(m.broadcast_to(g, (k,)))
    if shape[0] == shape[1]:
        return square
    return m.index_scatter(square, ((0, k, None), (0, k, None)), shape)   # A is k x l


def _softmax_map(m, g, ans, args, params):
    # the Jacobian diag(s) - s s^T is symmetric: one formula for both modes. Over a
    # Jacobian's K seed rows g and ans make (K, B, n): the inner product of a vector is a
    # dot (no such product in between), and the rest one such array, not two (mul_diff)
    axis, shape = params[0], tuple(m.shape(ans))
    inner = m.dot(g, ans) if len(shape) == 1 else m.sum(m.mul(g, ans), axis)
    return m.mul_diff(ans, g, _unreduce(m, inner, shape, axis))


# --- the rules as text (tape --explain): the linear map each applies to ḡ -------------

def _dims(shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _spec_text(spec) -> str:
    """An index spec as the program writes it: `1`, `-1`, `1:3`, `::-1`, `0, :`."""
    parts = []
    for item in spec:
        if isinstance(item, tuple):
            start, stop, step = ("" if v is None else str(v) for v in item)
            parts.append(f"{start}:{stop}" + (f":{step}" if step else ""))
        else:
            parts.append(str(item))
    return ", ".join(parts)


def _spread(w: Written) -> str:
    """ḡ spread back over the elements a reduction reduced (the transpose of sum)."""
    shape = tuple(w.shapes[0])
    if shape == tuple(w.shape):
        return "ḡ"
    axis = w.params[0] if w.params else None
    along = f" along axis {axis}" if axis is not None and len(shape) > 1 else ""
    return f"ḡ broadcast{along} to {_dims(shape)}"


def _axis_keyword(w: Written, default=None) -> str:
    axis = w.params[0] if w.params else None
    return "" if axis is None or axis == default or len(w.shapes[0]) < 2 else f", axis={axis}"


def summed_text(have: tuple, shape: tuple) -> str:
    """`, summed to [3]` where a cotangent of shape `have` is summed to `shape`."""
    return "" if tuple(have) == tuple(shape) else f", summed to {_dims(shape)}"


def _matmul_text(position):
    def text(w: Written) -> str:
        (a, b), (sa, sb) = w.args, w.shapes
        if len(sa) == 1 and len(sb) == 1:   # the inner product: ḡ is a number
            return f"ḡ * {b}" if position == 0 else f"ḡ * {a}"
        if position == 0:
            core = f"outer(ḡ, {b})" if len(sb) == 1 else f"ḡ @ {b}ᵀ"
        else:
            core = f"outer({a}, ḡ)" if len(sa) == 1 else f"{a}ᵀ @ ḡ"
        # a stack of matrices broadcast against the other argument: summed over the
        # batch axes it was broadcast along, as the rule does
        a2 = tuple(sa) if len(sa) > 1 else (1,) + tuple(sa)
        b2 = tuple(sb) if len(sb) > 1 else tuple(sb) + (1,)
        out2 = SHAPE_RULES["matmul"]([a2, b2], ())
        target = (a2, b2)[position]
        have = out2[:-2] + target[-2:]
        return core + ("" if have == target else
                       f", summed to {_dims((sa, sb)[position])}")
    return text


def _dot_text(position):
    def text(w: Written) -> str:
        other = w.args[1 - position]
        mine, theirs = w.shapes[position], w.shapes[1 - position]
        return f"ḡ * {other}" + summed_text(np.broadcast_shapes(mine, theirs), mine)
    return text


def _on_diagonal(w: Written) -> str:
    return f"ḡ on the diagonal of {_dims(w.shapes[0])} zeros"


def _diag_text(w: Written) -> str:
    return "the diagonal of ḡ" if len(w.shapes[0]) == 1 else _on_diagonal(w)


def _transpose_text(w: Written) -> str:
    rank_ = len(w.shapes[0])
    return "ḡ" if rank_ < 2 else "ḡᵀ" if rank_ == 2 else "ḡ with its axes reversed"


def _extremum_text(which):
    def text(w: Written) -> str:
        axis = w.params[0] if w.params else None
        along = f" along axis {axis}" if axis is not None and len(w.shapes[0]) > 1 else ""
        return f"ḡ to the {which} element{along} of {w.args[0]} (ties share it)"
    return text


def _logsumexp_text(w: Written) -> str:
    axis = w.params[0] if w.params else None
    if axis is None and len(w.shapes[0]) > 1:
        return f"ḡ * the softmax of all the elements of {w.args[0]}"
    return f"ḡ * softmax({w.args[0]}{_axis_keyword(w)})"


def _solve_text(position):
    def text(w: Written) -> str:
        a, vector = w.args[0], len(w.shapes[1]) == 1
        cotangent = f"solve({a}ᵀ, ḡ)"
        if position == 1:
            return cotangent
        if vector:
            return f"-outer({cotangent}, {w.ans})"
        return f"-{cotangent} @ {w.ans}ᵀ"
    return text


class _StackRules:
    """The rules of a literal [a, b, ...], for any number of elements: element i's
    cotangent is g[i]; its tangent goes to row i of zeros."""

    def __init__(self, mode):
        self.mode = mode

    def __getitem__(self, i):
        if self.mode == "explain":
            return lambda w: f"ḡ[{i}]"
        if self.mode == "vjp":
            return lambda m, g, ans, args, params: m.index(g, (i,))
        return lambda m, t, ans, args, params: m.index_scatter(t, (i,), tuple(m.shape(ans)))


def _linear(f):
    """The rule of a primitive linear in its argument: the same map on the tangent."""
    return lambda m, t, ans, args, params: f(m, t, *params)


defarray("stack", STACKED, _stack, symbol="[...]",
         vjp=_StackRules("vjp"), jvp=_StackRules("jvp"), explain=_StackRules("explain"))
defarray("index", 1, _index, symbol="[i]",
         vjp=(lambda m, g, ans, args, params: m.index_scatter(g, params[0],
                                                              tuple(m.shape(args[0]))),),
         jvp=(_linear(lambda m, t, spec: m.index(t, spec)),),
         explain=(lambda w: f"ḡ scattered into {_dims(w.shapes[0])} at "
                            f"{_spec_text(w.params[0])}",))
defarray("index_scatter", 1, _index_scatter, internal=True,
         vjp=(lambda m, g, ans, args, params: m.index(g, params[0]),),
         jvp=(_linear(lambda m, t, spec, shape: m.index_scatter(t, spec, shape)),),
         explain=(lambda w: f"ḡ[{_spec_text(w.params[0])}]",))
defarray("broadcast_to", 1, _broadcast_to, internal=True,
         vjp=(lambda m, g, ans, args, params: m.sum_to(g, tuple(m.shape(args[0]))),),
         jvp=(_linear(lambda m, t, shape: m.broadcast_to(t, shape)),),
         explain=(lambda w: f"ḡ summed to {_dims(w.shapes[0])}",))
defarray("sum_to", 1, _sum_to, internal=True,
         vjp=(lambda m, g, ans, args, params: m.broadcast_to(g, tuple(m.shape(args[0]))),),
         jvp=(_linear(lambda m, t, shape: m.sum_to(t, shape)),),
         explain=(lambda w: f"ḡ broadcast to {_dims(w.shapes[0])}",))
defarray("reshape", 1, _reshape, internal=True,
         vjp=(lambda m, g, ans, args, params: m.reshape(g, tuple(m.shape(args[0]))),),
         jvp=(_linear(lambda m, t, shape: m.reshape(t, shape)),),
         explain=(lambda w: f"ḡ reshaped to {_dims(w.shapes[0])}",))
defarray("swap", 1, _swap, internal=True,
         vjp=(lambda m, g, ans, args, params: m.swap(g),),
         jvp=(_linear(lambda m, t: m.swap(t)),),
         explain=(lambda w: "ḡ with its last two axes swapped",))
defarray("transpose", 1, _transpose,
         vjp=(lambda m, g, ans, args, params: m.transpose(g),),
         jvp=(_linear(lambda m, t: m.transpose(t)),),
         explain=(_transpose_text,))
SUMMED_VJP["matmul"] = (_matmul_summed(0), _matmul_summed(1))
defarray("matmul", 2, _matmul, symbol="@",
         vjp=(_matmul_vjp(0), _matmul_vjp(1)),
         jvp=(lambda m, t, ans, args, params: m.matmul(t, args[1]),
              lambda m, t, ans, args, params: m.matmul(args[0], t)),
         explain=(_matmul_text(0), _matmul_text(1)))
defarray("dot", 2, _dot,   # (a scalar argument scales: its cotangent is summed)
         vjp=(lambda m, g, ans, args, params: _summed_to(m, m.mul(g, args[1]), args[0]),
              lambda m, g, ans, args, params: _summed_to(m, m.mul(g, args[0]), args[1])),
         jvp=(lambda m, t, ans, args, params: m.dot(t, args[1]),
              lambda m, t, ans, args, params: m.dot(args[0], t)),
         explain=(_dot_text(0), _dot_text(1)))
defarray("outer", 2, _outer,
         vjp=(lambda m, g, ans, args, params: m.matmul(g, args[1]),
              lambda m, g, ans, args, params: m.matmul(args[0], g)),
         jvp=(lambda m, t, ans, args, params: m.outer(t, args[1]),
              lambda m, t, ans, args, params: m.outer(args[0], t)),
         explain=(lambda w: f"ḡ @ {w.args[1]}", lambda w: f"{w.args[0]} @ ḡ"))
defarray("sum", 1, _reduction(np.sum),
         vjp=(lambda m, g, ans, args, params: _unreduce(m, g, tuple(m.shape(args[0])),
                                                        params[0]),),
         jvp=(_linear(lambda m, t, axis: m.sum(t, axis)),),
         explain=(_spread,))


def _count(shape, axis):
    return float(np.prod([shape[k] for k in _axes(axis, len(shape))]))


def _mean(x, axis=None):
    # the sum over the count: the mean of an empty slice is 0/0, nan with the engine's
    # warning naming the call (NumPy's mean would raise a Python RuntimeWarning)
    x = _lift(x)
    return np.sum(x, axis=_numpy_axes(axis, rank(x))) / _count(x.shape[2:], axis)


def _mean_vjp(m, g, ans, args, params):
    shape = tuple(m.shape(args[0]))
    spread, count = _unreduce(m, g, shape, params[0]), _count(shape, params[0])
    return spread if count == 0 else m.div(spread, m.const(count))   # (empty if 0)


def _mean_jvp(m, t, ans, args, params):
    # no elements: the tangent of the mean is their sum, 0, not 0/0 (as in reverse mode)
    axis = params[0]
    return m.sum(t, axis) if _count(tuple(m.shape(args[0])), axis) == 0 else m.mean(t, axis)


defarray("mean", 1, _mean, vjp=(_mean_vjp,), jvp=(_mean_jvp,),
         explain=(lambda w: f"{_spread(w)}, divided by "
                            f"{_count(tuple(w.shapes[0]), w.params[0]):g}",))
defarray("prod_others", 1, _prod_others, internal=True,
         vjp=(lambda m, g, ans, args, params: m.prod_others_vjp(args[0], g, params[0]),),
         jvp=(lambda m, t, ans, args, params: m.prod_others_vjp(args[0], t, params[0]),))
defarray("prod_others_vjp", 2, _prod_others_vjp, internal=True)
defarray("prod", 1, _reduction(np.prod),
         *_weighted_reduction(lambda m, x, ans, axis: m.prod_others(x, axis)),
         explain=(lambda w: f"{_spread(w)} * the product of the other elements",))
# max(a) / min(a) with one argument (the parser's names; not callable as amax/amin)
defarray("amax", 1, _reduction(np.max), *_weighted_reduction(
    _tie_weights), internal=True, explain=(_extremum_text("largest"),))
defarray("amin", 1, _reduction(np.min), *_weighted_reduction(
    _tie_weights), internal=True, explain=(_extremum_text("smallest"),))
defarray("norm", 1, _norm, *_weighted_reduction(_norm_weights),
         explain=(lambda w: f"ḡ * {w.args[0]} / {w.ans} (0 where {w.ans} is 0)",))


def _softmax_over(m, x, axis):
    """softmax along `axis`, or over all elements for None (flattened: the language's
    softmax takes one axis)."""
    if axis is not None:
        return m.softmax(x, axis)
    shape = tuple(m.shape(x))
    if len(shape) == 1:
        return m.softmax(x, -1)
    flat = m.softmax(m.reshape(x, (int(np.prod(shape, dtype=np.int64)),)), -1)
    return m.reshape(flat, shape)


defarray("logsumexp", 1, _logsumexp, *_weighted_reduction(
    lambda m, x, ans, axis: _softmax_over(m, x, axis)), explain=(_logsumexp_text,))
defarray("softmax", 1, _softmax,
         vjp=(_softmax_map,), jvp=(_softmax_map,),
         explain=(lambda w: f"{w.ans} * (ḡ - sum({w.ans} * ḡ{_axis_keyword(w, -1)}))",))
defarray("diag", 1, _diag,
         vjp=(lambda m, g, ans, args, params: _diag_vjp(m, g, args[0]),),
         jvp=(_linear(lambda m, t: m.diag(t)),),
         explain=(_diag_text,))


def _diag_vjp(m, g, x):
    shape = tuple(m.shape(x))
    if len(shape) == 1 or shape[0] == shape[1]:
        return m.diag(g)   # diag is its own transpose
    k = min(shape)
    return m.index_scatter(m.diag(g), ((0, k, None), (0, k, None)), shape)


defarray("trace", 1, _trace,
         vjp=(_trace_vjp,),
         jvp=(_linear(lambda m, t: m.trace(t)),),
         explain=(_on_diagonal,))
def _det(x):
    return np.linalg.det(_lift(x))


defarray("det", 1, _det,
         vjp=(lambda m, g, ans, args, params: m.mul(_per_matrix_scalar(m, g),
                                                    _det_partial(m, ans, args[0])),),
         jvp=(_det_jvp,),
         explain=(lambda w: f"ḡ * adjugate({w.args[0]})ᵀ",))
defarray("adjugate", 1, _adjugate, internal=True,
         vjp=(_adjugate_vjp,), jvp=(_adjugate_jvp,))
defarray("inv", 1, _inv,
         vjp=(lambda m, g, ans, args, params: m.neg(
             m.matmul(m.matmul(m.swap(ans), g), m.swap(ans))),),
         jvp=(lambda m, t, ans, args, params: m.neg(m.matmul(m.matmul(ans, t), ans)),),
         explain=(lambda w: f"-{w.ans}ᵀ @ ḡ @ {w.ans}ᵀ",))
defarray("solve", 2, _solve,
         vjp=(_solve_vjp_a, _solve_vjp_b),
         jvp=(_solve_jvp_a, _solve_jvp_b),
         explain=(_solve_text(0), _solve_text(1)))
