"""The primitive table (jacli/prims.py) against independent references.

* every partial of every user-visible primitive agrees with central finite
  differences of the primitive's own forward function, at points sampled inside
  its domain;
* the callable functions are exactly the table of shared/spec/language.md;
* every rule can be built as tape nodes (tape.NodeOps) and evaluates to the same
  number as the NUMERIC evaluation of the rule;
* the conventions at non-differentiable points, from language.md, with values
  derived by hand.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import jacli
from jacli import prims
from jacli.engine import WarningLog, forward
from jacli.prims import NUMERIC, PRIMITIVES, VARIADIC
from jacli.tape import NodeOps, Tape

RTOL = 1e-6

# ---------------------------------------------------------------------------------
# Sampling domains. Each entry: (number of arguments, sampler(rng, n) -> list of
# argument arrays). Samplers keep away from singularities, branch cuts and kinks by
# a margin much larger than the finite-difference step.
# ---------------------------------------------------------------------------------

N_POINTS = 40


def _uniform(lo, hi):
    return lambda rng, n: rng.uniform(lo, hi, n)


def _signed(lo, hi):
    """|x| in [lo, hi], both signs."""
    def sample(rng, n):
        mag = rng.uniform(lo, hi, n)
        sign = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
        return mag * sign
    return sample


def _unary(sampler):
    return 1, lambda rng, n: [sampler(rng, n)]


def _binary(sx, sy):
    return 2, lambda rng, n: [sx(rng, n), sy(rng, n)]


def _away_from_origin_and_cut(rng, n):
    """(y, x) with radius >= 0.5 and |y| >= 0.3 (atan2's cut is y = 0, x < 0)."""
    ys, xs = [], []
    while len(ys) < n:
        y, x = rng.uniform(-3, 3, 2)
        if math.hypot(x, y) >= 0.5 and abs(y) >= 0.3:
            ys.append(y)
            xs.append(x)
    return [np.array(ys), np.array(xs)]


def _separated(k):
    """k arguments pairwise at least 0.2 apart (no ties for min / max)."""
    def sample(rng, n):
        cols = [[] for _ in range(k)]
        while len(cols[0]) < n:
            vals = rng.uniform(-3, 3, k)
            if all(abs(a - b) >= 0.2 for i, a in enumerate(vals) for b in vals[i + 1:]):
                for c, v in zip(cols, vals):
                    c.append(v)
        return [np.array(c) for c in cols]
    return sample


DOMAINS: dict[str, list[tuple[int, object]]] = {
    "add": [_binary(_uniform(-3, 3), _uniform(-3, 3))],
    "sub": [_binary(_uniform(-3, 3), _uniform(-3, 3))],
    "mul": [_binary(_uniform(-3, 3), _uniform(-3, 3))],
    "div": [_binary(_uniform(-3, 3), _signed(0.5, 3))],
    "neg": [_unary(_uniform(-3, 3))],
    "pow": [_binary(_uniform(0.2, 3), _uniform(-2.5, 2.5))],
    "sin": [_unary(_uniform(-4, 4))],
    "cos": [_unary(_uniform(-4, 4))],
    "tan": [_unary(_uniform(-1.2, 1.2))],
    "asin": [_unary(_uniform(-0.9, 0.9))],
    "acos": [_unary(_uniform(-0.9, 0.9))],
    "atan": [_unary(_uniform(-4, 4))],
    "atan2": [(2, _away_from_origin_and_cut)],
    "hypot": [(2, lambda rng, n: _away_from_origin_and_cut(rng, n)[::-1])],
    "sinh": [_unary(_uniform(-3, 3))],
    "cosh": [_unary(_uniform(-3, 3))],
    "tanh": [_unary(_uniform(-3, 3))],
    "asinh": [_unary(_uniform(-4, 4))],
    "acosh": [_unary(_uniform(1.1, 5))],
    "atanh": [_unary(_uniform(-0.9, 0.9))],
    "exp": [_unary(_uniform(-3, 3))],
    "expm1": [_unary(_uniform(-3, 3))],
    "log": [_unary(_uniform(0.1, 5))],
    "log1p": [_unary(_uniform(-0.9, 5))],
    "log2": [_unary(_uniform(0.1, 5))],
    "log10": [_unary(_uniform(0.1, 5))],
    "sqrt": [_unary(_uniform(0.1, 5))],
    "cbrt": [_unary(_signed(0.2, 5))],
    "abs": [_unary(_signed(0.2, 3))],
    "sign": [_unary(_signed(0.2, 3))],
    "relu": [_unary(_signed(0.2, 3))],
    "sigmoid": [_unary(_uniform(-8, 8))],
    "softplus": [_unary(_uniform(-8, 8))],
    "min": [(2, _separated(2)), (3, _separated(3))],
    "max": [(2, _separated(2)), (3, _separated(3))],
}

# the elementwise primitives (array primitives, with a shape rule: tests/test_array_engine.py)
USER_PRIMITIVES = sorted(name for name, p in PRIMITIVES.items()
                         if not p.internal and p.shape is None)

CASES = [
    pytest.param(name, k, nargs, sampler, id=f"{name}/{nargs}args/d{k}")
    for name in sorted(DOMAINS)
    for nargs, sampler in DOMAINS[name]
    for k in range(nargs)
]


def test_every_user_primitive_has_a_sampling_domain():
    assert set(USER_PRIMITIVES) == set(DOMAINS)


def _central_difference(f, args, k):
    """d f / d args[k] by the 5-point central stencil, step relative to |x|."""
    x = args[k]
    h = 1e-3 * np.maximum(1.0, np.abs(x))

    def at(shift):
        shifted = list(args)
        shifted[k] = x + shift * h
        return f(*shifted)

    return (at(-2) - 8 * at(-1) + 8 * at(1) - at(2)) / (12 * h)


@pytest.mark.parametrize("name, k, nargs, sampler", CASES)
def test_partial_matches_finite_differences(name, k, nargs, sampler):
    prim = PRIMITIVES[name]
    rng = np.random.default_rng(1234 + 10 * nargs + k)
    args = sampler(rng, N_POINTS)
    assert len(args) == nargs
    with np.errstate(all="raise", under="ignore"):
        ans = prim.forward(*args)
        partial = prim.partial(NUMERIC, ans, args, k)
        fd = _central_difference(prim.forward, args, k)
    partial = np.broadcast_to(np.asarray(partial, dtype=float), fd.shape)
    assert np.all(np.isfinite(partial))
    scale = 1e-9 * np.maximum(1.0, np.abs(ans))
    np.testing.assert_allclose(partial, fd, rtol=RTOL, atol=float(np.max(scale)),
                               err_msg=f"d{name}/d(arg {k}) at {args}")


# --- the function table of language.md -----------------------------------------------

SPEC_UNARY = ("sin cos tan asin acos atan sinh cosh tanh asinh acosh atanh exp expm1 "
              "log log1p log2 log10 sqrt cbrt abs sign sigmoid softplus relu").split()
SPEC_BINARY = ["atan2", "hypot", "pow"]
SPEC_VARIADIC = ["min", "max"]
# arrays.md's array functions (max/min with one argument parse to the internal amax/amin)
SPEC_ARRAY_UNARY = "sum mean prod norm logsumexp softmax transpose diag trace det inv".split()
SPEC_ARRAY_BINARY = ["dot", "outer", "solve"]


def test_functions_are_exactly_the_spec_table():
    expected = {name: 1 for name in SPEC_UNARY + SPEC_ARRAY_UNARY}
    expected.update({name: 2 for name in SPEC_BINARY + SPEC_ARRAY_BINARY})
    expected.update({name: VARIADIC for name in SPEC_VARIADIC})
    assert len(expected) == 25 + 3 + 2 + 11 + 3
    assert dict(prims.FUNCTIONS) == expected


@pytest.mark.parametrize("name", SPEC_UNARY + SPEC_BINARY + SPEC_VARIADIC)
def test_spec_functions_are_callable_with_their_arity(name):
    if name in SPEC_UNARY:
        nargs = [1]
    elif name in SPEC_BINARY:
        nargs = [2]
    else:
        nargs = [1, 2, 3, 5]   # one argument: the reduction of arrays.md (amax/amin)
    for n in nargs:
        args = ", ".join(f"0.{i + 3}" for i in range(n))
        jacli.compile(f"{name}({args}) + x")          # must not raise
    wrong = [2, 3] if name in SPEC_UNARY else ([1, 3] if name in SPEC_BINARY else [0])
    for n in wrong:
        args = ", ".join(f"0.{i + 3}" for i in range(n))
        with pytest.raises(jacli.JacliError) as info:
            jacli.compile(f"{name}({args}) + x")
        assert name in info.value.message


# --- rules as tape nodes ---------------------------------------------------------------

@pytest.mark.parametrize("name, k, nargs, sampler", CASES)
def test_partial_built_as_tape_nodes_evaluates_like_numeric(name, k, nargs, sampler):
    prim = PRIMITIVES[name]
    rng = np.random.default_rng(99 + k)
    args = sampler(rng, 8)

    tape = Tape()
    arg_nodes = [tape.var(f"a{i}") for i in range(nargs)]
    ans_node = tape.apply(name, tuple(arg_nodes))
    partial_node = prim.partial(NodeOps(tape), ans_node, arg_nodes, k)
    assert isinstance(partial_node, int) and 0 <= partial_node < len(tape)
    # The rule emitted nodes of known primitives, whose arguments come earlier.
    for index, node in enumerate(tape.nodes):
        assert all(a < index for a in node.args)

    env = {f"a{i}": args[i] for i in range(nargs)}
    values = forward(tape, env, [True] * len(tape), WarningLog())
    symbolic = np.broadcast_to(np.asarray(values[partial_node], dtype=float).reshape(-1), (8,))

    numeric = prim.partial(NUMERIC, prim.forward(*args), args, k)
    numeric = np.broadcast_to(np.asarray(numeric, dtype=float), (8,))
    np.testing.assert_allclose(symbolic, numeric, rtol=1e-13, atol=0)


# --- conventions at non-differentiable points (language.md) -----------------------------

def _grad(src, **point):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return jacli.compile(src).grad(point)


def test_abs_derivative_at_zero_is_zero():
    assert _grad("abs(x)", x=0.0).gradient.tolist() == [0.0]
    assert PRIMITIVES["abs"].partial(NUMERIC, 0.0, [np.float64(0.0)], 0) == 0.0


@pytest.mark.parametrize("x", [-2.5, -1e-300, 0.0, 1e-300, 3.0])
def test_sign_derivative_is_zero_everywhere(x):
    r = _grad("sign(x)", x=x)
    assert r.gradient.tolist() == [0.0]


@pytest.mark.parametrize("x, slope", [(0.0, 0.0), (-1.0, 0.0), (2.0, 1.0), (1e-300, 1.0)])
def test_relu_derivative(x, slope):
    r = _grad("relu(x)", x=x)
    assert r.value.tolist() == [max(x, 0.0)]
    assert r.gradient.tolist() == [slope]


def test_max_tie_with_constant_shares_derivative():
    # d/dx max(x, 0.5) at x = 0.5: two arguments tie, x gets half.
    assert _grad("max(x, 0.5)", x=0.5).gradient.tolist() == [0.5]
    assert _grad("min(x, 0.5)", x=0.5).gradient.tolist() == [0.5]
    # Away from the tie: 1 on one side, 0 on the other.
    assert _grad("max(x, 0.5)", x=0.7).gradient.tolist() == [1.0]
    assert _grad("max(x, 0.5)", x=0.3).gradient.tolist() == [0.0]


def test_max_of_x_and_2x_at_zero_is_three_halves():
    # Both tie at 0: (1/2) * d(x)/dx + (1/2) * d(2x)/dx = 1/2 + 1 = 3/2.
    assert _grad("max(x, 2*x)", x=0.0).gradient.tolist() == [1.5]
    assert _grad("min(x, 2*x)", x=0.0).gradient.tolist() == [1.5]


@pytest.mark.parametrize("fn", ["max", "min"])
def test_three_way_tie_is_a_third_each(fn):
    r = _grad(f"{fn}(x, y, z)", x=1.25, y=1.25, z=1.25)
    np.testing.assert_allclose(r.gradient, [1 / 3, 1 / 3, 1 / 3], rtol=1e-15)
    # Two of three tie: half each, nothing for the third.
    r = _grad(f"{fn}(x, y, z)", x=2.0, y=2.0, z=2.0 + (-1.0 if fn == "max" else 1.0))
    assert r.gradient.tolist() == [0.5, 0.5, 0.0]


def test_sqrt_derivative_at_zero_is_inf():
    r = _grad("sqrt(x)", x=0.0)
    assert r.value.tolist() == [0.0]
    assert r.gradient.tolist() == [math.inf]


# Hand-derived references: sigmoid(x) = 1/(1+e^-x), sigmoid' = e^-|x|/(1+e^-|x|)^2,
# softplus(x) = max(x, 0) + log1p(e^-|x|), softplus' = sigmoid.
def _ref_sigmoid(x):
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def _ref_dsigmoid(x):
    t = math.exp(-abs(x))
    return t / (1 + t) ** 2


def _ref_softplus(x):
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


@pytest.mark.parametrize("x", [-1000.0, -40.0, -30.0, -1.0, 0.0, 2.0, 30.0, 40.0, 1000.0])
def test_sigmoid_and_softplus_stable_for_large_arguments(x):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            xs = np.array([x])
            s = PRIMITIVES["sigmoid"].forward(xs)
            ds = PRIMITIVES["sigmoid"].partial(NUMERIC, s, [xs], 0)
            sp = PRIMITIVES["softplus"].forward(xs)
            dsp = PRIMITIVES["softplus"].partial(NUMERIC, sp, [xs], 0)
        r_s = jacli.compile("sigmoid(x)").grad({"x": x})
        r_sp = jacli.compile("softplus(x)").grad({"x": x})
    assert r_s.warnings == [] and r_sp.warnings == []
    for value, deriv, ref, dref in [(s, ds, _ref_sigmoid(x), _ref_dsigmoid(x)),
                                    (sp, dsp, _ref_softplus(x), _ref_sigmoid(x)),
                                    (r_s.value, r_s.gradient, _ref_sigmoid(x), _ref_dsigmoid(x)),
                                    (r_sp.value, r_sp.gradient, _ref_softplus(x),
                                     _ref_sigmoid(x))]:
        value, deriv = float(np.asarray(value)[0]), float(np.asarray(deriv)[0])
        assert math.isfinite(value) and math.isfinite(deriv)
        assert value == pytest.approx(ref, rel=1e-12, abs=1e-300)
        assert deriv == pytest.approx(dref, rel=1e-12, abs=1e-300)


# --- internal primitives (used only by derivative rules) ------------------------------------

def test_internal_primitives_are_exactly_these():
    internal = {name for name, p in PRIMITIVES.items() if p.internal and p.shape is None}
    assert internal == {"equal", "is_zero", "both_zero", "one_minus_square", "hypot_ratio",
                        "mul_diff"}


def test_one_minus_square_partial_matches_finite_differences():
    prim = PRIMITIVES["one_minus_square"]
    xs = np.random.default_rng(7).uniform(-3, 3, N_POINTS)
    ans = prim.forward(xs)
    np.testing.assert_allclose(ans, 1 - xs * xs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(prim.partial(NUMERIC, ans, [xs], 0),
                               _central_difference(prim.forward, [xs], 0), rtol=RTOL)


def test_hypot_ratio_partials_are_those_of_x_over_hypot():
    # hypot_ratio(x, y, h) is x/h for h = hypot(x, y); its partials with respect to x and
    # y are the total derivatives of x/hypot(x, y) (h only carries the value: partial 0).
    prim = PRIMITIVES["hypot_ratio"]
    rng = np.random.default_rng(8)
    x, y = _signed(0.3, 3)(rng, N_POINTS), _signed(0.3, 3)(rng, N_POINTS)
    h = np.hypot(x, y)
    ans = prim.forward(x, y, h)
    np.testing.assert_array_equal(ans, x / h)
    whole = lambda a, b: a / np.hypot(a, b)   # noqa: E731
    for k in range(2):
        np.testing.assert_allclose(prim.partial(NUMERIC, ans, [x, y, h], k),
                                   _central_difference(whole, [x, y], k), rtol=RTOL)
    assert prim.partial(NUMERIC, ans, [x, y, h], 2) == 0.0


@pytest.mark.parametrize("name, args, expected", [
    ("equal", [np.array([1.0, 2.0, 0.0]), np.array([1.0, 3.0, -0.0])], [1.0, 0.0, 1.0]),
    ("is_zero", [np.array([0.0, -0.0, 1e-300, np.inf, np.nan])], [1.0, 1.0, 0.0, 0.0, 0.0]),
    ("both_zero", [np.array([0.0, -0.0, 0.0, 1.0, np.nan]), np.array([-0.0, 0.0, 2.0, 0.0, 0.0])],
     [1.0, 1.0, 0.0, 0.0, 0.0]),
])
def test_masks_are_zero_or_one_with_zero_partials(name, args, expected):
    prim = PRIMITIVES[name]
    ans = prim.forward(*args)
    assert ans.tolist() == expected
    assert all(prim.partial(NUMERIC, ans, args, k) == 0.0 for k in range(len(args)))
