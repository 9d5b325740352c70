"""The primitive table: every operation jacli knows, defined in one place.

Each primitive has a forward function over NumPy arrays and one partial derivative
per argument. A partial is written against an ops namespace `m` whose members are
the primitives themselves (`m.mul`, `m.cos`, ...) plus `m.const(c)`:

    partial(m, ans, *args)      # ans is the primitive's output

With `NUMERIC` as `m` a partial evaluates on arrays; with a node builder as `m` the
same rule emits new tape nodes (for Hessians and printed derivatives). The VJP is
`g * partial` and the JVP `t * partial`, so the two modes cannot disagree.

A partial that is identically 0 or +-1 returns `m.const(0.0)` / `m.const(+-1.0)`;
the engine treats those as symbolic constants and skips the multiplication.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Callable, NamedTuple

import numpy as np

VARIADIC = -1  # arity of min and max: two or more arguments
STACKED = -2   # arity of an array literal: one or more elements


class Primitive(NamedTuple):
    name: str
    arity: int
    forward: Callable
    partials: tuple[Callable, ...] = ()
    # For variadic primitives: partials(m, ans, args) -> one partial per argument, in one
    # pass, so work they share (min/max's tie count) is done once, not once per argument.
    variadic_partials: Callable | None = None
    symbol: str | None = None        # infix operator as written in the language
    internal: bool = False           # used by derivative rules, not callable by users
    # The static shape rule, shape(argument shapes, params) -> result shape, raising
    # errors.ShapeError; None for elementwise broadcasting.
    shape: Callable | None = None
    # Structural, linear and matrix primitives (array_prims.py): one rule per argument,
    # vjp[i](m, g, ans, args, params) -> the cotangent of argument i and
    # jvp[i](m, t, ans, args, params) -> the output's tangent from argument i's tangent t.
    # None for elementwise primitives: their partials give both (VJP sum_to(g * partial),
    # JVP t * partial).
    vjp: tuple[Callable, ...] | None = None
    jvp: tuple[Callable, ...] | None = None
    # How `tape --explain` writes the vjp rules, one per argument: explain[i](written) ->
    # the linear map applied to the cotangent ḡ, as text (array_prims.Written names the
    # operands). None for elementwise primitives: their step is ḡ * partial.
    explain: tuple[Callable, ...] | None = None

    def partial(self, m, ans, args, i):
        """The partial derivative of the output with respect to argument i."""
        return self.partials_at(m, ans, args, [i])[0]

    def partials_at(self, m, ans, args, positions):
        """The partials with respect to the arguments at `positions`, in that order."""
        if self.variadic_partials is not None:
            every = self.variadic_partials(m, ans, args)
            return [every[i] for i in positions]
        return [self.partials[i](m, ans, *args) for i in positions]


PRIMITIVES: dict[str, Primitive] = {}
#: Cotangent rules summed over the points, for an argument shared by every point (B = 1)
#: of an entry that is not (reductions: sweeps.reverse_sweep's `summed`): name -> one rule
#: per argument, `rule(m, g, ans, args, params)` giving (K, 1, *shape), or None to fall
#: back to the per-point rule and a sum. Only where the per-point cotangent would be
#: much larger than the sum (matmul: (B, p, q) against (p, q)).
SUMMED_VJP: dict[str, tuple] = {}


def defprim(name, arity, forward, *partials, variadic_partials=None, symbol=None,
            internal=False):
    PRIMITIVES[name] = Primitive(name, arity, aligned(forward), tuple(partials),
                                 variadic_partials, symbol, internal)


def rank(a) -> int:
    """The static rank of a value in the runtime layout (K, B, *shape); 0 for a number."""
    return a.ndim - 2 if getattr(a, "ndim", 0) >= 2 else 0


def align(a, r: int):
    """`a` (K, B, *shape) with axes inserted after the leading two up to rank r, so that
    NumPy broadcasting matches trailing shapes: (K, B, 3) and (1, B) never misalign."""
    missing = r - rank(a)
    if missing <= 0 or getattr(a, "ndim", 0) < 2:
        return a
    return a.reshape(a.shape[:2] + (1,) * missing + a.shape[2:])


def aligned(f):
    """An elementwise function broadcasting by static shape in the (K, B, *shape) layout.
    Arguments of one rank (every scalar program) go straight to `f`."""
    def run(*args):
        if len(args) == 1:   # one argument: nothing to align
            return f(*args)
        if len(args) == 2:
            da, db = getattr(args[0], "ndim", 0), getattr(args[1], "ndim", 0)
            if da == db or (da <= 2 and db <= 2):
                return f(*args)
        ndims = [getattr(a, "ndim", 0) for a in args]
        top = max(ndims, default=0)
        if top <= 2 or min(ndims) == top:
            return f(*args)
        return f(*[align(a, top - 2) for a in args])
    run.__name__ = getattr(f, "__name__", "elementwise")
    run.__wrapped__ = f
    return run


def static_shape(a) -> tuple:
    """The static shape of a value in the runtime layout."""
    return tuple(a.shape[2:]) if getattr(a, "ndim", 0) >= 2 else ()


def _zero(m, ans, *args):
    return m.const(0.0)


def _one(m, ans, *args):
    return m.const(1.0)


def _minus_one(m, ans, *args):
    return m.const(-1.0)


def _sigmoid(x):
    # exp(-log(1 + exp(-x))) never overflows, unlike 1 / (1 + exp(-x)).
    return np.exp(-np.logaddexp(0.0, -x))


def _softplus(x):
    return np.logaddexp(0.0, x)


def _relu(x):
    return np.maximum(x, 0.0)


def _equal(a, b):
    return np.equal(a, b).astype(float)


def _is_zero(x):
    return np.equal(x, 0.0).astype(float)


def _both_zero(a, b):
    return np.logical_and(np.equal(a, 0.0), np.equal(b, 0.0)).astype(float)


def _hypot_ratio(x, y, h):
    return np.divide(x, h)


def _mul_diff(a, b, c):
    # a * (b - c) with one temporary, not two: over a Jacobian's seed rows (softmax's
    # rule) that temporary is the size of the whole chunk, and the allocator keeps one
    # such block from chunk to chunk where two are given back and faulted in again
    out = np.subtract(b, c)
    if isinstance(out, np.ndarray) and out.shape == np.broadcast_shapes(np.shape(a), out.shape):
        return np.multiply(a, out, out=out)
    return np.multiply(a, out)


def _extremum_partials(m, ans, args):
    # Ties share the derivative equally (language.md): 1[a_i = ans] / #{j : a_j = ans}.
    # The tie count is built once for all arguments: n-ary min/max stay linear in n.
    hits = [m.equal(a, ans) for a in args]
    ties = functools.reduce(m.add, hits)
    return [m.div(hit, ties) for hit in hits]


def _pow_base(m, ans, x, y):
    # y * x^(y - 1). For y = 0 the exponent is taken as 0 (y - 1 + [y = 0]): x^0 is 1 for
    # every x, so its derivative is 0, where 0 * 0^-1 would be 0 * inf = nan.
    exponent = m.add(m.sub(y, m.const(1.0)), m.is_zero(y))
    return m.mul(y, m.pow(x, exponent))


def _pow_exponent(m, ans, x, y):
    # x^y * log(x). At x = 0 with x^y = 0 (so y > 0) this is 0 * -inf = nan, where the
    # limit is 0: log's argument becomes x + [x = 0 and x^y = 0] = 1 there, log(1) = 0.
    return m.mul(ans, m.log(m.add(x, m.both_zero(x, ans))))


def _one_minus_square(x):
    # 1 - x^2 as (1 - x)(1 + x): exact near x = +-1, where 1 - x*x loses digits.
    return np.multiply(np.subtract(1.0, x), np.add(1.0, x))


# --- arithmetic -------------------------------------------------------------------
defprim("add", 2, np.add, _one, _one, symbol="+")
defprim("sub", 2, np.subtract, _one, _minus_one, symbol="-")
defprim("mul", 2, np.multiply,
        lambda m, ans, x, y: y,
        lambda m, ans, x, y: x, symbol="*")
defprim("div", 2, np.divide,
        lambda m, ans, x, y: m.div(m.const(1.0), y),
        lambda m, ans, x, y: m.neg(m.div(ans, y)), symbol="/")
defprim("neg", 1, np.negative, _minus_one, symbol="-")
defprim("pow", 2, np.power, _pow_base, _pow_exponent, symbol="^")

# --- trigonometric ----------------------------------------------------------------
defprim("sin", 1, np.sin, lambda m, ans, x: m.cos(x))
defprim("cos", 1, np.cos, lambda m, ans, x: m.neg(m.sin(x)))
defprim("tan", 1, np.tan, lambda m, ans, x: m.add(m.const(1.0), m.mul(ans, ans)))
defprim("asin", 1, np.arcsin,
        lambda m, ans, x: m.div(m.const(1.0), m.sqrt(m.one_minus_square(x))))
defprim("acos", 1, np.arccos,
        lambda m, ans, x: m.div(m.const(-1.0), m.sqrt(m.one_minus_square(x))))
defprim("atan", 1, np.arctan,
        lambda m, ans, x: m.div(m.const(1.0), m.add(m.const(1.0), m.mul(x, x))))
defprim("atan2", 2, np.arctan2,   # atan2(y, x)
        lambda m, ans, y, x: m.div(x, m.add(m.mul(x, x), m.mul(y, y))),
        lambda m, ans, y, x: m.neg(m.div(y, m.add(m.mul(x, x), m.mul(y, y)))))
defprim("hypot", 2, np.hypot,   # x/h and y/h, with second derivatives that do not cancel
        lambda m, ans, x, y: m.hypot_ratio(x, y, ans),
        lambda m, ans, x, y: m.hypot_ratio(y, x, ans))

# --- hyperbolic -------------------------------------------------------------------
defprim("sinh", 1, np.sinh, lambda m, ans, x: m.cosh(x))
defprim("cosh", 1, np.cosh, lambda m, ans, x: m.sinh(x))
defprim("tanh", 1, np.tanh,   # cosh(x)^-2: 1 - ans^2 cancels to 0 once tanh(x) rounds to 1
        lambda m, ans, x: m.pow(m.cosh(x), m.const(-2.0)))
defprim("asinh", 1, np.arcsinh,   # 1/sqrt(x^2 + 1), as hypot: x^2 overflows for |x| > 1e154
        lambda m, ans, x: m.div(m.const(1.0), m.hypot(x, m.const(1.0))))
defprim("acosh", 1, np.arccosh,   # 1/sqrt(x^2 - 1), factored to keep precision near 1
        lambda m, ans, x: m.div(m.const(1.0), m.mul(m.sqrt(m.sub(x, m.const(1.0))),
                                                    m.sqrt(m.add(x, m.const(1.0))))))
defprim("atanh", 1, np.arctanh,
        lambda m, ans, x: m.div(m.const(1.0), m.one_minus_square(x)))

# --- exponential and logarithmic --------------------------------------------------
defprim("exp", 1, np.exp, lambda m, ans, x: ans)
defprim("expm1", 1, np.expm1,   # exp(x), not ans + 1: that cancels to 0 for x < -37
        lambda m, ans, x: m.exp(x))
defprim("log", 1, np.log, lambda m, ans, x: m.div(m.const(1.0), x))
defprim("log1p", 1, np.log1p, lambda m, ans, x: m.div(m.const(1.0), m.add(m.const(1.0), x)))
defprim("log2", 1, np.log2, lambda m, ans, x: m.div(m.const(1.0 / np.log(2.0)), x))
defprim("log10", 1, np.log10, lambda m, ans, x: m.div(m.const(1.0 / np.log(10.0)), x))

# --- roots: sqrt'(0) = inf, as language.md asks (no clamping) ----------------------
defprim("sqrt", 1, np.sqrt, lambda m, ans, x: m.div(m.const(0.5), ans))
defprim("cbrt", 1, np.cbrt,
        lambda m, ans, x: m.div(m.const(1.0), m.mul(m.const(3.0), m.mul(ans, ans))))

# --- piecewise: abs'(0) = 0, sign' = 0, relu'(0) = 0 ------------------------------
defprim("abs", 1, np.abs, lambda m, ans, x: m.sign(x))
defprim("sign", 1, np.sign, _zero)
defprim("relu", 1, _relu, lambda m, ans, x: m.relu(m.sign(x)))   # 1 for x > 0, else 0
defprim("sigmoid", 1, _sigmoid,   # ans * (1 - ans), written to keep precision for large x
        lambda m, ans, x: m.mul(ans, m.sigmoid(m.neg(x))))
defprim("softplus", 1, _softplus, lambda m, ans, x: m.sigmoid(x))
defprim("min", VARIADIC, lambda *a: functools.reduce(np.minimum, a),
        variadic_partials=_extremum_partials)
defprim("max", VARIADIC, lambda *a: functools.reduce(np.maximum, a),
        variadic_partials=_extremum_partials)

# --- internal: only derivative rules use these -------------------------------------
defprim("equal", 2, _equal, _zero, _zero, internal=True)      # 1 where a = b, else 0
defprim("is_zero", 1, _is_zero, _zero, internal=True)        # 1 where x = 0, else 0
defprim("both_zero", 2, _both_zero, _zero, _zero, internal=True)   # 1 where a = b = 0
# (1 - x)(1 + x), for asin', acos', atanh' near +-1; its own partial is -2x, exact, where
# the product rule's -(1 + x) + (1 - x) would cancel near 0 (second derivatives).
defprim("one_minus_square", 1, _one_minus_square,
        lambda m, ans, x: m.mul(m.const(-2.0), x), internal=True)
# hypot_ratio(x, y, h) = x/h for h = hypot(x, y) (hypot's partial d/dx). Its own partials
# are the total derivatives of x/hypot(x, y): y^2/h^3 and -x*y/h^3, written as
# (y/h)^2/h and -(x/h)(y/h)/h, which do not cancel as 1/h - x^2/h^3 does (the
# quotient rule through h) when x << y. h only carries the value: its partial is 0.
defprim("hypot_ratio", 3, _hypot_ratio,
        lambda m, ans, x, y, h: m.div(m.mul(m.hypot_ratio(y, x, h), m.hypot_ratio(y, x, h)), h),
        lambda m, ans, x, y, h: m.neg(m.div(m.mul(ans, m.hypot_ratio(y, x, h)), h)),
        _zero, internal=True)
# mul_diff(a, b, c) = a*(b - c), computed with one temporary (the softmax map's last step)
defprim("mul_diff", 3, _mul_diff,
        lambda m, ans, a, b, c: m.sub(b, c),
        lambda m, ans, a, b, c: a,
        lambda m, ans, a, b, c: m.neg(a), internal=True)


from . import array_prims  # noqa: E402,F401  (registers the array primitives)

#: The functions a program may call, with their arity (VARIADIC for min/max).
#: `pow(x, y)` is the same primitive as `x^y`; the other operators have no call form.
FUNCTIONS: dict[str, int] = {
    name: p.arity for name, p in PRIMITIVES.items()
    if not p.internal and (p.symbol is None or name == "pow")
}

#: The array functions of arrays.md among them (those with a shape rule): their names stay
#: free for variables, as v1 programs may use them (`mean = (a + b)/2`).
ARRAY_FUNCTIONS: frozenset[str] = frozenset(
    name for name in FUNCTIONS if PRIMITIVES[name].shape is not None)

CONSTANTS: dict[str, float] = {"pi": float(np.pi), "e": float(np.e)}

#: The ops namespace that evaluates partials on arrays.
#: `m.shape(a)` is an operand's static shape (node builders read it from the tape).
NUMERIC = SimpleNamespace(const=float, shape=static_shape,
                          **{name: p.forward for name, p in PRIMITIVES.items()})
