"""`jacli diff` on arrays: derivatives printed in array form, checked by running them.

The array form of d out / d x is an array of the shape jax.jacobian gives, out's shape
then x's (a gradient has x's shape; d/dx W@x is W, of shape (2, 3); d/dx sin(x) is
diag(cos(x)); d/dW W@x has shape (2, 2, 3)); --order 2 gives d2 out / dx dy of shape
out's + x's + y's. Flattened row-major, each is the (out, x) block of `jac`.

- Round trip over the arrays corpus: every case of arrays.jsonl, its shapes from its
  first point, through `jacli diff` (order 1; hess cases also order 2); the printed
  program, evaluated at the case's points, gives the corpus's expected Jacobian,
  gradient or Hessian (references computed independently, by SymPy).
- Random array programs (hypothesis): the printed program at a random point against
  jacli's `jac` and `hess` there, component by component.
- The exact text of simple derivatives, derived by hand (2*x, W, diag(cos(x)), ...).
- The command line: --shape, JSON's shapes, LaTeX's refusal (exit 2), scalars untouched.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jacli
from conftest import invoke_jacli

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "arrays.jsonl"
if not CORPUS.is_file():
    CORPUS = Path("/work/shared/corpus/arrays.jsonl")
CASES = [json.loads(line) for line in CORPUS.read_text().splitlines()
         if line.strip()] if CORPUS.is_file() else []
RTOL = 1e-8   # the corpus tolerance: |got - ref| <= RTOL * max(1, |ref|)
EXAMPLES = 200 if os.environ.get("JACLI_SLOW") == "1" else 25


def diff(*args: str) -> str:
    code, out, err = invoke_jacli("diff", *args)
    assert code == 0, f"jacli diff {' '.join(args)} exited {code}:\n{err}"
    return out


def shape_option(point: dict) -> list[str]:
    shapes = [f"{name}={'x'.join(map(str, np.shape(v)))}" for name, v in point.items()
              if np.ndim(v)]
    return ["--shape", ",".join(shapes)] if shapes else []


def evaluate(text: str, point: dict) -> dict[str, np.ndarray]:
    """Each output of a printed program at one point, as an array of its shape."""
    program = jacli.compile(text)
    values = {k: np.asarray(v, float) for k, v in point.items() if k in program.variables}
    result = program.eval(values, batch=False)
    flat, out = np.asarray(result.value, float).ravel(), {}
    for name in program.outputs:
        shape = tuple(result.shapes[name])
        size = math.prod(shape)
        out[name], flat = flat[:size].reshape(shape), flat[size:]
    return out


def close(got, ref, where: str) -> None:
    got, ref = np.asarray(got, float), np.asarray(ref, float)
    assert got.shape == ref.shape, f"{where}: shape {got.shape}, expected {ref.shape}"
    bad = ~np.isclose(got, ref, rtol=RTOL, atol=RTOL, equal_nan=True)
    assert not bad.any(), f"{where}: got {got[bad][:5]}, expected {ref[bad][:5]}"


def hessian_blocks(hessian: np.ndarray, wrt: list[str], shapes: dict) -> dict:
    """The (x, y) blocks of a flat Hessian, shaped x's + y's."""
    sizes = [math.prod(shapes[w]) for w in wrt]
    starts = np.cumsum([0] + sizes)
    return {(a, b): hessian[starts[i]:starts[i + 1], starts[j]:starts[j + 1]].reshape(
        tuple(shapes[a]) + tuple(shapes[b])) for i, a in enumerate(wrt)
        for j, b in enumerate(wrt)}


def check_against_engine(source: str, point: dict, wrt: list[str], order: int,
                         outputs: list[str] | None = None) -> None:
    """diff's program at `point` gives what jac (order 1) or hess (order 2) gives there."""
    program = jacli.compile(source)
    values = {k: np.asarray(v, float) for k, v in point.items()}
    out_args = ["--out", ",".join(outputs)] if outputs else []
    text = diff(source, "--wrt", ",".join(wrt), "--order", str(order),
                *shape_option(point), *out_args)
    entries = json.loads(diff(source, "--wrt", ",".join(wrt), "--order", str(order),
                              *shape_option(point), *out_args, "--format", "json"))
    got = evaluate(text, point)
    shapes = {k: np.shape(v) for k, v in values.items()}
    for entry in entries["derivatives"]:
        out, names = entry["output"], entry["wrt"]
        if order == 1:
            ref = program.jacobian(values, wrt, [out], batch=False).blocks[(out, names[0])]
        else:
            hessian = program.hessian(values, wrt, out, batch=False).hessian
            ref = hessian_blocks(np.asarray(hessian), wrt, shapes)[tuple(names)]
        assert entry["shape"] == list(np.shape(ref)) if np.ndim(ref) else True
        close(got[entry["name"]], ref, f"{entry['name']} = {entry['expr'][:120]}\n{text}")


# --- the arrays corpus, through printed programs ---------------------------------------

def corpus_reference(case: dict, expected: dict, entry: dict, outputs: list[str],
                     shapes: dict) -> np.ndarray:
    """The block of the corpus's expected numbers that one derivative entry holds."""
    wrt = case["wrt"]
    sizes = [math.prod(shapes[w]) for w in wrt]
    starts = np.cumsum([0] + sizes)
    column = wrt.index(entry["wrt"][0])
    if len(entry["wrt"]) == 2:
        row_var, col_var = entry["wrt"]
        i, j = wrt.index(row_var), wrt.index(col_var)
        hessian = np.asarray(expected["hessian"], float)
        return hessian[starts[i]:starts[i + 1], starts[j]:starts[j + 1]].ravel()
    if case["command"] in ("grad", "hess"):
        gradient = np.asarray(expected["gradient"], float).ravel()
        return gradient[starts[column]:starts[column + 1]]
    out_sizes = [math.prod(expected["shapes"][o]) for o in outputs]
    out_starts = np.cumsum([0] + out_sizes)
    k = outputs.index(entry["output"])
    jacobian = np.asarray(expected["jacobian"], float).reshape(out_starts[-1], starts[-1])
    return jacobian[out_starts[k]:out_starts[k + 1], starts[column]:starts[column + 1]].ravel()


@pytest.mark.skipif(not CASES, reason=f"arrays corpus not found at {CORPUS}")
@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_round_trip_arrays_corpus_case(case):
    first = case["points"][0]
    shapes = {k: np.shape(v) for k, v in first.items()}
    program = jacli.compile(case["program"])
    outputs = program.outputs[:1] if case["command"] in ("grad", "hess") else program.outputs
    for order in ((1, 2) if case["command"] == "hess" else (1,)):
        args = [case["program"], "--wrt", ",".join(case["wrt"]), "--order", str(order),
                "--out", ",".join(outputs), *shape_option(first)]
        text = diff(*args)
        entries = json.loads(diff(*args, "--format", "json"))["derivatives"]
        for k, (point, expected) in enumerate(zip(case["points"], case["expected"])):
            got = evaluate(text, point)
            for entry in entries:
                where = f"{case['id']} point {k} order {order} {entry['name']}\n{text}"
                if case["command"] == "eval":   # no reference: jacli's jac is the check
                    values = {n: np.asarray(v, float) for n, v in point.items()}
                    ref = program.jacobian(values, case["wrt"], [entry["output"]],
                                           batch=False).blocks[(entry["output"],
                                                                entry["wrt"][0])]
                    close(got[entry["name"]], ref, where)
                    continue
                ref = corpus_reference(case, expected, entry, outputs, shapes)
                close(np.ravel(got[entry["name"]]), ref, where)


# --- random array programs against jac and hess ----------------------------------------

# Each step maps the vector v (shape (3,)) to another vector of shape (3,).
STEPS = ["sin({v})", "tanh({v})", "exp(0.3*{v})", "{v}*x", "{v} + s", "W @ {v}",
         "transpose(W) @ {v}", "softmax({v})", "{v}[::-1]", "[{v}[2], {v}[0]*s, {v}[1]]",
         "{v}/(1 + {v}^2)", "solve(M, {v})", "inv(M) @ {v}", "outer({v}, x) @ x",
         "{v}*norm({v})", "{v} - logsumexp({v})", "{v}*mean({v})", "diag(outer({v}, x))",
         "sum(outer({v}, x), axis=0)", "{v}^2*s", "(M @ W) @ {v}", "{v}*dot({v}, x)",
         "[sum({v}), max({v}[:2]), {v}[-1]]", "{v}*det(M)"]
# The output: the vector itself (a Jacobian), a scalar (a gradient), or another shape.
ENDS = ["{v}", "sum({v})", "dot({v}, x)", "{v}[1]", "[{v}[0], sum({v})]", "outer({v}, x)",
        "logsumexp({v})", "{v} @ W"]
SCALAR_ENDS = ["sum({v})", "dot({v}, x)", "{v}[1]", "logsumexp({v})", "sum({v}^2)*s"]


def random_point(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"x": rng.uniform(-1, 1, 3), "s": float(rng.uniform(0.5, 1.5)),
            "W": rng.uniform(-1, 1, (3, 3)),
            "M": 2 * np.eye(3) + rng.uniform(-0.3, 0.3, (3, 3))}


def program_text(steps: list[str], end: str) -> str:
    lines, v = [], "x"
    for k, step in enumerate(steps):
        lines.append(f"let v{k} = {step.format(v=v)}")
        v = f"v{k}"
    return "\n".join(lines + [f"out = {end.format(v=v)}"]) + "\n"


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.sampled_from(STEPS), min_size=1, max_size=3), st.sampled_from(ENDS),
       st.integers(0, 2 ** 31))
def test_random_array_programs_print_what_jac_computes(steps, end, seed):
    source = program_text(steps, end)
    variables = jacli.compile(source).variables
    point = {k: v for k, v in random_point(seed).items() if k in variables}
    check_against_engine(source, point, list(point), 1)


@settings(max_examples=max(EXAMPLES // 3, 8), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(st.lists(st.sampled_from([s for s in STEPS if "max(" not in s]), min_size=1,
                max_size=2), st.sampled_from(SCALAR_ENDS), st.integers(0, 2 ** 31))
def test_random_array_programs_at_order_2_print_what_hess_computes(steps, end, seed):
    source = program_text(steps, end)
    variables = jacli.compile(source).variables
    point = {k: v for k, v in random_point(seed).items() if k in variables}
    check_against_engine(source, point, [k for k in ("x", "s") if k in point], 2)


# --- hand-derived forms -----------------------------------------------------------------

@pytest.mark.parametrize("source, shapes, expected", [
    ("sum(x^2)", "x=3", "d_f1_d_x = 2*x\n"),                       # d/dx sum(x^2) = 2x
    ("y = W@x", "x=3,W=2x3", None),                                  # see below
    ("sin(x)", "x=3", "d_f1_d_x = diag(cos(x))\n"),                 # elementwise: a diagonal
    ("x*y", "x=3,y=3", "d_f1_d_x = diag(y)\nd_f1_d_y = diag(x)\n"),
    ("x@W", "x=2,W=2x3", None),
    ("sum((A@x - b)^2)", "A=2x2,x=2,b=2",                        # least squares: 2 A^T r
     "let t1 = A @ x - b\nd_f1_d_A = outer(2*t1, x)\nd_f1_d_x = transpose(A) @ (2*t1)\n"
     "d_f1_d_b = -2*t1\n"),
    ("dot(a, x)", "a=3,x=3", "d_f1_d_a = x\nd_f1_d_x = a\n"),
    ("[t*u, t + u]", "", "d_f1_d_t = [u, 1]\nd_f1_d_u = [t, 1]\n"),  # scalars into a vector
    ("x[1]^3", "x=3", "d_f1_d_x = [0, 3*x[1]^2, 0]\n"),
])
def test_simple_array_derivatives_read_as_by_hand(source, shapes, expected):
    args = [source] + (["--shape", shapes] if shapes else [])
    out = diff(*args)
    if expected is not None:
        assert out == expected
    elif source == "y = W@x":   # d/dx W@x = W; d/dW (W@x)_i = x in row i
        assert out == "d_y_d_W = [[x, [0, 0, 0]], [[0, 0, 0], x]]\nd_y_d_x = W\n"
    else:   # d/dx x@W = transpose(W)
        assert out.splitlines()[0] == "d_f1_d_x = transpose(W)"


def test_the_gradient_of_a_layer_is_diag_of_the_slope_times_w():
    out = diff("tanh(W@x + b)", "--shape", "W=2x3,x=3,b=2", "--wrt", "x,b")
    # tanh' = cosh^-2, as the rule table writes it; the diagonal, used twice, is named
    assert out == ("let t1 = diag(cosh(W @ x + b)^-2)\nd_f1_d_x = t1 @ W\n"
                   "d_f1_d_b = t1\n")


def test_order_2_of_a_sum_of_sines_is_diag_of_minus_sine():
    assert diff("sum(sin(x))", "--shape", "x=3", "--order", "2") == \
        "d2_f1_d_x_d_x = diag(-sin(x))\n"


def test_the_derivative_program_round_trips_through_eval_on_the_command_line(tmp_path):
    program = tmp_path / "d.jac"
    code, out, err = invoke_jacli("diff", "sum(x^2*sin(x))", "--shape", "x=3", "-o",
                                  str(program))
    assert code == 0, err
    code, out, err = invoke_jacli("eval", "-f", str(program), "--at", "x=[1,2,3]")
    x = np.array([1.0, 2.0, 3.0])
    assert [float(v) for v in out.split()] == pytest.approx(
        2 * x * np.sin(x) + x ** 2 * np.cos(x), rel=1e-13)


def test_structural_zeros_stay_zero_where_a_partial_is_infinite():
    # d sqrt(x)_i / dx_j is 0 for i != j, whatever sqrt'(x_j) is; jac's one-hot seeds
    # multiply 0 by sqrt'(0) = inf there and give nan (the README says so).
    text = diff("sqrt(x)", "--shape", "x=2")
    assert text == "d_f1_d_x = diag(1/(2*sqrt(x)))\n"
    got = evaluate(text, {"x": [0.0, 1.0]})["d_f1_d_x"]
    assert got[0, 0] == math.inf and got[0, 1] == 0 and got[1, 0] == 0 and got[1, 1] == 0.5


# --- the command line -------------------------------------------------------------------

def test_json_gives_each_derivative_its_shape_and_the_inputs_shapes():
    got = json.loads(diff("y = W@x", "--shape", "W=2x3,x=3", "--format", "json"))
    assert got["shapes"] == {"W": [2, 3], "x": [3]}
    assert [(d["name"], d["shape"]) for d in got["derivatives"]] == [
        ("d_y_d_W", [2, 2, 3]), ("d_y_d_x", [2, 3])]


def test_latex_refuses_array_derivatives_with_exit_2():
    code, out, err = invoke_jacli("diff", "sum(x^2)", "--shape", "x=3", "--format", "latex")
    assert (code, out) == (2, "")
    assert "latex writes scalar derivatives only" in err


def test_a_derivative_it_cannot_write_yet_is_an_error_not_a_wrong_program():
    code, out, err = invoke_jacli("diff", "prod(x)", "--shape", "x=3", "--order", "2")
    assert (code, out) == (2, "")
    assert "cannot write the second derivative of prod" in err


def test_a_shape_error_is_the_shape_pass_caret_message():
    code, out, err = invoke_jacli("diff", "W@x", "--shape", "W=2x3,x=2")
    assert code == 2 and "matmul of shapes (2, 3) and (2,)" in err and "^" in err


def test_scalar_programs_and_scalar_latex_are_unchanged():
    assert diff("x^2*sin(x)") == "d_f1_d_x = 2*x*sin(x) + x^2*cos(x)\n"
    assert diff("x^2", "--format", "latex").startswith("\\begin{align*}")
    # a scalar program given a vector: its output is a vector, its Jacobian diagonal
    assert diff("x^2", "--shape", "x=3") == "d_f1_d_x = diag(2*x)\n"


@pytest.mark.parametrize("steps", [["sin({v})"], ["W @ {v}", "tanh({v})"],
                                   ["[{v}[2], {v}[0]*s, {v}[1]]", "{v}*x"], ["softmax({v})"]])
def test_order_2_of_a_vector_output_holds_each_components_hessian(steps):
    # d2 out / dx dx has shape (3, 3, 3): slice i is the Hessian of out[i] (hess of a
    # program that names out[i] as its output)
    source = program_text(steps, "{v}")
    point = {k: v for k, v in random_point(7).items() if k in jacli.compile(source).variables}
    text = diff(source, "--wrt", "x", "--order", "2", *shape_option(point))
    got = evaluate(text, point)["d2_out_d_x_d_x"]
    assert got.shape == (3, 3, 3)
    values = {k: np.asarray(v, float) for k, v in point.items()}
    for i in range(3):
        component = jacli.compile(source + f"o = out[{i}]\n")
        ref = component.hessian(values, ["x"], "o", batch=False).hessian
        close(got[i], ref, f"component {i}\n{text}")
