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


class Primitive(NamedTuple):
    name: str
    arity: int
    forward: Callable
    partials: tuple[Callable, ...] = ()
    # For variadic primitives: partial(m, ans, args, i) for argument i.
    variadic_partial: Callable | None = None
    symbol: str | None = None        # infix operator as written in the language
    internal: bool = False           # used by derivative rules, not callable by users

    def partial(self, m, ans, args, i):
        if self.variadic_partial is not None:
            return self.variadic_partial(m, ans, args, i)
        return self.partials[i](m, ans, *args)


PRIMITIVES: dict[str, Primitive] = {}


def defprim(name, arity, forward, *partials, variadic_partial=None, symbol=None, internal=False):
    PRIMITIVES[name] = Primitive(name, arity, forward, tuple(partials), variadic_partial,
                                 symbol, internal)


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


def _extremum_partial(m, ans, args, i):
    # Ties share the derivative equally (language.md): 1[a_i = ans] / #{j : a_j = ans}.
    ties = functools.reduce(m.add, [m.equal(a, ans) for a in args])
    return m.div(m.equal(args[i], ans), ties)


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
defprim("pow", 2, np.power,
        lambda m, ans, x, y: m.mul(y, m.pow(x, m.sub(y, m.const(1.0)))),
        lambda m, ans, x, y: m.mul(ans, m.log(x)), symbol="^")

# --- trigonometric ----------------------------------------------------------------
defprim("sin", 1, np.sin, lambda m, ans, x: m.cos(x))
defprim("cos", 1, np.cos, lambda m, ans, x: m.neg(m.sin(x)))
defprim("tan", 1, np.tan, lambda m, ans, x: m.add(m.const(1.0), m.mul(ans, ans)))
defprim("asin", 1, np.arcsin,
        lambda m, ans, x: m.div(m.const(1.0), m.sqrt(m.sub(m.const(1.0), m.mul(x, x)))))
defprim("acos", 1, np.arccos,
        lambda m, ans, x: m.div(m.const(-1.0), m.sqrt(m.sub(m.const(1.0), m.mul(x, x)))))
defprim("atan", 1, np.arctan,
        lambda m, ans, x: m.div(m.const(1.0), m.add(m.const(1.0), m.mul(x, x))))
defprim("atan2", 2, np.arctan2,   # atan2(y, x)
        lambda m, ans, y, x: m.div(x, m.add(m.mul(x, x), m.mul(y, y))),
        lambda m, ans, y, x: m.neg(m.div(y, m.add(m.mul(x, x), m.mul(y, y)))))
defprim("hypot", 2, np.hypot,
        lambda m, ans, x, y: m.div(x, ans),
        lambda m, ans, x, y: m.div(y, ans))

# --- hyperbolic -------------------------------------------------------------------
defprim("sinh", 1, np.sinh, lambda m, ans, x: m.cosh(x))
defprim("cosh", 1, np.cosh, lambda m, ans, x: m.sinh(x))
defprim("tanh", 1, np.tanh, lambda m, ans, x: m.sub(m.const(1.0), m.mul(ans, ans)))
defprim("asinh", 1, np.arcsinh,
        lambda m, ans, x: m.div(m.const(1.0), m.sqrt(m.add(m.mul(x, x), m.const(1.0)))))
defprim("acosh", 1, np.arccosh,   # 1/sqrt(x^2 - 1), factored to keep precision near 1
        lambda m, ans, x: m.div(m.const(1.0), m.mul(m.sqrt(m.sub(x, m.const(1.0))),
                                                    m.sqrt(m.add(x, m.const(1.0))))))
defprim("atanh", 1, np.arctanh,
        lambda m, ans, x: m.div(m.const(1.0), m.sub(m.const(1.0), m.mul(x, x))))

# --- exponential and logarithmic --------------------------------------------------
defprim("exp", 1, np.exp, lambda m, ans, x: ans)
defprim("expm1", 1, np.expm1, lambda m, ans, x: m.add(ans, m.const(1.0)))
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
        variadic_partial=_extremum_partial)
defprim("max", VARIADIC, lambda *a: functools.reduce(np.maximum, a),
        variadic_partial=_extremum_partial)

# --- internal: only derivative rules use these -------------------------------------
defprim("equal", 2, _equal, _zero, _zero, internal=True)


#: The functions a program may call, with their arity (VARIADIC for min/max).
#: `pow(x, y)` is the same primitive as `x^y`; the other operators have no call form.
FUNCTIONS: dict[str, int] = {
    name: p.arity for name, p in PRIMITIVES.items()
    if not p.internal and (p.symbol is None or name == "pow")
}

CONSTANTS: dict[str, float] = {"pi": float(np.pi), "e": float(np.e)}

#: The ops namespace that evaluates partials on arrays.
NUMERIC = SimpleNamespace(const=float, **{name: p.forward for name, p in PRIMITIVES.items()})
