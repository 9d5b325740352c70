"""`tape` and `tape --explain` on arrays (arrays.md, Views): every entry's shape in jaxpr
style in each format, the rule each backward step applies (an elementwise entry's
partial, a structural entry's linear map), and the v1 invariants on array programs:
each adjoint is the sum of the contributions it received, and the inputs' adjoints are
the gradient (checked against NumPy written here, and against `jacli jac`)."""

from __future__ import annotations

import json
from functools import reduce

import numpy as np
import pytest

from conftest import invoke_jacli

W = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
X = np.array([1.0, 0.0, -1.0])
AT = ["--at", "W=[[1,2,3],[4,5,6]],x=[1,0,-1]"]


def run(*args) -> str:
    code, out, err = invoke_jacli(*args)
    assert (code, err) == (0, ""), err
    return out


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def array(value):
    return None if value is None else np.asarray(value, dtype=float)


# --- shapes and values in every format ---------------------------------------------------

def test_plain_tape_shows_each_entry_shape_and_value_in_jaxpr_style():
    # by hand: W @ x = [1 - 3, 4 - 6] = [-2, -2], the sum -4; d/dx = W^T 1 = [5, 7, 9],
    # d/dW = 1 x^T (every row is x)
    assert run("tape", "sum(W @ x)", *AT).splitlines() == [
        "v0:f64[2,3] = input  # W  value=[[1.0,2.0,3.0],[4.0,5.0,6.0]] "
        "adjoints=[[1.0,0.0,-1.0],[1.0,0.0,-1.0]]",
        "v1:f64[3] = input  # x  value=[1.0,0.0,-1.0] adjoints=[5.0,7.0,9.0]",
        "v2:f64[2] = matmul v0 v1  # W @ x  value=[-2.0,-2.0] adjoints=[1.0,1.0]",
        "v3:f64[] = sum v2  # sum(W @ x)  (f1)  value=-4.0 adjoints=1.0",
    ]


def test_json_tape_carries_shapes_and_every_number_as_nested_lists():
    rows = json_lines(run("tape", "sum(W @ x)", *AT, "--format", "json"))
    assert [r["shape"] for r in rows] == [[2, 3], [3], [2], []]
    assert rows[0]["value"] == W.tolist() and rows[1]["value"] == X.tolist()
    assert rows[2]["value"] == (W @ X).tolist()
    assert rows[0]["adjoints"] == [np.outer([1, 1], X).tolist()]
    assert rows[1]["adjoints"] == [(W.T @ np.ones(2)).tolist()]
    # a structural entry applies a linear map, not a local partial
    assert rows[2]["partials"] is None and rows[2]["op"] == "matmul"


def test_csv_tape_has_a_shape_column_and_values_that_read_back():
    header, *lines = run("tape", "sum(W @ x)", *AT, "--format", "csv").splitlines()
    assert header == "entry,op,args,text,names,shape,value,partials,adjoints"
    import csv

    rows = list(csv.reader(lines))
    assert [r[5] for r in rows] == ["f64[2,3]", "f64[3]", "f64[2]", "f64[]"]
    assert json.loads(rows[0][6]) == W.tolist()
    assert json.loads(rows[1][8]) == [5.0, 7.0, 9.0]


def test_table_tape_has_a_shape_column_and_component_headers():
    out = run("tape", "y = W @ x", *AT, "--format", "table")
    assert "shape" in out and "f64[2,3]" in out and "f64[2]" in out
    assert "adjoint ∂y[0]/∂entry" in out and "adjoint ∂y[1]/∂entry" in out
    assert "∂/∂W[1][2]" in out   # the Jacobian over components


def test_without_values_the_shapes_come_from_shape_or_from_the_literals():
    out = run("tape", "sum(W @ x)", "--shape", "W=2x3,x=3")
    assert out.splitlines() == ["v0:f64[2,3] = input  # W", "v1:f64[3] = input  # x",
                                "v2:f64[2] = matmul v0 v1  # W @ x",
                                "v3:f64[] = sum v2  # sum(W @ x)  (f1)"]
    rows = json_lines(run("tape", "s = sum([x, y]^2)", "--format", "json"))
    assert [r["shape"] for r in rows] == [[], [], [2], [], [2], []]
    assert all("value" not in r for r in rows)
    # a program of literals alone has values without --at
    rows = json_lines(run("tape", "[1, 2] @ [3, 4]", "--format", "json"))
    assert rows[-1]["value"] == 11.0 and rows[-1]["shape"] == []


def test_a_long_value_is_shortened_in_plain_but_whole_in_json():
    at = ["--at", "x=[0,1,2,3,4,5,6,7,8,9]"]
    first = run("tape", "sum(x)", *at).splitlines()[0]
    assert first == ("v0:f64[10] = input  # x  value=[0.0,1.0,2.0,...,7.0,8.0,9.0] "
                     "adjoints=[1.0,1.0,1.0,...,1.0,1.0,1.0]")
    rows = json_lines(run("tape", "sum(x)", *at, "--format", "json"))
    assert rows[0]["value"] == [float(i) for i in range(10)]


@pytest.mark.parametrize("fmt", ["plain", "json", "csv", "table"])
def test_a_scalar_program_shows_no_shapes(fmt):
    out = run("tape", "x^2*y + sin(z)", "--at", "x=1,y=2,z=3", "--format", fmt)
    assert "f64" not in out and '"shape"' not in out
    assert "shape" not in out.splitlines()[0]


# --- the rule of each kind of step ---------------------------------------------------------

def sends_of(program: str, *at: str) -> dict[str, list[tuple[str, object]]]:
    """entry -> [(argument, rule), ...] of the first sweep of `tape --explain`."""
    steps = json_lines(run("tape", program, "--at", *at, "--explain", "--format", "json"))
    first = steps[0]["output"]
    return {s["entry"]: [(send["to"], send["rule"]) for send in s["sends"]]
            for s in steps if s["output"] == first and "sends" in s}


@pytest.mark.parametrize("program, at, entry, rules", [
    ("sum(W @ x)", "W=[[1,2,3],[4,5,6]],x=[1,0,-1]", "v2",
     [("v0", "outer(ḡ, x)"), ("v1", "Wᵀ @ ḡ")]),
    ("sum(x @ W)", "x=[1,2],W=[[1,2,3],[4,5,6]]", "v2",
     [("v0", "ḡ @ Wᵀ"), ("v1", "outer(x, ḡ)")]),
    ("sum(A @ B)", "A=[[1,2],[3,4]],B=[[1,0],[0,2]]", "v2",
     [("v0", "ḡ @ Bᵀ"), ("v1", "Aᵀ @ ḡ")]),
    ("x @ y", "x=[1,2],y=[3,4]", "v2", [("v0", "ḡ * y"), ("v1", "ḡ * x")]),
    ("sum(A @ B)", "A=[[[1,2],[3,4]],[[5,6],[7,8]]],B=[[1,0],[0,1]]", "v2",   # a stack
     [("v0", "ḡ @ Bᵀ"), ("v1", "Aᵀ @ ḡ, summed to [2,2]")]),
    ("sum(W @ x)", "W=[[1,2,3],[4,5,6]],x=[1,0,-1]", "v3", [("v2", "ḡ broadcast to [2]")]),
    ("sum(A, axis=0) @ x", "A=[[1,2,3],[4,5,6]],x=[1,1,1]", "v1",
     [("v0", "ḡ broadcast along axis 0 to [2,3]")]),
    ("mean(x)", "x=[1,2,3,4]", "v1", [("v0", "ḡ broadcast to [4], divided by 4")]),
    ("sum(x[1:3])", "x=[1,2,3,4,5]", "v1", [("v0", "ḡ scattered into [5] at 1:3")]),
    ("A[0, ::-1] @ x", "A=[[1,2],[3,4]],x=[1,1]", "v1",
     [("v0", "ḡ scattered into [2,2] at 0, ::-1")]),
    ("x[-1]", "x=[1,2,3]", "v1", [("v0", "ḡ scattered into [3] at -1")]),
    ("sum([x, 2 * y])", "x=1,y=2", "v4", [("v0", "ḡ[0]"), ("v3", "ḡ[1]")]),
    ("sum(transpose(A) * B)", "A=[[1,2],[3,4]],B=[[1,0],[0,2]]", "v1", [("v0", "ḡᵀ")]),
    ("sum(outer(x, y))", "x=[1,2],y=[3,4,5]", "v2", [("v0", "ḡ @ y"), ("v1", "x @ ḡ")]),
    ("dot(x, y)", "x=[1,2],y=[3,4]", "v2", [("v0", "ḡ * y"), ("v1", "ḡ * x")]),
    ("sum(dot(c, y))", "c=2,y=[3,4]", "v2",
     [("v0", "ḡ * y, summed to []"), ("v1", "ḡ * c")]),
    ("sum(diag(x))", "x=[1,2]", "v1", [("v0", "the diagonal of ḡ")]),
    ("sum(diag(A))", "A=[[1,2],[3,4]]", "v1", [("v0", "ḡ on the diagonal of [2,2] zeros")]),
    ("trace(A)", "A=[[1,2],[3,4]]", "v1", [("v0", "ḡ on the diagonal of [2,2] zeros")]),
    ("det(A)", "A=[[2,1],[1,3]]", "v1", [("v0", "ḡ * adjugate(A)ᵀ")]),
    ("sum(inv(A))", "A=[[2,1],[1,3]]", "v1", [("v0", "-v1ᵀ @ ḡ @ v1ᵀ")]),
    ("sum(solve(A, b))", "A=[[2,1],[1,3]],b=[1,2]", "v2",
     [("v0", "-outer(solve(Aᵀ, ḡ), v2)"), ("v1", "solve(Aᵀ, ḡ)")]),
    ("sum(softmax(x) * x)", "x=[1,2,3]", "v1", [("v0", "v1 * (ḡ - sum(v1 * ḡ))")]),
    ("logsumexp(x)", "x=[1,2,3]", "v1", [("v0", "ḡ * softmax(x)")]),
    ("norm(x)", "x=[3,4]", "v1", [("v0", "ḡ * x / v1 (0 where v1 is 0)")]),
    ("max(x)", "x=[1,3,2]", "v1", [("v0", "ḡ to the largest element of x (ties share it)")]),
    ("prod(x)", "x=[1,2,3]", "v1",
     [("v0", "ḡ broadcast to [3] * the product of the other elements")]),
    # elementwise: ḡ * partial, summed over the axes the argument was broadcast along
    ("sum(x * S)", "x=[1,2,3],S=[[1],[2]]", "v2",
     [("v0", "ḡ * partial, summed to [3]"), ("v1", "ḡ * partial, summed to [2,1]")]),
    ("sum(x^2)", "x=[1,2]", "v2", [("v0", "ḡ * partial")]),
])
def test_each_kind_of_step_writes_the_linear_map_it_applies(program, at, entry, rules):
    assert sends_of(program, at)[entry] == rules


def test_every_array_primitive_writes_its_rule_beside_its_definition():
    from jacli.prims import PRIMITIVES
    from jacli.parse import parse

    # the primitives a program can reach: every function, the literal, the subscript, @
    reachable = {n.op for n in parse(
        "[x][0] @ [x] + sum(x) + mean(x) + prod(x) + max(x) + min(x) + norm(x) "
        "+ logsumexp(x) + sum(softmax(x)) + dot(x, x) + sum(outer(x, x)) "
        "+ sum(transpose(A)) + sum(diag(A)) + trace(A) + det(A) + sum(inv(A)) "
        "+ sum(solve(A, x))").nodes}
    structural = {n for n, p in PRIMITIVES.items() if p.vjp is not None
                  and (not p.internal or n in ("amax", "amin"))}   # max(a), min(a)
    assert structural <= reachable and len(structural) == 19
    for name in structural:
        rules = PRIMITIVES[name].explain
        assert rules is not None, name
        assert all(callable(rules[i]) for i in range(max(1, PRIMITIVES[name].arity))), name


def test_the_contribution_of_each_map_is_the_map_applied_to_the_adjoint():
    steps = json_lines(run("tape", "sum(x @ W)", "--at", "x=[1,2],W=[[1,2,3],[4,5,6]]",
                           "--explain", "--format", "json"))
    matmul = next(s for s in steps if s.get("op") == "matmul")
    g = array(matmul["adjoint"])
    to_x, to_w = matmul["sends"]
    Wm = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    np.testing.assert_allclose(to_x["contribution"], g @ Wm.T, rtol=1e-15)
    np.testing.assert_allclose(to_w["contribution"], np.outer([1.0, 2.0], g), rtol=1e-15)
    steps = json_lines(run("tape", "sum(x[1:3])", "--at", "x=[1,2,3,4,5]", "--explain",
                           "--format", "json"))
    index = next(s for s in steps if s.get("op") == "index")
    assert index["sends"][0]["contribution"] == [0.0, 1.0, 1.0, 0.0, 0.0]


def test_plain_explain_of_an_array_program():
    out = run("tape", "sum(W @ x)", *AT, "--explain")
    assert out.splitlines() == [
        "backward sweep for f1, seeded with adjoint 1:",
        "1. v3:f64[] = sum  # sum(W @ x)  adjoint 1.0",
        "   -> v2 (W @ x): ḡ broadcast to [2] = [1.0,1.0]",
        "2. v2:f64[2] = matmul  # W @ x  adjoint [1.0,1.0]",
        "   -> v0 (W): outer(ḡ, x) = [[1.0,0.0,-1.0],[1.0,0.0,-1.0]]",
        "   -> v1 (x): Wᵀ @ ḡ = [5.0,7.0,9.0]",
        "gradient of f1: df1/dW[0][0] = 1.0, df1/dW[0][1] = 0.0, df1/dW[0][2] = -1.0, "
        "df1/dW[1][0] = 1.0, df1/dW[1][1] = 0.0, df1/dW[1][2] = -1.0, "
        "df1/dx[0] = 5.0, df1/dx[1] = 7.0, df1/dx[2] = 9.0",
        "",
    ]


def test_plain_explain_of_a_broadcast_elementwise_step_says_it_is_summed():
    out = run("tape", "sum(x * b)", "--at", "x=[1,2],b=3", "--explain")
    assert "   -> v1 (b): [1.0,1.0] * [1.0,2.0], summed to [] = 3.0" in out.splitlines()
    assert "   -> v0 (x): [1.0,1.0] * 3.0 = [3.0,3.0]" in out.splitlines()


def test_table_explain_names_the_maps():
    out = run("tape", "sum(W @ x)", *AT, "--explain", "--format", "table")
    assert "partial or map" in out and "Wᵀ @ ḡ" in out and "f64[2]" in out
    assert "∂f1/∂W[1][2] = -1" in out


# --- the invariants on array programs -----------------------------------------------------

def _mlp(values):
    W, x, b = values["W"], values["x"], values["b"]
    t = np.tanh(W @ x + b)
    s = 1 - t ** 2                                   # tanh'
    return {"W": np.outer(s, x).ravel(), "x": W.T @ s, "b": s}


def _broadcast(values):
    x, c, w = values["x"], values["c"], values["w"]  # (3,), (), (2, 1): (x - c)^2 * w is 2 x 3
    d = 2 * (x - c) * w
    return {"x": d.sum(axis=0), "c": np.array([-d.sum()]),
            "w": np.full((2, 1), ((x - c) ** 2).sum())}


def _least_squares(values):
    A, x, b = values["A"], values["x"], values["b"]
    r = A @ x - b
    return {"A": 2 * np.outer(r, x).ravel(), "x": 2 * A.T @ r, "b": -2 * r}


INVARIANT_CASES = [
    ("sum(tanh(W @ x + b))", {"W": [[1, 2], [3, 4]], "x": [0.1, 0.2], "b": [0, 1]}, _mlp),
    ("sum((x - c)^2 * w)", {"x": [1, 2, 3], "c": 0.5, "w": [[1], [2]]}, _broadcast),
    ("let r = A @ x - b; sum(r^2)", {"A": [[1, 2, 0], [0, 1, 3]], "x": [1, -1, 2],
                                 "b": [0.5, 1]}, _least_squares),
]


def _at(values) -> list[str]:
    return ["--at", ",".join(f"{k}={json.dumps(v)}" for k, v in values.items())]


def _check_invariants(program: str, values: dict, out: str | None = None):
    """Each adjoint is the sum, in sweep order, of the contributions it received; the
    inputs' adjoints are the gradient. Returns {output component: gradient dict}."""
    steps = json_lines(run("tape", program, *_at(values), "--out", out, "--explain",
                           "--format", "json") if out else
                       run("tape", program, *_at(values), "--explain", "--format", "json"))
    rows = json_lines(run("tape", program, *_at(values), "--format", "json"))
    by_entry = {r["entry"]: r for r in rows}
    gradients = {}
    for k, component in enumerate(dict.fromkeys(s["output"] for s in steps)):
        sweep = [s for s in steps if s["output"] == component]
        received: dict[str, list] = {}
        for step in sweep[:-1]:
            for send in step["sends"]:
                received.setdefault(send["to"], []).append(array(send["contribution"]))
        for step in sweep[:-1]:   # the adjoint a step starts from: all it received
            if step["entry"] in received:
                np.testing.assert_array_equal(
                    array(step["adjoint"]), reduce(np.add, received[step["entry"]]))
        for entry, parts in received.items():   # every entry, the inputs included
            np.testing.assert_array_equal(array(by_entry[entry]["adjoints"][k]),
                                          reduce(np.add, parts))
        gradient = sweep[-1]["gradient"]
        for row in rows:
            if row["op"] == "input":
                adjoint = row["adjoints"][k]
                flat = np.ravel(np.zeros(row["shape"]) if adjoint is None else adjoint)
                names = [n for n in gradient if n == row["text"]
                         or n.startswith(row["text"] + "[")]
                np.testing.assert_allclose(flat, [gradient[n] for n in names], rtol=1e-14)
        gradients[component] = gradient
    return gradients


@pytest.mark.parametrize("program, values, reference", INVARIANT_CASES)
def test_adjoints_sum_their_contributions_and_the_inputs_adjoints_are_the_gradient(
        program, values, reference):
    (gradient,) = _check_invariants(program, values).values()
    point = {k: np.asarray(v, dtype=float) for k, v in values.items()}
    expected = reference(point)
    for name in values:
        got = [v for n, v in gradient.items() if n == name or n.startswith(name + "[")]
        np.testing.assert_allclose(got, np.ravel(expected[name]), rtol=1e-13, atol=1e-15)
    grad = run("grad", program, *_at(values), "--format", "json")
    assert json.loads(grad)["gradient"] == pytest.approx(list(gradient.values()), rel=1e-14)


def test_an_array_output_has_one_sweep_per_component_giving_the_jacobian_rows():
    # y = softmax(A @ x): dy/dx = (diag(s) - s s^T) A, row by row
    values = {"A": [[1, 2], [0, -1], [3, 1]], "x": [0.5, -0.25]}
    gradients = _check_invariants("y = softmax(A @ x)", values)
    assert list(gradients) == ["y[0]", "y[1]", "y[2]"]
    A, x = np.array(values["A"], dtype=float), np.array(values["x"])
    s = np.exp(A @ x) / np.exp(A @ x).sum()
    jac_x = (np.diag(s) - np.outer(s, s)) @ A
    for i in range(3):
        got = [gradients[f"y[{i}]"][f"x[{j}]"] for j in range(2)]
        np.testing.assert_allclose(got, jac_x[i], rtol=1e-13)
    jac = json.loads(run("jac", "y = softmax(A @ x)", *_at(values), "--format", "json"))
    for i, row in enumerate(jac["jacobian"]):
        assert row == pytest.approx(list(gradients[f"y[{i}]"].values()), rel=1e-14)


def test_literals_and_indexing_send_each_element_its_own_part():
    # y = [x0 * x1, x2^2, x0 + x2]: its Jacobian by hand
    values = {"x": [2, 3, 5]}
    gradients = _check_invariants("y = [x[0] * x[1], x[-1]^2, sum(x[::2])]", values)
    rows = [[gradients[f"y[{i}]"][f"x[{j}]"] for j in range(3)] for i in range(3)]
    assert rows == [[3.0, 2.0, 0.0], [0.0, 0.0, 10.0], [1.0, 0.0, 1.0]]


def test_an_output_chosen_with_out_and_a_parameter_not_differentiated():
    values = {"W": [[1, 2], [3, 4]], "x": [1, -1]}
    program = "y = W @ x; s = sum(y^2)"
    steps = json_lines(run("tape", program, *_at(values), "--out", "s", "--wrt", "x",
                           "--explain", "--format", "json"))
    gradient = steps[-1]["gradient"]
    W, x = np.array(values["W"], dtype=float), np.array(values["x"], dtype=float)
    assert list(gradient) == ["x[0]", "x[1]"]
    np.testing.assert_allclose(list(gradient.values()), 2 * W.T @ (W @ x), rtol=1e-15)
    matmul = next(s for s in steps if s.get("op") == "matmul")
    assert [send["to"] for send in matmul["sends"]] == ["v1"]   # W is a parameter: nothing
    rows = json_lines(run("tape", program, *_at(values), "--out", "s", "--wrt", "x",
                          "--format", "json"))
    assert rows[0]["op"] == "param" and rows[0]["adjoints"] == [None]


# --- errors, as for scalars ---------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["tape", "sum(x)", "--shape", "x=3", "--explain"],
     "jacli: error: --explain: --explain needs a point: give the variables with --at\n"),
    (["tape", "sum(x)", "--at", "x=[1,2]", "--explain", "--format", "csv"],
     "jacli: error: --format: --explain writes table, plain or json\n"),
    (["tape", "sum(x)", "--at", "x=[1,2]", "-o", "tape.npy"],
     "jacli: error: -o: the tape is text: write it to .txt, .csv or .jsonl\n"),
])
def test_the_errors_of_the_scalar_tape_hold_for_arrays(args, message):
    assert invoke_jacli(*args) == (2, "", message)


@pytest.mark.parametrize("args", [
    ["tape", "W @ x", "--at", "W=[[1,2,3]],x=[1,2]"],
    ["tape", "W @ x", "--shape", "W=2x3,x=2"],
    ["tape", "W @ x", "--at", "W=[[1,2,3]],x=[1,2]", "--explain"],
])
def test_a_shape_mismatch_is_a_caret_error_naming_both_shapes(args):
    code, out, err = invoke_jacli(*args)
    assert (code, out) == (2, "")
    assert "inner dimensions 3 and 2 differ" in err
    assert err.splitlines()[1:] == ["  W @ x", "    ^"]


def test_a_missing_or_ragged_value_is_an_error():
    code, out, err = invoke_jacli("tape", "sum(x*y)", "--at", "x=[1,2]")
    assert (code, out) == (2, "") and "no value for variable 'y'" in err
    code, out, err = invoke_jacli("tape", "sum(x)", "--at", "x=[1,[2]]")
    assert (code, out) == (2, "") and "the value of 'x' is ragged" in err
