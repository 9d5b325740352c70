"""`jacli chain` (the chain of local Jacobians), `hvp` (Hessian-vector products by
forward over reverse) and `check --fast` (u^T J v along one random direction).

References: hand-derived local Jacobians; `jac` and `hess` (the dense engine paths);
NumPy products of the local Jacobians written here; finite differences."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given

import jacli
from conftest import invoke_jacli
from jacli.fastcheck import check_fast
from jacli.prims import PRIMITIVES
from test_properties import ALL_PRIMS, POINT, PROFILE, SMOOTH_PRIMS, compile_generated, programs

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


# --- chain ---------------------------------------------------------------------------------

def test_local_jacobians_are_the_hand_derived_partials():
    x, y = 1.3, -0.7
    steps = jacli.compile("let a = x*y; f = sin(a) + x").chain({"x": x, "y": y})
    a, f = steps.steps
    assert (a.name, a.uses, f.name, f.uses) == ("a", ["x", "y"], "f", ["x", "a"])
    assert [float(block[0, 0]) for block in a.local] == [y, x]
    assert float(f.local[0][0, 0]) == 1.0
    assert float(f.local[1][0, 0]) == pytest.approx(np.cos(x * y), rel=1e-15)
    # J(f) = L[f,x] J(x) + L[f,a] J(a), by hand: (1 + cos(xy) y, cos(xy) x)
    assert np.allclose(f.jacobian, [[1 + np.cos(x * y) * y, np.cos(x * y) * x]], rtol=1e-15)


def test_a_pure_chain_of_lets_is_the_product_of_its_local_jacobians():
    W = np.array([[0.5, -1.0, 0.25], [1.5, 0.75, -0.5]])
    point = {"x": np.array([0.2, -0.4, 0.9]), "W": W, "V": np.array([[1.0, -2.0]])}
    source = "let a = W @ x; let h = tanh(a); f = V @ h"
    c = jacli.compile(source).chain(point, wrt=["x"])
    (a, h, f) = c.steps
    assert [s.uses for s in c.steps] == [["x"], ["a"], ["h"]]
    L1, L2, L3 = a.local[0], h.local[0], f.local[0]
    assert np.array_equal(L1, W)                                    # d(W@x)/dx = W
    assert np.allclose(L2, np.diag(1 - np.tanh(W @ point["x"]) ** 2), rtol=1e-15, atol=0)
    assert np.array_equal(L3, point["V"])
    assert np.allclose(c.jacobian, L3 @ L2 @ L1, rtol=1e-14, atol=0)
    reference = jacli.compile(source).jacobian(point, wrt=["x"], batch=False).jacobian
    assert np.allclose(c.jacobian, reference, rtol=1e-14, atol=1e-16)


def test_aliases_parameters_and_constants_are_statements_too():
    source = "let a = x; b = a*y; c = 2; d = y"
    c = jacli.compile(source).chain({"x": 2.0, "y": 3.0}, wrt=["x"])
    by_name = {s.name: s for s in c.steps}
    assert by_name["a"].uses == ["x"] and np.array_equal(by_name["a"].local[0], [[1.0]])
    # `a` is x itself (one tape node): what uses it uses x, the node's first name
    assert by_name["b"].uses == ["x"] and np.array_equal(by_name["b"].jacobian, [[3.0]])
    assert by_name["c"].uses == [] and np.array_equal(by_name["c"].jacobian, [[0.0]])
    assert by_name["d"].uses == [] and np.array_equal(by_name["d"].jacobian, [[0.0]])
    assert np.array_equal(c.jacobian, [[3.0], [0.0], [0.0]])


@given(programs(ALL_PRIMS), POINT)
@PROFILE
def test_chain_ends_with_the_jacobian_of_jac_on_random_programs(gen, point):
    program = compile_generated(gen)
    if not program.variables:
        return
    point = {v: point[v] for v in program.variables}
    with np.errstate(all="ignore"):
        expected = program.jacobian(point).jacobian
        got = program.chain(point).jacobian
    scale = 1 + np.nanmax(np.abs(np.where(np.isfinite(expected), expected, 0)))
    finite = np.isfinite(expected)
    assert np.array_equal(finite, np.isfinite(got))
    assert np.allclose(got[finite], expected[finite], rtol=1e-12, atol=1e-12 * scale)


def _sample_commands():
    for path in sorted(SAMPLES.glob("*.jac")):
        for line in path.read_text().splitlines():
            match = re.match(r"#\s+jacli\s+\w+\s+(.*)", line)
            if match and "--points" not in match.group(1):
                yield pytest.param(shlex.split(match.group(1)), id=path.name)


@pytest.mark.parametrize("args", list(_sample_commands()))
def test_chain_on_every_sample_ends_with_the_jacobian_of_jac(args):
    status, out, err = invoke_jacli("chain", *args, "--format", "json")
    assert status == 0, err
    *statements, program = [json.loads(line) for line in out.splitlines()]
    assert statements and all("local" in s for s in statements)
    status, out, err = invoke_jacli("jac", *args, "--format", "json")
    assert status == 0, err
    reference = json.loads(out)
    assert program["inputs"] == reference["inputs"]
    assert np.allclose(program["jacobian"], reference["jacobian"], rtol=1e-12, atol=1e-15)


def test_chain_prints_plain_blocks_and_refuses_csv_and_npy(tmp_path):
    status, out, _ = invoke_jacli("chain", "let a = x*y; f = sin(a) + x", "--at", "x=1,y=2")
    assert status == 0
    assert out.splitlines()[:5] == ["inputs: x y", "", "a: f64[] = 2.0", "  local da/dx: 2.0",
                                    "  local da/dy: 1.0"]
    assert "  J(f) = L[f,x] J(x) + L[f,a] J(a): " in out
    assert out.splitlines()[-1].startswith("Jacobian (f by x, y): ")
    status, _, err = invoke_jacli("chain", "x*y", "--at", "x=1,y=2", "--format", "csv")
    assert status == 2 and "chain writes table, plain or json" in err
    status, _, err = invoke_jacli("chain", "x*y", "--at", "x=1,y=2", "-o",
                                  str(tmp_path / "c.npy"))
    assert status == 2 and "the chain is text" in err


def test_chain_of_arrays_names_components_and_shapes():
    status, out, err = invoke_jacli(
        "chain", "let h = tanh(W @ x); f = sum(h^2)", "--wrt", "x",
        "--at", "W=[[1,2],[3,4]],x=[0.1,0.2]", "--format", "json")
    assert status == 0, err
    h, f, program = [json.loads(line) for line in out.splitlines()]
    assert (h["shape"], f["shape"], program["inputs"]) == ([2], [], ["x[0]", "x[1]"])
    W, x = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([0.1, 0.2])
    t = np.tanh(W @ x)
    assert np.allclose(h["local"]["x"], (1 - t ** 2)[:, None] * W, rtol=1e-14)
    assert np.allclose(f["local"]["h"], [2 * t], rtol=1e-14)
    assert np.allclose(program["jacobian"], [2 * t @ ((1 - t ** 2)[:, None] * W)], rtol=1e-14)


# --- hvp -----------------------------------------------------------------------------------

@given(programs(SMOOTH_PRIMS), POINT)
@PROFILE
def test_hvp_equals_the_hessian_times_v(gen, point):
    program = compile_generated(gen)
    if not program.variables or len(program.outputs) != 1:
        return
    point = {v: point[v] for v in program.variables}
    v = {name: 0.5 - k for k, name in enumerate(program.variables)}
    with np.errstate(all="ignore"):
        H = program.hessian(point).hessian
        got = program.hvp(point, v)
    expected = H @ np.array([v[name] for name in program.variables])
    assert np.allclose(got.hvp, expected, rtol=1e-10, atol=1e-10 * (1 + np.abs(H).max()),
                       equal_nan=True)


def test_hvp_of_the_chained_rosenbrock_over_points():
    program = jacli.compile("sum(100*(x[1:] - x[:-1]^2)^2 + (1 - x[:-1])^2)")
    rng = np.random.default_rng(3)
    x, v = rng.uniform(-1, 1, (4, 6)), rng.standard_normal(6)
    got = program.hvp({"x": x}, {"x": v}, batch=True)
    assert got.hvp.shape == (4, 6)
    for b in range(4):   # the tridiagonal Hessian, by hand
        n, xb = 6, x[b]
        H = np.zeros((n, n))
        for i in range(n - 1):
            H[i, i] += 1200 * xb[i] ** 2 - 400 * xb[i + 1] + 2
            H[i + 1, i + 1] += 200
            H[i, i + 1] -= 400 * xb[i]
            H[i + 1, i] -= 400 * xb[i]
        assert np.allclose(got.hvp[b], H @ v, rtol=1e-12)


def test_hvp_names_only_inputs_in_the_tangent():
    with pytest.raises(jacli.JacliError, match="'y' is not an input"):
        jacli.compile("x^2*y").hvp({"x": 1.0, "y": 2.0}, {"y": 1.0}, wrt=["x"])


# --- check --fast --------------------------------------------------------------------------

def test_fast_check_is_the_directional_derivative_of_u_dot_f():
    program = jacli.compile("r = sqrt(x^2 + y^2); theta = atan2(y, x)")
    result = check_fast(program, {"x": np.array([3.0]), "y": np.array([4.0])}, seed=7)
    J = np.array([[0.6, 0.8], [-0.16, 0.12]])   # by hand, at (3, 4)
    assert result.passed
    assert result.result.ad[0, 0, 0] == pytest.approx(result.cotangent @ J @ result.tangent,
                                                      rel=1e-14)
    assert np.linalg.norm(result.tangent) == pytest.approx(1.0)
    assert abs(result.result.fd[0, 0, 0] - result.result.ad[0, 0, 0]) < 1e-9


def test_fast_check_catches_a_perturbed_partial(monkeypatch):
    source = "let h = tanh(W @ x); f = sum(sin(h) * x[0])"
    args = ("--at", "W=[[1,2],[3,4]],x=[0.5,-1]")
    status, _, err = invoke_jacli("check", "--fast", source, *args)
    assert status == 0, err
    sin = PRIMITIVES["sin"]
    monkeypatch.setitem(PRIMITIVES, "sin", sin._replace(
        partials=(lambda m, ans, x: m.mul(m.cos(x), m.const(1.001)),)))
    status, out, err = invoke_jacli("check", "--fast", source, *args)
    assert status == 1
    assert out.split()[-1] == "FAIL"
    assert "AD and finite differences disagree" in err


@pytest.mark.parametrize("args", list(_sample_commands()))
def test_fast_check_passes_every_sample(args):
    status, out, err = invoke_jacli("check", "--fast", *args)
    assert status == 0, err + out


def test_hvp_command_equals_hess_times_v_over_points(tmp_path):
    args = ("-f", "samples/rosenbrock.jac", "--wrt", "x,y", "--at", "a=1,b=100",
            "--points", "samples/points.csv")
    status, out, err = invoke_jacli("hvp", *args, "--tangent", "x=1,y=-1", "--format", "json")
    assert status == 0, err
    got = [json.loads(line) for line in out.splitlines()]
    status, out, err = invoke_jacli("hess", *args, "--format", "json")
    assert status == 0, err
    for row, reference in zip(got, map(json.loads, out.splitlines())):
        assert row["gradient"] == reference["gradient"]
        assert row["hvp"] == pytest.approx(np.array(reference["hessian"]) @ [1.0, -1.0],
                                           rel=1e-14)
    status, out, _ = invoke_jacli("hvp", *args, "--tangent", "x=1,y=-1", "--format", "csv")
    assert out.splitlines()[0] == "x,y,a,b,f,df/dx,df/dy,hvp_x,hvp_y"
    status, _, err = invoke_jacli("hvp", "x^2*y", "--at", "x=1,y=2")
    assert status == 2 and "hvp needs --tangent" in err


def test_hvp_of_arrays_writes_jax_shaped_blocks(tmp_path):
    source = "sum(100*(x[1:] - x[:-1]^2)^2 + (1 - x[:-1])^2)"
    path = tmp_path / "h.npz"
    status, _, err = invoke_jacli("hvp", source, "--at", "x=[0.5,1,1.5,2]",
                                  "--tangent", "x=[1,0,0,0]", "-o", str(path))
    assert status == 0, err
    with np.load(path) as saved:
        # column 0 of the tridiagonal Hessian at x0 = 0.5, x1 = 1, by hand
        assert saved["hvp/x"].shape == (1, 4)
        assert saved["hvp/x"][0].tolist() == [1200 * 0.25 - 400 * 1 + 2, -400 * 0.5, 0.0, 0.0]
