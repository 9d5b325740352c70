"""The sample programs in samples/: each runs cleanly through the real command line,
and its numbers agree with formulas derived by hand and written out here in NumPy.

Nothing here compares jacli with itself: every expected number comes from a closed
form (the Rosenbrock gradient, the polar Jacobian, diag(p) - p p^T for softmax, ...).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import invoke_jacli, sample_path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
README = REPO / "README.md"

RTOL, ATOL = 1e-12, 1e-12


def jacli(*args: str, input: str | None = None) -> tuple[int, str, str]:
    """Run `python -m jacli ARGS` in the repository; (returncode, stdout, stderr)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("FORCE_COLOR", None)
    done = subprocess.run([sys.executable, "-m", "jacli", *args], cwd=REPO, env=env,
                          input=input, stdin=None if input is not None else subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout, done.stderr


def run_json(*args: str, input: str | None = None) -> list[dict]:
    """The JSON Lines records of a command that must succeed without a word on stderr."""
    code, out, err = jacli(*args, "--format", "json", input=input)
    assert code == 0, err
    assert err == ""
    return [json.loads(line) for line in out.splitlines()]


def at(**values: float) -> str:
    return ",".join(f"{k}={v!r}" for k, v in values.items())


def points_csv(columns: dict[str, np.ndarray]) -> str:
    """A CSV text (header + rows) of equal-length columns, with full precision."""
    names = list(columns)
    rows = zip(*(columns[n].tolist() for n in names))
    return ",".join(names) + "\n" + "".join(",".join(map(repr, r)) + "\n" for r in rows)


RNG = np.random.default_rng(20240611)


# --- hand-derived references ---------------------------------------------------------

def rosenbrock_ref(x, y, a, b):
    f = (a - x) ** 2 + b * (y - x ** 2) ** 2
    grad = np.stack([-2 * (a - x) - 4 * b * x * (y - x ** 2),     # df/dx
                     2 * b * (y - x ** 2)], axis=-1)              # df/dy
    return f, grad


def polar_ref(x, y):
    r2 = x ** 2 + y ** 2
    r = np.sqrt(r2)
    value = np.stack([r, np.arctan2(y, x)], axis=-1)
    jac = np.stack([np.stack([x / r, y / r], axis=-1),
                    np.stack([-y / r2, x / r2], axis=-1)], axis=-2)
    return value, jac


def softmax_ref(s):
    p = np.exp(s) / np.exp(s).sum()
    return p, np.diag(p) - np.outer(p, p)


def logistic_ref(w, b, xs, y):
    z = w @ xs + b
    sig = 1 / (1 + np.exp(-z))
    loss = -y * np.log(sig) - (1 - y) * np.log(1 - sig)
    return loss, (sig - y) * np.append(xs, 1.0)


def robot_arm_ref(q1, q2, l1, l2):
    value = np.array([l1 * np.cos(q1) + l2 * np.cos(q1 + q2),
                      l1 * np.sin(q1) + l2 * np.sin(q1 + q2)])
    jac = np.array([[-l1 * np.sin(q1) - l2 * np.sin(q1 + q2), -l2 * np.sin(q1 + q2)],
                    [l1 * np.cos(q1) + l2 * np.cos(q1 + q2), l2 * np.cos(q1 + q2)]])
    return value, jac


def neuron_ref(xs, w, b):
    out = np.tanh(w @ xs + b)
    return out, (1 - out ** 2) * w, (1 - out ** 2) * np.append(xs, 1.0)


# --- the samples, one test each (several points) -------------------------------------

@pytest.mark.parametrize("x,y,a,b", [(1.2, 1.0, 1.0, 100.0), (-1.2, 1.0, 1.0, 100.0),
                                     (0.3, -0.7, 2.0, 5.0), (1.0, 1.0, 1.0, 100.0)])
def test_rosenbrock(x, y, a, b):
    (rec,) = run_json("grad", "-f", "samples/rosenbrock.jac", "--wrt", "x,y",
                      "--at", at(x=x, y=y, a=a, b=b))
    f, grad = rosenbrock_ref(x, y, a, b)
    assert rec["inputs"] == ["x", "y"]
    assert rec["value"] == pytest.approx(f, rel=RTOL, abs=ATOL)
    np.testing.assert_allclose(rec["gradient"], grad, rtol=RTOL, atol=ATOL)


def test_rosenbrock_without_wrt_differentiates_the_parameters_too():
    # The sample is written so that x and y appear first: inputs x, y, a, b.
    (rec,) = run_json("grad", "-f", "samples/rosenbrock.jac", "--at", "x=1.2,y=1.0,a=1,b=100")
    x, y, a, b = 1.2, 1.0, 1.0, 100.0
    assert rec["inputs"] == ["x", "y", "a", "b"]
    _, grad = rosenbrock_ref(x, y, a, b)
    expected = np.append(grad, [2 * (a - x), (y - x ** 2) ** 2])     # df/da, df/db
    np.testing.assert_allclose(rec["gradient"], expected, rtol=RTOL, atol=ATOL)


def test_polar():
    x = RNG.uniform(-3, 3, 6)
    y = RNG.uniform(-3, 3, 6)
    recs = run_json("jac", "-f", "samples/polar.jac", "--points", "-",
                    input=points_csv({"x": x, "y": y}))
    value, jac = polar_ref(x, y)
    assert len(recs) == len(x)
    for k, rec in enumerate(recs):
        assert rec["outputs"] == ["r", "theta"] and rec["inputs"] == ["x", "y"]
        np.testing.assert_allclose(rec["value"], value[k], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(rec["jacobian"], jac[k], rtol=RTOL, atol=ATOL)


def test_polar_at_3_4_is_the_textbook_matrix():
    code, out, err = jacli("jac", "-f", "samples/polar.jac", "--at", "x=3,y=4")
    assert code == 0 and err == ""
    np.testing.assert_allclose([float(t) for t in out.split()],
                               [3 / 5, 4 / 5, -4 / 25, 3 / 25], rtol=RTOL)


@pytest.mark.parametrize("scores", [(1.0, 2.0, 3.0), (0.0, 0.0, 0.0), (-5.0, 0.5, 2.25),
                                    (800.0, 801.0, 799.0)])
def test_softmax(scores):
    a, b, c = scores
    (rec,) = run_json("jac", "-f", "samples/softmax.jac", "--at", at(a=a, b=b, c=c))
    s = np.array(scores) - max(scores)          # the reference is stable too
    p, jac = softmax_ref(s)
    assert rec["outputs"] == ["pa", "pb", "pc"] and rec["inputs"] == ["a", "b", "c"]
    np.testing.assert_allclose(rec["value"], p, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(rec["jacobian"], jac, rtol=1e-12, atol=1e-15)
    assert sum(rec["value"]) == pytest.approx(1.0, rel=1e-15)
    # Every row of the Jacobian sums to 0: the probabilities always add up to 1.
    np.testing.assert_allclose(np.sum(rec["jacobian"], axis=1), 0.0, atol=1e-15)


@pytest.mark.parametrize("w1,w2,b,x1,x2,y", [(0.5, -0.25, 0.1, 2.0, 1.0, 1.0),
                                             (0.5, -0.25, 0.1, 2.0, 1.0, 0.0),
                                             (-1.5, 2.0, 0.0, 0.3, -0.8, 1.0),
                                             (3.0, 1.0, -2.0, 4.0, 5.0, 0.0)])
def test_logistic_loss(w1, w2, b, x1, x2, y):
    (rec,) = run_json("grad", "-f", "samples/logistic_loss.jac", "--wrt", "w1,w2,b",
                      "--at", at(w1=w1, w2=w2, b=b, x1=x1, x2=x2, y=y))
    loss, grad = logistic_ref(np.array([w1, w2]), b, np.array([x1, x2]), y)
    assert rec["outputs"] == ["loss"] and rec["inputs"] == ["w1", "w2", "b"]
    assert rec["value"] == pytest.approx(loss, rel=1e-10)
    np.testing.assert_allclose(rec["gradient"], grad, rtol=1e-10, atol=1e-15)


def test_logistic_loss_is_stable_for_large_margins():
    # z = 1000: the naive -log(1 - sigmoid(z)) is inf; softplus(z) - y*z is exactly z.
    (rec,) = run_json("grad", "-f", "samples/logistic_loss.jac", "--wrt", "w1,w2,b",
                      "--at", "w1=1000,w2=0,b=0,x1=1,x2=1,y=0")
    assert rec["value"] == pytest.approx(1000.0, rel=1e-15)
    np.testing.assert_allclose(rec["gradient"], [1.0, 1.0, 1.0], rtol=1e-15)


@pytest.mark.parametrize("q1,q2,l1,l2", [(0.5, 1.0, 1.0, 0.8), (0.0, 0.0, 2.0, 1.0),
                                         (-2.0, 3.0, 0.7, 1.3), (np.pi / 2, -np.pi / 2, 1.0, 1.0)])
def test_robot_arm(q1, q2, l1, l2):
    (rec,) = run_json("jac", "-f", "samples/robot_arm.jac", "--wrt", "q1,q2",
                      "--at", at(q1=q1, q2=q2, l1=l1, l2=l2))
    value, jac = robot_arm_ref(q1, q2, l1, l2)
    assert rec["outputs"] == ["x", "y"] and rec["inputs"] == ["q1", "q2"]
    np.testing.assert_allclose(rec["value"], value, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(rec["jacobian"], jac, rtol=RTOL, atol=ATOL)


def test_robot_arm_is_singular_when_stretched_out():
    # q2 = 0: both links point the same way and det J = l1*l2*sin(q2) = 0.
    (rec,) = run_json("jac", "-f", "samples/robot_arm.jac", "--wrt", "q1,q2",
                      "--at", "q1=0.7,q2=0,l1=1,l2=0.8")
    assert abs(np.linalg.det(np.array(rec["jacobian"]))) < 1e-15


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_neuron(seed):
    rng = np.random.default_rng(seed)
    xs, w, b = rng.normal(size=3), rng.normal(size=3), float(rng.normal())
    values = dict(x1=xs[0], x2=xs[1], x3=xs[2], w1=w[0], w2=w[1], w3=w[2], b=b)
    out, grad_x, grad_w = neuron_ref(xs, w, b)
    (rec,) = run_json("grad", "-f", "samples/neuron.jac", "--wrt", "x1,x2,x3",
                      "--at", at(**{k: float(v) for k, v in values.items()}))
    assert rec["value"] == pytest.approx(out, rel=RTOL)
    np.testing.assert_allclose(rec["gradient"], grad_x, rtol=1e-12, atol=1e-15)
    (rec,) = run_json("grad", "-f", "samples/neuron.jac", "--wrt", "w1,w2,w3,b",
                      "--at", at(**{k: float(v) for k, v in values.items()}))
    np.testing.assert_allclose(rec["gradient"], grad_w, rtol=1e-12, atol=1e-15)


# --- the samples written with arrays ---------------------------------------------------
# Each array version is checked against its own reference (NumPy written here, hand-derived
# formulas or central differences of NumPy), never against jacli's scalar version. These
# run the command line in process, for speed (their header commands run as real
# processes below, as every sample's do).

def run_here(*args: str, input: str | None = None) -> list[dict]:
    """run_json's records, from the command line run in process (typer's CliRunner)."""
    code, out, err = invoke_jacli(*map(sample_path, args), "--format", "json", input=input)
    assert code == 0, err
    assert err == ""
    return [json.loads(line) for line in out.splitlines()]


def vec(values) -> str:
    """A value as --at writes it: nested lists with every digit (repr)."""
    array = np.asarray(values, dtype=float)
    if array.ndim == 0:
        return repr(float(array))
    return "[" + ",".join(vec(v) for v in array) + "]"


def at_arrays(**values) -> str:
    return ",".join(f"{k}={vec(v)}" for k, v in values.items())


def central_jacobian(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """d f / d x by central differences of a NumPy function, (*f's shape, *x's shape)."""
    x = np.asarray(x, dtype=float)
    columns = []
    for k in range(x.size):
        step = np.zeros(x.size)
        step[k] = h
        columns.append((np.asarray(f(x + step.reshape(x.shape)))
                        - np.asarray(f(x - step.reshape(x.shape)))) / (2 * h))
    return np.stack(columns, axis=-1).reshape(np.shape(f(x)) + x.shape)


@pytest.mark.parametrize("scores", [[1.0, 2.0, 3.0], [0.5], [-5.0, 0.5, 2.25, 7.0, 0.0],
                                    [800.0, 801.0, 799.0, 0.0]])
def test_softmax_vec(scores):
    (rec,) = run_here("jac", "-f", "samples/softmax_vec.jac", "--at", at_arrays(x=scores))
    n = len(scores)
    p, jac = softmax_ref(np.array(scores) - max(scores))
    assert rec["outputs"] == [f"p[{i}]" for i in range(n)]
    assert rec["inputs"] == [f"x[{i}]" for i in range(n)]
    assert rec["shapes"] == {"x": [n], "p": [n]}
    np.testing.assert_allclose(rec["value"], p, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(rec["jacobian"], jac, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.sum(rec["jacobian"], axis=1), 0.0, atol=1e-15)


def test_softmax_vec_does_not_overflow_where_exp_would():
    # exp(800) is inf in doubles; shifted by the largest score, nothing overflows.
    (rec,) = run_here("eval", "-f", "samples/softmax_vec.jac", "--at", "x=[800,801,799,0]")
    e = np.exp([-1.0, 0.0, -2.0, -801.0])
    np.testing.assert_allclose(rec["value"], e / e.sum(), rtol=1e-15, atol=1e-300)


@pytest.mark.parametrize("seed, n", [(0, 3), (1, 3), (2, 5), (3, 1)])
def test_neuron_vec(seed, n):
    rng = np.random.default_rng(seed)
    xs, w, b = rng.normal(size=n), rng.normal(size=n), float(rng.normal())
    out, grad_x, grad_wb = neuron_ref(xs, w, b)
    point = at_arrays(x=xs, w=w, b=b)
    (rec,) = run_here("grad", "-f", "samples/neuron_vec.jac", "--wrt", "x", "--at", point)
    assert rec["inputs"] == [f"x[{i}]" for i in range(n)] and rec["outputs"] == ["out"]
    assert rec["value"] == pytest.approx(out, rel=RTOL)
    np.testing.assert_allclose(rec["gradient"], grad_x, rtol=1e-12, atol=1e-15)
    (rec,) = run_here("grad", "-f", "samples/neuron_vec.jac", "--wrt", "w,b", "--at", point)
    assert rec["inputs"] == [f"w[{i}]" for i in range(n)] + ["b"]
    np.testing.assert_allclose(rec["gradient"], grad_wb, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("q1,q2,l1,l2", [(0.5, 1.0, 1.0, 0.8), (0.0, 0.0, 2.0, 1.0),
                                         (-2.0, 3.0, 0.7, 1.3), (np.pi / 2, -np.pi / 2, 1.0, 1.0)])
def test_robot_arm_vec(q1, q2, l1, l2):
    (rec,) = run_here("jac", "-f", "samples/robot_arm_vec.jac", "--wrt", "q",
                      "--at", at_arrays(q=[q1, q2], l=[l1, l2]))
    value, jac = robot_arm_ref(q1, q2, l1, l2)
    assert rec["outputs"] == ["p[0]", "p[1]"] and rec["inputs"] == ["q[0]", "q[1]"]
    np.testing.assert_allclose(rec["value"], value, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(rec["jacobian"], jac, rtol=RTOL, atol=ATOL)
    # det J = l1 l2 sin(q2): the arm is singular when stretched out or folded.
    assert np.linalg.det(rec["jacobian"]) == pytest.approx(l1 * l2 * np.sin(q2), abs=1e-12)


def logistic_vec_ref(X, y, w, b):
    """The mean cross-entropy written the naive way (fine for moderate z), and its
    gradient by hand: X^T (sigmoid(z) - y) / n and mean(sigmoid(z) - y)."""
    z = X @ w + b
    sig = 1 / (1 + np.exp(-z))
    loss = np.mean(-y * np.log(sig) - (1 - y) * np.log(1 - sig))
    return loss, np.append(X.T @ (sig - y) / len(y), np.mean(sig - y))


@pytest.mark.parametrize("seed, n, d", [(0, 4, 2), (1, 7, 3), (2, 1, 1)])
def test_logistic_loss_vec(seed, n, d):
    rng = np.random.default_rng(seed)
    X, w, b = rng.normal(size=(n, d)), rng.normal(size=d), float(rng.normal())
    y = rng.integers(0, 2, size=n).astype(float)
    (rec,) = run_here("grad", "-f", "samples/logistic_loss_vec.jac", "--wrt", "w,b",
                      "--at", at_arrays(w=w, b=b, X=X, y=y))
    loss, grad = logistic_vec_ref(X, y, w, b)
    assert rec["inputs"] == [f"w[{i}]" for i in range(d)] + ["b"]
    assert rec["value"] == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(rec["gradient"], grad, rtol=1e-11, atol=1e-15)


def test_logistic_loss_vec_header_point_by_hand():
    X = np.array([[2, 1], [1, -1], [-1, 3], [0.5, 0.5]])
    y = np.array([1.0, 0, 1, 0])
    (rec,) = run_here("grad", "-f", "samples/logistic_loss_vec.jac", "--wrt", "w,b",
                      "--at", "w=[0.5,-0.25],b=0.1",
                      "--at", "X=[[2,1],[1,-1],[-1,3],[0.5,0.5]],y=[1,0,1,0]")
    loss, grad = logistic_vec_ref(X, y, np.array([0.5, -0.25]), 0.1)
    assert rec["value"] == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(rec["gradient"], grad, rtol=1e-12)


def test_logistic_loss_vec_is_stable_for_large_margins():
    # z = +-1000: softplus(z) - y*z is 1000 for the wrong label, 0 for the right one.
    (rec,) = run_here("grad", "-f", "samples/logistic_loss_vec.jac", "--wrt", "w,b",
                      "--at", "w=[1000],b=0,X=[[1],[-1]],y=[0,0]")
    assert rec["value"] == pytest.approx(500.0, rel=1e-15)
    # sigmoid(1000) - 0 = 1, sigmoid(-1000) - 0 = 0: dw = (1*1 + 0*-1)/2, db = 1/2.
    np.testing.assert_allclose(rec["gradient"], [0.5, 0.5], rtol=1e-15)


LINE_FIT = dict(A=np.array([[1, 0], [1, 1], [1, 2], [1, 3]], float), b=np.array([1., 2, 2, 4]))


@pytest.mark.parametrize("seed, m, n", [(0, 4, 2), (1, 6, 3), (2, 3, 3)])
def test_least_squares(seed, m, n):
    rng = np.random.default_rng(seed)
    A, b, x = rng.normal(size=(m, n)), rng.normal(size=m), rng.normal(size=n)
    (rec,) = run_here("hess", "-f", "samples/least_squares.jac", "--wrt", "x",
                      "--at", at_arrays(x=x, A=A, b=b))
    assert rec["inputs"] == [f"x[{i}]" for i in range(n)]
    assert rec["value"] == pytest.approx(np.sum((A @ x - b) ** 2), rel=1e-12)
    np.testing.assert_allclose(rec["gradient"], 2 * A.T @ (A @ x - b), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(rec["hessian"], 2 * A.T @ A, rtol=1e-12, atol=1e-13)


def test_least_squares_gradient_vanishes_at_the_lstsq_solution():
    A, b = LINE_FIT["A"], LINE_FIT["b"]
    solution = np.linalg.lstsq(A, b, rcond=None)[0]
    np.testing.assert_allclose(solution, [0.9, 0.9], rtol=1e-12)     # by hand, too
    (rec,) = run_here("grad", "-f", "samples/least_squares.jac", "--wrt", "x",
                      "--at", at_arrays(x=solution, **LINE_FIT))
    np.testing.assert_allclose(rec["gradient"], 0.0, atol=1e-13)
    assert rec["value"] == pytest.approx(0.7, rel=1e-12)   # residuals -.1, -.2, .7, -.4


def springs_ref(P, kappa, L):
    """Energy, gradient (k, 3) and Hessian (k, 3, k, 3) of the chain, by hand: for the
    spring d = P[i+1] - P[i], r = |d|, u = d / r, the force is kappa (r - L) u and the
    block d2E/dd2 is kappa (u u^T + (1 - L/r)(I - u u^T))."""
    k = len(P)
    energy, grad, hess = 0.0, np.zeros((k, 3)), np.zeros((k, 3, k, 3))
    for i in range(k - 1):
        d = P[i + 1] - P[i]
        r = np.linalg.norm(d)
        u = d / r
        energy += kappa / 2 * (r - L) ** 2
        force = kappa * (r - L) * u
        grad[i + 1] += force
        grad[i] -= force
        block = kappa * (np.outer(u, u) + (1 - L / r) * (np.eye(3) - np.outer(u, u)))
        for a, sa in ((i, -1), (i + 1, 1)):
            for c, sc in ((i, -1), (i + 1, 1)):
                hess[a, :, c, :] += sa * sc * block
    return energy, grad.reshape(-1), hess.reshape(3 * k, 3 * k)


@pytest.mark.parametrize("seed, k", [(0, 3), (1, 4), (2, 2)])
def test_springs(seed, k):
    rng = np.random.default_rng(seed)
    P, kappa, L = rng.normal(size=(k, 3)), 2.5, 0.8
    (rec,) = run_here("hess", "-f", "samples/springs.jac", "--wrt", "P",
                      "--at", at_arrays(P=P, kappa=kappa, L=L))
    energy, grad, hess = springs_ref(P, kappa, L)
    assert rec["inputs"] == [f"P[{i}][{j}]" for i in range(k) for j in range(3)]
    assert rec["shapes"]["P"] == [k, 3]
    assert rec["value"] == pytest.approx(energy, rel=1e-12)
    np.testing.assert_allclose(rec["gradient"], grad, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(rec["hessian"], hess, rtol=1e-11, atol=1e-13)
    H = np.array(rec["hessian"])
    # Moving every particle by the same vector changes no length: H t = 0.
    for axis in range(3):
        t = np.zeros((k, 3))
        t[:, axis] = 1.0
        np.testing.assert_allclose(H @ t.reshape(-1), 0.0, atol=1e-12)


def test_springs_header_point():
    # Spring 0 along x stretched to 1.5, spring 1 along y stretched to 2 (kappa 2, L 1).
    (rec,) = run_here("hess", "-f", "samples/springs.jac", "--wrt", "P",
                      "--at", "P=[[0,0,0],[1.5,0,0],[1.5,2,0]],kappa=2,L=1")
    assert rec["value"] == pytest.approx(0.25 + 1.0, rel=1e-15)
    np.testing.assert_allclose(rec["gradient"], [-1, 0, 0, 1, -2, 0, 0, 2, 0], atol=1e-15)
    x_block = np.diag([2, 2 / 3, 2 / 3])          # kappa (u u^T + (1 - 1/1.5)(I - u u^T))
    y_block = np.diag([1, 2, 1])                  # kappa (u u^T + (1 - 1/2)(I - u u^T))
    expected = np.block([[x_block, -x_block, np.zeros((3, 3))],
                         [-x_block, x_block + y_block, -y_block],
                         [np.zeros((3, 3)), -y_block, y_block]])
    np.testing.assert_allclose(rec["hessian"], expected, rtol=1e-15, atol=1e-15)


def rotation_ref(w: np.ndarray) -> np.ndarray:
    """exp of the skew matrix of w, by its Taylor series (not Rodrigues' formula)."""
    W = np.array([[0, -w[2], w[1]], [w[2], 0, -w[0]], [-w[1], w[0], 0]])
    R, term = np.eye(3), np.eye(3)
    for n in range(1, 40):
        term = term @ W / n
        R = R + term
    return R


@pytest.mark.parametrize("w", [[0, 0, 0.5], [0.3, -0.2, 0.6], [2.0, 1.0, -1.5],
                               [0, np.pi, 0], [1e-3, 0, 2e-3]])
def test_rotation_jacobian_in_v_is_the_rotation_matrix(w):
    w = np.array(w, dtype=float)
    v = np.array([1.0, 2.0, 3.0])
    (rec,) = run_here("jac", "-f", "samples/rotation.jac", "--wrt", "v",
                      "--at", at_arrays(w=w, v=v))
    R = rotation_ref(w)
    assert rec["outputs"] == ["y[0]", "y[1]", "y[2]"]
    np.testing.assert_allclose(rec["value"], R @ v, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rec["jacobian"], R, rtol=1e-12, atol=1e-12)
    J = np.array(rec["jacobian"])
    np.testing.assert_allclose(J.T @ J, np.eye(3), atol=1e-14)   # a rotation:
    assert np.linalg.det(J) == pytest.approx(1.0, rel=1e-14)    # orthogonal, det 1


def test_rotation_about_z_by_half_a_radian():
    (rec,) = run_here("jac", "-f", "samples/rotation.jac", "--wrt", "v",
                      "--at", "w=[0,0,0.5],v=[1,2,3]")
    c, s = np.cos(0.5), np.sin(0.5)
    np.testing.assert_allclose(rec["jacobian"], [[c, -s, 0], [s, c, 0], [0, 0, 1]],
                               rtol=1e-15, atol=1e-16)


@pytest.mark.parametrize("w", [[0.3, -0.2, 0.6], [2.0, 1.0, -1.5]])
def test_rotation_jacobian_in_w_matches_central_differences(w):
    v = np.array([1.0, 2.0, 3.0])
    (rec,) = run_here("jac", "-f", "samples/rotation.jac", "--wrt", "w",
                      "--at", at_arrays(w=w, v=v))
    expected = central_jacobian(lambda w: rotation_ref(w) @ v, np.array(w, dtype=float))
    np.testing.assert_allclose(rec["jacobian"], expected, rtol=1e-7, atol=1e-8)


def mlp_ref(W1, b1, W2, b2, x, y):
    """The loss of the 2-layer tanh network and its gradient, by backpropagation written
    out by hand, flat in the order W1, b1, W2, b2 (each row-major)."""
    hidden = np.tanh(W1 @ x + b1)
    error = W2 @ hidden + b2 - y
    d_yhat = 2 * error
    d_pre = d_yhat * W2 * (1 - hidden ** 2)
    grad = np.concatenate([np.outer(d_pre, x).ravel(), d_pre, d_yhat * hidden, [d_yhat]])
    return error ** 2, grad


MLP_NAMES = ("W1", "b1", "W2", "b2")


def test_mlp_over_the_points_of_its_csv():
    weights = json.loads((SAMPLES / "mlp_weights.json").read_text())
    assert list(weights) == list(MLP_NAMES)
    table = np.genfromtxt(SAMPLES / "mlp_points.csv", delimiter=",", names=None,
                          skip_header=1)
    assert (SAMPLES / "mlp_points.csv").read_text().splitlines()[0] == "x[0],x[1],y"
    recs = run_here("grad", "-f", "samples/mlp.jac", "--wrt", ",".join(MLP_NAMES),
                    "--at", "@samples/mlp_weights.json", "--points", "samples/mlp_points.csv")
    assert len(recs) == len(table) == 4
    W = [np.array(weights[name], dtype=float) for name in MLP_NAMES]
    for rec, row in zip(recs, table):
        assert rec["at"]["x"] == list(row[:2]) and rec["at"]["y"] == row[2]
        loss, grad = mlp_ref(*W, row[:2], row[2])
        assert len(rec["gradient"]) == 6 + 3 + 3 + 1
        assert rec["value"] == pytest.approx(loss, rel=1e-12)
        np.testing.assert_allclose(rec["gradient"], grad, rtol=1e-11, atol=1e-15)


def test_mlp_with_other_sizes_and_weights(tmp_path):
    rng = np.random.default_rng(7)
    d, h, count = 3, 5, 6
    W = [rng.normal(size=(h, d)), rng.normal(size=h), rng.normal(size=h), float(rng.normal())]
    weights = tmp_path / "weights.json"
    weights.write_text(json.dumps({n: np.asarray(v).tolist() for n, v in zip(MLP_NAMES, W)}))
    xs, ys = rng.normal(size=(count, d)), rng.normal(size=count)
    columns = {f"x[{j}]": xs[:, j] for j in range(d)}
    columns["y"] = ys
    recs = run_here("grad", "-f", "samples/mlp.jac", "--wrt", ",".join(MLP_NAMES),
                    "--at", f"@{weights}", "--points", "-", input=points_csv(columns))
    assert len(recs) == count
    for rec, x, y in zip(recs, xs, ys):
        loss, grad = mlp_ref(*W, x, y)
        assert rec["value"] == pytest.approx(loss, rel=1e-12)
        np.testing.assert_allclose(rec["gradient"], grad, rtol=1e-10, atol=1e-14)


# --- samples/points.csv --------------------------------------------------------------

def test_points_csv_through_rosenbrock():
    code, out, err = jacli("grad", "-f", "samples/rosenbrock.jac", "--wrt", "x,y",
                           "--at", "a=1,b=100", "--points", "samples/points.csv",
                           "--format", "csv")
    assert code == 0 and err == ""
    table = np.genfromtxt(SAMPLES / "points.csv", delimiter=",", names=True)
    assert "id" in table.dtype.names            # ignored by jacli: not a variable
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == len(table) >= 3
    assert list(rows[0]) == ["x", "y", "a", "b", "f", "df/dx", "df/dy"]
    f, grad = rosenbrock_ref(table["x"], table["y"], 1.0, 100.0)
    got = np.array([[float(r[k]) for k in ("x", "y", "f", "df/dx", "df/dy")] for r in rows])
    np.testing.assert_allclose(got[:, 0], table["x"], rtol=0)
    np.testing.assert_allclose(got[:, 1], table["y"], rtol=0)
    np.testing.assert_allclose(got[:, 2], f, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(got[:, 3:], grad, rtol=RTOL, atol=ATOL)


def test_points_csv_plain_lines_match_rows():
    code, out, err = jacli("grad", "-f", "samples/rosenbrock.jac", "--wrt", "x,y",
                           "--at", "a=1,b=100", "--points", "samples/points.csv")
    assert code == 0 and err == ""
    table = np.genfromtxt(SAMPLES / "points.csv", delimiter=",", names=True)
    _, grad = rosenbrock_ref(table["x"], table["y"], 1.0, 100.0)
    got = np.array([[float(t) for t in line.split()] for line in out.splitlines()])
    np.testing.assert_allclose(got, grad, rtol=RTOL, atol=ATOL)


# --- every sample runs as its own header says, and is documented ----------------------

def sample_files() -> list[Path]:
    return sorted(SAMPLES.glob("*.jac"))


def header_commands(path: Path) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^#\s+(jacli .+)$", path.read_text(), re.M)]


def test_the_required_samples_exist():
    names = {p.name for p in sample_files()}
    assert {"polar.jac", "softmax.jac", "rosenbrock.jac", "logistic_loss.jac",
            "robot_arm.jac", "neuron.jac"} <= names
    assert {"softmax_vec.jac", "neuron_vec.jac", "robot_arm_vec.jac",
            "logistic_loss_vec.jac", "mlp.jac", "least_squares.jac", "springs.jac",
            "rotation.jac"} <= names
    for data in ("points.csv", "mlp_points.csv", "mlp_weights.json"):
        assert (SAMPLES / data).is_file()


@pytest.mark.parametrize("path", sample_files(), ids=lambda p: p.name)
def test_sample_header_commands_run_cleanly(path):
    text = path.read_text()
    assert text.startswith("#"), "a sample starts with a comment saying what it is"
    commands = header_commands(path)
    assert commands, f"{path.name} names no command to run in its header"
    for command in commands:
        args = shlex.split(command)
        assert args[0] == "jacli"
        code, out, err = jacli(*args[1:])
        assert code == 0, f"{command}: {err}"
        assert err == "", f"{command}: {err}"
        assert out.strip(), command
        for token in out.replace(",", " ").split():
            try:
                assert np.isfinite(float(token)), f"{command}: {token}"
            except ValueError:
                pass                               # a CSV header word


@pytest.mark.parametrize("name", [p.name for p in sample_files()]
                         + ["points.csv", "mlp_points.csv", "mlp_weights.json"])
def test_every_sample_is_in_the_readme(name):
    assert f"samples/{name}" in README.read_text()
