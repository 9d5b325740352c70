"""`jacli diff`: derivatives printed as a jacli program, checked by running them.

- Round trip over the reference corpus: for every case of cases.jsonl, the program that
  `jacli diff` prints (order 1; hess cases also order 2), run by `jacli eval` at the
  case's points, gives the case's expected gradient, Jacobian or Hessian within the
  corpus tolerance. Names are read from `diff --format json`, not guessed.
- The exact text of a few simple derivatives, as a person would write them.
- Size: the printed program has at most 8 times the operations of its input (longsum
  family, compositions and `let` chains 1,000 deep), and a 10,000-operation program is
  differentiated in seconds.
- Values: simplification never changes a value. A hypothesis property (the printed
  program against jacli's own AD) and hand-derived IEEE cases (inf, nan, 0*x).
- Odds and ends of the command line: -o, --out, --order, the JSON and LaTeX forms.

Operation counts are tape nodes: the program compiled by jacli.compile, counting the
primitive nodes (not variables or constants) that the outputs need. Each measured size
ratio and the time of the 10,000-operation run are printed (`pytest -s` shows them).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import jacli
from conftest import REPO, invoke_jacli, run_jacli
from corpus import CASES_PATH, compare, load_cases, params, write_inputs
from jacli.tape import CONST, VAR

MAX_SIZE_RATIO = 8
BIG_PROGRAM_OPERATIONS = 10_000
BIG_PROGRAM_SECONDS = 20.0


CASES = load_cases()
def diff(*args: str, input: str | None = None) -> str:
    """`jacli diff ARGS` in process; its standard output (it must exit 0)."""
    code, out, err = invoke_jacli("diff", *args, input=input)
    assert code == 0, f"jacli diff {' '.join(args)} exited {code}:\n{err}"
    return out


def evaluate(text: str, **point: float) -> dict[str, float]:
    """The outputs of a printed program at one point (extra names are ignored)."""
    program = jacli.compile(text)
    values = program.eval(point).value
    return dict(zip(program.outputs, (float(v) for v in values)))


def operations(program: jacli.Program) -> int:
    """Primitive nodes (not variables or constants) that the outputs need."""
    tape = program.tape
    needed = tape.dependencies(list(tape.output_nodes))
    return sum(1 for index, node in enumerate(tape.nodes)
               if needed[index] and node.op not in (VAR, CONST))


def same_value(got: float, ref: float, rtol: float, floor: float = 1.0) -> bool:
    """Equal within rtol * max(floor, |ref|), or the same non-finite value."""
    if math.isnan(ref) or math.isnan(got):
        return math.isnan(ref) and math.isnan(got)
    if math.isinf(ref) or math.isinf(got):
        return got == ref
    return abs(got - ref) <= rtol * max(floor, abs(ref))


# --- round trip over the corpus ---------------------------------------------------------------

def _diff_and_eval(case: dict, order: int, program: Path, points: Path,
                   directory: Path) -> tuple[list[dict], list[dict]]:
    """The derivative entries (from --format json) and eval's JSON rows of the program."""
    wrt = ["--wrt", ",".join(case["wrt"]), "--order", str(order)]
    entries = json.loads(diff("-f", str(program), *wrt, "--format", "json"))["derivatives"]
    derivative = directory / f"derivative{order}.jac"
    diff("-f", str(program), *wrt, "-o", str(derivative))
    code, out, err = invoke_jacli("eval", "-f", str(derivative), "--points", str(points),
                                  "--format", "json")
    assert code == 0, (f"{case['id']}: eval of the order-{order} derivative program exited "
                       f"{code}:\n{err}\nprogram:\n{derivative.read_text()}")
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(rows) == len(case["points"]), out
    names = [entry["name"] for entry in entries]
    for row in rows:
        assert row["outputs"] == names, (row["outputs"], names)
    return entries, rows


def _reference(case: dict, expected: dict, entry: dict, outputs: list[str]):
    wrt = case["wrt"]
    if len(entry["wrt"]) == 2:
        return expected["hessian"][wrt.index(entry["wrt"][0])][wrt.index(entry["wrt"][1])]
    column = wrt.index(entry["wrt"][0])
    if case["command"] in ("grad", "hess"):
        return expected["gradient"][column]
    return expected["jacobian"][outputs.index(entry["output"])][column]


@pytest.mark.parametrize("case", params(CASES))
def test_round_trip_corpus_case(case, tmp_path):
    program, points = write_inputs(case, tmp_path)
    problems: list[str] = []
    for order in ((1, 2) if case["command"] == "hess" else (1,)):
        entries, rows = _diff_and_eval(case, order, program, points, tmp_path)
        n = len(case["wrt"])
        outputs = list(dict.fromkeys(entry["output"] for entry in entries))
        if order == 1:
            assert [tuple(e["wrt"]) for e in entries] == [(x,) for x in case["wrt"]] * len(
                outputs), "order 1: one entry per output and input, outputs x wrt"
        else:
            assert [tuple(e["wrt"]) for e in entries] == [
                (case["wrt"][i], case["wrt"][j]) for i in range(n) for j in range(i, n)]
        if case["command"] == "eval":
            continue   # a valid program is all there is to check: it ran above
        if case["command"] == "jac":
            assert len(outputs) == len(case["expected"][0]["jacobian"])
        for k, (row, expected) in enumerate(zip(rows, case["expected"])):
            for entry, got in zip(entries, row["value"]):
                ref = _reference(case, expected, entry, outputs)
                compare(got, ref, f"point {k} {entry['name']} = {entry['expr'][:80]}",
                         problems)
    assert not problems, (f"{case['id']} ({case['family']}, {case['command']}) "
                          f"program {case['program']!r}:\n" + "\n".join(problems))


def test_corpus_is_all_there():
    if not CASES and not os.environ.get("CI"):
        pytest.skip(f"reference corpus not found at {CASES_PATH}")
    assert len(CASES) == 150
    assert {c["command"] for c in CASES} == {"eval", "grad", "jac", "hess"}


def test_pipeline_through_real_processes_matches_grad():
    """The README's pipeline: diff | eval -f -, against grad, in real subprocesses."""
    code, program, err = run_jacli("diff", "-f", "samples/rosenbrock.jac", "--wrt", "x,y",
                                   cwd=REPO)
    assert code == 0, err
    code, piped, err = run_jacli("eval", "-f", "-", "--at", "x=1,y=2,a=1,b=100",
                                 input=program)
    assert code == 0, err
    code, grad, err = run_jacli("grad", "-f", "samples/rosenbrock.jac", "--wrt", "x,y",
                                "--at", "x=1,y=2,a=1,b=100", cwd=REPO)
    assert code == 0, err
    assert piped == grad == "-400.0 200.0\n"


# --- the text, as by hand ---------------------------------------------------------------------

# x^2 + y^2 is shared by r and the derivatives of atan2 (whose rule says x*x + y*y).
POLAR = """\
let t1 = x^2 + y^2
let r = sqrt(t1)
d_r_d_x = x/r
d_r_d_y = y/r
d_theta_d_x = -y/t1
d_theta_d_y = x/t1
"""

PINNED = [
    (["x^2*sin(x)", "--wrt", "x"], "d_f1_d_x = 2*x*sin(x) + x^2*cos(x)\n"),
    (["x^2*y + sin(z)"], "d_f1_d_x = 2*x*y\nd_f1_d_y = x^2\nd_f1_d_z = cos(z)\n"),
    (["r = sqrt(x^2 + y^2); theta = atan2(y, x)"], POLAR),
    (["-f", "samples/polar.jac"], POLAR),
    # A let-named intermediate keeps its name.
    (["let u = x^2; f = sin(u)"], "let u = x^2\nd_f_d_x = 2*x*cos(u)\n"),
    (["-f", "samples/rosenbrock.jac", "--wrt", "x,y"],
     "let x2 = x^2\nlet valley = y - x2\n"
     "d_f_d_x = -4*x*b*valley - 2*(a - x)\nd_f_d_y = 2*b*valley\n"),
    (["x^3"], "d_f1_d_x = 3*x^2\n"),
    (["x^2"], "d_f1_d_x = 2*x\n"),
    # exp(x) is used twice, but it is short: written out, not named.
    (["exp(x)*x"], "d_f1_d_x = x*exp(x) + exp(x)\n"),
    # Two divisions by x written as one by x^2: equal up to rounding (README).
    (["1/x"], "d_f1_d_x = -1/x^2\n"),
    (["--", "-x^2"], "d_f1_d_x = -2*x\n"),
    # sqrt' = 0.5/sqrt(x), written as a fraction, with the same double (2*s is exact).
    (["sqrt(x)"], "d_f1_d_x = 1/(2*sqrt(x))\n"),
    (["x*y"], "d_f1_d_x = y\nd_f1_d_y = x\n"),
    (["3*x + 2"], "d_f1_d_x = 3\n"),
    (["x^2*y + sin(z)", "--order", "2"],
     "d2_f1_d_x_d_x = 2*y\nd2_f1_d_x_d_y = 2*x\nd2_f1_d_x_d_z = 0\n"
     "d2_f1_d_y_d_y = 0\nd2_f1_d_y_d_z = 0\nd2_f1_d_z_d_z = -sin(z)\n"),
    # Ties of min/max: internal indicators printed as 1 - abs(sign(a - b)).
    (["max(x, y)"],
     "let t1 = max(x, y)\nlet t2 = 1 - abs(sign(x - t1))\nlet t3 = 1 - abs(sign(y - t1))\n"
     "d_f1_d_x = t2/(t2 + t3)\nd_f1_d_y = t3/(t2 + t3)\n"),
]


@pytest.mark.parametrize("args, expected", PINNED, ids=[" ".join(a) for a, _ in PINNED])
def test_pinned_text(args, expected, monkeypatch):
    monkeypatch.chdir(REPO)
    assert diff(*args) == expected


def test_polar_latex(monkeypatch):
    monkeypatch.chdir(REPO)
    assert diff("-f", "samples/polar.jac", "--format", "latex") == (
        "\\begin{align*}\n"
        "t1 &= {x}^{2} + {y}^{2} \\\\\n"
        "r &= \\sqrt{t1} \\\\\n"
        "\\frac{\\partial r}{\\partial x} &= \\frac{x}{r} \\\\\n"
        "\\frac{\\partial r}{\\partial y} &= \\frac{y}{r} \\\\\n"
        "\\frac{\\partial \\theta}{\\partial x} &= -\\frac{y}{t1} \\\\\n"
        "\\frac{\\partial \\theta}{\\partial y} &= \\frac{x}{t1}\n"
        "\\end{align*}\n")


def test_latex_has_no_fraction_inside_a_fraction():
    # sin(x)/x: d/dx = cos(x)/x - sin(x)/x/x by the quotient rule; x/(y/z) and (x/y)/z
    # appear in the source itself (cos of them), and are typeset flat too.
    assert diff("sin(x)/x", "--format", "latex").splitlines()[1] == (
        "\\frac{\\partial f1}{\\partial x} &= \\frac{\\cos\\left(x\\right)}{x} - "
        "\\frac{\\sin\\left(x\\right)}{{x}^{2}}")
    latex = diff("sin(x/y/z) + sin(x/(y/z))", "--wrt", "x", "--format", "latex")
    assert "\\cos\\left(\\frac{x}{y \\cdot z}\\right)" in latex
    assert "\\cos\\left(\\frac{x \\cdot z}{y}\\right)" in latex
    assert "\\frac{\\frac" not in latex and "}{\\frac" not in latex
    # A negative numerator is written before the fraction.
    assert diff("1/x", "--format", "latex").splitlines()[1] == (
        "\\frac{\\partial f1}{\\partial x} &= -\\frac{1}{{x}^{2}}")


def test_latex_writes_greek_names_as_greek_letters():
    latex = diff("theta^2*alpha + sin(beta_1) + Omega*omegas", "--format", "latex")
    assert latex == (
        "\\begin{align*}\n"
        "\\frac{\\partial f1}{\\partial \\theta} &= 2 \\cdot \\theta \\cdot \\alpha \\\\\n"
        "\\frac{\\partial f1}{\\partial \\alpha} &= {\\theta}^{2} \\\\\n"
        "\\frac{\\partial f1}{\\partial \\beta_{1}} &= \\cos\\left(\\beta_{1}\\right) \\\\\n"
        "\\frac{\\partial f1}{\\partial \\Omega} &= omegas \\\\\n"
        "\\frac{\\partial f1}{\\partial omegas} &= \\Omega\n"
        "\\end{align*}\n")


#: Derivatives whose readable form moves only powers of two (0.5*(2*d) -> d, 3*(2*x) ->
#: 6*x, -0.5*e*(2*x) -> -x*e) and divides by nothing: away from overflow and underflow
#: they are the doubles of jacli's own AD, bit for bit.
POWERS_OF_TWO = ["3*x^2", "0.5*(yhat - t)^2", "exp(-x^2/2)", "x^2*y + sin(z)",
                 "(x - y)^2", "-0.5*x^2", "x^2/4", "x*exp(-x)", "cos(x)^3"]


@pytest.mark.parametrize("source", POWERS_OF_TWO)
def test_folding_powers_of_two_keeps_grads_doubles(source):
    program = jacli.compile(source)
    printed = jacli.compile(diff("--", source))
    rng = np.random.default_rng(7)
    for _ in range(20):
        point = {name: float(rng.uniform(-3, 3)) for name in program.variables}
        gradient = [float(g) for g in program.grad(point).gradient]
        values = printed.eval({n: point[n] for n in printed.variables}).value
        assert [float(v) for v in values] == gradient, (source, point)


def test_json_form_matches_the_program(monkeypatch):
    monkeypatch.chdir(REPO)
    data = json.loads(diff("-f", "samples/rosenbrock.jac", "--wrt", "x,y", "--format", "json"))
    assert data == {
        "inputs": ["x", "y"],
        "lets": [{"name": "x2", "expr": "x^2"}, {"name": "valley", "expr": "y - x2"}],
        "derivatives": [
            {"name": "d_f_d_x", "output": "f", "wrt": ["x"],
             "expr": "-4*x*b*valley - 2*(a - x)"},
            {"name": "d_f_d_y", "output": "f", "wrt": ["y"], "expr": "2*b*valley"}]}
    text = diff("-f", "samples/rosenbrock.jac", "--wrt", "x,y")
    rebuilt = "".join(f"let {let['name']} = {let['expr']}\n" for let in data["lets"]) + "".join(
        f"{d['name']} = {d['expr']}\n" for d in data["derivatives"])
    assert rebuilt == text


def test_order_two_latex_heads():
    latex = diff("x^2*y", "--order", "2", "--format", "latex")
    assert "\\frac{\\partial^2 f1}{\\partial x^2} &= 2 \\cdot y" in latex
    assert "\\frac{\\partial^2 f1}{\\partial x \\partial y} &= 2 \\cdot x" in latex


def test_derivative_names_do_not_clash_with_the_programs_names():
    text = diff("let d_f_d_x = sin(x); d_f_d_y = x; f = d_f_d_x*y", "--out", "f")
    assert text == "let d_f_d_x = sin(x)\nd_f_d_x_ = y*cos(x)\nd_f_d_y_ = d_f_d_x\n"
    assert evaluate(text, x=0.0, y=2.0) == {"d_f_d_x_": 2.0, "d_f_d_y_": 0.0}


# --- size and speed ---------------------------------------------------------------------------

def _size_ratio(source: str, *args: str) -> tuple[float, int, int]:
    text = diff(source, *args)
    before, after = operations(jacli.compile(source)), operations(jacli.compile(text))
    return after / before, before, after


LONGSUM = [c for c in CASES if c["family"] == "longsum"]


@pytest.mark.parametrize("case", params(LONGSUM))
def test_size_longsum(case):
    ratio, before, after = _size_ratio(case["program"], "--wrt", ",".join(case["wrt"]))
    print(f"\n{case['id']}: {before} operations -> {after}: ratio {ratio:.2f}")
    assert ratio <= MAX_SIZE_RATIO


def _nested(depth: int) -> str:
    text = "x"
    for k in range(depth):
        text = f"{('sin', 'cos')[k % 2]}({text})"
    return text


def _let_chain(depth: int) -> str:
    lines = ["let t_0 = sin(x)"]
    for k in range(1, depth):
        step = f"cos(t_{k - 1})*x" if k % 2 else f"sin(t_{k - 1}) + x"
        lines.append(f"let t_{k} = {step}")
    return "\n".join(lines) + f"\nf = t_{depth - 1}\n"


@pytest.mark.parametrize("name, source", [
    ("sin(cos(sin(...x...))) 1000 deep", _nested(1000)),
    ("1000 lets", _let_chain(1000)),
], ids=["nested-1000", "lets-1000"])
def test_size_deep_compositions(name, source):
    ratio, before, after = _size_ratio(source)
    print(f"\n{name}: {before} operations -> {after}: ratio {ratio:.2f}")
    assert before >= 1000
    assert ratio <= MAX_SIZE_RATIO
    # The let chain keeps every user name it needs.
    if "let" in source:
        text = diff(source)
        assert "let t_998 = " in text


def _big_program() -> str:
    names = [f"x{i}" for i in range(10)]
    functions = ["sin", "cos", "exp", "log1p", "tanh", "sqrt", "atan"]
    terms = []
    for k in range(2000):   # 5 operations each, no two alike
        a, b = names[k % 10], names[(3 * k + 1) % 10]
        terms.append(f"{k % 9 + 1}*{functions[k % 7]}({a}*{b} + {k})^2")
    return " + ".join(terms)


def test_diff_of_a_10000_operation_program_is_fast(tmp_path):
    source = _big_program()
    program = jacli.compile(source)
    before = operations(program)
    assert before >= BIG_PROGRAM_OPERATIONS
    path = tmp_path / "big.jac"
    path.write_text(source)
    start = time.perf_counter()
    code, text, err = run_jacli("diff", "-f", str(path))
    seconds = time.perf_counter() - start
    after = operations(jacli.compile(text))
    print(f"\ndiff of {before} operations (10 inputs): {seconds:.2f} s (a subprocess), "
          f"{after} operations printed: ratio {after / before:.2f}")
    assert code == 0, err
    assert seconds < BIG_PROGRAM_SECONDS
    assert after / before <= MAX_SIZE_RATIO
    point = {f"x{i}": 0.1 * (i + 1) for i in range(10)}
    values = evaluate(text, **point)
    gradient = program.grad(point).gradient
    for i, name in enumerate(program.variables):
        assert same_value(values[f"d_f1_d_{name}"], float(gradient[i]), 1e-12), name


def test_a_long_run_of_signs_is_simplified_without_recursion():
    # 501 minus signs: the sign rules strip them all at once, not one rewrite per sign
    # (which overflowed Python's stack, in diff and in hess).
    source = "-" * 501 + "x*y + x*" + "-" * 500 + "y"
    text = diff("--", source)
    assert evaluate(text, x=2.0, y=3.0) == {"d_f1_d_x": -3.0 + 3.0, "d_f1_d_y": -2.0 + 2.0}
    hessian = jacli.compile(source).hessian({"x": 2.0, "y": 3.0}).hessian
    assert hessian.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    hessian = jacli.compile("-" * 501 + "x*y").hessian({"x": 2.0, "y": 3.0}).hessian
    assert hessian.tolist() == [[0.0, -1.0], [-1.0, 0.0]]


# --- simplification never changes a value: a property -------------------------------------------

VARS = ("x", "y", "z")
#: Smooth everywhere on the reals (domains guarded), some inviting simplification.
TEMPLATES = [
    "{0} + {1}", "{0} - {1}", "{0}*{1}", "{0}/(1 + {1}^2)", "{0}/(2 + sin({1}))", "-{0}",
    "--{0}", "{0}^2", "{0}^3", "{0}^1", "(1 + {0}^2)^tanh({1})", "pow(2 + cos({0}), {1})",
    "sin({0})", "cos({0})", "tan(tanh({0}))", "asin(tanh({0})/2)", "acos(tanh({0})/2)",
    "atan({0})", "atan2({0}, 1 + {1}^2)", "hypot({0}, 1 + {1}^2)", "sinh({0})", "cosh({0})",
    "tanh({0})", "asinh({0})", "acosh(2 + {0}^2)", "atanh(tanh({0})/2)", "exp({0})",
    "expm1({0})", "log(1 + {0}^2)", "log1p({0}^2)", "log2(1 + {0}^2)", "log10(1 + {0}^2)",
    "sqrt(1 + {0}^2)", "cbrt(1 + {0}^2)", "sigmoid({0})", "softplus({0})",
    "{0}*1 + 0", "1*{0} - 0", "{0}/1", "-1*{0}", "{0}*-{1}", "-{0}/-{1}",
]
CONSTANTS = ("0", "1", "-1", "2", "0.5", "pi")
RELATIVE = 1e-12   # |got - ref| <= RELATIVE*|ref|: relative, with no absolute floor


@st.composite
def smooth_programs(draw) -> str:
    names = list(VARS)
    lines = []
    count = draw(st.integers(1, 6))
    for k in range(1, count + 1):
        template = draw(st.sampled_from(TEMPLATES))
        arity = 2 if "{1}" in template else 1
        token = st.one_of(st.sampled_from(names), st.sampled_from(names),
                          st.sampled_from(CONSTANTS))
        args = [draw(token) for _ in range(arity)]
        args = [f"({a})" if a.startswith("-") else a for a in args]
        is_let = k < count and draw(st.booleans())
        lines.append(f"{'let ' if is_let else ''}t{k} = {template.format(*args)}")
    return "\n".join(lines)


COORDINATE = st.one_of(st.sampled_from([0.0, 1.0, -1.0, 0.5]),
                       st.floats(-2, 2, allow_nan=False, allow_infinity=False))


@settings(max_examples=80, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(smooth_programs(), st.fixed_dictionaries({v: COORDINATE for v in VARS}))
def test_printed_derivatives_equal_jaclis_ad(source, point):
    note(source)
    program = jacli.compile(source)
    if not program.variables:
        return
    wrt = program.variables
    text = diff(source, "--wrt", ",".join(wrt))
    note(text)
    values = evaluate(text, **point)
    jacobian = program.jacobian(point, wrt=wrt).jacobian
    for i, out in enumerate(program.outputs):
        for j, name in enumerate(wrt):
            got, ref = values[f"d_{out}_d_{name}"], float(jacobian[i, j])
            assert same_value(got, ref, RELATIVE, floor=0.0), (out, name, got, ref)
    # Second order: the Hessian of the last output, entry by entry.
    out = program.outputs[-1]
    text = diff(source, "--wrt", ",".join(wrt), "--out", out, "--order", "2")
    note(text)
    values = evaluate(text, **point)
    hessian = program.hessian(point, wrt=wrt, output=out).hessian
    for i, first in enumerate(wrt):
        for j in range(i, len(wrt)):
            got, ref = values[f"d2_{out}_d_{first}_d_{wrt[j]}"], float(hessian[i, j])
            assert same_value(got, ref, RELATIVE, floor=0.0), (first, wrt[j], got, ref)


# --- simplification never changes a value: IEEE by hand ------------------------------------------

def _grad(source: str, **point: float) -> list[float]:
    return [float(g) for g in jacli.compile(source).grad(point).gradient]


def test_zero_times_x_is_kept_where_x_can_be_infinite():
    # d/dx 0*x^-1 = 0*(-1*x^-2) = -0*x^-2; at x = 0, x^-2 = inf and 0*inf = nan (IEEE).
    # Writing it as 0 would give 0 at x = 0, where jacli's AD gives nan.
    text = diff("0*x^-1")
    assert text == "d_f1_d_x = -0*x^-2\n"
    with np.errstate(all="ignore"):
        assert math.isnan(evaluate(text, x=0.0)["d_f1_d_x"])
        assert evaluate(text, x=2.0)["d_f1_d_x"] == 0.0
        assert math.isnan(_grad("0*x^-1", x=0.0)[0])


def test_x_times_y_at_y_infinite():
    # f = x^2*y: df/dx = 2*x*y; at x = 0, y = inf: 2*0*inf = 0*inf = nan. df/dy = x^2 = 0.
    text = diff("x^2*y")
    assert text == "d_f1_d_x = 2*x*y\nd_f1_d_y = x^2\n"
    with np.errstate(all="ignore"):
        values = evaluate(text, x=0.0, y=math.inf)
        assert math.isnan(values["d_f1_d_x"]) and values["d_f1_d_y"] == 0.0
        reference = _grad("x^2*y", x=0.0, y=math.inf)
        assert math.isnan(reference[0]) and reference[1] == 0.0
        # At x = 1 the same entries are finite and infinite: 2*1*inf = inf, 1^2 = 1.
        assert evaluate(text, x=1.0, y=math.inf) == {"d_f1_d_x": math.inf, "d_f1_d_y": 1.0}


def test_x_minus_x_is_not_zero():
    # f = (x - x)*y: df/dx = y*1 + y*(-1) = y - y; at y = inf: inf - inf = nan (IEEE).
    text = diff("(x - x)*y")
    assert text == "d_f1_d_x = y - y\nd_f1_d_y = x - x\n"
    with np.errstate(all="ignore"):
        values = evaluate(text, x=1.0, y=math.inf)
        assert math.isnan(values["d_f1_d_x"]) and values["d_f1_d_y"] == 0.0
        assert math.isnan(_grad("(x - x)*y", x=1.0, y=math.inf)[0])


# A literal 0 of the program is not a rule's symbolic zero: its contribution stays, so
# IEEE's inf*0 = nan survives into the derivative, as jacli grad gives it.
@pytest.mark.parametrize("source, point", [
    # f = (0*x)*y. The adjoint of 0*x is y and d(0*x)/dx is the literal 0, so
    # df/dx = y*0: at y = inf, inf*0 = nan (IEEE).
    ("0*x*y", {"x": 1.0, "y": math.inf}),
    # f = sqrt(0*x): df/dx = sqrt'(0)*0 = inf*0 = nan (sqrt'(0) = inf, language.md),
    # at every finite x.
    ("sqrt(0*x)", {"x": 1.0}),
])
def test_a_zero_factor_in_the_program_keeps_an_infinite_adjoint_nan(source, point):
    # jacli grad multiplies the adjoint by the literal 0 and gets nan; the printed
    # derivative must not drop that contribution as if it were 0 (0*x is not simplified).
    with np.errstate(all="ignore"):
        assert math.isnan(_grad(source, **point)[0])
        text = diff(source)
        got = evaluate(text, **point)["d_f1_d_x"]
        assert math.isnan(got), (
            f"jacli grad gives nan, the printed derivative gives {got}:\n{text}")


def test_tie_indicators_agree_with_ad_at_finite_points_and_are_nan_at_infinite_ties():
    """The language has no comparison, so the tie indicator of min/max is printed as
    1 - abs(sign(a - b)): exact for finite a, b; nan when a = b = +-inf (documented)."""
    text = diff("max(x, 1)")
    for x in (0.5, 1.0, 3.0):
        assert evaluate(text, x=x)["d_f1_d_x"] == _grad("max(x, 1)", x=x)[0], text
    with np.errstate(all="ignore"):
        assert _grad("max(x, 1)", x=math.inf) == [1.0]
        assert math.isnan(evaluate(text, x=math.inf)["d_f1_d_x"]), text


@pytest.mark.parametrize("source, expected, absent", [
    # x*1 (and 1*x): d/dx x*y = 1*y
    ("x*y", "d_f1_d_x = y\nd_f1_d_y = x\n", ["1*", "*1"]),
    # x^1: d/dx x^2 = 2*x^(2 - 1)
    ("x^2", "d_f1_d_x = 2*x\n", ["^1", "^(2 - 1)"]),
    # x^0 -> 1 and 1*1: d/dx x^1 = 1*x^0
    ("x^1", "d_f1_d_x = 1\n", ["^0", "*"]),
    # x + 0: d/dx atan2(0, x) = -(0/(x*x + 0*0)); and 0/x^2 stays (nan at x = 0)
    ("atan2(0, x)", "d_f1_d_x = -0/x^2\n", ["+ 0", "0*0"]),
    # 1*1 folded, no 1*y: d/dy atan2(y, 1) = 1/(1*1 + y*y)
    ("atan2(y, 1)", "d_f1_d_y = 1/(1 + y^2)\n", ["1*"]),
    # --x: d/dx cos(-x) = -(-sin(-x))
    ("cos(-x)", "d_f1_d_x = sin(-x)\n", ["--", "-(-"]),
    # signs move out: -x*-y, a + -b
    ("-x*-y", "d_f1_d_x = y\nd_f1_d_y = x\n", ["-"]),
    ("x - y*z", "d_f1_d_x = 1\nd_f1_d_y = -z\nd_f1_d_z = -y\n", ["+ -", "*-", "-1*"]),
])
def test_neutral_elements_disappear(source, expected, absent):
    text = diff("--", source)
    assert text == expected
    for line in text.splitlines():
        right = line.split(" = ", 1)[1]
        for fragment in absent:
            assert fragment not in right, (fragment, line)


def test_equal_terms_and_factors_are_a_double_and_a_square_value_for_value():
    # d/dx x*x = x + x: written 2*x; d/dy x*y*x = x*x: written x^2. Both exact in IEEE,
    # inf and nan included (inf + inf = 2*inf, nan^2 = nan).
    assert diff("x*x") == "d_f1_d_x = 2*x\n"
    text = diff("x*y*x")
    assert text == "d_f1_d_x = 2*x*y\nd_f1_d_y = x^2\n"
    rng = np.random.default_rng(3)
    with np.errstate(all="ignore"):
        for x, y in [*rng.uniform(-5, 5, (10, 2)), (math.inf, 1.0), (math.nan, 2.0)]:
            got = list(evaluate(text, x=float(x), y=float(y)).values())
            ref = _grad("x*y*x", x=float(x), y=float(y))
            assert all(same_value(g, r, 0.0) for g, r in zip(got, ref)), (x, y, got, ref)


@pytest.mark.parametrize("source, expected", [
    ("x/3", "1/3"),                           # no double is 1/3: the quotient stays
    ("x^2/3", "2*x/3"),                       # 2*(1/3) as a ratio of integers
    ("0.1*x^2/3", "0.2*x/3"),                 # 0.1*2/3: a double over a small integer
    ("x/(2*y)", None),                        # 1/(2*y), -x/(2*y^2): the divisor as written
    ("6*x^2/(4*y)", None),                    # 3*x/y, -3*x^2/(2*y^2): reduced like a fraction
    ("log2(x)", f"{1 / math.log(2)!r}/x"),    # a double with a long decimal stays a double
    ("x^3/2", "1.5*x^2"),                     # a short decimal
])
def test_coefficients_are_written_exactly(source, expected):
    text = diff("--", source)
    if expected is not None:
        assert text == f"d_f1_d_x = {expected}\n"
    program, printed = jacli.compile(source), jacli.compile(text)
    for x, y in [(0.7, 1.3), (2.5, -0.4)]:
        point = {"x": x, "y": y}
        with np.errstate(all="ignore"):
            gradient = program.grad({n: point[n] for n in program.variables}).gradient
            values = printed.eval({n: point[n] for n in printed.variables}).value
        for got, ref in zip(values, gradient):
            assert same_value(float(got), float(ref), 1e-12, floor=0.0), (text, got, ref)


def test_constant_folding_is_value_for_value():
    # 2^x: d/dx = 2^x*log(2), log(2) folded to the double jacli's AD uses, and put first.
    text = diff("2^x")
    assert text == f"d_f1_d_x = {math.log(2)!r}*2^x\n"
    assert evaluate(text, x=3.0)["d_f1_d_x"] == _grad("2^x", x=3.0)[0]


# --- the command line ---------------------------------------------------------------------------

def test_output_file(tmp_path):
    path = tmp_path / "d.jac"
    code, out, err = invoke_jacli("diff", "x^2*sin(x)", "-o", str(path))
    assert (code, out) == (0, "")
    assert path.read_text() == "d_f1_d_x = 2*x*sin(x) + x^2*cos(x)\n"


def test_output_to_npy_is_refused(tmp_path):
    code, out, err = invoke_jacli("diff", "x^2", "-o", str(tmp_path / "d.npy"))
    assert code == 2 and "text" in err
    assert not (tmp_path / "d.npy").exists()


def test_out_selects_outputs(monkeypatch):
    monkeypatch.chdir(REPO)
    assert diff("-f", "samples/polar.jac", "--out", "theta") == (
        "let t1 = x^2 + y^2\nd_theta_d_x = -y/t1\nd_theta_d_y = x/t1\n")


@pytest.mark.parametrize("args", [["x^2", "--order", "3"], ["x^2", "--order", "0"],
                                  ["x^2", "--wrt", "y"], ["x^2 +"], ["x^2", "--format", "csv"]])
def test_bad_command_lines_exit_2(args):
    code, out, err = invoke_jacli("diff", *args)
    assert code == 2 and out == ""


def test_program_from_standard_input():
    assert diff("-f", "-", input="r = x*y\n") == "d_r_d_x = y\nd_r_d_y = x\n"


def test_unused_variable_needs_allow_unused(tmp_path):
    # d/dy of rosenbrock does not use a: --at a=... needs --allow-unused.
    text = diff("-f", str(REPO / "samples" / "rosenbrock.jac"), "--wrt", "y")
    assert "a" not in jacli.compile(text).variables
    path = tmp_path / "d.jac"
    path.write_text(text)
    code, out, err = invoke_jacli("eval", "-f", str(path), "--at", "x=1,y=2,a=1,b=100")
    assert code == 2 and "'a' is not used" in err
    code, out, err = invoke_jacli("eval", "-f", str(path), "--at", "x=1,y=2,a=1,b=100",
                                  "--allow-unused")
    assert (code, out) == (0, "200.0\n")
