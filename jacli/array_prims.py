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

The static shape rules are not here: each primitive takes shapes.SHAPE_RULES[name], the
rules the shape pass (shapes.infer_shapes) runs, with their caret messages.
"""

from __future__ import annotations

import numpy as np

from .prims import PRIMITIVES, STACKED, Primitive, align, rank
from .shapes import SHAPE_RULES

ALL = slice(None)


def defarray(name, arity, forward, vjp=None, jvp=None, *, internal=False, symbol=None):
    """Registers an array primitive; its static shape rule is shapes.SHAPE_RULES[name]
    (the one definition, with the shape pass's caret messages)."""
    PRIMITIVES[name] = Primitive(name, arity, forward, (), None, symbol, internal,
                                 SHAPE_RULES[name], vjp, jvp)


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
    top = np.max(x, axis=axes, keepdims=True) if axes else x
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


def _per_matrix_scalar(m, v):
    """A value with one number per matrix of a stack (det's), as (..., 1, 1): it then
    broadcasts against the stack's matrices."""
    shape = tuple(m.shape(v))
    return m.reshape(v, shape + (1, 1)) if shape else v


def _det_partial(m, ans, x):
    # d det(X) / dX = det(X) X^-T, for each matrix of a stack
    return m.mul(_per_matrix_scalar(m, ans), m.swap(m.inv(x)))


def _det_jvp(m, t, ans, args, params):
    product = m.mul(t, _det_partial(m, ans, args[0]))
    if len(m.shape(ans)) == 0:
        return m.sum(product, None)
    return m.sum(m.sum(product, -1), -1)   # over each matrix of the stack


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


class _StackRules:
    """The rules of a literal [a, b, ...], for any number of elements: element i's
    cotangent is g[i]; its tangent goes to row i of zeros."""

    def __init__(self, mode):
        self.mode = mode

    def __getitem__(self, i):
        if self.mode == "vjp":
            return lambda m, g, ans, args, params: m.index(g, (i,))
        return lambda m, t, ans, args, params: m.index_scatter(t, (i,), tuple(m.shape(ans)))


def _linear(f):
    """The rule of a primitive linear in its argument: the same map on the tangent."""
    return lambda m, t, ans, args, params: f(m, t, *params)


defarray("stack", STACKED, _stack, symbol="[...]",
         vjp=_StackRules("vjp"), jvp=_StackRules("jvp"))
defarray("index", 1, _index, symbol="[i]",
         vjp=(lambda m, g, ans, args, params: m.index_scatter(g, params[0],
                                                              tuple(m.shape(args[0]))),),
         jvp=(_linear(lambda m, t, spec: m.index(t, spec)),))
defarray("index_scatter", 1, _index_scatter, internal=True,
         vjp=(lambda m, g, ans, args, params: m.index(g, params[0]),),
         jvp=(_linear(lambda m, t, spec, shape: m.index_scatter(t, spec, shape)),))
defarray("broadcast_to", 1, _broadcast_to, internal=True,
         vjp=(lambda m, g, ans, args, params: m.sum_to(g, tuple(m.shape(args[0]))),),
         jvp=(_linear(lambda m, t, shape: m.broadcast_to(t, shape)),))
defarray("sum_to", 1, _sum_to, internal=True,
         vjp=(lambda m, g, ans, args, params: m.broadcast_to(g, tuple(m.shape(args[0]))),),
         jvp=(_linear(lambda m, t, shape: m.sum_to(t, shape)),))
defarray("reshape", 1, _reshape, internal=True,
         vjp=(lambda m, g, ans, args, params: m.reshape(g, tuple(m.shape(args[0]))),),
         jvp=(_linear(lambda m, t, shape: m.reshape(t, shape)),))
defarray("swap", 1, _swap, internal=True,
         vjp=(lambda m, g, ans, args, params: m.swap(g),),
         jvp=(_linear(lambda m, t: m.swap(t)),))
defarray("transpose", 1, _transpose,
         vjp=(lambda m, g, ans, args, params: m.transpose(g),),
         jvp=(_linear(lambda m, t: m.transpose(t)),))
defarray("matmul", 2, _matmul, symbol="@",
         vjp=(_matmul_vjp(0), _matmul_vjp(1)),
         jvp=(lambda m, t, ans, args, params: m.matmul(t, args[1]),
              lambda m, t, ans, args, params: m.matmul(args[0], t)))
defarray("dot", 2, _dot,   # (a scalar argument scales: its cotangent is summed)
         vjp=(lambda m, g, ans, args, params: _summed_to(m, m.mul(g, args[1]), args[0]),
              lambda m, g, ans, args, params: _summed_to(m, m.mul(g, args[0]), args[1])),
         jvp=(lambda m, t, ans, args, params: m.dot(t, args[1]),
              lambda m, t, ans, args, params: m.dot(args[0], t)))
defarray("outer", 2, _outer,
         vjp=(lambda m, g, ans, args, params: m.matmul(g, args[1]),
              lambda m, g, ans, args, params: m.matmul(args[0], g)),
         jvp=(lambda m, t, ans, args, params: m.outer(t, args[1]),
              lambda m, t, ans, args, params: m.outer(args[0], t)))
defarray("sum", 1, _reduction(np.sum),
         vjp=(lambda m, g, ans, args, params: _unreduce(m, g, tuple(m.shape(args[0])),
                                                        params[0]),),
         jvp=(_linear(lambda m, t, axis: m.sum(t, axis)),))


def _count(shape, axis):
    return float(np.prod([shape[k] for k in _axes(axis, len(shape))]))


defarray("mean", 1, _reduction(np.mean),
         vjp=(lambda m, g, ans, args, params: m.div(
             _unreduce(m, g, tuple(m.shape(args[0])), params[0]),
             m.const(_count(tuple(m.shape(args[0])), params[0]))),),
         jvp=(_linear(lambda m, t, axis: m.mean(t, axis)),))
defarray("prod_others", 1, _prod_others, internal=True,
         vjp=(lambda m, g, ans, args, params: m.prod_others_vjp(args[0], g, params[0]),),
         jvp=(lambda m, t, ans, args, params: m.prod_others_vjp(args[0], t, params[0]),))
defarray("prod_others_vjp", 2, _prod_others_vjp, internal=True)
defarray("prod", 1, _reduction(np.prod),
         *_weighted_reduction(lambda m, x, ans, axis: m.prod_others(x, axis)))
# max(a) / min(a) with one argument (the parser's names; not callable as amax/amin)
defarray("amax", 1, _reduction(np.max), *_weighted_reduction(
    _tie_weights), internal=True)
defarray("amin", 1, _reduction(np.min), *_weighted_reduction(
    _tie_weights), internal=True)
defarray("norm", 1, _norm, *_weighted_reduction(_norm_weights))


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
    lambda m, x, ans, axis: _softmax_over(m, x, axis)))
defarray("softmax", 1, _softmax,
         vjp=(_softmax_map,), jvp=(_softmax_map,))
defarray("diag", 1, _diag,
         vjp=(lambda m, g, ans, args, params: _diag_vjp(m, g, args[0]),),
         jvp=(_linear(lambda m, t: m.diag(t)),))


def _diag_vjp(m, g, x):
    shape = tuple(m.shape(x))
    if len(shape) == 1 or shape[0] == shape[1]:
        return m.diag(g)   # diag is its own transpose
    k = min(shape)
    return m.index_scatter(m.diag(g), ((0, k, None), (0, k, None)), shape)


defarray("trace", 1, _trace,
         vjp=(_trace_vjp,),
         jvp=(_linear(lambda m, t: m.trace(t)),))
def _det(x):
    return np.linalg.det(_lift(x))


defarray("det", 1, _det,
         vjp=(lambda m, g, ans, args, params: m.mul(_per_matrix_scalar(m, g),
                                                    _det_partial(m, ans, args[0])),),
         jvp=(_det_jvp,))
defarray("inv", 1, _inv,
         vjp=(lambda m, g, ans, args, params: m.neg(
             m.matmul(m.matmul(m.swap(ans), g), m.swap(ans))),),
         jvp=(lambda m, t, ans, args, params: m.neg(m.matmul(m.matmul(ans, t), ans)),))
defarray("solve", 2, _solve,
         vjp=(_solve_vjp_a, _solve_vjp_b),
         jvp=(_solve_jvp_a, _solve_jvp_b))
