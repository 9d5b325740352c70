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
    assert (SAMPLES / "points.csv").is_file()


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


@pytest.mark.parametrize("name", [p.name for p in sample_files()] + ["points.csv"])
def test_every_sample_is_in_the_readme(name):
    assert f"samples/{name}" in README.read_text()
