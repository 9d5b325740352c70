"""--reduce sum|mean and Program.grad(..., reduce=...): one result over all rows, from one
sweep per chunk (the parameters' adjoints summed over the rows inside the sweep), chunks
added with compensated summation. Checked against hand-derived derivatives summed with
math.fsum, and against the per-row results of the same command summed the same way."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

import jacli
from conftest import invoke_jacli

# w is a parameter given once (--at); x, y, z are the data, one row each.
SCALAR = "u = w*x^2*y + sin(z)\nv = x*exp(-w*y)"
W = 0.7
WRT = ["x", "y", "z", "w"]
TANGENT = {"x": 1.0, "y": 0.5, "z": -2.0, "w": 0.25}
COTANGENT = {"u": 2.0, "v": -1.0}


def scalar_rows(x, y, z, w=W):
    """Per row, by hand: values (B, 2), Jacobian (B, 2, 4) and u's Hessian (B, 4, 4)."""
    e = np.exp(-w * y)
    zero = np.zeros_like(x)
    value = np.stack([w * x**2 * y + np.sin(z), x * e], axis=1)
    grad_u = np.stack([2 * w * x * y, w * x**2, np.cos(z), x**2 * y], axis=1)
    grad_v = np.stack([e, -w * x * e, zero, -x * y * e], axis=1)
    hess = np.stack([np.stack([2 * w * y, 2 * w * x, zero, 2 * x * y], 1),
                     np.stack([2 * w * x, zero, zero, x**2], 1),
                     np.stack([zero, zero, -np.sin(z), zero], 1),
                     np.stack([2 * x * y, x**2, zero, zero], 1)], axis=1)
    return value, np.stack([grad_u, grad_v], axis=1), hess


def fsum(rows: np.ndarray) -> np.ndarray:
    """math.fsum over the rows (axis 0), element by element: the correctly rounded sum."""
    flat = rows.reshape(len(rows), -1)
    return np.array([math.fsum(flat[:, j]) for j in range(flat.shape[1])]).reshape(
        rows.shape[1:])


def expected(command: str, rows: dict) -> dict:
    """The per-row results a command would give, by hand, keyed as its JSON is."""
    value, jac, hess = scalar_rows(rows["x"], rows["y"], rows["z"])
    t = np.array([TANGENT[n] for n in WRT])
    u = np.array([COTANGENT["u"], COTANGENT["v"]])
    return {"eval": {"value": value},
            "grad": {"value": value[:, 0], "gradient": jac[:, 0]},
            "jac": {"value": value, "jacobian": jac},
            "hess": {"value": value[:, 0], "gradient": jac[:, 0], "hessian": hess},
            "jvp": {"value": value, "jvp": jac @ t},
            "vjp": {"value": value, "vjp": np.einsum("i,bij->bj", u, jac)}}[command]


def command_line(command: str) -> list[str]:
    seeds = {"jvp": ["--tangent", ",".join(f"{k}={v}" for k, v in TANGENT.items())],
             "vjp": ["--cotangent", ",".join(f"{k}={v}" for k, v in COTANGENT.items())]}
    wrt = [] if command in ("eval", "jvp") else ["--wrt", ",".join(WRT)]
    out = ["--out", "u"] if command in ("grad", "hess") else []
    return [command, SCALAR, "--at", f"w={W}", *wrt, *out, *seeds.get(command, [])]


def write_rows(path, x, y, z, bad=()):
    lines = ["x,y,z"] + [f"{float(a)!r},{float(b)!r},{float(c)!r}" for a, b, c in zip(x, y, z)]
    for row in bad:   # a bad row in place of a good one: named, skipped, not summed
        lines[1 + row] = "1.0,oops,2.0"
    path.write_text("\n".join(lines) + "\n")


COMMANDS = ["eval", "grad", "jac", "hess", "jvp", "vjp"]


@pytest.mark.parametrize("reduce", ["sum", "mean"])
@pytest.mark.parametrize("command", COMMANDS)
def test_reduce_is_the_sum_of_the_rows_results_with_bad_rows_left_out(tmp_path, command,
                                                                      reduce):
    rng = np.random.default_rng(COMMANDS.index(command))
    n = 300
    x, y, z = rng.uniform(-2, 2, (3, n))
    bad = [3, 150, 299]
    path = tmp_path / "p.csv"
    write_rows(path, x, y, z, bad)
    good = np.setdiff1d(np.arange(n), bad)
    code, out, err = invoke_jacli(*command_line(command), "--points", str(path),
                                  "--reduce", reduce, "--format", "json")
    assert code == 1
    assert err.splitlines() == [f"jacli: row {r + 1}: the value of 'y' is not a number: "
                                "'oops'" for r in bad] + ["jacli: 3 of 300 rows failed; "
                                                          "297 evaluated"]
    (line,) = out.splitlines()
    got = json.loads(line)
    assert got["rows"] == n - len(bad) and got["reduce"] == reduce
    assert got["at"] == {"w": W}
    want = expected(command, {"x": x[good], "y": y[good], "z": z[good]})
    # ... and the same command's per-row results (its other code path), summed
    code, rows_out, _ = invoke_jacli(*command_line(command), "--points", str(path),
                                     "--format", "json")
    per_row = [json.loads(r) for r in rows_out.splitlines()]
    per_row = [r for r in per_row if "error" not in r]
    assert len(per_row) == len(good)
    divide = len(good) if reduce == "mean" else 1
    assert set(got) == {"inputs", "outputs", "at", "rows", "reduce"} | set(want)
    for key, rows in want.items():
        reference = fsum(rows) / divide
        np.testing.assert_allclose(np.array(got[key]), reference, rtol=1e-12, atol=1e-12,
                                   err_msg=f"{command} {key}")
        theirs = fsum(np.array([r[key] for r in per_row])) / divide
        np.testing.assert_allclose(np.array(got[key]), theirs, rtol=1e-12, atol=1e-12)


ARRAY = "r = W @ [x1, x2] + b - [y1, y2]\nloss = sum(r^2)"
W_AT, B_AT = np.array([[1.0, -0.5], [0.25, 2.0]]), np.array([0.5, -1.0])


def array_rows(x1, x2, y1, y2):
    """By hand, per row: r (B, 2), d loss/d (W, b) (B, 6), d r/d (W, b) (B, 2, 6) and
    the Hessian of loss (B, 6, 6)."""
    X = np.stack([x1, x2], 1)
    r = X @ W_AT.T + B_AT - np.stack([y1, y2], 1)
    grad = np.concatenate([(2 * r[:, :, None] * X[:, None, :]).reshape(-1, 4), 2 * r], 1)
    jac = np.zeros((len(x1), 2, 6))
    for i in range(2):
        jac[:, i, 2 * i:2 * i + 2] = X
        jac[:, i, 4 + i] = 1.0
    hess = 2 * np.einsum("bki,bkj->bij", jac, jac)   # loss is quadratic in (W, b)
    return r, grad, jac, hess


@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_reduce_over_an_array_program_with_weights_by_at(tmp_path, reduce):
    rng = np.random.default_rng(7)
    n = 200
    x1, x2, y1, y2 = rng.normal(size=(4, n))
    path = tmp_path / "p.csv"
    lines = ["x1,x2,y1,y2"] + [",".join(repr(float(v)) for v in row)
                               for row in zip(x1, x2, y1, y2)]
    lines[1 + 17] = "1,2,3"            # too few fields: a bad row
    path.write_text("\n".join(lines) + "\n")
    good = np.setdiff1d(np.arange(n), [17])
    r, grad, jac, hess = array_rows(x1[good], x2[good], y1[good], y2[good])
    divide = len(good) if reduce == "mean" else 1
    at = ["--at", f"W={W_AT.tolist()}", "--at", f"b={B_AT.tolist()}", "--wrt", "W,b"]
    runs = {"grad": (["--out", "loss"], {"value": (r**2).sum(1), "gradient": grad}),
            "hess": (["--out", "loss"], {"value": (r**2).sum(1), "gradient": grad,
                                        "hessian": hess}),
            "jac": (["--out", "r"], {"value": r, "jacobian": jac}),
            "vjp": (["--out", "r", "--cotangent", "r=[1,-2]"],
                    {"value": r, "vjp": jac[:, 0] - 2 * jac[:, 1]})}
    for command, (options, want) in runs.items():
        code, out, err = invoke_jacli(command, ARRAY, *at, *options, "--points", str(path),
                                      "--reduce", reduce, "--format", "json")
        assert code == 1 and "row 18:" in err, err
        got = json.loads(out)
        assert got["rows"] == n - 1
        assert got["at"] == {"W": W_AT.tolist(), "b": B_AT.tolist()}
        for key, rows in want.items():
            np.testing.assert_allclose(np.ravel(got[key]), np.ravel(fsum(rows) / divide),
                                       rtol=1e-12, atol=1e-12, err_msg=f"{command} {key}")


def test_the_python_api_reduces_as_the_command_line(tmp_path):
    rng = np.random.default_rng(3)
    x, y, z = rng.uniform(-2, 2, (3, 5000))
    program = jacli.compile(SCALAR)
    point = {"x": x, "y": y, "z": z, "w": W}
    value, jac, hess = scalar_rows(x, y, z)
    total = program.grad(point, wrt=WRT, output="u", batch={"x", "y", "z"}, reduce="sum")
    assert total.rows == 5000 and total.gradient.shape == (4,)
    np.testing.assert_allclose(total.gradient, fsum(jac[:, 0]), rtol=1e-12)
    mean = program.hessian(point, wrt=WRT, output="u", batch={"x", "y", "z"}, reduce="mean")
    np.testing.assert_allclose(mean.hessian, fsum(hess) / 5000, rtol=1e-12, atol=1e-15)
    # v1 points (numbers shared, 1-D arrays the rows) reduce the same
    v1 = program.jacobian(point, wrt=WRT, reduce="sum")
    np.testing.assert_allclose(v1.jacobian, fsum(jac), rtol=1e-12)
    np.testing.assert_allclose(v1.value, fsum(value), rtol=1e-12)
    with pytest.raises(jacli.JacliError, match="unknown reduction 'max'"):
        program.eval(point, reduce="max")
    path = tmp_path / "p.csv"
    write_rows(path, x[:10], y[:10], z[:10])
    (report,) = program.stream(str(path), "grad", wrt=WRT, outputs=["u"], at={"w": W},
                               reduce="mean")
    assert report.rows == 10
    np.testing.assert_allclose(report.jacobian[0, 0], fsum(jac[:10, 0]) / 10, rtol=1e-12)


def test_a_shared_matrix_gets_no_per_row_cotangent(monkeypatch):
    """The weights' cotangent through W @ x is summed over the rows as one product
    (prims.SUMMED_VJP): matmul's per-row rule is never called for them."""
    import jacli.prims

    matmul = jacli.prims.PRIMITIVES["matmul"]

    def per_row(*args):
        raise AssertionError("a per-row cotangent of the shared matrix")
    monkeypatch.setitem(jacli.prims.PRIMITIVES, "matmul",
                        matmul._replace(vjp=(per_row, per_row)))
    rng = np.random.default_rng(5)
    x1, x2, y1, y2 = rng.normal(size=(4, 3000))
    point = {"x1": x1, "x2": x2, "y1": y1, "y2": y2, "W": W_AT, "b": B_AT}
    total = jacli.compile(ARRAY).grad(point, wrt=["W", "b"], output="loss",
                                      batch={"x1", "x2", "y1", "y2"}, reduce="sum")
    _, grad, _, _ = array_rows(x1, x2, y1, y2)
    np.testing.assert_allclose(total.gradient, fsum(grad), rtol=1e-12)


def test_reduce_needs_points_and_a_known_reduction(tmp_path):
    code, out, err = invoke_jacli("grad", "x^2", "--at", "x=1", "--reduce", "sum")
    assert (code, out) == (2, "") and "--reduce sums over the rows of --points" in err
    code, out, err = invoke_jacli("grad", "x^2", "--at", "x=1", "--reduce", "max")
    assert code == 2 and "max" in err


def test_every_row_bad_sums_to_zero_and_its_mean_is_nan(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("x\noops\n")
    code, out, err = invoke_jacli("grad", "x^2", "--points", str(path), "--reduce", "sum",
                                  "--format", "json")
    assert code == 1 and json.loads(out)["rows"] == 0 and json.loads(out)["gradient"] == [0.0]
    code, out, err = invoke_jacli("grad", "x^2", "--points", str(path), "--reduce", "mean")
    assert code == 1 and out == "nan\n"


def ulps(got: float, want: float) -> float:
    return abs(got - want) / math.ulp(want)


@pytest.mark.parametrize("rows", [10**6] + ([10**7] if os.environ.get("JACLI_SLOW") else []))
def test_sums_of_many_rows_are_as_accurate_as_fsum(rows, monkeypatch):
    """Over 1e6 rows in 3,907 chunks of 256 (1e7 rows in chunks of the usual size with
    JACLI_SLOW=1): value and gradient within an ulp of math.fsum of the per-row values
    (positive terms: the sum has no cancellation, so its ulps are the measure). Chunks
    added without compensation are 2 to 3 ulps off at 1e6, 5 to 10 at 1e7."""
    import jacli.api

    if rows == 10**6:
        monkeypatch.setattr(jacli.api, "CHUNK", 64)   # summed chunks: 4 x 64 points
    rng = np.random.default_rng(11)
    x = rng.uniform(0.5, 2.0, rows)
    y = rng.uniform(0.1, 3.0, rows)
    program = jacli.compile("(w*x - y)^2 + x")   # w shared: d/dw summed inside the sweep
    w = 0.8
    total = program.grad({"x": x, "y": y, "w": w}, wrt=["x", "w"], batch={"x", "y"},
                         reduce="sum")
    residual = w * x - y
    assert ulps(total.value[0], math.fsum(residual**2 + x)) <= 1
    assert ulps(total.gradient[0], math.fsum(2 * residual * w + 1)) <= 1
    assert ulps(total.gradient[1], math.fsum(2 * residual * x)) <= 1


def test_hvp_does_not_take_reduce_rather_than_dropping_its_product(tmp_path):
    # was: the value and gradient summed, and H.v silently missing from the result
    path = tmp_path / "p.csv"
    path.write_text("x\n1\n2\n")
    program = jacli.compile("x^3")
    with pytest.raises(jacli.JacliError, match="`hvp` does not take --reduce"):
        list(program.stream(str(path), "hvp", tangent={"x": 1.0}, reduce="sum"))
