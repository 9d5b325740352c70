"""`jacli diff` reads like a person wrote it: 30 derivatives, the expected text by hand.

Each expected text below was written from the mathematics, the way one would write the
derivative on paper (constants folded, 1/x^2 rather than 1/x/x, x before exp(...)),
terms of a sum in the order the reverse sweep meets them,
within what jacli's simplifier may do without changing a value beyond rounding
(README, "Derivatives as programs: diff"): it never cancels x/x or drops 0*x, so
d/dx x*log(x) is not here. Then each printed program is run by the API and compared
with `grad`/`jac` at a few points, to 1e-12 relative.
"""

from __future__ import annotations

import math

import pytest

import jacli
from conftest import REPO, invoke_jacli

GOLDEN = [
    # (program, --wrt or None, expected text)
    ("x^2", None, "d_f1_d_x = 2*x\n"),
    ("3*x^2", None, "d_f1_d_x = 6*x\n"),
    ("x^3", None, "d_f1_d_x = 3*x^2\n"),
    ("0.5*(yhat - t)^2", None, "d_f1_d_yhat = yhat - t\nd_f1_d_t = t - yhat\n"),
    ("exp(-x^2/2)", None, "d_f1_d_x = -x*exp(-x^2/2)\n"),
    ("sin(x)/x", None, "d_f1_d_x = cos(x)/x - sin(x)/x^2\n"),
    ("1/x", None, "d_f1_d_x = -1/x^2\n"),
    ("log(x)", None, "d_f1_d_x = 1/x\n"),
    ("log(x^2 + 1)", None, "d_f1_d_x = 2*x/(x^2 + 1)\n"),
    ("sqrt(x^2 + 1)", None, "d_f1_d_x = x/sqrt(x^2 + 1)\n"),
    ("x^2*sin(x)", None, "d_f1_d_x = 2*x*sin(x) + x^2*cos(x)\n"),
    ("x^2*y + sin(z)", None, "d_f1_d_x = 2*x*y\nd_f1_d_y = x^2\nd_f1_d_z = cos(z)\n"),
    ("r = sqrt(x^2 + y^2); theta = atan2(y, x)", None,
     "let t1 = x^2 + y^2\nlet r = sqrt(t1)\n"
     "d_r_d_x = x/r\nd_r_d_y = y/r\nd_theta_d_x = -y/t1\nd_theta_d_y = x/t1\n"),
    ("x/3", None, "d_f1_d_x = 1/3\n"),
    ("x^2/3", None, "d_f1_d_x = 2*x/3\n"),
    ("x^2/4", None, "d_f1_d_x = 0.5*x\n"),
    ("x*exp(x)", None, "d_f1_d_x = x*exp(x) + exp(x)\n"),
    ("tanh(w*x + b)", None,
     "let t1 = cosh(w*x + b)^-2\nd_f1_d_w = x*t1\nd_f1_d_x = w*t1\nd_f1_d_b = t1\n"),
    ("sin(x)^2", None, "d_f1_d_x = 2*sin(x)*cos(x)\n"),
    ("-0.5*x^2", None, "d_f1_d_x = -x\n"),
    ("x*exp(-x)", None, "d_f1_d_x = exp(-x) - x*exp(-x)\n"),
    ("atan(x)", None, "d_f1_d_x = 1/(1 + x^2)\n"),
    ("asin(x)", None, "d_f1_d_x = 1/sqrt((1 - x)*(1 + x))\n"),
    ("x^y", None,   # pow's guards at y = 0 and at x = x^y = 0 (README: Rounding in the last digit)
     "d_f1_d_x = y*x^(y - 1 + (1 - abs(sign(y))))\n"
     "d_f1_d_y = x^y*log(x + (1 - abs(sign(x)))*(1 - abs(sign(x^y))))\n"),
    ("x*y*z", None, "d_f1_d_x = y*z\nd_f1_d_y = x*z\nd_f1_d_z = x*y\n"),
    ("cos(x)^3", None, "d_f1_d_x = -3*cos(x)^2*sin(x)\n"),
    ("log(sin(x))", None, "d_f1_d_x = cos(x)/sin(x)\n"),
    ("1/(1 + exp(-x))", None, "d_f1_d_x = exp(-x)/(1 + exp(-x))^2\n"),
    ("a*x^2 + b*x + c", "x", "d_f1_d_x = 2*a*x + b\n"),
    ("(x - y)^2", None, "d_f1_d_x = 2*(x - y)\nd_f1_d_y = -2*(x - y)\n"),
]

#: Points where every program above is defined and smooth (x in (0, 1) for asin, log).
POINTS = [
    {"x": 0.3, "y": 1.7, "z": -0.4, "yhat": 0.9, "t": 0.25, "w": -1.3, "b": 0.6,
     "a": 2.5, "c": 4.0},
    {"x": 0.77, "y": -2.1, "z": 3.3, "yhat": -1.5, "t": 2.0, "w": 0.45, "b": -0.2,
     "a": -0.75, "c": 1.0},
    {"x": 0.051, "y": 0.5, "z": 11.0, "yhat": 7.0, "t": -3.5, "w": 2.0, "b": 1.25,
     "a": 10.0, "c": -2.0},
]


def _diff(program: str, wrt: str | None) -> str:
    args = ["diff"] + (["--wrt", wrt] if wrt else []) + ["--", program]
    code, out, err = invoke_jacli(*args)
    assert code == 0, err
    return out


def test_thirty_derivatives():
    assert len(GOLDEN) == 30


@pytest.mark.parametrize("program, wrt, expected", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_text(program, wrt, expected):
    assert _diff(program, wrt) == expected


@pytest.mark.parametrize("program, wrt, expected", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_program_evaluates_to_grad(program, wrt, expected):
    source = jacli.compile(program)
    names = wrt.split(",") if wrt else source.variables
    printed = jacli.compile(_diff(program, wrt))
    for point in POINTS:
        at = {name: point[name] for name in source.variables}
        jacobian = source.jacobian(at, wrt=names).jacobian
        values = dict(zip(printed.outputs, printed.eval(
            {name: point[name] for name in printed.variables}).value))
        for i, out in enumerate(source.outputs):
            for j, name in enumerate(names):
                got, ref = float(values[f"d_{out}_d_{name}"]), float(jacobian[i, j])
                assert math.isclose(got, ref, rel_tol=1e-12, abs_tol=0.0), (
                    out, name, point, got, ref)
