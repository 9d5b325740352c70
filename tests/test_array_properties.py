"""Property tests on randomly generated array programs (hypothesis), as
tests/test_properties.py does for scalar ones.

A program is a list of SSA-style statements `t_k = TEMPLATE(args)` over variables of
fixed shapes (a: (), v: (3,), w: (2,), M: (2, 3), S: (3, 3), r: (1, 3), c: (2, 1)).
The generator tracks every name's shape (by NumPy's own shape rules, never jacli's) and
only picks arguments a template accepts: elementwise functions with broadcasting, `@`,
dot, outer, sum/mean/prod/logsumexp/norm/max/min over all elements or an axis, softmax,
indexing and slices, transpose, literals, diag/trace/det, and inv/solve of matrices made
well-conditioned (diag([3, 3, 3]) + tanh(X) is strictly diagonally dominant), empty
slices (x[5:]) too. The last statement is always a scalar, so every program has a Hessian.

What is checked, each against an independent reference:
- forward-mode Jacobian == reverse-mode Jacobian, over a batch of points;
- jvp with unit tangents gives the columns, vjp with unit cotangents the rows (the seeds
  batched over the points, one seed per point, and one unbatched call);
- the Hessian is symmetric and matches central differences of the gradient (not where
  det takes a matrix that may be singular: its second derivatives take X^-1);
- the Jacobian matches Richardson-extrapolated central differences of the values, for
  smooth programs anywhere and for programs with abs/relu/max/min (elementwise and over
  axes) at points whose stencil stays on one side of every switch;
- broadcasting VJPs on every pair of the shapes (), (1,), (3,), (1, 3), (2, 1), (2, 3)
  for + - * / ^ and atan2, hypot: against partials derived here by hand, summed over the
  broadcast axes by NumPy, and against differences of the values (the JVPs and the
  Hessians of u . f too);
- a few random programs through the command line (jac --mode forward and hess, JSON),
  against differences of the API's values and gradients.
The failing examples the properties found are kept as tests at the end.

Run with `HYPOTHESIS_PROFILE=long` for many more examples.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, note, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import jacli
from test_properties import H as SCALAR_STEP, richardson   # the same stencil layout

settings.register_profile(
    "array-ci", max_examples=25, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.register_profile(
    "array-long", max_examples=1000, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
PROFILE = settings.get_profile(
    "array-long" if os.environ.get("HYPOTHESIS_PROFILE") == "long" else "array-ci")

VARIABLES = {"a": (), "v": (3,), "w": (2,), "M": (2, 3), "S": (3, 3), "r": (1, 3),
             "c": (2, 1)}
CONSTANTS = {"0.5": 0.5, "2": 2.0, "pi": math.pi}
MAX_SIZE = 12    # no intermediate of more elements (keeps stencils and Jacobians small)


def numpy_shape(function, *shapes):
    """The shape NumPy gives `function` of arrays of `shapes`, or None where it refuses."""
    rng = np.random.default_rng(0)   # random entries: no singular matrix
    try:
        with np.errstate(all="ignore"):
            return np.shape(function(*[rng.standard_normal(s) for s in shapes]))
    except (ValueError, IndexError, np.linalg.LinAlgError):
        return None


# --- templates: (name, shape) pool -> (text, result shape, kink) or None ----------------------

UNARY = ["sin({0})", "cos({0})", "tanh({0})", "exp(tanh({0}))", "log(1 + {0}^2)",
         "sqrt(1 + {0}^2)", "sigmoid({0})", "softplus({0})", "{0}^3", "-{0}", "atan({0})",
         "asinh({0})", "{0}^2"]
BINARY = ["{0} + {1}", "{0} - {1}", "{0} * {1}", "{0} / (1 + {1}^2)", "(1 + {0}^2)^tanh({1})",
          "atan2({0}, 1 + {1}^2)", "hypot({0}, 1 + {1}^2)"]   # broadcasting, all of them
REDUCTIONS = ["sum({0}{axis})", "mean({0}{axis})", "prod({0}{axis})", "logsumexp({0}{axis})",
              "norm(1 + {0}^2{axis})"]
KINK_UNARY = ["abs({0})", "relu({0})"]
SLICES = ["", "1:", ":-1", "::-1", "::2", "-2:", "1::-1", "5:"]   # 5: is empty (clipped)


@dataclass
class Kink:
    kind: str            # "sign" (abs, relu), "max"/"min" elementwise, "amax"/"amin"
    #                      reductions; "det" of a matrix that may be singular (no Hessian)
    args: list[str]      # names or constants
    axis: int | None = None


@dataclass
class Generated:
    text: str
    all_outputs_text: str                  # every statement an output (for kink checks)
    outputs: list[str]
    kinks: list[Kink] = field(default_factory=list)
    shapes: dict[str, tuple] = field(default_factory=dict)   # every statement's, by NumPy

    def __repr__(self) -> str:
        return f"Generated({self.text!r})"


def _choose(draw, options):
    return draw(st.sampled_from(options)) if options else None


def _axis_text(draw, shape) -> tuple[str, int | None]:
    if not shape or draw(st.booleans()):
        return "", None
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    return f", axis={axis}", axis


def _unary(draw, pool):
    name, shape = _choose(draw, pool)
    return draw(st.sampled_from(UNARY)).format(name), shape, None


def _binary(draw, pool):
    x, sx = _choose(draw, pool + _constants())
    partners = [(y, sy) for y, sy in pool + _constants()
                if numpy_shape(np.add, sx, sy) is not None]
    y, sy = _choose(draw, partners)
    template = draw(st.sampled_from(BINARY))
    return template.format(x, y), numpy_shape(np.add, sx, sy), None


def _literal_operand(draw, pool):
    """A literal in an elementwise operation (`v * [1, -2, 0.5]`) or a product
    (`M @ [[-1, 1], [0, -1], [1, 0]]`)."""
    if draw(st.booleans()):
        x, sx = _choose(draw, [p for p in pool if p[1] and p[1][-1]])   # [] is no literal
        k = sx[-1]
        rows = ", ".join("[" + ", ".join(str((i + 2 * j) % 3 - 1) for j in range(2)) + "]"
                         for i in range(k))
        return f"{x} @ [{rows}]", numpy_shape(np.matmul, sx, (k, 2)), None
    x, sx = _choose(draw, [p for p in pool if p[1] and p[1][-1]])
    n = sx[-1] if sx[-1] != 1 else draw(st.sampled_from([2, 3]))
    numbers = [draw(st.sampled_from(["1", "-2", "0.5", "3"])) for _ in range(n)]
    return f"{x} * [{', '.join(numbers)}]", numpy_shape(np.multiply, sx, (n,)), None


def _matmul(draw, pool):
    pairs = [(x, sx, y, sy) for (x, sx), (y, sy) in itertools.product(pool, pool)
             if sx and sy and numpy_shape(np.matmul, sx, sy) is not None]
    if not pairs:
        return None
    x, sx, y, sy = _choose(draw, pairs)
    return f"{x} @ {y}", numpy_shape(np.matmul, sx, sy), None


def _vector_products(draw, pool):
    vectors = [p for p in pool if len(p[1]) == 1]
    if not vectors:
        return None
    x, sx = _choose(draw, vectors)
    if draw(st.booleans()):
        same = [p for p in vectors if p[1] == sx]
        y, _ = _choose(draw, same)
        return f"dot({x}, {y})", (), None
    y, sy = _choose(draw, vectors)
    return f"outer({x}, {y})", (sx[0], sy[0]), None


def _reduction(draw, pool):
    x, sx = _choose(draw, pool)
    axis, value = _axis_text(draw, sx)
    text = draw(st.sampled_from(REDUCTIONS)).format(x, axis=axis)
    return text, numpy_shape(lambda a: np.sum(a, axis=value), sx), None


def _softmax(draw, pool):
    x, sx = _choose(draw, pool)
    axis, _ = _axis_text(draw, sx)
    return f"softmax({x}{axis})", sx, None


def _index(draw, pool):
    x, sx = _choose(draw, [p for p in pool if p[1]])
    items = []
    for size in sx[:draw(st.integers(1, len(sx)))]:
        if draw(st.booleans()):
            items.append(str(draw(st.integers(-size, size - 1))))
        else:
            items.append(draw(st.sampled_from(SLICES)) or ":")
    key = tuple(int(i) if ":" not in i else slice(*[int(b) if b else None
                                                    for b in i.split(":")]) for i in items)
    shape = np.ones(sx)[key].shape
    return f"{x}[{', '.join(items)}]", shape, None


def _transpose(draw, pool):
    x, sx = _choose(draw, pool)
    return f"transpose({x})", sx[::-1], None


def _literal(draw, pool):
    x, sx = _choose(draw, [p for p in pool if len(p[1]) <= 1])
    same = [p for p in pool if p[1] == sx] + (_constants() if sx == () else [])
    items = [x] + [_choose(draw, same)[0] for _ in range(draw(st.integers(1, 2)))]
    if sx == () and draw(st.booleans()):   # a 2 x 2 matrix of scalars and constants
        return f"[[{items[0]}, 1], [{items[-1]}, -0.5]]", (2, 2), None
    return "[" + ", ".join(items) + "]", (len(items),) + sx, None


def _matrix(draw, pool):
    squares = [p for p in pool if len(p[1]) >= 2 and p[1][-1] == p[1][-2]]
    matrices = [p for p in pool if len(p[1]) == 2]
    kind = draw(st.sampled_from(["det", "inv", "solve", "trace", "diag"]))
    if kind == "diag":
        x, sx = _choose(draw, [p for p in pool if len(p[1]) in (1, 2)])
        return f"diag({x})", (sx[0], sx[0]) if len(sx) == 1 else (min(sx),), None
    if kind == "trace":
        if not matrices:
            return None
        x, _ = _choose(draw, matrices)
        return f"trace({x})", (), None
    if not squares:
        return None
    x, sx = _choose(draw, squares)
    n = sx[-1]
    if n == 0:   # 0 x 0, of an empty slice: det is 1, inv and solve empty, as in NumPy
        return {"det": f"det({x})", "inv": f"inv({x})"}.get(kind, f"trace({x})"), \
            sx[:-2] if kind != "inv" else sx, None
    well = f"(diag([{', '.join(['3'] * n)}]) + tanh({x}))"   # strictly diagonally dominant
    if kind == "det":
        if x in VARIABLES or draw(st.booleans()):
            return f"det({well if draw(st.booleans()) else x})", sx[:-2], None
        # any matrix, singular too (outer(v, v), [v, v, v]): det's gradient is finite
        # there, its Hessian is not computed (it takes X^-1): first order only
        return f"det({x})", sx[:-2], Kink("det", [x])
    if kind == "inv":
        return f"inv({well})", sx, None
    rhs = [p for p in pool if p[1] and numpy_shape(np.linalg.solve, sx, p[1]) is not None]
    if not rhs:
        return None
    y, sy = _choose(draw, rhs)
    return f"solve({well}, {y})", numpy_shape(np.linalg.solve, sx, sy), None


def _kink(draw, pool):
    kind = draw(st.sampled_from(["unary", "max", "min", "amax", "amin"]))
    if kind == "unary":
        x, sx = _choose(draw, pool)
        return draw(st.sampled_from(KINK_UNARY)).format(x), sx, Kink("sign", [x])
    if kind in ("max", "min"):
        x, sx = _choose(draw, pool)
        partners = [p for p in pool + _constants()
                    if p[0] != x and numpy_shape(np.add, sx, p[1]) is not None]
        y, sy = _choose(draw, partners)
        return f"{kind}({x}, {y})", numpy_shape(np.add, sx, sy), Kink(kind, [x, y])
    x, sx = _choose(draw, pool)
    axis, value = _axis_text(draw, sx)
    shape = numpy_shape(lambda a: np.max(a, axis=value), sx)
    if shape is None:   # no elements to take the largest of
        return None
    return f"{kind[1:]}({x}{axis})", shape, Kink(kind, [x], value)


def _constants():
    return [(c, ()) for c in CONSTANTS]


SMOOTH = [_unary, _binary, _literal_operand, _matmul, _vector_products, _reduction,
          _softmax, _index, _transpose, _literal, _matrix]
FINAL = ["sum({0})", "mean({0}^2)", "logsumexp({0})", "sum(tanh({0}) * {0})", "prod(cos({0}))",
         "norm(1 + {0}^2)"]


@st.composite
def programs(draw, max_statements: int = 5, kinks: bool = True,
             with_kink: bool = False) -> Generated:
    """A random array program of up to `max_statements` statements and a final scalar;
    with `with_kink` one statement is sure to be a kink (abs/relu/max/min)."""
    count = draw(st.integers(1, max_statements))
    forced = draw(st.integers(1, count)) if with_kink else 0
    pool = [(name, shape) for name, shape in VARIABLES.items()]
    lines, all_lines, outputs, found = [], [], [], []
    builders = SMOOTH + ([_kink] if kinks else [])
    for k in range(1, count + 2):
        name = f"t{k}"
        if k == count + 1:   # the final scalar
            x, _ = _choose(draw, pool[len(VARIABLES):] or pool)
            body, shape, kink = draw(st.sampled_from(FINAL)).format(x), (), None
        else:
            made = None
            while made is None or math.prod(made[1]) > MAX_SIZE:
                builder = _kink if k == forced else draw(st.sampled_from(builders))
                made = builder(draw, pool)
            body, shape, kink = made
        is_let = k <= count and draw(st.integers(0, 9)) < 3
        lines.append(f"{'let ' if is_let else ''}{name} = {body}")
        all_lines.append(f"{name} = {body}")
        if not is_let:
            outputs.append(name)
        if kink is not None:
            found.append(kink)
        pool.append((name, shape))
    return Generated("\n".join(lines), "\n".join(all_lines), outputs, found,
                     dict(pool[len(VARIABLES):]))


# --- points ---------------------------------------------------------------------------------

COORDINATE = st.one_of(
    st.sampled_from([0.0, 0.5, -0.5, 1.0, -1.0, 1.5, -1.5]),
    st.floats(-1.5, 1.5, allow_nan=False, allow_infinity=False))


def points(batch: int | None = None):
    """One point (each variable its value), or `batch` points (the points first)."""
    lead = () if batch is None else (batch,)
    return st.fixed_dictionaries({
        name: hnp.arrays(np.float64, lead + shape, elements=COORDINATE)
        for name, shape in VARIABLES.items()})


BATCH = st.integers(1, 3).flatmap(lambda b: points(b))


def used(program, point: dict) -> dict:
    return {name: point[name] for name in program.variables}


def compile_generated(gen: Generated):
    note(gen.text)
    return jacli.compile(gen.text)


def close(a, b, rtol: float, atol: float) -> None:
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True)


def scale(*arrays) -> float:
    finite = [np.abs(a[np.isfinite(a)]).max(initial=0.0) for a in map(np.asarray, arrays)]
    return 1.0 + max(finite, default=0.0)


def components(program, point: dict) -> int:
    return sum(int(np.prod(np.shape(point[name]))) for name in program.variables)


# --- the generator itself -------------------------------------------------------------------

def test_the_generator_reaches_every_array_form():
    """Every form the brief lists turns up among a hundred programs, and each program's
    shapes (tracked here by NumPy's rules) are the shapes jacli infers."""
    from hypothesis import find  # noqa: F401  (the strategy is drawn below with a seed)

    seen = set()
    words = ["@", "sum(", "mean(", "prod(", "logsumexp(", "norm(", "max(", "min(", "softmax(",
             "axis=", "[", "]", "transpose(", "det(", "inv(", "solve(", "trace(", "diag(",
             "dot(", "outer(", "::-1", ":,", "^"]

    @settings(max_examples=100, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(programs())
    def collect(gen):
        program = jacli.compile(gen.all_outputs_text)
        shapes = program.shapes({n: np.zeros(s) for n, s in VARIABLES.items()
                                 if n in program.variables}, batch=False)
        assert {name: shapes[name] for name in gen.shapes} == gen.shapes
        assert gen.shapes[gen.outputs[-1]] == ()
        seen.update(w for w in words if w in gen.text)

    collect()
    assert seen == set(words), set(words) - seen


# --- forward mode == reverse mode; unit seeds -------------------------------------------------

@PROFILE
@given(programs(), BATCH)
def test_forward_jacobian_equals_reverse_jacobian(gen, batch):
    program = compile_generated(gen)
    point = used(program, batch)
    assume(point)   # without variables there is nothing to batch over
    reverse = program.jacobian(point, mode="reverse", batch=True)
    forward = program.jacobian(point, mode="forward", batch=True)
    size = len(next(iter(batch.values())))
    m = sum(math.prod(gen.shapes[o]) for o in gen.outputs)
    n = sum(math.prod(VARIABLES[v]) for v in program.variables)
    assert forward.jacobian.shape == reverse.jacobian.shape == (size, m, n)
    np.testing.assert_array_equal(forward.value, reverse.value)
    atol = 1e-12 * scale(reverse.jacobian)
    close(forward.jacobian, reverse.jacobian, 1e-11, atol)


def unit_seeds(shapes: dict[str, tuple]) -> dict[str, np.ndarray]:
    """One unit direction per component, the directions first: for x of shape (3,) and
    y of (), x gets rows e0, e1, e2, 0 and y 0, 0, 0, 1."""
    total = sum(math.prod(s) for s in shapes.values())
    eye, start, seeds = np.eye(total), 0, {}
    for name, shape in shapes.items():
        size = math.prod(shape)
        seeds[name] = eye[:, start:start + size].reshape((total,) + shape)
        start += size
    return seeds


@PROFILE
@given(programs(), points())
def test_jvp_unit_tangents_give_columns_and_vjp_unit_cotangents_rows(gen, point):
    program = compile_generated(gen)
    point = used(program, point)
    assume(point)
    jacobian = program.jacobian(point, batch=False).jacobian            # (m, n), reverse
    forward = program.jacobian(point, mode="forward", batch=False).jacobian
    atol = 1e-12 * scale(jacobian)
    # every unit tangent at once: one point per direction (the seeds batched like the point)
    tangents = unit_seeds({name: np.shape(value) for name, value in point.items()})
    n = len(next(iter(tangents.values())))
    repeated = {name: np.broadcast_to(value, (n,) + np.shape(value)) for name, value in point.items()}
    columns = program.jvp(repeated, tangents, batch=True).jvp           # (n, m)
    close(columns.T, jacobian, 1e-11, atol)
    cotangents = unit_seeds({o: gen.shapes[o] for o in gen.outputs})
    m = len(next(iter(cotangents.values())))
    repeated = {name: np.broadcast_to(value, (m,) + np.shape(value)) for name, value in point.items()}
    rows = program.vjp(repeated, cotangents, batch=True).vjp            # (m, n)
    close(rows, forward, 1e-11, atol)
    # and one seed at one point, unbatched: the last column and the first row
    last = {name: seed[-1] for name, seed in tangents.items()}
    close(program.jvp(point, last, batch=False).jvp, jacobian[:, -1], 1e-11, atol)
    first = {name: seed[0] for name, seed in cotangents.items()}
    close(program.vjp(point, first, batch=False).vjp, forward[0], 1e-11, atol)


# --- against finite differences ---------------------------------------------------------------

H = SCALAR_STEP         # exactly representable steps: x +- H and x +- H/2 (richardson's)
SHIFTS = (1.0, -1.0, 0.5, -0.5)
VALUE_BOUND = 1e3       # larger values make the differences' rounding error too big to judge


def stencil(point: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The point, then the point with component j moved by +-H and +-H/2, for every
    component j of every variable in order: 1 + 4n points, the points first."""
    flat = np.concatenate([np.ravel(v) for v in point.values()])
    n = len(flat)
    rows = [flat]
    for j in range(n):
        for s in SHIFTS:
            moved = flat.copy()
            moved[j] += s * H
            rows.append(moved)
    rows = np.array(rows)
    out, start = {}, 0
    for name, value in point.items():
        size = np.size(value)
        out[name] = rows[:, start:start + size].reshape((len(rows),) + np.shape(value))
        start += size
    return out


def by_name(result) -> dict[str, np.ndarray]:
    """A batched Result's values split per output, each (B, *shape)."""
    out, start = {}, 0
    for name in result.outputs:
        shape = tuple(result.shapes[name])
        size = math.prod(shape)
        out[name] = result.value[:, start:start + size].reshape(result.value.shape[:1] + shape)
        start += size
    return out


def stays_off_kinks(gen: Generated, values: dict[str, np.ndarray]) -> bool:
    """Whether every abs/relu argument keeps one strict sign and every max/min (elementwise
    or over an axis) one strict winner per element, over the whole stencil."""
    def series(token: str) -> np.ndarray:
        if token in CONSTANTS:
            return np.full((len(next(iter(values.values()))),), CONSTANTS[token])
        return values[token]

    for kink in gen.kinks:
        if kink.kind == "det":
            continue
        args = [series(a) for a in kink.args]
        if kink.kind == "sign":
            (x,) = args
            if not (np.all(np.abs(x) > 1e-9) and np.all(np.sign(x) == np.sign(x[:1]))):
                return False
            continue
        if kink.kind in ("max", "min"):
            rank = max(a.ndim for a in args) - 1
            lifted = [a.reshape(a.shape[:1] + (1,) * (rank - a.ndim + 1) + a.shape[1:])
                      for a in args]
            candidates = np.stack(np.broadcast_arrays(*lifted), axis=-1)   # (S, ..., k)
        else:
            (x,) = args
            if kink.axis is None or x.ndim == 1:
                candidates = x.reshape(len(x), 1, -1)
            else:
                candidates = np.moveaxis(x, 1 + kink.axis % (x.ndim - 1), -1)
        if "max" in kink.kind:
            candidates = -candidates
        order = np.sort(candidates, axis=-1)
        winner = np.argmin(candidates, axis=-1)
        gap = order[..., 1] - order[..., 0] if order.shape[-1] > 1 else np.inf
        if np.any(winner != winner[:1]) or np.any(gap <= 1e-9):
            return False
    return True


def random_point(seed: int) -> dict[str, np.ndarray]:
    """Values uniform in [-1.5, 1.5] (no ties, no zeros: the differences' stencil of a
    kink's argument then rarely crosses it)."""
    rng = np.random.default_rng(seed)
    return {name: rng.uniform(-1.5, 1.5, shape) for name, shape in VARIABLES.items()}


def check_against_differences(gen: Generated, seed: int) -> None:
    program = compile_generated(gen)
    full = random_point(seed)
    point = used(program, full)
    assume(point)
    n = components(program, point)
    event(f"{n} input components")
    points = stencil(point)
    size = 1 + 4 * n
    values = program.eval(points, batch=True).value                     # (S, m)
    assume(np.all(np.isfinite(values)) and np.abs(values).max(initial=0) < VALUE_BOUND)
    if gen.kinks:
        everything = jacli.compile(gen.all_outputs_text)
        at = {name: points.get(name, np.broadcast_to(full[name], (size,) + full[name].shape))
              for name in everything.variables}
        every = everything.eval(at, batch=True)
        assume(stays_off_kinks(gen, {**at, **by_name(every)}))

    # Jacobian against differences of the values; its blocks shaped as jax.jacobian's
    result = program.jacobian(point, batch=False)                       # reverse mode
    fd = richardson(values, n)                                          # (m, n)
    close(result.jacobian, fd, 1e-6, 1e-7 * scale(values))
    row = 0
    for o in gen.outputs:
        so, col = gen.shapes[o], 0
        for i in program.variables:
            si = np.shape(point[i])
            block = fd[row:row + math.prod(so), col:col + math.prod(si)].reshape(so + si)
            close(result.blocks[(o, i)], block, 1e-6, 1e-7 * scale(values))
            col += math.prod(si)
        row += math.prod(so)

    # Hessian of the last output (a scalar): symmetric, and differences of the gradient.
    output = gen.outputs[-1]
    wrt = program.needed_variables([output])
    if not wrt or any(kink.kind == "det" for kink in gen.kinks):
        return
    event(f"Hessian over {len(wrt)} variables")
    result = program.hessian(point, wrt=wrt, output=output, batch=False)
    hessian = result.hessian
    k = sum(np.size(point[v]) for v in wrt)
    assert hessian.shape == (k, k)
    gradient_points = stencil({v: point[v] for v in wrt})
    for name in point:    # the other variables stay at the point
        gradient_points.setdefault(name, np.broadcast_to(point[name], (1 + 4 * k,) + np.shape(point[name])))
    gradients = program.grad(gradient_points, wrt=wrt, output=output, batch=True).gradient
    assume(np.abs(gradients).max() < VALUE_BOUND)
    close(result.gradient, gradients[0], 1e-12, 1e-12 * scale(gradients))
    close(hessian, hessian.T, 1e-10, 1e-10 * scale(hessian))
    close(hessian, richardson(gradients, k), 1e-6, 1e-7 * scale(gradients))
    assert size == len(values)


@PROFILE
@given(programs(kinks=False), st.integers(0, 2 ** 32 - 1))
def test_smooth_programs_match_central_differences(gen, seed):
    check_against_differences(gen, seed)


@PROFILE
@given(programs(with_kink=True), st.integers(0, 2 ** 32 - 1))
def test_programs_with_kinks_match_central_differences_away_from_them(gen, seed):
    check_against_differences(gen, seed)


# --- broadcasting VJPs on every pattern of ranks 0-2 -------------------------------------------

BROADCAST_SHAPES = [(), (1,), (3,), (1, 3), (2, 1), (2, 3)]
#: Each operator and two-argument function, with its partials derived by hand, for a > 0
#: (pow) and b != 0 (division).
HAND_PARTIALS = {
    "{a} + {b}": lambda a, b: (np.ones_like(a * b), np.ones_like(a * b)),
    "{a} - {b}": lambda a, b: (np.ones_like(a * b), -np.ones_like(a * b)),
    "{a} * {b}": lambda a, b: (b + 0 * a, a + 0 * b),
    "{a} / {b}": lambda a, b: (1 / b + 0 * a, -a / b ** 2),
    "{a} ^ {b}": lambda a, b: (b * a ** (b - 1), a ** b * np.log(a)),
    "atan2({a}, {b})": lambda a, b: (b / (a * a + b * b), -a / (a * a + b * b)),
    "hypot({a}, {b})": lambda a, b: (a / np.hypot(a, b), b / np.hypot(a, b)),
}


def summed_to(x: np.ndarray, shape: tuple) -> np.ndarray:
    """x summed over the axes broadcasting added to `shape` (NumPy only, by hand)."""
    while x.ndim > len(shape):
        x = x.sum(axis=0)
    for k, size in enumerate(shape):
        if size == 1 and x.shape[k] != 1:
            x = x.sum(axis=k, keepdims=True)
    return x.reshape(shape)


def test_every_pair_of_the_shapes_broadcasts():
    pairs = list(itertools.product(BROADCAST_SHAPES, repeat=2))
    assert all(numpy_shape(np.add, *pair) is not None for pair in pairs) and len(pairs) == 36


@pytest.mark.parametrize("template", list(HAND_PARTIALS))
def test_broadcasting_vjps_and_jvps_sum_over_the_broadcast_axes(template):
    rng = np.random.default_rng(sum(map(ord, template)))
    program = jacli.compile(template.format(a="a", b="b"))
    weighted = jacli.compile(f"sum(u * ({template.format(a='a', b='b')}))")
    for sa, sb in itertools.product(BROADCAST_SHAPES, repeat=2):
        a = rng.uniform(0.5, 1.5, sa)
        b = rng.uniform(0.5, 1.5, sb) * rng.choice([-1, 1], sb)
        shape = np.broadcast_shapes(sa, sb)
        u = rng.standard_normal(shape)
        da, db = (np.broadcast_to(p, shape) for p in HAND_PARTIALS[template](a, b))
        at = {"a": a, "b": b}
        where = f"{template} of {sa} and {sb}"
        result = program.vjp(at, {"f1": u}, batch=False)
        assert result.shapes["f1"] == shape, where
        expected = np.concatenate([summed_to(u * da, sa).ravel(), summed_to(u * db, sb).ravel()])
        np.testing.assert_allclose(result.vjp, expected, rtol=1e-13, atol=1e-13, err_msg=where)
        # the VJP against central differences of u . f (the values, not the derivatives)
        points = stencil(at)
        values = program.eval(points, batch=True).value @ u.ravel()          # (S,)
        np.testing.assert_allclose(result.vjp, richardson(values, a.size + b.size),
                                   rtol=1e-7, atol=1e-8, err_msg=where)
        # the JVP: the tangents broadcast like the values
        ta, tb = rng.standard_normal(sa), rng.standard_normal(sb)
        jvp = program.jvp(at, {"a": ta, "b": tb}, batch=False).jvp
        np.testing.assert_allclose(jvp, (da * ta + db * tb).ravel(), rtol=1e-13, atol=1e-13,
                                   err_msg=where)
        # second order through the broadcasts: the Hessian of u . f, symmetric and the
        # differences of its gradient (u a parameter)
        hessian = weighted.hessian({**at, "u": u}, wrt=["a", "b"], batch=False).hessian
        points["u"] = np.broadcast_to(u, (len(points["a"]),) + shape)
        gradients = weighted.grad(points, wrt=["a", "b"], batch=True).gradient
        np.testing.assert_allclose(gradients[0], expected, rtol=1e-13, atol=1e-13, err_msg=where)
        np.testing.assert_allclose(hessian, hessian.T, rtol=1e-13, atol=1e-13, err_msg=where)
        np.testing.assert_allclose(hessian, richardson(gradients, a.size + b.size),
                                   rtol=1e-7, atol=1e-8, err_msg=where)


# --- a few through the command line -----------------------------------------------------------

def at_option(point: dict[str, np.ndarray]) -> str:
    """`--at` text for the point: nested lists of the numbers' shortest round-trip forms."""
    return ",".join(f"{name}={json.dumps(np.asarray(v).tolist())}" for name, v in point.items())


@settings(PROFILE, max_examples=min(PROFILE.max_examples, 6))
@given(programs(kinks=False, max_statements=4), st.integers(0, 2 ** 32 - 1))
def test_random_programs_through_the_command_line_match_differences(gen, seed):
    from conftest import invoke_jacli

    program = compile_generated(gen)
    point = used(program, random_point(seed))
    assume(point)
    n = components(program, point)
    values = program.eval(stencil(point), batch=True).value
    assume(np.all(np.isfinite(values)) and np.abs(values).max(initial=0) < VALUE_BOUND)
    text = gen.text.replace("\n", "; ")
    code, out, err = invoke_jacli("jac", text, "--at", at_option(point), "--mode", "forward",
                                  "--format", "json")
    assert (code, err) == (0, ""), err
    got = json.loads(out)
    shapes = {**{v: list(np.shape(point[v])) for v in point},
              **{o: list(gen.shapes[o]) for o in gen.outputs}}
    assert got.get("shapes") == (shapes if any(shapes.values()) else None)
    close(np.array(got["jacobian"]).reshape(-1, n), richardson(values, n), 1e-6,
          1e-7 * scale(values))
    # the Hessian of the last output, against differences of the API's gradient
    output = gen.outputs[-1]
    wrt = program.needed_variables([output])
    if not wrt or any(kink.kind == "det" for kink in gen.kinks):
        return
    code, out, err = invoke_jacli("hess", text, "--at", at_option(point), "--out", output,
                                  "--wrt", ",".join(wrt), "--format", "json")
    assert (code, err) == (0, ""), err
    got = json.loads(out)
    sub = {v: point[v] for v in wrt}
    k = sum(np.size(v) for v in sub.values())
    moved = stencil(sub)
    for name in point:
        moved.setdefault(name, np.broadcast_to(point[name], (1 + 4 * k,) + np.shape(point[name])))
    gradients = program.grad(moved, wrt=wrt, output=output, batch=True).gradient
    assume(np.abs(gradients).max() < VALUE_BOUND)
    close(np.array(got["hessian"]), richardson(gradients, k), 1e-6, 1e-7 * scale(gradients))


# --- the failing examples the properties found, kept --------------------------------------------

def test_a_let_the_outputs_do_not_use_needs_no_value_for_its_variables():
    # was: the shape pass took v for a scalar, `matmul of shapes () and ()`, and v could
    # not be given (not a variable of the program); as in v1, dead code is not evaluated
    program = jacli.compile("let t2 = v @ v\nt3 = sum(a)")
    assert program.variables == ["a"]
    assert program.eval({"a": np.array([1.0, 2.0])}, batch=False).value.tolist() == [3.0]
    # a derivative's nodes may coincide with a dead let's (the constant 1 here)
    program = jacli.compile("let t1 = sin(a)\nlet t3 = v * [1, 1, 1]\nt4 = sum(t1)")
    hessian = program.hessian({"a": np.array(0.5)}, batch=False).hessian
    np.testing.assert_allclose(hessian, [[-np.sin(0.5)]], rtol=1e-15)


def test_an_output_not_selected_needs_no_value_for_its_variables():
    from conftest import invoke_jacli

    # was: exit 2, `matmul of shapes () and (3,)` for W, which --out s does not need
    code, out, err = invoke_jacli("grad", "y = W @ x; s = sum(x^2)", "--out", "s",
                                  "--at", "x=[1,2,3]")
    assert (code, out, err) == (0, "2.0 4.0 6.0\n", "")
    code, out, err = invoke_jacli("hess", "y = W @ x; s = sum(x^3)", "--out", "s",
                                  "--at", "x=[1,2]")
    assert (code, out, err) == (0, "6.0 0.0 0.0 12.0\n", "")
    # a selected output still checks its shapes
    code, out, err = invoke_jacli("jac", "y = W @ x; s = sum(x)", "--out", "y",
                                  "--at", "x=[1,2,3],W=[[1,2]]")
    assert code == 2 and "inner dimensions 2 and 3 differ" in err


def test_det_of_a_singular_matrix_has_a_finite_jvp_and_jacobian():
    # the first failing examples: det(S) at S = 0 (jvp of a unit tangent of another
    # variable was 0 * nan = nan) and det([v, v, v]) (rank 1: the Jacobian was nan)
    program = jacli.compile("t1 = sin(a)\nt2 = det(S)")
    at = {"a": np.array(0.0), "S": np.zeros((3, 3))}
    tangent = {"a": np.array(1.0), "S": np.zeros((3, 3))}
    assert program.jvp(at, tangent, batch=False).jvp.tolist() == [1.0, 0.0]
    program = jacli.compile("let t1 = [v, v, v]\nt3 = det(t1)\nt4 = sum(t1)")
    v = np.array([0.3, -1.2, 0.7])
    jacobian = program.jacobian({"v": v}, batch=False).jacobian
    # det([v, v, v]) is 0 for every v: its gradient is 0; sum is 3 * sum(v)
    np.testing.assert_allclose(jacobian, [[0, 0, 0], [3, 3, 3]], atol=1e-14)


def test_an_empty_slice_has_derivatives_of_every_order():
    # was an internal error: prod's exclusive products of no elements had one element
    program = jacli.compile("prod(x[3:]) + sum(x[5:] * x[3:]) + sum(x^2)")
    x = np.array([1.0, 2.0, 3.0])
    result = program.hessian({"x": x}, batch=False)
    assert result.value.tolist() == [1.0 + 14.0]   # prod of nothing is 1, sum 0
    np.testing.assert_array_equal(result.gradient, 2 * x)
    np.testing.assert_array_equal(result.hessian, 2 * np.eye(3))
    for mode in ("reverse", "forward"):
        jac = jacli.compile("y = x[5:]; s = prod(x[:0])").jacobian({"x": x}, batch=False,
                                                                   mode=mode)
        assert jac.value.tolist() == [1.0] and jac.jacobian.tolist() == [[0.0, 0.0, 0.0]]
    # logsumexp and softmax of no elements: -inf and empty (their running max raised);
    # the mean: 0/0, nan with a warning naming it, and derivatives 0 in both modes (its
    # reverse rule divided by a symbolic zero: an internal error in hess)
    program = jacli.compile("t = logsumexp(x[0, 3:]); u = sum(softmax(x[0, 3:])) + "
                            "x[0, 0]^2; w = mean(x[:, 3:], axis=1) + x[0, 0]")
    for mode in ("reverse", "forward"):
        result = program.jacobian({"x": x[None]}, batch=False, mode=mode)
        assert result.value.tolist()[:2] == [-np.inf, 1.0] and np.isnan(result.value[2])
        assert result.jacobian.tolist() == [[0, 0, 0], [2, 0, 0], [1, 0, 0]]
        assert sorted(w.op for w in result.warnings) == ["logsumexp", "mean"]
    hessian = program.hessian({"x": x[None]}, output="u", batch=False).hessian
    np.testing.assert_array_equal(hessian, np.diag([2.0, 0, 0]))
    hessian = jacli.compile("mean(x[3:]) + x[0]^2").hessian({"x": x}, batch=False).hessian
    np.testing.assert_array_equal(hessian, np.diag([2.0, 0, 0]))


def test_an_output_of_no_components_beside_others_in_one_sweep():
    # the failing example: t4 = v[5:] seeded no rows, and merging its empty adjoint with
    # another output's took None for "no rows" (an internal error in reverse mode)
    program = jacli.compile("t3 = sin(a)\nt4 = v[5:]\nt5 = sum(t4) + a*v[0]")
    at = {"a": np.array([0.3, 0.1]), "v": np.array([[1.0, 2, 3], [4, 5, 6]])}
    expected = [[[np.cos(0.3), 0, 0, 0], [1, 0.3, 0, 0]], [[np.cos(0.1), 0, 0, 0], [4, 0.1, 0, 0]]]
    for mode in ("reverse", "forward"):
        result = program.jacobian(at, batch=True, mode=mode)
        np.testing.assert_allclose(result.jacobian, expected, rtol=1e-15)
        assert result.blocks[("t4", "v")].shape == (2, 0, 3)
    program = jacli.compile("t4 = w[5:] * a; t5 = sum(w) * a; t6 = M[:, 4:]")
    at = {"a": 0.5, "w": np.array([1.0, 2.0]), "M": np.ones((2, 3))}
    for mode in ("reverse", "forward"):
        jacobian = program.jacobian(at, batch=False, mode=mode).jacobian
        assert jacobian.tolist() == [[0.5, 0.5, 3.0] + [0.0] * 6]
