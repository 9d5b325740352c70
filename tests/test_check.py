"""The gradient check (jacli.check) and how its results are written (jacli.check_view)."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import jacli
from jacli import check
from jacli.check import (DEFAULT_ATOL, DEFAULT_RTOL, KINK_REASON, check_jacobian,
                         explain_failure, steps)
from jacli.check_view import check_renderable, verdict, write_check

from conftest import sample_path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
EPS = np.finfo(float).eps


def run(source: str, wrt=None, outputs=None, **point):
    """check_jacobian at one point given as numbers (a batch of one)."""
    return check_jacobian(jacli.compile(source),
                          {k: np.array([float(v)]) for k, v in point.items()}, wrt, outputs)


class Wrapped:
    """A Program whose AD Jacobian is altered by `change(jacobian)`: a wrong derivative
    that the check has to catch. Counts the calls of eval."""

    def __init__(self, source: str, change):
        self.program = jacli.compile(source)
        self.change = change
        self.eval_calls = 0

    def jacobian(self, point, wrt=None, outputs=None):
        result = self.program.jacobian(point, wrt, outputs)
        return result._replace(jacobian=self.change(np.array(result.jacobian)))

    def eval(self, point, outputs=None):
        self.eval_calls += 1
        return self.program.eval(point, outputs)


# --- steps --------------------------------------------------------------------------------

def test_step_is_cube_root_of_eps_times_max_of_one_and_x_and_exact():
    x = np.array([0.0, 1e-3, -0.5, 1.0, -2.0, 20.0, 1e6, 0.1])
    h = steps(x)
    expected = EPS ** (1 / 3) * np.maximum(1.0, np.abs(x))
    assert EPS ** (1 / 3) == pytest.approx(6.055454452393343e-06, rel=1e-15)
    np.testing.assert_allclose(h, expected, rtol=1e-10)
    assert np.all((x + h) - x == h)                 # exactly representable
    assert h[0] == EPS ** (1 / 3)                   # 0 + h - 0 is h itself
    # |x| <= 1 shares one absolute step; beyond it the step grows with |x|.
    assert h[1] == pytest.approx(h[3], rel=1e-10) and h[6] == pytest.approx(1e6 * h[3], rel=1e-9)


def test_result_steps_are_per_point_and_input():
    x = np.array([0.0, 3.0, -40.0])
    y = np.array([1.0, 0.25, 2.0])
    result = check_jacobian(jacli.compile("x*y"), {"x": x, "y": y}, ["x", "y"], None)
    assert result.steps.shape == (3, 2)
    np.testing.assert_array_equal(result.steps[:, 0], steps(x))
    np.testing.assert_array_equal(result.steps[:, 1], steps(y))
    assert result.steps[2, 0] == pytest.approx(40 * EPS ** (1 / 3), rel=1e-10)


# --- smooth programs pass -------------------------------------------------------------------

SMOOTH = [
    # (program, point, the derivative(s) worked out by hand, row-major)
    ("x^2*y + sin(z)", dict(x=1, y=2, z=3), [4.0, 1.0, math.cos(3)]),
    ("r = sqrt(x^2 + y^2); theta = atan2(y, x)", dict(x=3, y=4), [0.6, 0.8, -0.16, 0.12]),
    ("exp(x)", dict(x=20), [math.exp(20)]),
    ("log(x)", dict(x=1e-3), [1e3]),
    ("1/x", dict(x=1e-2), [-1e4]),
    ("tanh(x)", dict(x=3), [1 - math.tanh(3) ** 2]),
    ("x^10", dict(x=2), [10 * 2 ** 9]),
    ("sqrt(x)", dict(x=1e-4), [50.0]),
    ("sqrt(x)", dict(x=2e-4), [0.5 / math.sqrt(2e-4)]),
    ("sigmoid(x)", dict(x=0), [0.25]),
    ("softplus(x)", dict(x=-30), [1 / (1 + math.exp(30))]),
    ("relu(x)", dict(x=-1), [0.0]),                  # away from the kink: fine
    ("abs(x)", dict(x=-3), [-1.0]),
    ("max(x, y)", dict(x=1, y=2), [0.0, 1.0]),
    ("hypot(x, y)", dict(x=3, y=4), [0.6, 0.8]),
    ("sin(x)", dict(x=math.pi / 2), [math.cos(math.pi / 2)]),   # a derivative of 0
]


@pytest.mark.parametrize("source, point, expected", SMOOTH, ids=[s[0] + str(s[1]) for s in SMOOTH])
def test_smooth_program_passes_and_both_sides_match_the_hand_derivative(source, point, expected):
    result = run(source, **point)
    assert result.passed, result.failures(0)
    np.testing.assert_allclose(result.ad.reshape(-1), expected, rtol=1e-12, atol=1e-15)
    # Richardson-extrapolated differences are far closer than the tolerance.
    np.testing.assert_allclose(result.fd.reshape(-1), expected, rtol=5e-7, atol=1e-9)
    assert all(explain_failure(result, 0, i, j) is None
               for i in range(len(result.outputs)) for j in range(len(result.inputs)))


def test_richardson_extrapolation_is_much_better_than_one_central_difference():
    # log(x) at 1e-3: the plain central difference with h ~ 6e-6 is off by h^2/(3 x^2)
    # relative, about 1.2e-5; extrapolated it is within 1e-9.
    x, h = 1e-3, steps(np.array([1e-3]))[0]
    plain = (math.log(x + h) - math.log(x - h)) / (2 * h)
    assert abs(plain - 1e3) / 1e3 == pytest.approx(h * h / (3 * x * x), rel=0.01)
    result = run("log(x)", x=x)
    assert abs(result.fd[0, 0, 0] - 1e3) / 1e3 < 1e-9
    assert result.rel_error[0, 0, 0] < 1e-9


def _sample_commands(path: Path):
    """The example command lines in a sample's header comments."""
    for line in path.read_text().splitlines():
        match = re.match(r"#\s+jacli\s+(.*)", line)
        if match:
            yield shlex.split(match.group(1))


def _option(args, name):
    values = [args[k + 1] for k, a in enumerate(args) if a == name]
    return values


def _sample_cases():
    cases = []
    for path in sorted(SAMPLES.glob("*.jac")):
        for args in _sample_commands(path):
            cases.append(pytest.param(path, args, id=f"{path.name} {' '.join(args[3:])}"))
    return cases


def test_every_sample_has_an_example_command():
    found = {case.values[0].name for case in _sample_cases()}
    assert found == {p.name for p in SAMPLES.glob("*.jac")}
    assert len(found) >= 6


@pytest.mark.parametrize("path, args", _sample_cases())
def test_sample_passes_at_the_points_of_its_header(path, args):
    from jacli.points import Points, PointsReader, parse_at

    program = jacli.compile(path.read_text())
    # The values as the command line reads them: numbers, arrays, @FILE, points files.
    point = parse_at([sample_path(item) for item in _option(args, "--at")])
    wrt = _option(args, "--wrt")
    wrt = wrt[0].split(",") if wrt else None
    points = _option(args, "--points")
    columns = {}
    if points:
        reader = PointsReader(sample_path(points[0]), None, program.variables, [], [])
        table = Points.concat(list(reader.chunks()))
        assert not table.bad_rows
        columns, batch = table.columns, table.count
    else:
        batch = 1
    # Every value with the points first: (B,) for a scalar, (B, *shape) for an array.
    point = {n: np.broadcast_to(v, (batch,) + np.shape(v)) for n, v in point.items()}
    point.update(columns)
    for selected in (wrt, None):                 # as written, and every variable
        result = check_jacobian(program, point, selected, None)
        assert result.passed, [result.failures(b) for b in result.failing_points()]
        assert result.count == batch
        # Far closer than the tolerance wherever the derivative is not about 0 (at the
        # least-squares solution d/dx is 0 and only rounding noise is left to compare).
        assert np.all(result.rel_error[np.abs(result.fd) > 1e-3] < 1e-6)


def test_softmax_with_ties_inside_is_still_smooth():
    # max(a, b, c) has a kink at a tie, but the softmax's outputs do not: it cancels.
    program = jacli.compile((SAMPLES / "softmax.jac").read_text())
    point = {"a": np.array([1.0, 2.0, 3.0]), "b": np.array([2.0, 2.0, 3.0]),
             "c": np.array([3.0, -1.0, 3.0])}
    result = check_jacobian(program, point, None, None)
    assert result.passed
    # Hand-derived at a = b = c: p = 1/3 each, J = diag(p) - p p^T.
    expected = np.eye(3) / 3 - 1 / 9
    np.testing.assert_allclose(result.ad[2], expected, atol=1e-15)
    np.testing.assert_allclose(result.fd[2], expected, atol=1e-9)


# --- kinks fail, with the reason --------------------------------------------------------------

def test_relu_at_zero_fails_as_a_kink():
    result = run("relu(x)", x=0)
    assert not result.passed
    assert result.ad[0, 0, 0] == 0.0                      # relu'(0) = 0 by convention
    assert result.fd[0, 0, 0] == pytest.approx(0.5, abs=1e-9)  # the average of 0 and 1
    assert result.abs_error[0, 0, 0] == pytest.approx(0.5, abs=1e-9)
    assert result.rel_error[0, 0, 0] == pytest.approx(1.0, abs=1e-8)
    reason = explain_failure(result, 0, "f1", "x")
    assert reason.startswith(KINK_REASON)
    assert "kink: AD uses jacli's convention (README: Non-differentiable points)" in reason
    assert result.left[0, 0, 0] == 0.0 and result.right[0, 0, 0] == pytest.approx(1.0)
    [failure] = result.failures(0)
    assert (failure.output, failure.input, failure.ad) == ("f1", "x", 0.0)
    assert failure.reason == reason


def test_abs_at_zero_passes_where_the_convention_equals_the_difference():
    result = run("abs(x)", x=0)
    assert result.ad[0, 0, 0] == 0.0 and result.fd[0, 0, 0] == 0.0   # abs'(0) = 0 = average
    assert result.abs_error[0, 0, 0] == 0.0
    assert result.passed
    assert (result.left[0, 0, 0], result.right[0, 0, 0]) == (-1.0, 1.0)   # the kink is seen


@pytest.mark.parametrize("source, point, ad", [
    ("max(x, y)", dict(x=1, y=1), [0.5, 0.5]),
    ("min(x, y)", dict(x=2, y=2), [0.5, 0.5]),
    ("max(x, 0.5)", dict(x=0.5), [0.5]),
    ("max(x, 2*x)", dict(x=0), [1.5]),
])
def test_ties_of_min_and_max_pass_as_the_shared_derivative_is_the_average(source, point, ad):
    """language.md shares the derivative equally at a tie, which is what the central
    difference sees: the check passes, unlike relu(0) whose convention is one side."""
    result = run(source, **point)
    np.testing.assert_allclose(result.ad.reshape(-1), ad, rtol=1e-15)   # language.md's sharing
    np.testing.assert_allclose(result.fd.reshape(-1), ad, rtol=1e-6)
    assert result.passed


def test_a_three_way_tie_fails_as_a_kink():
    """Shared three ways, each input gets 1/3; moving one input alone sees 0 and 1."""
    result = run("max(a, b, c)", a=1, b=1, c=1)
    np.testing.assert_allclose(result.ad.reshape(-1), [1 / 3] * 3, rtol=1e-15)
    np.testing.assert_allclose(result.fd.reshape(-1), [0.5] * 3, rtol=1e-6)
    assert not result.passed
    for j in range(3):
        assert explain_failure(result, 0, 0, j).startswith(KINK_REASON)


def test_a_kink_inside_the_step_but_not_at_the_point():
    result = run("relu(x)", x=1e-7)        # the kink is 1e-7 away; the step is 6e-6
    assert result.ad[0, 0, 0] == 1.0
    assert not result.passed
    assert explain_failure(result, 0, 0, 0).startswith("kink within the finite-difference step")


def test_a_jump_fails_with_its_reason():
    result = run("sign(x)", x=0)
    assert result.ad[0, 0, 0] == 0.0
    h = steps(np.array([0.0]))[0]
    # (1 - (-1)) / 2h at both steps, extrapolated: (4 * 2/h - 1/h) / 3 = 7/(3h)
    assert result.fd[0, 0, 0] == pytest.approx(7 / (3 * h), rel=1e-12)
    assert explain_failure(result, 0, 0, 0).startswith("jump")


def test_a_wrong_derivative_fails_as_a_disagreement():
    wrong = Wrapped("x^2*y + sin(z)", lambda j: j * np.array([1.0, 1.0 + 1e-3, 1.0]))
    result = check_jacobian(wrong, {"x": np.array([1.0]), "y": np.array([2.0]),
                                    "z": np.array([3.0])}, None, None)
    assert not result.passed
    assert result.ok.tolist() == [[[True, False, True]]]
    assert explain_failure(result, 0, "f1", "y") == "AD and finite differences disagree"
    assert result.abs_error[0, 0, 1] == pytest.approx(1e-3, rel=1e-6)   # dy is 1
    assert result.worst(0)[:2] == ("f1", "y")


def test_the_tolerances_decide():
    # AD off by 3e-6 relative: over rtol 1e-6, under the default 1e-5.
    slightly = Wrapped("exp(x)", lambda j: j * (1 + 3e-6))
    point = {"x": np.array([0.5])}
    assert check_jacobian(slightly, point, None, None).passed
    assert not check_jacobian(slightly, point, None, None, rtol=1e-6).passed
    # A derivative of 0 computed as 5e-8 passes only by atol.
    off = Wrapped("cos(x)", lambda j: j + 5e-8)
    zero = {"x": np.array([0.0])}
    assert check_jacobian(off, zero, None, None).passed
    assert not check_jacobian(off, zero, None, None, atol=1e-8).passed
    # Differences below a loose tolerance are not a failure, kinks included.
    assert check_jacobian(jacli.compile("relu(x)"), zero, None, None, atol=1.0).passed


def test_default_tolerances():
    assert (DEFAULT_RTOL, DEFAULT_ATOL) == (1e-5, 1e-7)
    result = run("x*y", x=1, y=2)
    assert (result.rtol, result.atol) == (DEFAULT_RTOL, DEFAULT_ATOL)


# --- non-finite values ------------------------------------------------------------------------

def test_nan_on_both_sides_passes_nan_against_a_number_fails():
    both = run("sqrt(x)", x=-1)              # AD nan, FD nan
    assert np.isnan(both.ad[0, 0, 0]) and np.isnan(both.fd[0, 0, 0])
    assert both.passed and both.abs_error[0, 0, 0] == 0.0
    edge = run("sqrt(x)", x=0)               # sqrt'(0) = inf, FD nan (sqrt(-h))
    assert edge.ad[0, 0, 0] == math.inf and np.isnan(edge.fd[0, 0, 0])
    assert not edge.passed
    assert np.isnan(edge.max_abs_error[0])   # never hidden as 0
    assert "finite differences are nan" in explain_failure(edge, 0, 0, 0)
    outside = run("log(x)", x=-1)            # AD -1 (1/x), FD nan
    assert outside.ad[0, 0, 0] == -1.0 and not outside.passed


class Stepped:
    """f(x) = inf for x > 0, else 0; its 'AD' derivative is given."""

    def __init__(self, derivative):
        self.derivative = derivative

    def eval(self, point, outputs=None):
        x = point["x"]
        return jacli.api.Result(["x"], ["f"], point, np.where(x > 0, np.inf, 0.0)[:, None])

    def jacobian(self, point, wrt=None, outputs=None):
        x = point["x"]
        return jacli.api.Result(["x"], ["f"], point, self.eval(point).value,
                                np.full((len(x), 1, 1), self.derivative))


def test_equal_infinities_pass_and_opposite_ones_fail():
    point = {"x": np.array([0.0])}
    same = check_jacobian(Stepped(math.inf), point, None, None)
    assert same.fd[0, 0, 0] == math.inf
    assert same.passed and same.abs_error[0, 0, 0] == 0.0
    assert not check_jacobian(Stepped(-math.inf), point, None, None).passed
    assert not check_jacobian(Stepped(1.0), point, None, None).passed


# --- many points at once ----------------------------------------------------------------------

def test_ten_thousand_points_pass_with_a_bounded_number_of_evaluations():
    rng = np.random.default_rng(7)
    point = {name: rng.normal(size=10_000) * 3 for name in "xyz"}
    counted = Wrapped("x^2*y + sin(z)", lambda j: j)
    result = check_jacobian(counted, point, None, None)
    assert result.passed and result.count == 10_000
    assert result.ad.shape == result.fd.shape == (10_000, 1, 3)
    assert result.point_ok.all() and len(result.failing_points()) == 0
    assert counted.eval_calls == 4 * 3      # (x +- h, x +- h/2) per input, never per point
    np.testing.assert_allclose(result.ad[:, 0, 0], 2 * point["x"] * point["y"], rtol=1e-14)


def test_a_batch_where_only_the_kink_point_fails():
    x = np.array([-2.0, -1.0, 0.0, 0.5, 2.0])
    result = check_jacobian(jacli.compile("relu(x) + x^2"), {"x": x}, None, None)
    assert result.failing_points().tolist() == [2]
    assert result.point_ok.tolist() == [True, True, False, True, True]
    assert not result.passed
    assert result.failures(0) == [] and len(result.failures(2)) == 1
    assert result.failures(2)[0].reason.startswith(KINK_REASON)
    np.testing.assert_allclose(result.ad[:, 0, 0], np.where(x > 0, 1, 0) + 2 * x)


def test_parameters_are_shared_and_not_differentiated():
    program = jacli.compile((SAMPLES / "robot_arm.jac").read_text())
    q1, q2 = np.array([0.5, 0.0, 1.0]), np.array([1.0, 0.3, -2.0])
    result = check_jacobian(program, {"q1": q1, "q2": q2, "l1": 1.0, "l2": 0.8},
                            ["q1", "q2"], None)
    assert result.inputs == ["q1", "q2"] and result.outputs == ["x", "y"]
    assert result.steps.shape == (3, 2) and result.passed
    # dx/dq2 = -l2 sin(q1 + q2), dy/dq1 = l1 cos(q1) + l2 cos(q1 + q2)
    np.testing.assert_allclose(result.ad[:, 0, 1], -0.8 * np.sin(q1 + q2), rtol=1e-14)
    np.testing.assert_allclose(result.ad[:, 1, 0], np.cos(q1) + 0.8 * np.cos(q1 + q2),
                               rtol=1e-14)


def test_outputs_can_be_selected():
    result = run("r = sqrt(x^2 + y^2); theta = atan2(y, x)", None, ["theta"], x=3, y=4)
    assert result.outputs == ["theta"] and result.ad.shape == (1, 1, 2)


def test_worst_is_a_failing_entry_when_there_is_one():
    result = run("f = relu(x) + y^2; g = x*y", x=0, y=1)
    worst = result.worst(0)
    assert (worst.output, worst.input, worst.ad) == ("f", "x", 0.0)
    assert worst.fd == pytest.approx(0.5, abs=1e-9)
    assert worst.abs_error == result.max_abs_error[0]
    # Without failures: the entry closest to its tolerance, |ad - fd| / (atol + rtol |fd|).
    ok = run("f = x^3 + y^2; g = 1e-3*x*y", x=1, y=1)
    assert ok.passed
    score = ok.abs_error[0] / (ok.atol + ok.rtol * np.abs(ok.fd[0]))
    i, j = np.unravel_index(np.argmax(score), score.shape)
    assert ok.worst(0)[:2] == (ok.outputs[i], ok.inputs[j])
    assert ok.worst_index().tolist() == [[i, j]]


def test_an_empty_jacobian():
    result = check_jacobian(jacli.compile("2 + 3"), {}, None, None)
    assert result.passed and result.ad.shape == (1, 1, 0)
    assert result.worst(0) is None and result.max_abs_error.tolist() == [0.0]


# --- writing ----------------------------------------------------------------------------------

def _written(result, fmt, **options) -> str:
    out = io.StringIO()
    write_check(result, fmt, out, **options)
    return out.getvalue()


def _mixed():
    return check_jacobian(jacli.compile("relu(x)*y + sqrt(y)"),
                          {"x": np.array([0.0, 1.0, 2.0]), "y": np.array([1.0, 0.0, 4.0])},
                          None, None)


def test_json_has_the_keys_and_writes_non_finite_as_strings():
    result = _mixed()
    lines = _written(result, "json").splitlines()
    assert len(lines) == 3
    objects = [json.loads(line) for line in lines]
    for obj in objects:
        assert set(obj) == {"inputs", "outputs", "at", "ok", "max_abs_error",
                            "max_rel_error", "worst", "failures"}
        assert obj["inputs"] == ["x", "y"] and obj["outputs"] == ["f1"]
    first, second, third = objects
    assert first["at"] == {"x": 0.0, "y": 1.0} and first["ok"] is False
    assert first["worst"]["output"] == "f1" and first["worst"]["input"] == "x"
    assert first["worst"]["ad"] == 0.0 and first["worst"]["fd"] == pytest.approx(0.5)
    [failure] = first["failures"]
    assert set(failure) == {"output", "input", "ad", "fd", "abs_error", "rel_error", "reason"}
    assert failure["reason"].startswith(KINK_REASON)
    # sqrt at 0: AD inf, FD nan: strings, so the line is valid JSON
    assert second["ok"] is False and second["max_abs_error"] == "nan"
    assert {"ad": "inf", "fd": "nan"}.items() <= second["worst"].items()
    assert "NaN" not in lines[1] and "Infinity" not in lines[1]
    assert third["ok"] is True and third["failures"] == []
    assert third["max_abs_error"] == result.max_abs_error[2]       # repr round-trips


def test_plain_is_one_scriptable_line_per_point():
    result = _mixed()
    lines = _written(result, "plain").splitlines()
    assert [line.split()[2] for line in lines] == ["FAIL", "FAIL", "ok"]
    assert lines[1].split()[:2] == ["nan", "nan"]
    abs_error, rel_error, _ = lines[2].split()
    assert float(abs_error) == result.max_abs_error[2]
    assert float(rel_error) == result.max_rel_error[2]


def test_csv_has_a_header_and_a_row_per_point():
    result = _mixed()
    rows = list(csv.reader(io.StringIO(_written(result, "csv"))))
    assert rows[0] == ["x", "y", "ok", "max_abs_error", "max_rel_error",
                       "worst_output", "worst_input"]
    assert rows[1][:3] == ["0.0", "1.0", "false"] and rows[1][5:] == ["f1", "x"]
    assert rows[3][2] == "true" and float(rows[3][3]) == result.max_abs_error[2]
    assert len(rows) == 4


def test_variables_and_at_rows_come_from_the_caller():
    result = run("x*y", ["x"], None, x=2, y=3)
    text = _written(result, "json", variables=["x", "y"], at_rows=np.array([[2.0, 3.0]]))
    assert json.loads(text)["at"] == {"x": 2.0, "y": 3.0}
    assert json.loads(text)["inputs"] == ["x"]


def test_bad_rows_keep_their_place():
    result = _mixed()                                  # the 3 good rows of 4
    bad = {1: "the value of 'x' is not a number: 'abc'"}
    lines = _written(result, "json", bad_rows=bad).splitlines()
    assert json.loads(lines[1]) == {"row": 2, "error": bad[1]}
    assert json.loads(lines[3])["at"] == {"x": 2.0, "y": 4.0}
    plain = _written(result, "plain", bad_rows=bad).splitlines()
    assert plain[1] == "nan nan error" and plain[3].endswith(" ok")
    rows = list(csv.reader(io.StringIO(_written(result, "csv", bad_rows=bad))))
    assert rows[2] == ["nan", "nan", "false", "nan", "nan", "", ""]
    assert len(rows) == 5


def test_rich_view_shows_entries_status_and_verdict():
    from rich.console import Console
    result = _mixed()
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(check_renderable(result, None, None))
    text = console.file.getvalue()
    for word in ("∂f1/∂x", "AD", "finite difference", "abs err", "rel err", "status",
                 "kink", "FAIL", "ok", "x=0, y=1"):
        assert word in text, word
    assert "disagree at 2 of 3 points" in text
    assert verdict(run("x*y", x=1, y=2)).startswith("AD and finite differences agree at the point")


def test_library_and_writers_do_not_load_rich_or_typer():
    code = ("import sys, numpy as np, io, jacli\n"
            "from jacli.check import check_jacobian\n"
            "from jacli.check_view import write_check\n"
            "r = check_jacobian(jacli.compile('relu(x)'), {'x': np.array([0.0])})\n"
            "write_check(r, 'json', io.StringIO())\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'rich')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert check.__name__ == "jacli.check"
