"""Numbers a peer would not get wrong (issue 11), each against an independent reference:
closed-form derivatives written in mpmath at 50 digits, or values derived by hand.

* a partial is evaluated as its rule says: no deferred division that multiplies the
  adjoint into a numerator first and overflows (or goes subnormal) where g*(num/den)
  does not;
* pow at base 0 and exponent 0: the guards inside the rule;
* every rule near the edges of its domain and of the double range, first derivatives
  and the second derivatives that cancelled (hypot, asin, atanh, ...);
* jacli's column of the README's kink table;
* a property: random programs at points spanning 1e-300..1e300 give, in both modes,
  exactly the chain rule of the rules evaluated directly, and forward == reverse.
"""

from __future__ import annotations

import math
import os
import warnings

import mpmath as mp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import jacli
from jacli.prims import NUMERIC, PRIMITIVES
from test_properties import ALL_PRIMS, programs

mp.mp.dps = 50
TINY, HUGE = 2.2250738585072014e-308, 1.7976931348623157e308   # the normal doubles


@pytest.fixture(autouse=True)
def no_python_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _relative(got: float, ref) -> float:
    return float(abs(mp.mpf(got) - ref) / abs(ref))


def assert_matches(got: float, ref, rtol: float = 1e-14, what: str = "") -> None:
    """`got` is the double nearest `ref` to `rtol`; past the normal range, the overflow
    or underflow the double range forces (inf of the right sign, or a subnormal/0)."""
    if abs(ref) > HUGE:
        assert got == math.copysign(math.inf, ref), (what, got, ref)
    elif abs(ref) < TINY:
        assert abs(got) < 2 * TINY, (what, got, ref)
    else:
        assert math.isfinite(got) and _relative(got, ref) <= rtol, (what, got, mp.nstr(ref, 20))


# --- 11.1: no deferred division ----------------------------------------------------------------

def _both_modes(source: str, point: dict) -> list[np.ndarray]:
    program = jacli.compile(source)
    return [program.jacobian(point, mode=mode).jacobian.reshape(-1)
            for mode in ("reverse", "forward")]


@pytest.mark.parametrize("source, w, reference, modes", [
    # d/dw sqrt(w*a*b) = sqrt(a*b/w)/2, a and b the doubles nearest 1e300 and 1e10:
    # the deferred division multiplied the adjoint into 0.5*a*b first: inf. (Forward mode
    # overflows in any AD: the tangent of w*a*b is a*b = 1e310.)
    ("sqrt(w*1e300*1e10)", 1e-20,
     lambda w: mp.sqrt(mp.mpf(1e300) * mp.mpf(1e10) / w) / 2, ["reverse"]),
    # The same went subnormal (relative error 1.1e-5) for small factors. (The value
    # w*a*b = 1e-310 is itself subnormal, so a few ulps are lost in any AD: 1e-14.)
    ("sqrt(w*1e-300*1e-20)", 1e10,
     lambda w: mp.sqrt(mp.mpf(1e-300) * mp.mpf(1e-20) / w) / 2, ["reverse"]),
    # d/dw hypot(c*w, 1) = c*(c*w)/hypot(c*w, 1), c = 1e200: inf in both modes before.
    ("hypot(1e200*w, 1)", 1.0,
     lambda w: mp.mpf(1e200) ** 2 * w / mp.hypot(mp.mpf(1e200) * w, 1), ["reverse", "forward"]),
])
def test_a_partial_keeps_the_range_of_its_division(source, w, reference, modes):
    program = jacli.compile(source)
    for mode in modes:
        result = program.jacobian({"w": w}, mode=mode)
        assert_matches(float(result.jacobian[0, 0]), reference(mp.mpf(w)), 1e-14, source)
        assert result.warnings == []


def test_partials_are_evaluated_as_the_rule_says():
    # dr/dx of r = sqrt(x^2 + y^2) at (3, 4) is sqrt'(25) * (x^2)' = (0.5/5) * (2*3): the
    # double 0.1 times 6, which rounds to 0.6000000000000001 (as JAX and PyTorch give).
    expected = (0.5 / 5.0) * 6.0
    assert expected == 0.6000000000000001
    for jacobian in _both_modes("r = sqrt(x^2 + y^2); theta = atan2(y, x)", {"x": 3, "y": 4}):
        assert jacobian[0] == expected
        assert jacobian[1:].tolist() == [0.8, -0.16, 0.12]


# --- 11.2, 11.3: pow at base 0 and exponent 0 ---------------------------------------------------

@pytest.mark.parametrize("x, y, expected, warns", [
    (0.0, 1.0, [1.0, 0.0], False),   # d/dx = 1*0^0 = 1; d/dy = lim 0^y log(0) = 0 (was 0*-inf)
    (0.0, 2.0, [0.0, 0.0], False),
    (0.0, 3.5, [0.0, 0.0], False),
    (2.0, 0.0, [0.0, math.log(2.0)], False),   # x^0 is 1 for every x: d/dx = 0
    (0.0, 0.0, [0.0, -math.inf], True),        # d/dy 0^y at y = 0: 1*log(0), a pole
    (-2.0, 3.0, [12.0, math.nan], True),       # log(-2) is undefined
])
def test_pow_partials_at_base_and_exponent_zero(x, y, expected, warns):
    program = jacli.compile("x^y")
    for mode in ("reverse", "forward"):
        result = program.jacobian({"x": x, "y": y}, mode=mode)
        np.testing.assert_array_equal(result.jacobian[0], expected)
        assert [(w.op, w.in_derivative) for w in result.warnings] == (
            [("pow", True)] if warns else []), result.warnings


@pytest.mark.parametrize("source, expected", [
    ("x^0", 0.0), ("x^1", 1.0), ("x^2", 0.0), ("x^3", 0.0), ("x^0.5", math.inf),
])
def test_power_of_x_at_zero(source, expected):
    result = jacli.compile(source).grad({"x": 0.0})
    assert result.gradient.tolist() == [expected]
    # Only x^0.5 meets a pole (0.5*0^-0.5), and the warning names pow's derivative.
    assert [(w.op, w.in_derivative) for w in result.warnings] == (
        [("pow", True)] if math.isinf(expected) else [])


def test_pow_guard_does_not_leak_through_an_unselected_branch():
    # min(z - w, z^w) at (0, 2) selects z - w = -2: the gradient is (1, -1); z^w's
    # exponent partial (0*log 0 = nan before) is multiplied by the min's 0 for it.
    result = jacli.compile("min(z - w, z^w)").grad({"z": 0.0, "w": 2.0})
    assert result.gradient.tolist() == [1.0, -1.0]
    assert result.warnings == []


def test_hessian_of_pow_at_base_zero():
    # x^y at (0, 2): d2/dx2 = y(y-1)x^(y-2) = 2; d2/dxdy = x^(y-1)(1 + y log x) -> 0;
    # d2/dy2 = x^y log(x)^2 -> 0 (limits from x > 0).
    result = jacli.compile("x^y").hessian({"x": 0.0, "y": 2.0})
    assert result.hessian.tolist() == [[2.0, 0.0], [0.0, 0.0]]
    assert result.gradient.tolist() == [0.0, 0.0]
    assert result.warnings == []


@pytest.mark.parametrize("x, y", [(0.3, 2.5), (1.7, -1.25), (2.0, 3.0), (1e-300, 0.5),
                                  (1e300, 0.5), (-2.0, 3.0), (5.0, 1e-20)])
def test_pow_guards_change_nothing_away_from_zero(x, y):
    # The hand formulas y*x^(y-1) and x^y*log(x), bit for bit.
    with np.errstate(all="ignore"):
        expected = [y * x ** (y - 1), x ** y * math.log(x) if x > 0 else math.nan]
    result = jacli.compile("x^y").grad({"x": x, "y": y})
    np.testing.assert_array_equal(result.gradient, expected)


def test_pow_guards_fold_away_for_constant_exponent_or_base(invoke_jacli):
    code, out, _ = invoke_jacli("diff", "x^2; 2^x")
    assert code == 0
    first, second = out.splitlines()
    assert first == "d_f1_d_x = 2*x"
    # log(2) folded to its double, and no mask (sign, abs) left of the guards
    assert "0.6931471805599453" in second and "2^x" in second and "sign" not in second


def test_printed_derivative_of_pow_evaluates_like_grad_at_zero(invoke_jacli):
    code, text, _ = invoke_jacli("diff", "x^y")
    assert code == 0
    for x, y in [(0.0, 1.0), (0.0, 0.0), (0.0, 2.0), (3.0, 0.0), (1.5, 2.5)]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            printed = jacli.compile(text).eval({"x": x, "y": y}).value.tolist()
            grad = jacli.compile("x^y").grad({"x": x, "y": y}).gradient.tolist()
        assert printed == grad, (x, y, text)


def test_internal_primitives_print_as_jacli_of_the_same_value(invoke_jacli):
    # asin', atanh' (one_minus_square), hypot' (hypot_ratio), pow's guards (is_zero).
    source = "asin(-x); atanh(x + y); hypot(-x, 2*y); x^y; y^x"
    code, text, _ = invoke_jacli("diff", source)
    assert code == 0
    for point in ({"x": 0.3, "y": 0.2}, {"x": 0.0, "y": 0.5}, {"x": -0.5, "y": 0.0}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            printed = jacli.compile(text).eval(point).value
            jacobian = jacli.compile(source).jacobian(point).jacobian
        np.testing.assert_array_equal(printed, jacobian.reshape(-1), err_msg=str(point))
    code, latex, _ = invoke_jacli("diff", "atanh(x + y)", "--format", "latex")
    assert "(1 - \\left(x + y\\right))(1 + \\left(x + y\\right))" in latex


# --- 11.4: every rule near its domain's edges, against mpmath ------------------------------------

ONE = 1 - 2.0 ** -40          # the point for asin/acos
# name -> (the derivative in closed form, derived by hand, written in mpmath; points)
UNARY_EDGES = {
    "asin": (lambda x: 1 / mp.sqrt(1 - x * x),
             [ONE, -ONE, 0.9999999999, 1 - 2.0 ** -52, -(1 - 2.0 ** -52), 1e-300, 0.5]),
    "acos": (lambda x: -1 / mp.sqrt(1 - x * x), [ONE, -ONE, 0.9999999999, 1 - 2.0 ** -52, 1e-300]),
    "atanh": (lambda x: 1 / (1 - x * x),
              [ONE, -ONE, 0.9999999999, -0.9999999999, 1 - 2.0 ** -52, 1e-300]),
    "acosh": (lambda x: 1 / mp.sqrt(x * x - 1),
              [1 + 2.0 ** -40, 1 + 2.0 ** -52, 1.0000000001, 1e150, 1e300]),
    "asinh": (lambda x: 1 / mp.sqrt(x * x + 1), [1e300, -1e300, 1e200, 1e-300, 1e-8]),
    "tanh": (lambda x: 1 / mp.cosh(x) ** 2, [5.0, 20.0, -20.0, 300.0, 1e-8, 1e-300]),
    "atan": (lambda x: 1 / (1 + x * x), [1e150, -1e100, 1e-8, 1e-300]),
    "tan": (lambda x: 1 / mp.cos(x) ** 2, [1.5707963, -1.57079632679, 1e-300]),
    "sin": (mp.cos, [1e300, 1e-8, 3.14159]),
    "cos": (lambda x: -mp.sin(x), [1e300, 1e-8, 1.5707963267948966]),
    "sinh": (mp.cosh, [700.0, -700.0, 1e-8]),
    "cosh": (mp.sinh, [700.0, -700.0, 1e-8, 1e-300]),
    "exp": (mp.exp, [-700.0, 700.0, 1e-300]),
    "expm1": (mp.exp, [-40.0, -700.0, 700.0, -1e-10, 1e-300]),
    "log": (lambda x: 1 / x, [1e-300, 1e300, 1 + 2.0 ** -40]),
    "log1p": (lambda x: 1 / (1 + x), [-1 + 2.0 ** -40, -1 + 1e-10, 1e-300, 1e300]),
    "log2": (lambda x: 1 / (x * mp.log(2)), [1e-300, 1e300]),
    "log10": (lambda x: 1 / (x * mp.log(10)), [1e-300, 1e300]),
    "sqrt": (lambda x: 1 / (2 * mp.sqrt(x)), [1e-300, 1e300, 5e-324]),
    "cbrt": (lambda x: 1 / (3 * mp.cbrt(abs(x)) ** 2), [1e-300, -1e-300, 1e300]),
    "sigmoid": (lambda x: mp.exp(-x) / (1 + mp.exp(-x)) ** 2, [40.0, -40.0, 700.0, -700.0]),
    "softplus": (lambda x: 1 / (1 + mp.exp(-x)), [40.0, -40.0, 700.0, -700.0]),
}

BINARY_EDGES = {   # name -> (d/d arg0, d/d arg1, points)
    "hypot": (lambda x, y: x / mp.hypot(x, y), lambda x, y: y / mp.hypot(x, y),
              [(1e-200, 1e-200), (1e200, 1e200), (1e-8, 1.0), (1e300, 1e300)]),
    "atan2": (lambda y, x: x / (x * x + y * y), lambda y, x: -y / (x * x + y * y),
              [(1e-8, -1.0), (-1e-8, -1.0), (3.0, -4.0), (1e-100, 1e-100), (1e100, 1e100)]),
    "pow": (lambda x, y: y * x ** (y - 1), lambda x, y: x ** y * mp.log(x),
            [(1e-300, 0.5), (1e300, 0.5), (1e150, 2.0), (ONE, 1e10), (0.5, 1000.0)]),
    "div": (lambda x, y: 1 / y, lambda x, y: -x / y ** 2, [(3.0, 1e-150), (1e-300, 3.0)]),
}

UNARY_CASES = [pytest.param(name, x, id=f"{name}({x!r})")
               for name, (_, points) in UNARY_EDGES.items() for x in points]
BINARY_CASES = [pytest.param(name, point, id=f"{name}{point!r}")
                for name, (*_, points) in BINARY_EDGES.items() for point in points]


def test_every_smooth_user_primitive_has_edge_points():
    smooth = {name for name, p in PRIMITIVES.items()
              if not p.internal and p.shape is None} - {
        "add", "sub", "mul", "neg", "abs", "sign", "relu", "min", "max"}
    assert smooth == set(UNARY_EDGES) | set(BINARY_EDGES)


@pytest.mark.parametrize("name, x", UNARY_CASES)
def test_first_derivative_near_the_domain_edges(name, x):
    reference = UNARY_EDGES[name][0](mp.mpf(x))
    for gradient in _both_modes(f"{name}(x)", {"x": x}):
        assert_matches(float(gradient[0]), reference, what=f"{name}'({x!r})")


@pytest.mark.parametrize("name, point", BINARY_CASES)
def test_binary_partials_near_the_domain_edges(name, point):
    d0, d1, _ = BINARY_EDGES[name]
    exact = [mp.mpf(v) for v in point]
    source = {"pow": "a^b", "div": "a/b"}.get(name, f"{name}(a, b)")
    for gradient in _both_modes(source, {"a": point[0], "b": point[1]}):
        assert_matches(float(gradient[0]), d0(*exact), what=f"d{name}/d0 at {point}")
        assert_matches(float(gradient[1]), d1(*exact), what=f"d{name}/d1 at {point}")


def test_hypot_hessian_does_not_cancel():
    # H = [[y^2, -xy], [-xy, x^2]] / h^3; H_yy at (1e-8, 1) is 1e-16 (0.0 before: 1/h - y^2/h^3).
    x, y = 1e-8, 1.0
    h3 = mp.hypot(x, y) ** 3
    reference = [[y * y / h3, -x * y / h3], [-x * y / h3, x * x / h3]]
    result = jacli.compile("hypot(x, y)").hessian({"x": x, "y": y})
    for i in range(2):
        for j in range(2):
            assert_matches(float(result.hessian[i, j]), reference[i][j], what=f"H[{i},{j}]")


SECOND_EDGES = {   # name -> (second derivative in closed form, points)
    "asin": (lambda x: x / (1 - x * x) ** 1.5, [1e-8, 0.5, ONE]),
    "acos": (lambda x: -x / (1 - x * x) ** 1.5, [1e-8, -ONE]),
    "atanh": (lambda x: 2 * x / (1 - x * x) ** 2, [1e-8, ONE]),
    "acosh": (lambda x: -x / (x * x - 1) ** 1.5, [1 + 2.0 ** -40, 3.0]),
    "asinh": (lambda x: -x / (1 + x * x) ** 1.5, [1e-8, 1e100]),
    "tanh": (lambda x: -2 * mp.tanh(x) / mp.cosh(x) ** 2, [1e-8, 5.0, 20.0]),
    "expm1": (mp.exp, [-40.0, 1e-8]),
}


@pytest.mark.parametrize("name, x", [pytest.param(n, x, id=f"{n}''({x!r})")
                                     for n, (_, pts) in SECOND_EDGES.items() for x in pts])
def test_second_derivative_near_the_domain_edges(name, x):
    result = jacli.compile(f"{name}(x)").hessian({"x": x})
    assert_matches(float(result.hessian[0, 0]), SECOND_EDGES[name][0](mp.mpf(x)),
                   what=f"{name}''({x!r})")


# --- 11.5: jacli's column of the README's kink table ---------------------------------------------

KINKS = [   # program, point, jacli's gradient (README "Derivatives at kinks")
    ("abs(x)", {"x": 0.0}, [0.0]),
    ("sign(x)", {"x": 0.0}, [0.0]),
    ("relu(x)", {"x": 0.0}, [0.0]),
    ("sqrt(x)", {"x": 0.0}, [math.inf]),
    ("cbrt(x)", {"x": 0.0}, [math.inf]),
    ("max(x, y)", {"x": 1.0, "y": 1.0}, [0.5, 0.5]),
    ("min(x, y)", {"x": 1.0, "y": 1.0}, [0.5, 0.5]),
    ("max(x, y, z)", {"x": 1.0, "y": 1.0, "z": 1.0}, [1 / 3, 1 / 3, 1 / 3]),
    ("max(max(x, y), z)", {"x": 1.0, "y": 1.0, "z": 1.0}, [0.25, 0.25, 0.5]),
    ("hypot(x, y)", {"x": 0.0, "y": 0.0}, [math.nan, math.nan]),
    ("atan2(y, x)", {"y": 0.0, "x": 0.0}, [math.nan, math.nan]),
    ("x^y", {"x": 0.0, "y": 1.0}, [1.0, 0.0]),
    ("x^0", {"x": 0.0}, [0.0]),
    ("sqrt(x^2)", {"x": 0.0}, [math.nan]),
]


@pytest.mark.parametrize("source, point, expected", KINKS, ids=[k[0] for k in KINKS])
def test_kink_table_jacli_column(source, point, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for gradient in _both_modes(source, point):
            np.testing.assert_array_equal(gradient, expected)


def test_a_pointwise_kink_convention_is_wrong_for_some_smooth_composite():
    # abs(x)^2 = x^2 has second derivative 2; through abs'(0) = 0 jacli gives 0.
    assert jacli.compile("abs(x)^2").hessian({"x": 0.0}).hessian.tolist() == [[0.0]]
    assert jacli.compile("x^2").hessian({"x": 0.0}).hessian.tolist() == [[2.0]]


# --- 10.13: n-ary min/max derivatives are linear in the argument count --------------------------

def test_nary_max_derivative_is_linear_and_shares_ties():
    import time

    def run(n):
        args = ", ".join(f"x{i}" for i in range(n))
        program = jacli.compile(f"max({args}, x0)")   # x0 twice: a tie with itself
        point = {f"x{i}": 1.0 if i in (0, n - 1) else 0.0 for i in range(n)}
        start = time.perf_counter()
        gradient = program.grad(point).gradient
        return time.perf_counter() - start, gradient

    _, small = run(5)
    assert small.tolist() == [2 / 3, 0.0, 0.0, 0.0, 1 / 3]
    elapsed, gradient = run(1600)
    assert gradient[0] == 2 / 3 and gradient[-1] == 1 / 3 and not gradient[1:-1].any()
    assert elapsed < 1.0, f"1,600 arguments took {elapsed:.2f} s"   # 11 s when quadratic


def test_many_inputs_named_by_wrt_are_checked_in_linear_time():
    import time
    names = [f"x{i}" for i in range(6000)]
    program = jacli.compile(f"max({', '.join(names)})")
    point = {name: float(i % 7) for i, name in enumerate(names)}
    start = time.perf_counter()
    result = program.grad(point, wrt=names)
    elapsed = time.perf_counter() - start
    assert result.gradient.sum() == 1.0 and program.unused(point) == []
    assert elapsed < 0.5, f"6,000 inputs took {elapsed:.2f} s"   # 68 s before (ties and names: quadratic)


def test_nary_min_printed_derivative_is_linear(invoke_jacli):
    import time
    args = ", ".join(f"x{i}" for i in range(600))
    start = time.perf_counter()
    code, out, _ = invoke_jacli("diff", f"min({args})")
    elapsed = time.perf_counter() - start
    assert code == 0
    printed = jacli.compile(out)
    point = {f"x{i}": 0.0 if i in (3, 599) else 1.0 for i in range(600)}
    expected = [0.5 if i in (3, 599) else 0.0 for i in range(600)]
    assert printed.eval(point).value.tolist() == expected
    assert elapsed < 3.0, f"diff of 600 arguments took {elapsed:.2f} s"   # 51 s for 1,600 before


# --- acceptance property: extreme points, the rules evaluated directly ----------------------------

def _direct_jacobian(program, point: dict, mode: str) -> tuple[np.ndarray, bool]:
    """The chain rule over the tape at one point with each partial computed by its rule
    (prims.NUMERIC) and multiplied in directly: a rule's symbolic 0 (a Python float)
    sends nothing, as language.md's conventions say; nothing else is special.
    Also whether every product and sum stayed a normal double (or 0): only then do the
    two modes, which multiply in different orders, have to agree to rounding."""
    tape = program.tape
    nodes = tape.nodes
    values = []
    with np.errstate(all="ignore"):
        for node in nodes:
            if node.op == "const":
                values.append(np.float64(node.value))
            elif node.op == "var":
                values.append(np.float64(point.get(node.name, 0.0)))
            else:
                values.append(PRIMITIVES[node.op].forward(*[values[a] for a in node.args]))

        def partial(index, position):
            node = nodes[index]
            return PRIMITIVES[node.op].partial(NUMERIC, values[index],
                                               [values[a] for a in node.args], position)

        def symbolic_zero(p):
            return type(p) is float and p == 0.0

        normal = True

        def check(t):
            nonlocal normal
            if not (t == 0 or TINY <= abs(t) <= HUGE):
                normal = False
            return t

        inputs = program.variables
        roots = [tape.output_node(o) for o in program.outputs]
        jac = np.zeros((len(roots), len(inputs)))
        if mode == "reverse":
            for k, root in enumerate(roots):
                adjoint = {root: np.float64(1.0)}
                for index in range(root, -1, -1):
                    if index not in adjoint:
                        continue
                    for position, arg in enumerate(nodes[index].args):
                        p = partial(index, position)
                        if not symbolic_zero(p):
                            term = check(adjoint[index] * p)
                            adjoint[arg] = check(adjoint[arg] + term) if arg in adjoint else term
                for j, name in enumerate(inputs):
                    jac[k, j] = adjoint.get(tape.variable_nodes[name], 0.0)
        else:
            for j, name in enumerate(inputs):
                tangent = {tape.variable_nodes[name]: np.float64(1.0)}
                for index, node in enumerate(nodes):
                    for position, arg in enumerate(node.args):
                        if arg not in tangent:
                            continue
                        p = partial(index, position)
                        if not symbolic_zero(p):
                            term = check(tangent[arg] * p)
                            tangent[index] = (check(tangent[index] + term) if index in tangent
                                              else term)
                for k, root in enumerate(roots):
                    jac[k, j] = tangent.get(root, 0.0)
    return jac, normal


MAGNITUDE = st.builds(lambda mantissa, exponent, sign: sign * mantissa * 10.0 ** exponent,
                      st.floats(1.0, 9.99), st.integers(-300, 300), st.sampled_from([1.0, -1.0]))
EXTREME = st.one_of(MAGNITUDE, st.sampled_from([0.0, 1.0, -1.0, 1e-300, -1e300, 1e300]))
EXTREME_POINT = st.fixed_dictionaries({v: EXTREME for v in ("x", "y", "z")})

PROPERTY = settings(
    max_examples=int(os.environ.get("JACLI_NUMERICS_EXAMPLES",
                                    2000 if os.environ.get("HYPOTHESIS_PROFILE") == "long"
                                    else 150)),
    deadline=None, derandomize="JACLI_NUMERICS_EXAMPLES" not in os.environ, database=None,
    suppress_health_check=[HealthCheck.too_slow])


def check_direct_chain_rule(text: str, point: dict) -> None:
    program = jacli.compile(text)
    point = {v: point[v] for v in program.variables}
    jacobians, normal = {}, True
    for mode in ("reverse", "forward"):
        result = program.jacobian(point, mode=mode)   # warnings go to result.warnings only
        direct, normal_here = _direct_jacobian(program, point, mode)
        # Nothing is non-finite where the rules evaluated directly are finite (and the
        # other way round): the engine is that chain rule, with no deferral.
        np.testing.assert_array_equal(np.isfinite(result.jacobian), np.isfinite(direct))
        np.testing.assert_allclose(result.jacobian, direct, rtol=1e-15, atol=0, equal_nan=True)
        jacobians[mode], normal = result.jacobian, normal and normal_here
    if normal:   # forward == reverse, to rounding (a subnormal tangent loses digits)
        reverse, forward = jacobians["reverse"], jacobians["forward"]
        both = np.isfinite(reverse) & np.isfinite(forward)
        scale = np.abs(np.where(both, reverse, 0.0)).max(initial=0.0)
        np.testing.assert_allclose(forward[both], reverse[both], rtol=1e-12, atol=1e-12 * scale)


@pytest.mark.parametrize("text, point", [
    ("sqrt(x*1e300*1e10)", {"x": 1e-20}),
    ("sqrt(x*1e-300*1e-20)", {"x": 1e10}),
    ("hypot(1e200*x, 1)", {"x": 1.0}),
    ("t1 = atan2(1 + x^2, y)", {"x": -1e300, "y": 1e8}),   # found by the property below
])
def test_extreme_cases_give_the_direct_chain_rule(text, point):
    check_direct_chain_rule(text, point)


@PROPERTY
@given(programs(ALL_PRIMS), EXTREME_POINT)
def test_extreme_points_give_the_direct_chain_rule_in_both_modes(gen, point):
    note(gen.text)
    check_direct_chain_rule(gen.text, point)
