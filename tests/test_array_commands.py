"""The commands on arrays, end to end (the CLI, the API and the array engine as one system):
eval/jac/grad/hess/jvp/vjp against hand-derived values, check over every component, the
views that refuse array values with one line (exit 2), and the single tables the parts
share (shape rules, function names)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import invoke_jacli

W = np.array([[1.0, 2.0], [3.0, 4.0]])
X = np.array([0.1, 0.2])
B = np.array([0.0, 1.0])
AT = ["--at", "W=[[1,2],[3,4]],x=[0.1,0.2],b=[0,1]"]


def numbers(text: str) -> list[float]:
    return [float(v) for v in text.split()]


def test_jac_of_a_layer_is_diag_of_tanh_prime_times_w():
    code, out, err = invoke_jacli("jac", "tanh(W @ x + b)", *AT, "--wrt", "x")
    assert (code, err) == (0, "")
    z = W @ X + B
    expected = (1 - np.tanh(z) ** 2)[:, None] * W        # d tanh(Wx + b) / dx
    assert numbers(out) == pytest.approx(expected.ravel(), rel=1e-13)


def test_grad_of_a_sum_is_the_elementwise_derivative():
    code, out, err = invoke_jacli("grad", "sum(x^2 * sin(x))", "--at", "x=[1,2,3]")
    assert (code, err) == (0, "")
    x = np.array([1.0, 2.0, 3.0])
    assert numbers(out) == pytest.approx(2 * x * np.sin(x) + x ** 2 * np.cos(x), rel=1e-13)


def test_hess_json_names_components_and_is_the_diagonal_6x():
    code, out, err = invoke_jacli("hess", "sum(x^3)", "--at", "x=[1,2]", "--format", "json")
    got = json.loads(out)
    assert got["inputs"] == ["x[0]", "x[1]"] and got["value"] == 9.0
    assert got["gradient"] == [3.0, 12.0] and got["hessian"] == [[6.0, 0.0], [0.0, 12.0]]
    assert got["shapes"] == {"x": [2], "f1": []}


def test_jvp_and_vjp_of_a_matrix_product_are_w_v_and_u_w():
    code, out, err = invoke_jacli("jvp", "W @ x", "--at", "W=[[1,2],[3,4]],x=[1,1]",
                                  "--tangent", "x=[1,0]")
    assert (code, numbers(out)) == (0, [1.0, 3.0])          # W @ (1, 0): W's first column
    code, out, err = invoke_jacli("vjp", "W @ x", "--at", "W=[[1,2],[3,4]],x=[1,1]",
                                  "--cotangent", "f1=[1,0]", "--wrt", "x")
    assert (code, numbers(out)) == (0, [1.0, 2.0])          # (1, 0) @ W: W's first row


def test_a_program_of_arrays_at_scalar_values_prints_its_components():
    code, out, err = invoke_jacli("eval", "[t, lam, t * lam]", "--at", "t=2,lam=3",
                                  "--format", "json")
    got = json.loads(out)
    assert got["outputs"] == ["f1[0]", "f1[1]", "f1[2]"] and got["value"] == [2.0, 3.0, 6.0]
    assert got["shapes"] == {"t": [], "lam": [], "f1": [3]}


def test_grad_and_hess_of_an_array_output_name_its_shape_under_a_caret():
    code, out, err = invoke_jacli("grad", "W @ x", *AT[:1], "W=[[1,2],[3,4]],x=[1,1]")
    assert (code, out) == (2, "")
    assert err == ("jacli: error: program:1:1: grad needs an output with one element, but "
                   "'f1' has shape (2,)\n  W @ x\n  ^^^^^\n  hint: take sum(...) of it for a "
                   "scalar, or use jac for the Jacobian of all its 2 components\n")
    code, out, err = invoke_jacli("hess", "W @ x", *AT[:1], "W=[[1,2],[3,4]],x=[1,1]")
    assert code == 2 and "hess needs an output with one element" in err


@pytest.mark.parametrize("command, program, at, message, lines", [
    ("eval", "x - y", "x=[1,2],y=[1,2,3]", "1:3: - of shapes (2,) and (3,): cannot broadcast",
     ["  x - y", "    ^"]),
    ("jac", "y = x[2]", "x=[1,2]",
     "1:7: index 2 is out of range for axis 0 of shape (2,) (size 2)", ["  y = x[2]", "        ^"]),
    ("grad", "s = sum([x, [1, 2]])", "x=[1,2,3]", "1:13: array literal with elements of shapes "
     "(3,) and (2,): element 1 differs from element 0 (a literal is not ragged)",
     ["  s = sum([x, [1, 2]])", "              ^^^^^^"]),
    ("hess", "logsumexp(x, axis=1)", "x=[1,2]",
     "1:14: logsumexp of shape (2,): axis 1 is out of range for rank 1",
     ["  logsumexp(x, axis=1)", "               ^^^^^^"]),
    ("jvp", "det(A)", "A=[[1,2,3]]", "1:1: det of shape (1, 3): the matrix is not square (1 x 3)",
     ["  det(A)", "  ^^^^^^"]),
    ("vjp", "B = inv(A)\nt = 2", "A=[[1,2,3],[4,5,6]]",
     "1:5: inv of shape (2, 3): the matrix is not square (2 x 3)",
     ["  B = inv(A)", "      ^^^^^^"]),
    ("check", "solve(A, b)", "A=[[1,2],[3,4]],b=[1,2,3]", "1:1: solve of shapes (2, 2) and "
     "(3,): the matrix has 2 rows and the right-hand side 3", ["  solve(A, b)", "  ^^^^^^^^^^^"]),
])
def test_every_kind_of_shape_error_exits_2_with_its_caret_from_every_command(
        command, program, at, message, lines):
    extra = {"jvp": ["--tangent", "A=[[1,1,1]]"], "vjp": ["--cotangent", "t=1"]}.get(command, [])
    code, out, err = invoke_jacli(command, program, "--at", at, *extra)
    assert (code, out) == (2, "")
    assert err.splitlines() == ["jacli: error: program:" + message] + lines


def test_a_shape_mismatch_is_the_shape_pass_caret_error():
    code, out, err = invoke_jacli("jac", "A @ x", "--at", "A=[[1,2,3],[4,5,6]],x=[1,2]")
    assert (code, out) == (2, "")
    assert err == ("jacli: error: program:1:3: matmul of shapes (2, 3) and (2,): inner "
                   "dimensions 3 and 2 differ\n  A @ x\n    ^\n")


# --- check: every component ------------------------------------------------------------

def test_check_compares_every_component_of_every_input_and_output():
    code, out, err = invoke_jacli("check", "tanh(W @ x + b)", *AT, "--format", "json")
    assert (code, err) == (0, "")
    got = json.loads(out)
    assert got["inputs"] == ["W[0][0]", "W[0][1]", "W[1][0]", "W[1][1]", "x[0]", "x[1]",
                             "b[0]", "b[1]"]
    assert got["outputs"] == ["f1[0]", "f1[1]"]
    assert got["ok"] is True and got["max_rel_error"] < 1e-8
    # as the other commands' json: `at` nested per variable, and `shapes`
    assert got["at"] == {"W": [[1.0, 2.0], [3.0, 4.0]], "x": [0.1, 0.2], "b": [0.0, 1.0]}
    assert got["shapes"] == {"W": [2, 2], "x": [2], "b": [2], "f1": [2]}
    code, out, err = invoke_jacli("check", "x*y", "--at", "x=1,y=2", "--format", "json")
    got = json.loads(out)
    assert got["at"] == {"x": 1.0, "y": 2.0} and "shapes" not in got   # scalars: as v1


def test_check_finds_the_kink_of_one_component():
    # relu'(0) = 0 by convention, finite differences see 0.5: x[0] fails, x[1] does not
    code, out, err = invoke_jacli("check", "relu(x)", "--at", "x=[0,1]", "--format", "json")
    assert code == 1
    got = json.loads(out)
    assert got["ok"] is False
    assert [(f["output"], f["input"]) for f in got["failures"]] == [("f1[0]", "x[0]")]
    assert "df1[0]/dx[0]: kink" in err


def test_check_of_array_points_checks_each_row(tmp_path):
    points = tmp_path / "p.jsonl"
    points.write_text('{"x": [1, 2]}\n{"x": [-1, 3]}\n')
    code, out, err = invoke_jacli("check", "x * sum(x^2)", "--points", str(points),
                                  "--format", "csv")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.startswith("x[0],x[1],ok")
    assert [r.split(",")[:3] for r in rows] == [["1.0", "2.0", "true"],
                                                ["-1.0", "3.0", "true"]]


# --- the views not yet array-aware refuse, in one line ---------------------------------

@pytest.mark.parametrize("args, message", [
    (["graph", "sum(x)", "--at", "x=[1,2]"], "--at: `graph` does not take array values yet"),
])
def test_views_not_yet_array_aware_refuse_arrays_with_one_line(args, message):
    code, out, err = invoke_jacli(*args)
    assert (code, out, err) == (2, "", f"jacli: error: {message}\n")


def test_tape_and_graph_without_values_show_a_program_of_arrays_as_recorded():
    code, out, err = invoke_jacli("tape", "sum(x^2)", "--shape", "x=3", "--format", "plain")
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "v3:f64[] = sum v2  # sum(x^2)  (f1)"
    code, out, err = invoke_jacli("graph", "sum(x^2)")
    assert code == 0 and 'label="sum\\n(f1)\\nf64[]"' in out


def test_graph_labels_every_node_with_its_shape():
    code, out, err = invoke_jacli("graph", "sum(W @ x)", "--shape", "W=2x3,x=3")
    assert (code, err) == (0, "")
    labels = [line.split('"')[1] for line in out.splitlines() if "label=" in line
              and "->" not in line and "fontname" not in line]
    assert labels == ["W\\nf64[2,3]", "x\\nf64[3]", "@\\nf64[2]", "sum\\n(f1)\\nf64[]"]
    code, out, err = invoke_jacli("graph", "W @ x", "--shape", "W=2x3,x=2")
    assert code == 2 and "inner dimensions 3 and 2 differ" in err
    code, out, err = invoke_jacli("graph", "x*y")   # scalars: no shape lines, as before
    assert code == 0 and "f64" not in out


# --- one table per rule ------------------------------------------------------------------

def test_every_array_primitive_takes_its_shape_rule_from_the_shape_pass():
    from jacli.prims import PRIMITIVES
    from jacli.shapes import SHAPE_RULES

    array_ops = [name for name, p in PRIMITIVES.items() if p.shape is not None]
    assert all(PRIMITIVES[name].shape is SHAPE_RULES[name] for name in array_ops)
    assert set(SHAPE_RULES) == set(array_ops)
    # the elementwise primitives broadcast (no rule); every other one has its rule there
    assert all(p.vjp is None for name, p in PRIMITIVES.items() if name not in SHAPE_RULES)


def test_the_parser_reads_the_one_function_table():
    from jacli import parse, prims

    assert parse.FUNCTIONS is prims.FUNCTIONS
    assert {"sum", "det", "softmax", "sin", "max"} <= set(prims.FUNCTIONS)
    assert not {"stack", "index", "amax", "matmul", "sum_to"} & set(prims.FUNCTIONS)


# --- shapes the shape pass takes as NumPy does, the engine differentiates -----------------
# (stacks of matrices for det/inv/solve, a scalar argument of dot, a non-square trace)

STACK = [[[1.0, 2.0], [3.0, 5.0]], [[2.0, 1.0], [1.0, 3.0]]]
NUMPY_SHAPED = [
    ("det(A)", {"A": STACK}),
    ("inv(A)", {"A": STACK}),
    ("solve(A, b)", {"A": STACK, "b": [1.0, 2.0]}),
    ("solve(A, b)", {"A": STACK, "b": [[[1.0], [2.0]], [[3.0], [4.0]]]}),
    ("solve(A, b)", {"A": STACK[0], "b": [[1.0, 2.0], [3.0, 4.0]]}),
    ("dot(x, y)", {"x": 2.0, "y": [1.0, 2.0]}),
    ("dot(x, y)", {"x": [1.0, 3.0], "y": 3.0}),
    ("trace(A)", {"A": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]}),
]


@pytest.mark.parametrize("text, at", NUMPY_SHAPED, ids=[f"{t}-{len(a)}" for t, a in
                                                        NUMPY_SHAPED])
def test_numpy_shaped_calls_agree_with_finite_differences(text, at):
    import jacli
    from jacli.check import check_jacobian

    prog = jacli.compile(text)
    value = prog.eval(at, batch=False).value
    numpy_value = {"det": lambda: np.linalg.det(at["A"]), "inv": lambda: np.linalg.inv(at["A"]),
                   "sol": lambda: np.linalg.solve(at["A"], at["b"]),
                   "dot": lambda: np.dot(at["x"], at["y"]),
                   "tra": lambda: np.trace(at["A"])}[text[:3]]()
    assert value == pytest.approx(np.ravel(numpy_value), rel=1e-12)
    point = {name: np.asarray(v)[None] for name, v in at.items()}   # one point, batched
    result = check_jacobian(prog, point)
    assert result.passed, result.failures(0)
    # second derivatives: the Hessian of the sum of squares against differences of the
    # gradient
    squares = jacli.compile(f"sum(({text})^2)")
    names = squares.variables
    flat = np.concatenate([np.ravel(at[n]) for n in names])

    def gradient(v):
        point, k = {}, 0
        for n in names:
            size = np.size(at[n])
            point[n] = v[k:k + size].reshape(np.shape(at[n]))
            k += size
        return squares.grad(point, wrt=names, batch=False).gradient

    hessian = squares.hessian(at, wrt=names, batch=False).hessian
    h = 1e-5
    fd = np.array([(gradient(flat + h * e) - gradient(flat - h * e)) / (2 * h)
                   for e in np.eye(len(flat))]).T
    assert np.max(np.abs(hessian - fd)) <= 1e-7 * max(1.0, np.max(np.abs(fd)))


def test_a_singular_matrix_in_a_stack_gives_nan_for_it_only():
    code, out, err = invoke_jacli("eval", "inv(A)", "--at", "A=[[[1,2],[2,4]],[[2,1],[1,3]]]")
    assert code == 0
    assert numbers(out)[:4] == [np.nan] * 4 or all(np.isnan(numbers(out)[:4]))
    assert numbers(out)[4:] == pytest.approx(np.linalg.inv([[2, 1], [1, 3]]).ravel())
    assert "in `inv(A)` at 1:1" in err


def test_a_tangent_or_cotangent_of_another_shape_is_an_error_naming_both():
    code, out, err = invoke_jacli("jvp", "x @ x", "--at", "x=[1,2]", "--tangent", "x=[1,0,0]")
    assert (code, out, err) == (2, "", "jacli: error: --tangent: the tangent of 'x' has shape "
                                       "(3,); 'x' has shape (2,)\n")
    code, out, err = invoke_jacli("vjp", "W @ x", "--at", "W=[[1,2],[3,4]],x=[1,1]",
                                  "--cotangent", "f1=[1]")
    assert (code, out) == (2, "") and "the cotangent of 'f1' has shape (1,)" in err
