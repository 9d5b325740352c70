"""Property tests on randomly generated programs (hypothesis).

Programs are built as text: a list of SSA-style statements `t_k = TEMPLATE(args)` over
the variables x, y, z, where each template exercises one user-facing primitive of
jacli.prims.PRIMITIVES, with its domain guarded by a safe wrapper (`log(1 + a^2)`,
`acosh(2 + a^2)`, `asin(tanh(a)/2)`, `(1 + a^2)^tanh(b)`, ...), and the arguments are
earlier names or constants. Some statements are `let` intermediates, the last is always
an output.

What is checked, each against an independent reference:
- the forward-mode Jacobian equals the reverse-mode one (kinks included, evaluated right
  on them: both modes must follow the same conventions);
- jvp with unit tangents gives the columns, vjp with unit cotangents the rows (against
  the Jacobian of the other mode), and both are linear in the seed;
- the Hessian is symmetric and matches central differences of the gradient;
- the Jacobian matches Richardson-extrapolated central differences of the values, for
  smooth programs anywhere and for programs with abs/sign/relu/min/max at points whose
  finite-difference stencil stays on one side of every switch.

Run with `HYPOTHESIS_PROFILE=long` for many more examples.
"""

from __future__ import annotations

import math
import os
import string
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

import jacli
from jacli.prims import PRIMITIVES

settings.register_profile(
    "ci", max_examples=60, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "long", max_examples=2000, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
#: Applied to each test here (not loaded globally, so other modules keep their settings).
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

VARS = ("x", "y", "z")
CONSTANTS = {"0": 0.0, "0.5": 0.5, "2": 2.0, "pi": math.pi}

#: Per user-facing primitive: templates whose every instance is defined (and, outside
#: KINKS, smooth) for all real arguments. {0}, {1}, ... are names or constants.
TEMPLATES: dict[str, list[str]] = {
    "add": ["{0} + {1}"],
    "sub": ["{0} - {1}"],
    "mul": ["{0} * {1}"],
    "div": ["{0} / (1 + {1}^2)", "{0} / (2 + sin({1}))"],
    "neg": ["-{0}"],
    "pow": ["(1 + {0}^2)^tanh({1})", "{0}^3", "pow(2 + cos({0}), {1})"],
    "sin": ["sin({0})"],
    "cos": ["cos({0})"],
    "tan": ["tan(tanh({0}))"],
    "asin": ["asin(tanh({0})/2)"],
    "acos": ["acos(tanh({0})/2)"],
    "atan": ["atan({0})"],
    "atan2": ["atan2({0}, 1 + {1}^2)", "atan2(1 + {0}^2, {1})"],
    "hypot": ["hypot({0}, 1 + {1}^2)"],
    "sinh": ["sinh({0})"],
    "cosh": ["cosh({0})"],
    "tanh": ["tanh({0})"],
    "asinh": ["asinh({0})"],
    "acosh": ["acosh(2 + {0}^2)"],
    "atanh": ["atanh(tanh({0})/2)"],
    "exp": ["exp({0})"],
    "expm1": ["expm1({0})"],
    "log": ["log(1 + {0}^2)"],
    "log1p": ["log1p({0}^2)"],
    "log2": ["log2(1 + {0}^2)"],
    "log10": ["log10(1 + {0}^2)"],
    "sqrt": ["sqrt(1 + {0}^2)"],
    "cbrt": ["cbrt(tanh({0}) - 2)", "cbrt(1 + {0}^2)"],
    "sigmoid": ["sigmoid({0})"],
    "softplus": ["softplus({0})"],
    # Not differentiable where the argument crosses 0 / where arguments tie.
    "abs": ["abs({0})"],
    "sign": ["sign({0})"],
    "relu": ["relu({0})"],
    "min": ["min({0}, {1})", "min({0}, {1}, {2})"],
    "max": ["max({0}, {1})", "max({0}, {1}, {2})"],
}
KINKS = ("abs", "sign", "relu", "min", "max")
ALL_PRIMS = sorted(TEMPLATES)
SMOOTH_PRIMS = sorted(p for p in TEMPLATES if p not in KINKS)


def _arity(template: str) -> int:
    return 1 + max(int(field) for _, field, _, _ in string.Formatter().parse(template)
                   if field is not None)


@dataclass
class Generated:
    text: str                            # the program under test (with `let`s)
    all_outputs_text: str                # the same statements, every one an output
    outputs: list[str]
    kinks: list[tuple[str, list[str]]]   # (primitive, its raw argument tokens)

    def __repr__(self) -> str:           # what hypothesis prints for a failing example
        return f"Generated({self.text!r})"


@st.composite
def programs(draw, prims: list[str], max_statements: int = 6,
             with_kink: bool = False) -> Generated:
    """A random program of up to `max_statements` statements using `prims`; with
    `with_kink`, one statement (at a random place) is sure to use a kink primitive."""
    count = draw(st.integers(1, max_statements))
    forced = draw(st.integers(1, count)) if with_kink else 0
    names = list(VARS)
    lines, all_lines, outputs, kinks = [], [], [], []
    for k in range(1, count + 1):
        prim = draw(st.sampled_from(KINKS if k == forced else prims))
        template = draw(st.sampled_from(TEMPLATES[prim]))
        arity = _arity(template)
        token = st.one_of(st.sampled_from(names), st.sampled_from(names),
                          st.sampled_from(names), st.sampled_from(sorted(CONSTANTS)))
        args = draw(st.lists(token, min_size=arity, max_size=arity,
                             unique=prim in ("min", "max")))
        name = f"t{k}"
        body = template.format(*args)
        is_let = k < count and draw(st.integers(0, 9)) < 3
        lines.append(f"{'let ' if is_let else ''}{name} = {body}")
        all_lines.append(f"{name} = {body}")
        if not is_let:
            outputs.append(name)
        if prim in KINKS:
            kinks.append((prim, args))
        names.append(name)
    return Generated("\n".join(lines), "\n".join(all_lines), outputs, kinks)


COORDINATE = st.one_of(
    st.sampled_from([0.0, 0.5, -0.5, 1.0, -1.0, 1.5, -1.5]),
    st.floats(-1.5, 1.5, allow_nan=False, allow_infinity=False))
POINT = st.fixed_dictionaries({v: COORDINATE for v in VARS})
BATCH = st.lists(POINT, min_size=1, max_size=4)


def as_arrays(points: list[dict]) -> dict[str, np.ndarray]:
    return {v: np.array([p[v] for p in points]) for v in VARS}


def compile_generated(gen: Generated, batched: bool = False):
    note(gen.text)
    program = jacli.compile(gen.text)
    if batched:  # without variables there is nothing to batch over: one unbatched result
        assume(program.variables)
    return program


def close(a, b, rtol: float, atol: float) -> None:
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True)


def scale(*arrays) -> float:
    finite = [np.abs(a[np.isfinite(a)]).max(initial=0.0) for a in map(np.asarray, arrays)]
    return 1.0 + max(finite, default=0.0)


# --- the generator itself -------------------------------------------------------------------

def test_templates_cover_every_user_primitive_and_use_it():
    user = {name for name, p in PRIMITIVES.items() if not p.internal and p.shape is None}
    assert set(TEMPLATES) == user, "a primitive has no template (or a template no primitive)"
    for prim, templates in TEMPLATES.items():
        for template in templates:
            text = template.format(*VARS[:_arity(template)])
            program = jacli.compile(text)
            ops = {node.op for node in program.tape.nodes}
            assert prim in ops, (prim, text, ops)


# --- forward mode == reverse mode ------------------------------------------------------------

@PROFILE
@given(programs(ALL_PRIMS), BATCH)
def test_forward_jacobian_equals_reverse_jacobian(gen, points):
    program = compile_generated(gen, batched=True)
    point = as_arrays(points)
    reverse = program.jacobian(point, mode="reverse")
    forward = program.jacobian(point, mode="forward")
    auto = program.jacobian(point, mode="auto")
    assert forward.inputs == reverse.inputs == program.variables
    assert forward.outputs == reverse.outputs == gen.outputs
    assert forward.jacobian.shape == (len(points), len(gen.outputs), len(program.variables))
    np.testing.assert_array_equal(forward.value, reverse.value)
    atol = 1e-12 * scale(reverse.jacobian)
    close(forward.jacobian, reverse.jacobian, 1e-12, atol)
    close(auto.jacobian, reverse.jacobian, 1e-12, atol)


@PROFILE
@given(programs(ALL_PRIMS), BATCH)
def test_jvp_unit_tangents_give_columns_and_vjp_unit_cotangents_rows(gen, points):
    program = compile_generated(gen, batched=True)
    point = as_arrays(points)
    inputs, outputs = program.variables, gen.outputs
    forward = program.jacobian(point, mode="forward").jacobian    # (B, m, n)
    reverse = program.jacobian(point, mode="reverse").jacobian
    atol = 1e-12 * scale(forward, reverse)
    for j, name in enumerate(inputs):
        tangent = {v: (1.0 if v == name else 0.0) for v in inputs}
        result = program.jvp(point, tangent)
        assert result.jvp.shape == (len(points), len(outputs))
        close(result.jvp, reverse[:, :, j], 1e-12, atol)
    for i, name in enumerate(outputs):
        cotangent = {o: (1.0 if o == name else 0.0) for o in outputs}
        result = program.vjp(point, cotangent)
        assert result.vjp.shape == (len(points), len(inputs))
        close(result.vjp, forward[:, i, :], 1e-12, atol)


@PROFILE
@given(programs(ALL_PRIMS), POINT,
       st.lists(st.floats(-2, 2, allow_nan=False), min_size=3, max_size=3),
       st.lists(st.floats(-2, 2, allow_nan=False), min_size=6, max_size=6))
def test_jvp_and_vjp_are_linear_in_the_seed(gen, point, v, u):
    program = compile_generated(gen)
    inputs, outputs = program.variables, gen.outputs
    reverse = program.jacobian(point, mode="reverse").jacobian    # (m, n)
    forward = program.jacobian(point, mode="forward").jacobian
    tangent = dict(zip(inputs, v))
    cotangent = dict(zip(outputs, u))
    v_vec = np.array([tangent[name] for name in inputs])
    u_vec = np.array([cotangent.get(name, 0.0) for name in outputs])
    expected_jvp = reverse @ v_vec if inputs else np.zeros(len(outputs))
    expected_vjp = u_vec @ forward if outputs else np.zeros(len(inputs))
    atol = 1e-12 * scale(reverse) * scale(v_vec, u_vec) * max(len(inputs), len(outputs), 1)
    if tangent:
        close(program.jvp(point, tangent).jvp, expected_jvp, 1e-11, atol)
    close(program.vjp(point, cotangent).vjp, expected_vjp, 1e-11, atol)


# --- against finite differences ---------------------------------------------------------------

H = 2.0 ** -12          # exactly representable steps: x +- H and x +- H/2
SHIFTS = (1.0, -1.0, 0.5, -0.5)
VALUE_BOUND = 1e3       # larger values make the differences' rounding error too big to judge


def stencil(point: dict, inputs: list[str]) -> dict[str, np.ndarray]:
    """The point, then x +- H e_j and x +- H/2 e_j for every input j: 1 + 4n points."""
    columns = {v: [point[v]] for v in point}
    for name in inputs:
        for s in SHIFTS:
            for v in point:
                columns[v].append(point[v] + s * H if v == name else point[v])
    return {v: np.array(c) for v, c in columns.items()}


def richardson(samples: np.ndarray, n: int) -> np.ndarray:
    """Central differences from the stencil samples (1 + 4n, ...), extrapolated:
    (4 D(H/2) - D(H)) / 3; the result is (..., n), the last axis the input."""
    columns = []
    for j in range(n):
        plus, minus, half_plus, half_minus = samples[1 + 4 * j: 5 + 4 * j]
        d1 = (plus - minus) / (2 * H)
        d2 = (half_plus - half_minus) / H
        columns.append((4 * d2 - d1) / 3)
    return np.stack(columns, axis=-1)


def stays_off_kinks(gen: Generated, all_outputs, values: np.ndarray,
                    point_values: dict[str, np.ndarray]) -> bool:
    """Whether every abs/sign/relu argument keeps one strict sign, and every min/max one
    strict winner, over the whole stencil (so each is smooth there)."""
    def series(token: str) -> np.ndarray:
        if token in CONSTANTS:
            return np.full(len(values), CONSTANTS[token])
        if token in point_values:
            return point_values[token]
        return values[:, all_outputs.index(token)]

    for prim, args in gen.kinks:
        columns = np.stack([series(a) for a in args])          # (k, S)
        if prim in ("abs", "sign", "relu"):
            a = columns[0]
            if not (np.all(a > 1e-9) or np.all(a < -1e-9)):
                return False
        else:
            ordered = np.sort(columns, axis=0)
            winner = np.argmax(columns, 0) if prim == "max" else np.argmin(columns, 0)
            gap = (ordered[-1] - ordered[-2]) if prim == "max" else (ordered[1] - ordered[0])
            if np.any(winner != winner[0]) or np.any(gap <= 1e-9):
                return False
    return True


def check_against_differences(gen: Generated, point: dict, with_kinks: bool) -> None:
    program = compile_generated(gen)
    inputs = program.variables
    n = len(inputs)
    points = stencil(point, inputs)
    size, m = len(points["x"]), len(gen.outputs)
    values = np.broadcast_to(program.eval(points).value, (size, m))
    assume(np.all(np.isfinite(values)) and np.abs(values).max(initial=0) < VALUE_BOUND)
    if with_kinks:
        everything = jacli.compile(gen.all_outputs_text)
        all_values = np.broadcast_to(everything.eval(points).value,
                                     (size, len(everything.outputs)))
        assume(stays_off_kinks(gen, everything.outputs, all_values, points))

    # Jacobian against differences of the values.
    ad = program.jacobian(point).jacobian                    # (m, n), reverse mode
    fd = richardson(values, n) if n else ad
    close(ad, fd, 1e-6, 1e-7 * scale(values))

    # Hessian of the last output: symmetric, and differences of the (AD) gradient.
    output = gen.outputs[-1]
    wrt = program.needed_variables([output])
    if not wrt:
        return
    result = program.hessian(point, wrt=wrt, output=output)
    hessian = result.hessian
    assert hessian.shape == (len(wrt), len(wrt))
    gradient_points = stencil(point, wrt)
    gradients = program.grad(gradient_points, wrt=wrt, output=output).gradient   # (S, n)
    assume(np.abs(gradients).max() < VALUE_BOUND)
    close(result.gradient, gradients[0], 1e-12, 1e-12 * scale(gradients))
    close(hessian, hessian.T, 1e-10, 1e-10 * scale(hessian))
    fd_hessian = richardson(gradients, len(wrt))             # [i, j] = d g_i / d x_j
    close(hessian, fd_hessian, 1e-6, 1e-7 * scale(gradients))


@PROFILE
@given(programs(SMOOTH_PRIMS), POINT)
def test_smooth_programs_match_central_differences(gen, point):
    check_against_differences(gen, point, with_kinks=False)


@PROFILE
@given(programs(ALL_PRIMS, with_kink=True), POINT)
def test_programs_with_kinks_match_central_differences_away_from_them(gen, point):
    check_against_differences(gen, point, with_kinks=True)


# --- the kink conventions themselves, hand-derived, both modes --------------------------------

@pytest.mark.parametrize("text, at, expected", [
    ("abs(x)", 0.0, 0.0),
    ("sign(x)", 0.7, 0.0),
    ("relu(x)", 0.0, 0.0),
    ("max(x, 0.5)", 0.5, 0.5),
    ("max(x, 2*x)", 0.0, 1.5),
    ("min(x, -x, 0)", 0.0, (1 - 1 + 0) / 3),
])
def test_kink_conventions_in_both_modes(text, at, expected):
    program = jacli.compile(text)
    for mode in ("reverse", "forward"):
        assert program.jacobian({"x": at}, mode=mode).jacobian[0, 0] == expected, mode
    assert program.jvp({"x": at}, {"x": 1.0}).jvp[0] == expected
    assert program.vjp({"x": at}, {"f1": 1.0}).vjp[0] == expected
