"""The array engine: every array primitive's rules against central differences, both
modes against each other, seeds, Hessians, broadcasting, singular matrices, ties and
a few corpus cases (arrays.jsonl) on hand-built tapes (the parser for arrays is another
branch's work: tapes here are built with tape.var / tape.const / tape.apply)."""

from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from jacli.api import Program
from jacli.engine import ROW_FLOATS, WarningLog, evaluate
from jacli.tape import Tape

RNG = np.random.default_rng(20261202)
ALL = (None, None, None)


def program(tape: Tape) -> Program:
    """A Program around a hand-built tape (what jacli.compile will give after the merge)."""
    p = Program.__new__(Program)
    p.source, p.tape = tape.source, tape
    needed = tape.dependencies(tape.output_nodes)
    p.variables = [v for v in tape.variables if needed[tape.variable_nodes[v]]]
    p._arrays = True
    return p


def build(op, shapes, params=(), names="abcd"):
    """A tape with variables of `shapes` and one output op(*variables)."""
    t = Tape("")
    args = [t.var(n) for n in names[:len(shapes)]]
    t.add_output("y", t.apply(op, tuple(args), None, params), None)
    return t


def point(shapes, names="abcd", low=-1.5, high=1.5):
    return {n: RNG.uniform(low, high, s) for n, s in zip(names, shapes)}


def central(prog, at, wrt, h=1e-6):
    """The Jacobian by central differences of the program's values."""
    flat = np.concatenate([np.ravel(at[n]) for n in wrt])
    sizes = [np.size(at[n]) for n in wrt]

    def f(v):
        parts, start = dict(at), 0
        for n, size in zip(wrt, sizes):
            parts[n] = v[start:start + size].reshape(np.shape(at[n]))
            start += size
        return prog.eval(parts, batch=False).value
    return np.stack([(f(flat + h * e) - f(flat - h * e)) / (2 * h)
                     for e in np.eye(len(flat))], axis=-1)


def check_derivatives(prog, at, wrt, tol=1e-6):
    rev = prog.jacobian(at, wrt, mode="reverse", batch=False).jacobian
    fwd = prog.jacobian(at, wrt, mode="forward", batch=False).jacobian
    fd = central(prog, at, wrt)
    np.testing.assert_allclose(rev, fd, rtol=tol, atol=tol)
    np.testing.assert_allclose(fwd, rev, rtol=1e-12, atol=1e-13)
    return rev


# --- each primitive: value against NumPy, VJP and JVP against central differences --------

def _solve_vec(a, b):
    return np.linalg.solve(a, b)


CASES = [  # (op, argument shapes, params, NumPy reference)
    ("stack", [(), (), ()], (), lambda *a: np.stack(a)),
    ("stack", [(2,), (2,)], (), lambda *a: np.stack(a)),
    ("index", [(4,)], ((1,),), lambda a: a[1]),
    ("index", [(4,)], ((-1,),), lambda a: a[-1]),
    ("index", [(5,)], (((1, None, 2),),), lambda a: a[1::2]),
    ("index", [(4,)], (((None, None, -1),),), lambda a: a[::-1]),
    ("index", [(3, 4)], ((ALL, 0),), lambda a: a[:, 0]),
    ("index", [(3, 4)], ((1, (1, 3, None)),), lambda a: a[1, 1:3]),
    ("matmul", [(2, 3), (3,)], (), np.matmul),
    ("matmul", [(3,), (3, 2)], (), np.matmul),
    ("matmul", [(3,), (3,)], (), np.matmul),
    ("matmul", [(2, 3), (3, 4)], (), np.matmul),
    ("matmul", [(2, 2, 3), (3, 2)], (), np.matmul),
    ("dot", [(3,), (3,)], (), np.dot),
    ("outer", [(2,), (3,)], (), np.outer),
    ("transpose", [(2, 3)], (), np.transpose),
    ("diag", [(3,)], (), np.diag),
    ("diag", [(3, 3)], (), np.diag),
    ("diag", [(2, 3)], (), np.diag),
    ("trace", [(3, 3)], (), np.trace),
    ("det", [(3, 3)], (), np.linalg.det),
    ("inv", [(3, 3)], (), np.linalg.inv),
    ("solve", [(3, 3), (3,)], (), _solve_vec),
    ("solve", [(3, 3), (3, 2)], (), np.linalg.solve),
    ("softmax", [(4,)], (-1,), lambda a: np.exp(a) / np.exp(a).sum()),
    ("softmax", [(2, 3)], (0,), lambda a: np.exp(a) / np.exp(a).sum(0)),
]
for _op, _ref in [("sum", np.sum), ("mean", np.mean), ("prod", np.prod), ("amax", np.max),
                  ("amin", np.min), ("norm", lambda a, axis=None: np.sqrt(np.sum(
                      a * a, axis=axis))),
                  ("logsumexp", lambda a, axis=None: np.log(np.sum(np.exp(a), axis=axis)))]:
    CASES += [(_op, [()], (None,), _ref), (_op, [(4,)], (None,), _ref),
              (_op, [(2, 3)], (None,), _ref),
              (_op, [(2, 3)], (1,), lambda a, r=_ref: r(a, axis=1)),
              (_op, [(2, 3)], (-2,), lambda a, r=_ref: r(a, axis=0))]


def _case_point(op, shapes):
    at = point(shapes)
    if op in ("det", "inv", "solve"):   # well conditioned
        at["a"] = at["a"] + 3 * np.eye(3)
    return at


@pytest.mark.parametrize("op, shapes, params, ref", CASES,
                         ids=[f"{c[0]}{c[1]}{c[2]}" for c in CASES])
def test_primitive_value_and_both_modes_match_numpy_and_central_differences(
        op, shapes, params, ref):
    prog = program(build(op, shapes, params))
    at = _case_point(op, shapes)
    expected = np.asarray(ref(*[at[n] for n in "abcd"[:len(shapes)]]), dtype=float)
    res = prog.eval(at, batch=False)
    np.testing.assert_allclose(res.value, expected.ravel(), rtol=1e-12, atol=1e-14)
    assert res.shapes["y"] == expected.shape
    check_derivatives(prog, at, list("abcd"[:len(shapes)]))


@pytest.mark.parametrize("op, shapes, params, ref",
                         [c for c in CASES if c[0] in ("matmul", "inv", "solve", "softmax",
                                                       "logsumexp", "norm", "prod", "det",
                                                       "index", "stack", "amax")],
                         ids=lambda c: str(c) if not callable(c) else "")
def test_hessian_of_a_weighted_sum_is_symmetric_and_matches_differences_of_the_gradient(
        op, shapes, params, ref):
    # f = sum(op(args) * r) with r fixed weights: second derivatives of every rule
    t = Tape("")
    args = [t.var(n) for n in "abcd"[:len(shapes)]]
    y = t.apply(op, tuple(args), None, params)
    r = t.var("r")
    t.add_output("f", t.apply("sum", (t.apply("mul", (y, r)),), None, (None,)), None)
    prog = program(t)
    at = _case_point(op, shapes)
    at["r"] = RNG.uniform(-1, 1, np.shape(ref(*[at[n] for n in "abcd"[:len(shapes)]])))
    wrt = list("abcd"[:len(shapes)])
    res = prog.hessian(at, wrt, batch=False)
    np.testing.assert_allclose(res.hessian, res.hessian.T, rtol=1e-10, atol=1e-12)
    flat = np.concatenate([np.ravel(at[n]) for n in wrt])
    h, sizes = 1e-6, [np.size(at[n]) for n in wrt]

    def grad(v):
        parts, start = dict(at), 0
        for n, size in zip(wrt, sizes):
            parts[n] = v[start:start + size].reshape(np.shape(at[n]))
            start += size
        return prog.grad(parts, wrt, batch=False).gradient
    fd = np.stack([(grad(flat + h * e) - grad(flat - h * e)) / (2 * h)
                   for e in np.eye(len(flat))], axis=-1)
    np.testing.assert_allclose(res.hessian, fd, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res.gradient, prog.grad(at, wrt, batch=False).gradient,
                               rtol=1e-13, atol=1e-14)


# --- broadcasting: every pattern of ranks 0-2 -------------------------------------------

PATTERNS = [((), (3,)), ((3,), ()), ((2, 3), (3,)), ((3,), (2, 3)), ((2, 3), ()),
            ((2, 3), (2, 1)), ((1, 3), (2, 1)), ((2, 3), (2, 3)), ((), ()), ((2, 1), (3,))]


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "pow", "atan2", "max"])
@pytest.mark.parametrize("shapes", PATTERNS, ids=str)
def test_broadcasting_vjp_and_jvp_on_every_pattern_of_ranks_0_to_2(op, shapes):
    prog = program(build(op, shapes))
    at = point(shapes, low=0.5, high=2.0)
    expected = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
                "pow": np.power, "atan2": np.arctan2, "max": np.maximum}[op](at["a"], at["b"])
    res = prog.eval(at, batch=False)
    np.testing.assert_allclose(res.value, np.ravel(expected), rtol=1e-14)
    assert res.shapes["y"] == np.shape(expected)
    check_derivatives(prog, at, ["a", "b"])


# --- seeds, blocks, batches ---------------------------------------------------------------

def _mlp():
    t = Tape("")
    W, x, b = t.var("W"), t.var("x"), t.var("b")
    h = t.apply("tanh", (t.apply("add", (t.apply("matmul", (W, x)), b)),))
    t.add_output("h", h, None)
    t.add_output("s", t.apply("sum", (t.apply("mul", (h, h)),), None, (None,)), None)
    return program(t), {"W": RNG.normal(size=(2, 3)), "x": RNG.normal(size=3),
                        "b": RNG.normal(size=2)}


def test_jvp_and_vjp_with_unit_seeds_give_the_columns_and_rows_of_the_jacobian():
    prog, at = _mlp()
    jac = prog.jacobian(at, ["W", "x", "b"], batch=False).jacobian       # (3, 11)
    column = 0
    for name in ["W", "x", "b"]:
        for k in range(np.size(at[name])):
            tangent = {n: np.zeros_like(at[n]) for n in ["W", "x", "b"]}
            tangent[name].flat[k] = 1.0
            np.testing.assert_allclose(prog.jvp(at, tangent, batch=False).jvp, jac[:, column],
                                       rtol=1e-14, atol=1e-15)
            column += 1
    for row, (out, k) in enumerate([("h", 0), ("h", 1), ("s", 0)]):
        cot = {"h": np.zeros(2), "s": 0.0}
        if out == "h":
            cot["h"][k] = 1.0
        else:
            cot["s"] = 1.0
        np.testing.assert_allclose(prog.vjp(at, cot, ["W", "x", "b"], batch=False).vjp,
                                   jac[row], rtol=1e-14, atol=1e-15)


def test_blocks_have_jax_jacobian_shapes_and_components_are_named_row_major():
    prog, at = _mlp()
    res = prog.jacobian(at, ["W", "x"], batch=False)
    assert res.blocks[("h", "W")].shape == (2, 2, 3)
    assert res.blocks[("s", "x")].shape == (3,)
    assert res.input_components[:4] == ["W[0][0]", "W[0][1]", "W[0][2]", "W[1][0]"]
    assert res.output_components == ["h[0]", "h[1]", "s"]
    # dh_i/dW_jk = (1 - h_i^2) x_k [i = j]
    h = np.tanh(at["W"] @ at["x"] + at["b"])
    expected = np.einsum("ij,k->ijk", np.diag(1 - h * h), at["x"])
    np.testing.assert_allclose(res.blocks[("h", "W")], expected, rtol=1e-13)


def test_batched_points_give_each_point_its_own_jacobian_and_shared_values_stay_shared():
    prog, at = _mlp()
    xs = RNG.normal(size=(5, 3))
    res = prog.jacobian({"W": at["W"], "x": xs, "b": at["b"]}, ["W", "b"], batch={"x"})
    assert res.jacobian.shape == (5, 3, 8) and res.value.shape == (5, 3)
    assert res.blocks[("h", "W")].shape == (5, 2, 2, 3)
    for k in range(5):
        one = prog.jacobian({"W": at["W"], "x": xs[k], "b": at["b"]}, ["W", "b"], batch=False)
        np.testing.assert_array_equal(res.jacobian[k], one.jacobian)


def test_a_jacobian_wider_than_one_chunk_of_rows_is_the_same_as_in_one_chunk(monkeypatch):
    prog, at = _mlp()
    whole = prog.jacobian(at, ["W", "x", "b"], batch=False).jacobian
    monkeypatch.setattr("jacli.engine.ROW_FLOATS", 1)   # one seed row per sweep
    # (matmul over a stack of K rows may round in another order than over one: 1 ulp)
    np.testing.assert_allclose(prog.jacobian(at, ["W", "x", "b"], batch=False).jacobian,
                               whole, rtol=1e-15, atol=1e-17)
    np.testing.assert_allclose(
        prog.jacobian(at, ["W", "x", "b"], batch=False, mode="forward").jacobian, whole,
        rtol=1e-15, atol=1e-17)
    assert ROW_FLOATS > 1


# --- kinks, ties, zeros, singular matrices ----------------------------------------------

def _grad(op, value, params=(None,)):
    prog = program(build(op, [np.shape(value)], params))
    return prog.jacobian({"a": np.asarray(value, float)}, batch=False).jacobian[0]


def test_ties_share_the_derivative_among_the_tying_elements():
    np.testing.assert_array_equal(_grad("amax", [1.0, 3.0, 3.0]), [0.0, 0.5, 0.5])
    np.testing.assert_array_equal(_grad("amin", [2.0, 2.0, 2.0, 5.0]), [1 / 3, 1 / 3, 1 / 3, 0])
    prog = program(build("amax", [(2, 2)], (1,)))
    jac = prog.jacobian({"a": np.array([[1.0, 1.0], [0.0, 2.0]])}, batch=False).jacobian
    np.testing.assert_array_equal(jac, [[0.5, 0.5, 0, 0], [0, 0, 0, 1]])


def test_norm_at_zero_has_derivative_zero():
    np.testing.assert_array_equal(_grad("norm", [0.0, 0.0, 0.0]), [0.0, 0.0, 0.0])


def test_prod_is_exact_where_elements_are_zero():
    np.testing.assert_array_equal(_grad("prod", [2.0, 0.0, 3.0]), [0.0, 6.0, 0.0])
    np.testing.assert_array_equal(_grad("prod", [0.0, 0.0, 3.0]), [0.0, 0.0, 0.0])
    prog = program(build("prod", [(3,)], (None,)))
    hess = prog.hessian({"a": np.array([0.0, 0.0, 3.0])}, batch=False).hessian
    np.testing.assert_array_equal(hess, [[0, 3, 0], [3, 0, 0], [0, 0, 0]])


@pytest.mark.parametrize("op, shapes", [("inv", [(2, 2)]), ("solve", [(2, 2), (2,)])])
def test_a_singular_matrix_gives_nan_with_a_warning_naming_the_call(op, shapes):
    prog = program(build(op, shapes))
    at = {"a": np.array([[1.0, 2.0], [2.0, 4.0]]), "b": np.array([1.0, 1.0])}
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # no NumPy RuntimeWarning, no LinAlgError
        res = prog.jacobian(at, batch=False)
    assert np.isnan(res.value).all()
    assert np.isnan(res.jacobian).any()
    assert any(w.op == op for w in res.warnings)


def test_the_gradient_of_det_at_a_singular_matrix_is_the_cofactor_matrix():
    # det is a polynomial: d det / dA is the cofactor matrix everywhere, singular A too
    # (it was det(A) A^-T: nan, with a warning). [[a, b], [c, d]] -> [[d, -c], [-b, a]]
    prog = program(build("det", [(2, 2)]))
    for mode in ("reverse", "forward"):
        res = prog.jacobian({"a": np.array([[1.0, 2.0], [2.0, 4.0]])}, batch=False, mode=mode)
        assert res.value[0] == 0.0 and res.warnings == []
        np.testing.assert_allclose(res.jacobian[0], [4, -2, -2, 1], rtol=1e-14, atol=1e-14)
        zero = prog.jacobian({"a": np.zeros((3, 3))}, batch=False, mode=mode)
        np.testing.assert_array_equal(zero.jacobian, np.zeros((1, 9)))
    # a 3 x 3 of rank 2, and a stack holding it beside an invertible one
    singular = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    cofactors = np.array([[-3, 6, -3], [6, -12, 6], [-3, 6, -3]])   # by hand
    prog = program(build("det", [(2, 3, 3)]))
    stack = np.stack([singular, np.eye(3) * 2])
    jac = prog.jacobian({"a": stack}, batch=False).jacobian.reshape(2, 2, 3, 3)
    np.testing.assert_allclose(jac[0, 0], cofactors, atol=1e-12)
    np.testing.assert_allclose(jac[1, 1], np.eye(3) * 4, atol=1e-12)
    assert not jac[0, 1].any() and not jac[1, 0].any()
    jvp = prog.jvp({"a": stack}, {"a": np.ones((2, 3, 3))}, batch=False).jvp
    np.testing.assert_allclose(jvp, [cofactors.sum(), 12.0], atol=1e-12)


def test_an_output_independent_of_an_entry_with_an_infinite_partial_gets_an_exact_zero():
    # f1 = sign(sqrt(x)) reaches sqrt only through sign' = 0; f2 = sqrt(x) has sqrt' = inf
    t = Tape("")
    x = t.var("x")
    root = t.apply("sqrt", (x,))
    t.add_output("f1", t.apply("sign", (root,)), None)
    t.add_output("f2", root, None)
    t.add_output("f3", t.apply("stack", (x, root)), None)   # (within one array output
    # the components share their nodes, as in JAX: d f3[0]/dx is not pinned here)
    prog = program(t)
    for mode in ("reverse", "forward"):
        jac = prog.jacobian({"x": 0.0}, mode=mode).jacobian
        assert jac[0, 0] == 0.0 and np.isinf(jac[1, 0])
        assert np.isinf(jac[3, 0])


# --- hypothesis: random compositions, forward == reverse == differences ------------------

UNARY = ["tanh", "sin", "exp", "sigmoid"]
REDUCE = ["sum", "mean", "norm", "logsumexp", "amax"]


@settings(max_examples=15, deadline=None)
@given(st.lists(st.sampled_from(UNARY + ["softmax", "matmul", "transpose"]), min_size=1,
                max_size=4), st.sampled_from(REDUCE), st.integers(0, 2 ** 31))
def test_random_array_programs_agree_in_both_modes_and_with_differences(ops, reduce, seed):
    rng = np.random.default_rng(seed)
    t = Tape("")
    A, v = t.var("A"), t.var("v")
    node = v
    for op in ops:
        if op == "matmul":
            node = t.apply("matmul", (A, node))
        elif op == "softmax":
            node = t.apply("softmax", (node,), None, (-1,))
        elif op == "transpose":
            node = t.apply("transpose", (node,))
        else:
            node = t.apply(op, (node,))
    t.add_output("y", node, None)
    t.add_output("r", t.apply(reduce, (node,), None, (None,)), None)
    prog = program(t)
    at = {"A": rng.uniform(-1, 1, (3, 3)), "v": rng.uniform(-1, 1, 3)}
    # central differences (h = 1e-6) cannot check a function that overflows or whose
    # slopes reach ~1e3 (exp(exp(exp(v)))): such draws are left out
    jacobian = prog.jacobian(at, batch=False).jacobian
    assume(np.all(np.isfinite(jacobian)) and np.max(np.abs(jacobian), initial=0) < 1e3)
    check_derivatives(prog, at, prog.variables, tol=2e-6)


# --- corpus cases (arrays.jsonl) on hand-built tapes -------------------------------------

CORPUS = pathlib.Path("/work/shared/corpus/arrays.jsonl")


def _corpus(case_id):
    for line in CORPUS.read_text().splitlines():
        case = json.loads(line)
        if case["id"] == case_id:
            return case
    pytest.skip(f"{case_id} not in the corpus")


def _mlp_loss(t):   # a084: h = tanh(W1 @ x + b1); o = w2 @ h + b2; loss = (o - t)^2
    W1, x, b1, w2, b2, tt = (t.var(n) for n in ["W1", "x", "b1", "w2", "b2", "t"])
    h = t.apply("tanh", (t.apply("add", (t.apply("matmul", (W1, x)), b1)),))
    o = t.apply("add", (t.apply("matmul", (w2, h)), b2))
    t.add_output("loss", t.apply("pow", (t.apply("sub", (o, tt)), t.const(2.0))), None)


def _mlp_sum(t):    # a087: h = tanh(W1@x + b1); loss = 0.5*sum((Wb@h - y)^2)
    W1, x, b1, Wb, y = (t.var(n) for n in ["W1", "x", "b1", "Wb", "y"])
    h = t.apply("tanh", (t.apply("add", (t.apply("matmul", (W1, x)), b1)),))
    d = t.apply("sub", (t.apply("matmul", (Wb, h)), y))
    s = t.apply("sum", (t.apply("pow", (d, t.const(2.0))),), None, (None,))
    t.add_output("loss", t.apply("mul", (t.const(0.5), s)), None)


def _softmax_axis0(t):   # a049: loss = softmax(P, axis=0)
    t.add_output("loss", t.apply("softmax", (t.var("P"),), None, (0,)), None)


def _solve(t):    # a075: tot = solve(P, y)
    t.add_output("tot", t.apply("solve", (t.var("P"), t.var("y"))), None)


def _norm_axis1(t):   # a040: out = norm(C, axis=1)
    t.add_output("out", t.apply("norm", (t.var("C"),), None, (1,)), None)


def _softmax_lse(t):   # a120: mm = U @ tgt; p = softmax(mm); lse = logsumexp(mm)
    mm = t.apply("matmul", (t.var("U"), t.var("tgt")))
    t.add_output("p", t.apply("softmax", (mm,), None, (-1,)), None)
    t.add_output("lse", t.apply("logsumexp", (mm,), None, (None,)), None)


@pytest.mark.parametrize("case_id, builder", [("a084", _mlp_loss), ("a087", _mlp_sum),
                                              ("a049", _softmax_axis0), ("a075", _solve),
                                              ("a040", _norm_axis1), ("a120", _softmax_lse)])
def test_corpus_cases_on_hand_built_tapes_match_the_expected_numbers(case_id, builder):
    case = _corpus(case_id)
    t = Tape(case["program"])
    builder(t)
    prog = program(t)
    for at, expected in zip(case["points"], case["expected"]):
        command = case["command"]
        if command == "hess":
            res = prog.hessian(at, case["wrt"], batch=False)
            np.testing.assert_allclose(res.hessian, expected["hessian"], rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(res.gradient, expected["gradient"], rtol=1e-9,
                                       atol=1e-9)
        elif command == "grad":
            res = prog.grad(at, case["wrt"], batch=False)
            np.testing.assert_allclose(res.gradient, expected["gradient"], rtol=1e-9,
                                       atol=1e-9)
        else:
            res = prog.jacobian(at, case["wrt"], batch=False)
            np.testing.assert_allclose(res.jacobian, expected["jacobian"], rtol=1e-9,
                                       atol=1e-9)
        np.testing.assert_allclose(res.value, np.ravel(expected["value"]), rtol=1e-9,
                                   atol=1e-9)
        shapes = {k: tuple(v) for k, v in expected["shapes"].items()}
        assert {k: tuple(v) for k, v in res.shapes.items()} == shapes


def test_the_engine_layout_keeps_shared_values_unbatched():
    # a (1, 1, 3) parameter and (1, B) points: the Jacobian is per point, never summed over B
    t = Tape("")
    w, s = t.var("w"), t.var("s")
    t.add_output("y", t.apply("mul", (w, s)), None)
    sweep = evaluate(t, {"w": np.array([[1.0, 2.0, 3.0]]), "s": np.array([2.0, 5.0])}, 2,
                     t.output_nodes, ["w", "s"], WarningLog())
    np.testing.assert_array_equal(sweep.jacobian[1], [[5, 0, 0, 1], [0, 5, 0, 2],
                                                      [0, 0, 5, 3]])


# --- the API's contract on values --------------------------------------------------------

def test_grad_of_an_output_with_more_than_one_element_names_its_shape_and_suggests_sum():
    from jacli.errors import JacliError
    prog = program(build("tanh", [(3,)]))
    with pytest.raises(JacliError, match=r"(?s)shape \(3,\).*sum\(\.\.\.\)"):
        prog.grad({"a": np.ones(3)}, batch=False)
    with pytest.raises(JacliError, match=r"shape \(3,\)"):
        prog.hessian({"a": np.ones(3)}, batch=False)


def test_array_values_without_batch_are_refused_rather_than_guessed():
    from jacli.errors import JacliError
    prog = program(build("sum", [(2, 2)], (None,)))
    with pytest.raises(JacliError, match="batch=False"):
        prog.eval({"a": np.ones((2, 2))})
    # one point of a (2, 2) value; two points of (2,) values with batch=True
    assert prog.eval({"a": np.ones((2, 2))}, batch=False).value.tolist() == [4.0]
    vec = program(build("sum", [(2,)], (None,)))
    assert vec.eval({"a": [[1, 2], [3, 4]]}, batch=True).value.tolist() == [[3.0], [7.0]]


def test_a_shape_mismatch_is_a_jacli_error_naming_both_shapes():
    from jacli.errors import JacliError
    prog = program(build("matmul", [(2, 3), (2,)]))
    with pytest.raises(JacliError, match=r"matmul of shapes \(2, 3\) and \(2,\): inner "
                                         r"dimensions 3 and 2 differ"):
        prog.eval({"a": np.ones((2, 3)), "b": np.ones(2)}, batch=False)


def test_program_shapes_lists_the_variables_then_the_outputs():
    prog, at = _mlp()
    assert prog.uses_arrays
    assert prog.shapes(at, batch=False) == {"W": (2, 3), "x": (3,), "b": (2,), "h": (2,),
                                            "s": ()}


def test_an_output_that_is_a_variable_keeps_its_unit_row_beside_other_outputs():
    t = Tape("")
    x, y = t.var("x"), t.var("y")
    t.add_output("f1", x, None)
    t.add_output("f2", t.apply("mul", (x, y)), None)
    t.add_output("f3", y, None)
    prog = program(t)
    for mode in ("reverse", "forward"):
        jac = prog.jacobian({"x": 3.0, "y": 5.0}, mode=mode).jacobian
        np.testing.assert_array_equal(jac, [[1, 0], [5, 3], [0, 1]])
